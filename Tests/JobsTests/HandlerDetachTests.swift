import CloudStackSimulator
import Foundation
import Jobs
import TestSupport
import Testing

@Suite struct HandlerDetachTests {
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
