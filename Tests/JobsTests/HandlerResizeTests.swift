import CloudStackSimulator
import DevServices
import Foundation
import Operations
import TestSupport
import Testing

/// `resize` (issue 14): CloudStack's resizeVolume, sent at most once, with the appliance's
/// device and the mappings following the new size.
@Suite struct HandlerResizeTests {
    static let customer = SimulatorConfiguration.customerVMID

    @Test func aVolumeOnTheApplianceGrowsAndItsDeviceAndRowsFollow() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let attach = try await h.runOnFreshWorker("attach", volume: volumeId, vm: h.appliance)
            try #require(attach.status == "completed", "\(attach.error ?? "")")
            try await h.db.query("""
                INSERT INTO volumes (volume_id, name, size_bytes, state) VALUES ('\(volumeId)', 'grown', \(GiB), 'Ready')
                """)

            // 2.5 GiB asked: CloudStack takes whole GB, so 3 GiB.
            let row = try await h.runOnFreshWorker("resize", volume: volumeId, request: #"{"size": \#(5 * GiB / 2)}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            let response = try row.json()
            #expect(response["size_bytes"] as? Int64 == 3 * GiB)
            #expect(response["device_path"] as? String == link)
            #expect(await h.simulator.state().volume(volumeId)?.size == 3 * GiB)
            let fileSize = try FileManager.default.attributesOfItem(atPath: h.backingFile(volumeId))[.size] as? Int64
            #expect(fileSize == 3 * GiB, "the by-id device shows the new size")
            #expect(try await h.mapping(volumeId)?.sizeBytes == 3 * GiB)
            #expect(try await h.db.scalar("SELECT size_bytes::text FROM volumes WHERE volume_id = '\(volumeId)'") == "\(3 * GiB)")
            #expect(await h.sideEffects(volumeId).resizeVolume == 1)

            // The same size again: already done, nothing sent.
            let again = try await h.runOnFreshWorker("resize", volume: volumeId, request: #"{"size": \#(3 * GiB)}"#)
            #expect(again.status == "completed", "\(again.error ?? "")")
            #expect(await h.sideEffects(volumeId).resizeVolume == 1)
        }
    }

