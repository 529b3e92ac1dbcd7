import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// `cleanup`'s VM steps in the crash window: stopVirtualMachine or destroyVirtualMachine
/// accepted by CloudStack, the worker killed before the job id reached the checkpoint
/// (which holds only the "request unanswered" mark). The job is held pending for 2 s; the
/// next worker adopts the job CloudStack lists on the VM instead of sending a second one.
@Suite struct HandlerCleanupUnansweredTests {
    /// Forced, the stopper would send a forced stop to a VM it finds Stopping with no job
    /// id of its own; the adopted job makes that unnecessary.
    @Test func aForcedStopKilledBeforeCheckpointingItsJobIdIsNotSentAgain() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM(state: "Running")
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: testVM)
            let stopJob = try await h.sentAndHeldPending { try await h.client.stopVirtualMachine(id: testVM, forced: true) }
            #expect(await h.vmState(testVM) == "Stopping")
            #expect(try await h.client.listVirtualMachines(id: testVM).first?.pendingJobId == stopJob)

            let row = try await h.runOnFreshWorker(
                "cleanup", volume: volumeId, request: #"{"test_vm_id":"\#(testVM)","force":true}"#,
                checkpoint: #"{"stop":{"request_unanswered":true}}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(await h.vmSideEffects(testVM).stopVirtualMachine == 1)
            #expect(await h.vmState(testVM) == "Stopped")
            #expect(await h.attachedVM(volumeId) == h.appliance)
        }
    }

    @Test func aDestroyKilledBeforeCheckpointingItsJobIdIsNotSentAgain() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM()
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: h.appliance)
            let destroyJob = try await h.sentAndHeldPending { try await h.client.destroyVirtualMachine(id: testVM, expunge: true) }
            #expect(try await h.client.listVirtualMachines(id: testVM).first?.pendingJobId == destroyJob)

            let row = try await h.runOnFreshWorker(
                "cleanup", volume: volumeId, request: #"{"test_vm_id":"\#(testVM)","delete_vm":true}"#,
                checkpoint: #"{"step":"attached","destroy":{"request_unanswered":true}}"#)

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(try row.json()["test_vm_destroyed"] as? Bool == true)
            #expect(await h.vmSideEffects(testVM).destroyVirtualMachine == 1)
            #expect(await h.vmState(testVM) == nil, "destroyed and expunged")
            #expect(row.checkpoint?.contains("request_unanswered") == false, "\(row.checkpoint ?? "")")
        }
    }
}
