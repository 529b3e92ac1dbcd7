import CloudStackSimulator
import Foundation
import TestSupport
import Testing

/// The original daemon's test-failover routes against `volumed serve` (API + real worker):
/// `POST /volumes/{id}/attach-root` puts a volume on a stopped test VM as its root disk, and
/// `POST /cleanup/test-failover` hands it back to this appliance, the test VM destroyed.
@Suite struct TestFailoverRouteTests {
    @Test func attachRootThenCleanupThroughTheHTTPAPI() async throws {
        try await APIWorld.with(.serve) { world in
            let testVM = try await world.simulator.addVirtualMachine(SimulatorVirtualMachineSpec(name: "test-failover-http"))
            let volume = try await world.cloudVolume()

            // On the appliance first, as replication leaves it.
            let attach = try await world.post("/api/v1/volumes/\(volume)/attach", #"{"vm_id": "\#(world.appliance)"}"#)
            #expect(try await world.finished(try #require(try attach.object()["id"] as? String)) == "completed")
            let detach = try await world.post("/api/v1/volumes/\(volume)/detach")
            #expect(try await world.finished(try #require(try detach.object()["id"] as? String)) == "completed")

            // attach-root: device 0 of the stopped test VM.
            let root = try await world.post("/api/v1/volumes/\(volume)/attach-root", #"{"vm_id": "\#(testVM.id)"}"#)
            #expect(root.status == 201, "\(root.text)")
            let rootId = try #require(try root.object()["id"] as? String)
            #expect(try await world.finished(rootId) == "completed")
            let onTestVM = try await world.cloudStack.listVolumes(id: volume).first
            #expect(onTestVM?.virtualmachineid?.value == testVM.id && onTestVM?.deviceid == 0 && onTestVM?.type == "ROOT", "\(String(describing: onTestVM))")
            let device = try await world.get("/api/v1/volumes/\(volume)/device").object()
            #expect(device["operation_mode"] as? String == "failover" && device["vm_id"] as? String == testVM.id)

            // The test VM boots from it.
            _ = try await world.cloudStack.waitForJob(jobId: try await world.cloudStack.startJob("startVirtualMachine", [("id", testVM.id)]),
                                                      timeout: .seconds(10))

            // cleanup: back to this appliance, by-id link and mapping restored, test VM gone.
            let cleanup = try await world.post("/api/v1/cleanup/test-failover",
                                               #"{"test_vm_id": "\#(testVM.id)", "volume_id": "\#(volume)", "delete_vm": true, "force_clean": true}"#)
            #expect(cleanup.status == 201, "\(cleanup.text)")
            let cleanupOperation = try cleanup.object()
            #expect(cleanupOperation["vm_id"] as? String == world.appliance)
            #expect(try await world.finished(try #require(cleanupOperation["id"] as? String)) == "completed")
            let back = try await world.get("/api/v1/volumes/\(volume)/device").object()
            #expect(back["operation_mode"] as? String == "oma" && back["vm_id"] as? String == world.appliance)
            let byIdPath = try #require(back["device_path"] as? String)
            #expect(FileManager.default.fileExists(atPath: byIdPath), "the by-id link \(byIdPath)")
            #expect(try await world.cloudStack.listVirtualMachines(id: testVM.id).isEmpty, "the test VM was destroyed and expunged")
            let effects = await world.simulator.state().vmSideEffects(for: testVM.id)
            #expect(effects.stopVirtualMachine == 1 && effects.destroyVirtualMachine == 1, "\(effects)")
        }
    }
}
