import CloudStack
import CloudStackSimulator
import Foundation
import Operations
import TestSupport
import Testing

/// Test-failover steps an orchestrator takes directly in CloudStack (volumed never starts a
/// VM), and the simulator's view of VMs, for the cleanup tests.
extension HandlerHarness {
    /// A VM of this test's own in the simulator; Stopped without disks by default, awaiting
    /// an attach as root.
    func testVM(state: String = "Stopped", rootVolume: Bool? = nil, sticksInStopping: Bool = false) async throws -> String {
        try await simulator.addVirtualMachine(
            SimulatorVirtualMachineSpec(name: "test-failover-\(UUID().uuidString.prefix(6))", state: state,
                                        rootVolume: rootVolume, sticksInStopping: sticksInStopping)
        ).id
    }

    func cloudStartVM(_ vmId: String) async throws {
        _ = try await client.waitForJob(jobId: try await client.startVirtualMachine(id: vmId), timeout: .seconds(20))
    }

    /// The VM's state, or nil once it is expunged.
    func vmState(_ vmId: String) async -> String? {
        await simulator.state().virtualMachine(vmId)?.state
    }

    func vmSideEffects(_ vmId: String) async -> SimulatorState.VirtualMachineSideEffects {
        await simulator.state().vmSideEffects(for: vmId)
    }

    /// Where CloudStack has the volume: the VM id, or nil when detached.
    func attachedVM(_ volumeId: String) async -> String? {
        await simulator.state().volume(volumeId)?.virtualmachineid
    }

    /// A cleanup request as the orchestrator enqueues it.
    func cleanup(_ volumeId: String, testVM: String, deleteVM: Bool = false, force: Bool = false,
                 maxAttempts: Int = 5) async throws -> UUID {
        try await enqueue("cleanup", volume: volumeId,
                          request: #"{"test_vm_id":"\#(testVM)","delete_vm":\#(deleteVM),"force":\#(force)}"#,
                          maxAttempts: maxAttempts)
    }

    /// Whether the operation's checkpoint holds a job id under `step` (`stop`, `detach`, …).
    func checkpointHasJob(_ id: UUID, step: String) async throws -> Bool {
        try await db.scalar("SELECT ((checkpoint -> '\(step)' ->> 'job_id') IS NOT NULL)::text FROM volume_operations WHERE id = '\(id)'") == "true"
    }

    /// Each count in `after` minus the one in `before`, per side effect.
    static func delta(_ before: SimulatorState.SideEffects, _ after: SimulatorState.SideEffects) -> SimulatorState.SideEffects {
        SimulatorState.SideEffects(
            createVolume: after.createVolume - before.createVolume, attachVolume: after.attachVolume - before.attachVolume,
            detachVolume: after.detachVolume - before.detachVolume, deleteVolume: after.deleteVolume - before.deleteVolume)
    }
}

extension CloudStackClient {
    /// Starts a VM, as the replication engine does before a test failover (volumed never
    /// starts one, so the client has no such command); returns the job id.
    func startVirtualMachine(id: String) async throws -> String {
        try await startJob("startVirtualMachine", [("id", id)])
    }
}
