import CloudStackSimulator
import Foundation
@testable import Operations
@testable import CloudStack
import PostgresNIO
import Schema
import TestSupport
import Testing

/// The current step an operator reads in the console and in `volumed wait`, from the
/// checkpoints the handlers really write (encoded from their own types, so a renamed key
/// fails here).
struct OperationStepTests {
    static let volume = "3f9c2a10-8b1e-4c6d-9f00-1a2b3c4d5e6f"
    static let vm = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func executing(_ type: String, _ checkpoint: String?) -> String {
        OperationStep.describe(type: type, status: .executing, checkpoint: checkpoint, volumeId: volume)
    }

    @Test func aJobIdInTheCheckpointIsTheJobWaitedOn() throws {
        #expect(Self.executing("attach", try Self.json(StepProgress(jobId: "job-17")))
                == "waiting on CloudStack job job-17 (attachVolume)")
        #expect(Self.executing("detach", try Self.json(StepProgress(jobId: "job-18", vmId: CloudStackID(Self.vm))))
                == "waiting on CloudStack job job-18 (detachVolume from VM \(Self.vm))")
        #expect(Self.executing("create", try Self.json(StepProgress(jobId: "job-19", volumeId: CloudStackID(Self.volume))))
                == "waiting on CloudStack job job-19 (createVolume for volume \(Self.volume))")
        var delete = DeleteHandler.Checkpoint()
        delete.detach = StepProgress(jobId: "job-20")
        #expect(Self.executing("delete", try Self.json(delete)) == "waiting on CloudStack job job-20 (detachVolume), before deleteVolume")
        // A type's words are its handler's: resize says so with no line in OperationStep.
        #expect(Self.executing("resize", try Self.json(StepProgress(jobId: "job-21"))) == "waiting on CloudStack job job-21 (resizeVolume)")
        #expect(Self.executing("resize", nil) == "looking at the volume in CloudStack before resizing")
        #expect(Self.executing("defragment", #"{"job_id": "job-22"}"#) == "running")
    }

    @Test func anAttachWhoseJobSucceededWaitsForTheByIdLink() throws {
        let checkpoint = try Self.json(StepProgress(jobId: "job-17", awaitingByIdLink: true))
        #expect(Self.executing("attach", checkpoint) == "waiting for by-id link virtio-3f9c2a108b1e4c6d9f00")
    }

    @Test func anUnansweredRequestSaysSo() throws {
        #expect(Self.executing("attach", try Self.json(StepProgress(requestUnanswered: true)))
                == "attachVolume sent without an answer; looking for the job CloudStack may be running")
        #expect(Self.executing("create", try Self.json(StepProgress(requestUnanswered: true)))
                == "createVolume sent without an answer; looking for the volume CloudStack may have made")
    }

    @Test func aCleanupNamesItsStepAndItsJob() throws {
        var cleanup = CleanupHandler.Checkpoint()
        cleanup.stop = StepProgress(jobId: "job-1")
        #expect(Self.executing("cleanup", try Self.json(cleanup)) == "waiting on CloudStack job job-1 (stopVirtualMachine)")
        cleanup.stop = nil
        cleanup.step = "stopped"
        #expect(Self.executing("cleanup", try Self.json(cleanup)) == "test VM stopped; detaching the volume from it")
        cleanup.step = "detached"
        cleanup.attach = StepProgress(jobId: "job-3", awaitingByIdLink: true)
        #expect(Self.executing("cleanup", try Self.json(cleanup)) == "waiting for by-id link virtio-3f9c2a108b1e4c6d9f00")
        cleanup.attach = nil
        cleanup.step = "attached"
        cleanup.destroy = StepProgress(jobId: "job-4")
        #expect(Self.executing("cleanup", try Self.json(cleanup)) == "waiting on CloudStack job job-4 (destroyVirtualMachine)")
    }

    @Test func noCheckpointPendingRetriesAndCancelRequests() {
        let now = Date()
        #expect(Self.executing("export", nil) == "exporting the by-id link over NBD")
        #expect(OperationStep.describe(type: "attach", status: .pending, checkpoint: nil, volumeId: Self.volume, attempts: 0,
                                       runAfter: now, now: now) == "waiting for a worker")
        #expect(OperationStep.describe(type: "attach", status: .pending, checkpoint: #"{"job_id": "job-9"}"#, volumeId: Self.volume,
                                       attempts: 2, maxAttempts: 5, runAfter: now.addingTimeInterval(75),
                                       errorCode: "cloudstack_unreachable", now: now)
                == "attempt 3 of 5 due in 1m 15s after cloudstack_unreachable; resumes from its checkpoint")
        #expect(OperationStep.describe(type: "attach", status: .executing, checkpoint: #"{"job_id": "job-9"}"#, volumeId: Self.volume,
                                       cancelRequested: true)
                == "cancel requested, stops after this step: waiting on CloudStack job job-9 (attachVolume)")
        #expect(OperationStep.describe(type: "attach", status: .failed, checkpoint: nil, volumeId: nil, errorCode: "volume_not_found")
                == "failed (volume_not_found)")
        #expect(Self.executing("attach", "not json") == "looking at the volume in CloudStack before attaching")
    }

    /// A real attach to the appliance whose disk never shows up: once CloudStack's job
    /// succeeded, the row says it waits for the by-id link, not on the (finished) job.
    @Test func aRealAttachWaitingForItsDiskSaysItWaitsForTheByIdLink() async throws {
        try await HandlerHarness.with(hotPlug: false, deviceWaitTimeout: .seconds(4)) { h in
            let volumeId = try await h.cloudVolume()
            let id = try await h.enqueue("attach", volume: volumeId, vm: h.appliance, maxAttempts: 1)
            let worker = h.startWorker()
            let serial = CloudStackSimulator.diskSerial(forVolumeID: volumeId)
            try await eventually("the attach to wait for its by-id link") {
                let rows = try await h.db.client.query(
                    PostgresQuery(unsafeSQL: "SELECT \(OperationRecord.columns) FROM volume_operations WHERE id = '\(id)'"),
                    logger: testLogger)
                for try await row in rows {
                    let record = try OperationRecord(row: row)
                    if record.status == .executing, OperationStep.describe(record) == "waiting for by-id link virtio-\(serial)" { return true }
                }
                return false
            }
            _ = try await h.finished(id)
            try await worker.stop()
        }
    }
}
