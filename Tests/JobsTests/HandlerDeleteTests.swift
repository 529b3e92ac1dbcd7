import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

@Suite struct HandlerDeleteTests {
    @Test func deleteRemovesTheVolumeAndMarksItDeleted() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume(sizeGB: 2)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("delete", volume: volumeId))
            // Deleting again is a success: CloudStack no longer has it.
            let again = try await h.finished(try await h.enqueue("delete", volume: volumeId))
            try await worker.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            #expect(row.response == "{}")
            #expect(again.status == "completed", "\(again.error ?? "")")
            #expect(await h.simulator.state().volume(volumeId) == nil)
            #expect(await h.sideEffects(volumeId).deleteVolume == 1)
            #expect(try await h.db.query("SELECT state || '|' || size_bytes FROM volumes WHERE volume_id = '\(volumeId)'")
                    == ["Deleted|\(2 * GiB)"])
        }
    }

    @Test func anAttachedVolumeIsNotDeletedWithoutForce() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: SimulatorConfiguration.customerVMID)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.enqueue("delete", volume: volumeId))
            try await worker.stop()
            #expect(row.status == "failed")
            #expect(row.errorCode == "volume_attached")
            #expect(row.error?.contains(SimulatorConfiguration.customerVMID) == true)
            #expect(await h.simulator.state().volume(volumeId) != nil)
        }
    }

    @Test func forceDetachesFromTheApplianceThenDeletes() async throws {
        try await HandlerHarness.with { h in
            let volumeId = try await h.cloudVolume()
            let worker = h.startWorker()
            #expect(try await h.finished(try await h.enqueue("attach", volume: volumeId, vm: h.appliance)).status == "completed")
            let row = try await h.finished(try await h.enqueue("delete", volume: volumeId, request: #"{"force":true}"#))
            try await worker.stop()
            #expect(row.status == "completed", "\(row.error ?? "")")
            let effects = await h.sideEffects(volumeId)
            #expect(effects.detachVolume == 1 && effects.deleteVolume == 1)
            #expect(try await h.mapping(volumeId) == nil)
            #expect(try await h.db.scalar("SELECT state FROM volumes WHERE volume_id = '\(volumeId)'") == "Deleted")
            #expect(!FileManager.default.fileExists(atPath: try #require(h.simulator.byIDLinkPath(forVolumeID: volumeId))))
            // The checkpoint recorded the forced detach as its own step.
            #expect(row.checkpoint?.contains("\"detach\"") == true)
        }
    }
}