    @Test func aDetachedVolumeGrowsWithoutADevice() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let row = try await h.runOnFreshWorker("resize", volume: volumeId, request: #"{"size": \#(2 * GiB)}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            let response = try row.json()
            #expect(response["size_bytes"] as? Int64 == 2 * GiB)
            #expect(response.keys.contains("device_path") && response["device_path"] is NSNull, "\(response)")
            #expect(await h.simulator.state().volume(volumeId)?.size == 2 * GiB)
        }
    }

    @Test func aVolumeOnAnotherVMIsRefusedNamingTheVMAndTheFix() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: Self.customer)
            let row = try await h.runOnFreshWorker("resize", volume: volumeId, request: #"{"size": \#(2 * GiB)}"#)

            #expect(row.status == "failed")
            #expect(row.errorCode == "volume_attached_elsewhere")
            #expect(row.error?.contains(Self.customer) == true && row.error?.contains("detach it first") == true, "\(row.error ?? "")")
            #expect(row.attempts == 1, "permanent")
            #expect(await h.sideEffects(volumeId).resizeVolume == 0)
        }
    }

    @Test func aSmallerSizeOrNoSizeIsRefusedNamingTheField() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume(sizeGB: 2)
            let smaller = try await h.runOnFreshWorker("resize", volume: volumeId, request: #"{"size": \#(GiB)}"#)
            #expect(smaller.status == "failed" && smaller.errorCode == "invalid_request")
            #expect(smaller.error?.contains("'size'") == true && smaller.error?.contains("\(2 * GiB)") == true, "\(smaller.error ?? "")")

            let missing = try await h.runOnFreshWorker("resize", volume: volumeId)
            #expect(missing.status == "failed" && missing.errorCode == "invalid_request")
            #expect(missing.error?.contains("size") == true, "\(missing.error ?? "")")
            #expect(await h.sideEffects(volumeId).resizeVolume == 0)
            #expect(await h.simulator.state().volume(volumeId)?.size == 2 * GiB)
        }
    }

    /// The crash window: resizeVolume accepted, the worker killed before the job id reached
    /// the checkpoint (only the mark is there). The job is still pending, so the next worker
    /// adopts it instead of resizing a second time.
    @Test func aResizeKilledBeforeCheckpointingTheJobIdAdoptsThePendingJob() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: h.appliance)
            let jobId = try await h.sentAndHeldPending { try await h.client.resizeVolume(id: volumeId, sizeGB: 2) }
            let row = try await h.runOnFreshWorker(
                "resize", volume: volumeId, request: #"{"size": \#(2 * GiB)}"#, checkpoint: #"{"request_unanswered":true}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).resizeVolume == 1)
            #expect(row.checkpoint?.contains(#""job_id": "\#(jobId)""#) == true, "adopted: \(row.checkpoint ?? "")")
            #expect(await h.simulator.state().volume(volumeId)?.size == 2 * GiB)
        }
    }

    /// Killed after the job finished, before the checkpoint: nothing pending, the volume has
    /// the size already; nothing is sent again.
    @Test func aResizeWhoseJobFinishedBeforeTheCrashIsNotSentAgain() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let jobId = try await h.client.resizeVolume(id: volumeId, sizeGB: 2)
            _ = try await h.client.waitForJob(jobId: jobId, timeout: .seconds(10))
            let row = try await h.runOnFreshWorker(
                "resize", volume: volumeId, request: #"{"size": \#(2 * GiB)}"#, checkpoint: #"{"request_unanswered":true}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).resizeVolume == 1)
        }
    }

    /// Every reply lost on the way back (a proxy's 502): the first attempt keeps the unanswered
    /// mark, the retry adopts the job or finds the size done; one resizeVolume in all.
    @Test func aResizeWhoseReplyWasLostIsSentOnce() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(500)) { h in
            let volumeId = try await h.cloudVolume()
            await h.simulator.setFaults(HandlerReplyLostTests.proxyLosingReplies)
            let row = try await h.runOnFreshWorker("resize", volume: volumeId, request: #"{"size": \#(4 * GiB)}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(row.attempts >= 2, "the lost reply failed the first attempt")
            #expect(await h.sideEffects(volumeId).resizeVolume == 1)
            #expect(await h.simulator.state().volume(volumeId)?.size == 4 * GiB)
        }
    }

    @Test func aResizeRescuedWithItsJobIdWaitsOnThatJob() async throws {
        try await HandlerHarness.with(asyncDelay: .milliseconds(800)) { h in
            let volumeId = try await h.cloudVolume()
            let jobId = try await h.client.resizeVolume(id: volumeId, sizeGB: 3)
            let row = try await h.runOnFreshWorker(
                "resize", volume: volumeId, request: #"{"size": \#(3 * GiB)}"#, checkpoint: #"{"job_id":"\#(jobId)"}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(await h.sideEffects(volumeId).resizeVolume == 1)
            #expect(try row.json()["size_bytes"] as? Int64 == 3 * GiB)
        }
    }

    /// An export published before the resize serves the grown disk to its next client.
    @Test func anExistingNBDExportServesTheNewSize() async throws {
        try await HandlerHarness.with { h in
            try await h.withServedExports { nbdkit, handlers in
                let worker = h.startWorker(handlers: handlers)
                let volumeId = try await h.cloudVolume()
                let attach = try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance))
                try #require(attach.status == "completed", "\(attach.error ?? "")")
                let export = try await h.finished(try await h.enqueue(
                    "export", volume: volumeId, vm: Self.customer, request: #"{"job_id":"r-1","vm_name":"db-01","disk_unit_number":0}"#))
                try #require(export.status == "completed", "\(export.errorCode ?? ""): \(export.error ?? "")")
                let uri = nbdkit.uri(exportName: "migration-vol-\(volumeId)")
                #expect(try await Self.nbdSize(uri) == "\(GiB)")

                let resize = try await h.finished(try await h.enqueue("resize", volume: volumeId, request: #"{"size": \#(2 * GiB)}"#))
                try await worker.stop()
                try #require(resize.status == "completed", "\(resize.errorCode ?? ""): \(resize.error ?? "")")
                #expect(try await Self.nbdSize(uri) == "\(2 * GiB)")
                // The grown part reads (as zeros) over NBD, to the last byte.
                let scratch = try ScratchDirectory("volumed-resize-read")
                defer { scratch.remove() }
                let copy = scratch.child("copy.img")
                try await runTool(try NbdTools.nbdcopy().path, [uri, copy]).requireSuccess()
                #expect(try FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int64 == 2 * GiB)
            }
        }
    }

    private static func nbdSize(_ uri: String) async throws -> String {
        let result = try await ProcessRunner.run([try NbdTools.nbdinfo().path, "--size", uri])
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
