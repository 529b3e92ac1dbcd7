import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

@Suite struct HandlerDetachTests {
    static let customer = SimulatorConfiguration.customerVMID

    /// The checkpoint of a worker killed after sending detachVolume for `vmId`, before its answer.
    static func unanswered(from vmId: String) -> String { #"{"request_unanswered":true,"vm_id":"\#(vmId)"}"# }

    @Test func detachFromTheApplianceWaitsForTheLinkAndDropsTheMapping() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            #expect(try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance)).status == "completed")
            #expect(try await h.mapping(volumeId) != nil)

            let row = try await h.finished(try await h.enqueue("detach", volume: volumeId))
            try await worker.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(try row.json()["vm_id"] as? String == h.appliance)
            #expect(try await h.mapping(volumeId) == nil)
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            #expect(!FileManager.default.fileExists(atPath: link))
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == nil)
            #expect(await h.sideEffects(volumeId).detachVolume == 1)
        }
    }

    /// The crash window: detachVolume accepted, the worker killed before the job id reached
    /// the checkpoint (the mark and the VM only). The job is still running, so the volume is
    /// still attached; the next worker adopts the job instead of detaching a second time.
    @Test func aDetachKilledBeforeCheckpointingTheJobIdAdoptsThePendingJob() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: h.appliance)
            let jobId = try await h.sentAndHeldPending { try await h.client.detachVolume(id: volumeId) }
            let row = try await h.runOnFreshWorker("detach", volume: volumeId, checkpoint: Self.unanswered(from: h.appliance))

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(try row.json()["vm_id"] as? String == h.appliance)
            #expect(await h.sideEffects(volumeId).detachVolume == 1)
            #expect(row.checkpoint?.contains(#""job_id": "\#(jobId)""#) == true, "adopted, not found done: \(row.checkpoint ?? "")")
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == nil)
            let link = try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))
            #expect(!FileManager.default.fileExists(atPath: link))
        }
    }

    /// The worker died before detachVolume left it: nothing pending, still attached, so the
    /// request is sent, once.
    @Test func aDetachWhoseRequestNeverArrivedIsSentOnce() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: Self.customer)
            let row = try await h.runOnFreshWorker("detach", volume: volumeId, checkpoint: Self.unanswered(from: Self.customer))

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(try row.json()["vm_id"] as? String == SimulatorConfiguration.customerVMID)
            #expect(await h.sideEffects(volumeId).detachVolume == 1)
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == nil)
        }
    }

    /// The unanswered detach finished before anyone looked: the volume is off the VM it was
    /// sent for, which the operation reports, without a second detachVolume.
    @Test func aDetachThatTookEffectUnansweredReportsItsVM() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: SimulatorConfiguration.customerVMID)
            _ = try await h.client.waitForJob(jobId: try await h.client.detachVolume(id: volumeId), timeout: .seconds(10))
            let row = try await h.runOnFreshWorker("detach", volume: volumeId, checkpoint: Self.unanswered(from: Self.customer))

            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(try row.json()["vm_id"] as? String == SimulatorConfiguration.customerVMID)
            #expect(await h.sideEffects(volumeId).detachVolume == 1)
        }
    }

    @Test func anAlreadyDetachedVolumeSucceedsAndLosesItsStaleMapping() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.db.query("""
                INSERT INTO device_mappings (volume_id, vm_id, operation_mode) VALUES ('\(volumeId)', '\(SimulatorConfiguration.customerVMID)', 'remote')
                """)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("detach", volume: volumeId))
            try await worker.stop()
            #expect(row.status == "completed")
            #expect(try row.json()["vm_id"] is NSNull)
            #expect(try await h.mapping(volumeId) == nil)
            #expect(await h.sideEffects(volumeId).detachVolume == 0)
        }
    }

    @Test func anExportedVolumeIsNotDetachedWithoutForce() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: SimulatorConfiguration.customerVMID)
            try await insertExport(h.db, volumeId: volumeId, vmId: SimulatorConfiguration.customerVMID, name: "migration-vol-\(volumeId)")
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("detach", volume: volumeId))
            try await worker.stop()
            #expect(row.status == "failed")
            #expect(row.errorCode == "volume_exported")
            #expect(row.error?.contains("migration-vol-\(volumeId)") == true)
            #expect(row.error?.contains("force") == true)
            #expect(await h.sideEffects(volumeId).detachVolume == 0)
        }
    }

    @Test func forceRemovesTheExportsThenDetaches() async throws {
        let remover = MarkingExportRemover()
        try await HandlerHarness.with(exportRemover: remover) { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: SimulatorConfiguration.customerVMID)
            try await insertExport(h.db, volumeId: volumeId, vmId: SimulatorConfiguration.customerVMID, name: "migration-vol-\(volumeId)")
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("detach", volume: volumeId, request: #"{"force":true}"#))
            try await worker.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(remover.volumes == [volumeId])
            #expect(try await h.db.scalar("SELECT status FROM vm_export_mappings WHERE volume_id = '\(volumeId)'") == "removed")
            #expect(await h.simulator.state().volume(volumeId)?.virtualmachineid == nil)
        }
    }

    @Test func forceWithoutAnExportManagerFailsClearly() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: SimulatorConfiguration.customerVMID)
            try await insertExport(h.db, volumeId: volumeId, vmId: SimulatorConfiguration.customerVMID, name: "migration-vol-\(volumeId)")
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("detach", volume: volumeId, request: #"{"force":true}"#))
            try await worker.stop()
            #expect(row.status == "failed")
            #expect(row.errorCode == "export_removal_unavailable")
            #expect(await h.sideEffects(volumeId).detachVolume == 0)
        }
    }
}
