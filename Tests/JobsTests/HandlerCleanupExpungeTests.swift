import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// `cleanup` with `delete_vm` for an API key that may not expunge: UserVmManagerImpl.destroyVm
/// fails the job with 530 "Parameter expunge can be passed by Admin only…" (simulator:
/// `account_role` `user`). The VM is destroyed without expunge and the response says so.
@Suite struct HandlerCleanupExpungeTests {
    @Test func aKeyThatMayNotExpungeDestroysTheTestVMWithoutExpungeAndSaysSo() async throws {
        var faults = SimulatorFaults()
        faults.accountRole = .user
        try await HandlerHarness.with(faults: faults) { h in
            let testVM = try await h.testVM()
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: testVM)
            let worker = h.startWorker()

            let id = try await h.cleanup(volumeId, testVM: testVM, deleteVM: true)
            let row = try await h.finished(id)
            try await worker.stop()

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            let retries = try await h.db.scalar("""
                SELECT coalesce(string_agg(detail, ','), '') FROM volume_operation_events
                 WHERE operation_id = '\(id)' AND to_status = 'pending' AND detail LIKE 'cloudstack%'
                """)
            #expect(retries == "", "the refusal is recognised, not retried: \(retries ?? "")")
            let response = try row.json()
            #expect(response["test_vm_destroyed"] as? Bool == true)
            #expect(response["test_vm_expunged"] as? Bool == false)
            #expect(await h.vmState(testVM) == "Destroyed", "destroyed, not expunged")
            #expect(await h.vmSideEffects(testVM).destroyVirtualMachine == 2, "the refused expunge, then the plain destroy")
            #expect(await h.attachedVM(volumeId) == h.appliance)
            #expect(row.checkpoint?.contains(#""expunge_refused": true"#) == true || row.checkpoint?.contains("destroyed") == true)
        }
    }

    /// An admin key expunges, and the response says so.
    @Test func anAdminKeyExpungesTheTestVM() async throws {
        try await HandlerHarness.with { h in
            let testVM = try await h.testVM()
            let volumeId = try await h.cloudVolume()
            try await h.cloudAttach(volumeId, to: testVM)
            let worker = h.startWorker()
            let row = try await h.finished(try await h.cleanup(volumeId, testVM: testVM, deleteVM: true))
            try await worker.stop()

            #expect(row.status == "completed", "\(row.errorCode ?? ""): \(row.error ?? "")")
            #expect(try row.json()["test_vm_expunged"] as? Bool == true)
            #expect(await h.vmState(testVM) == nil)
            #expect(await h.vmSideEffects(testVM).destroyVirtualMachine == 1)
        }
    }

    /// The client names the refusal; the simulator refuses before touching the VM.
    @Test func theRefusalIsCloudstackExpungeNotPermittedAndLeavesTheVM() async throws {
        var faults = SimulatorFaults()
        faults.accountRole = .user
        try await HandlerHarness.with(faults: faults) { h in
            let testVM = try await h.testVM(state: "Running", rootVolume: true)
            let jobId = try await h.client.destroyVirtualMachine(id: testVM, expunge: true)
            let error = try #require(await expectCloudStackError { _ = try await h.client.waitForJob(jobId: jobId, timeout: .seconds(10)) })
            #expect(error.code == "cloudstack_expunge_not_permitted")
            #expect(!error.isTransient)
            #expect(error.errorCode == 530)
            #expect(error.errorText?.hasPrefix("Parameter expunge can be passed by Admin only") == true)
            #expect(await h.vmState(testVM) == "Running")
        }
    }
}
