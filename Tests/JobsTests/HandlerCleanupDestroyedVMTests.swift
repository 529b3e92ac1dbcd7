import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// A test-failover VM someone destroyed (not yet expunged) still holds our volume as ROOT.
/// CloudStack refuses to detach a ROOT volume from a Destroyed VM
/// (validateRootVolumeDetachAttach), and expunging the VM would delete the volume; the cleanup
/// recovers the VM, takes the volume back, and destroys the VM again.
@Suite struct HandlerCleanupDestroyedVMTests {
    /// A volume attached to a fresh test VM as its ROOT disk, then the VM destroyed without
    /// expunging, as a tester leaves it.
    private func volumeOnDestroyedTestVM(_ h: HandlerHarness) async throws -> (volumeId: String, testVM: String) {
        let testVM = try await h.testVM()
        let volumeId = try await h.cloudVolume()
        _ = try await h.client.waitForJob(
            jobId: try await h.client.attachVolume(id: volumeId, virtualMachineId: testVM, deviceId: 0), timeout: .seconds(10))
        _ = try await h.client.waitForJob(jobId: try await h.client.destroyVirtualMachine(id: testVM), timeout: .seconds(10))
        try #require(await h.vmState(testVM) == "Destroyed")
        try #require(await h.attachedVM(volumeId) == testVM)
        return (volumeId, testVM)
    }

    @Test func cloudStackRefusesToDetachARootVolumeFromADestroyedVMUntilItIsRecovered() async throws {
        try await HandlerHarness.with { h in
            let (volumeId, testVM) = try await volumeOnDestroyedTestVM(h)
            let refused = try #require(await expectCloudStackError {
                _ = try await h.client.waitForJob(jobId: try await h.client.detachVolume(id: volumeId), timeout: .seconds(10))
            })
            #expect(refused.errorCode == 431)
            #expect(refused.errorText == "Root volume detach can happen only when vm is in states: Stopped or Destroyed")
            #expect(await h.attachedVM(volumeId) == testVM)

            let recovered = try await h.client.recoverVirtualMachine(id: testVM)
            #expect(recovered.state == "Stopped")
            let again = try #require(await expectCloudStackError { _ = try await h.client.recoverVirtualMachine(id: testVM) })
            #expect(again.errorCode == 431)
            #expect(again.errorText?.hasSuffix("is not in the right state") == true, "\(again.errorText ?? "")")
            _ = try await h.client.waitForJob(jobId: try await h.client.detachVolume(id: volumeId), timeout: .seconds(10))
            #expect(await h.attachedVM(volumeId) == nil)
            #expect(await h.vmSideEffects(testVM).recoverVirtualMachine == 1)
        }
    }

    @Test func deleteVMRecoversDetachesHandsTheVolumeBackThenExpungesTheEmptyVM() async throws {
        try await HandlerHarness.with { h in
            let (volumeId, testVM) = try await volumeOnDestroyedTestVM(h)
            let row = try await h.runOnFreshWorker(
                "cleanup", volume: volumeId, request: #"{"test_vm_id":"\#(testVM)","delete_vm":true}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(try row.json()["test_vm_destroyed"] as? Bool == true)
            #expect(await h.attachedVM(volumeId) == h.appliance, "the volume survived and is back on the appliance")
            #expect(await h.simulator.state().volume(volumeId)?.state != "Expunged")
            #expect(try await h.mapping(volumeId)?.mode == "appliance")
            #expect(await h.vmState(testVM) == nil, "expunged once empty")
            #expect(await h.vmSideEffects(testVM) == SimulatorState.VirtualMachineSideEffects(
                destroyVirtualMachine: 2, recoverVirtualMachine: 1))
        }
    }

    @Test func withoutDeleteVMTheRecoveredVMIsDestroyedAgainNotExpunged() async throws {
        try await HandlerHarness.with { h in
            let (volumeId, testVM) = try await volumeOnDestroyedTestVM(h)
            let row = try await h.runOnFreshWorker("cleanup", volume: volumeId, request: #"{"test_vm_id":"\#(testVM)"}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(await h.attachedVM(volumeId) == h.appliance)
            #expect(await h.vmState(testVM) == "Destroyed", "left as it was found, without the volume")
            #expect(await h.vmSideEffects(testVM).recoverVirtualMachine == 1)
        }
    }

    /// A worker died after CloudStack recovered the VM (its checkpoint says so): the next one
    /// sends no second recover, detaches, and still destroys the VM again.
    @Test func aResumeAfterTheRecoverSendsNoSecondRecoverAndStillDestroysTheVMAgain() async throws {
        try await HandlerHarness.with { h in
            let (volumeId, testVM) = try await volumeOnDestroyedTestVM(h)
            _ = try await h.client.recoverVirtualMachine(id: testVM)
            let row = try await h.runOnFreshWorker(
                "cleanup", volume: volumeId, request: #"{"test_vm_id":"\#(testVM)"}"#,
                checkpoint: #"{"step":"recovered","recovered":true}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(await h.attachedVM(volumeId) == h.appliance)
            #expect(await h.vmState(testVM) == "Destroyed")
            #expect(await h.vmSideEffects(testVM).recoverVirtualMachine == 1, "only the one the dead worker sent")
        }
    }
}
