import CloudStack
import Worker

/// stopVirtualMachine as a `CloudStackStep`: bringing a test-failover VM to `Stopped` before
/// its disks come off. CloudStack detaches a root disk only from a stopped VM
/// (VolumeApiServiceImpl.validateRootVolumeDetachAttach), and a stopped guest has flushed
/// its writes. Returns once the VM is `Stopped` (or `Destroyed`, which CloudStack detaches
/// from too), within `environment.vmStopTimeout`, else `test_vm_stop_timeout` before the
/// caller detached anything. A VM Stopping or Starting (another stop or start under way) is
/// waited on, unless `force` sends one forced stop (the fix for a VM stuck Stopping).
struct StopVirtualMachine: CloudStackAction {
    let environment: OperationEnvironment
    let context: OperationContext
    let vmId: CloudStackID
    /// The volume the stop is for, named in the errors.
    let volumeId: CloudStackID
    let force: Bool

    var command: String { "stopVirtualMachine" }
    var timeLimit: Duration? { environment.vmStopTimeout }
    var object: String { "VM \(vmId)" }

    func look(_ progress: StepProgress) async throws -> CloudStackVirtualMachine? {
        try await environment.cloudStack.virtualMachine(id: vmId)
    }

    func decide(_ vm: CloudStackVirtualMachine?, _ progress: StepProgress) async throws -> StepNext<Void> {
        guard let vm else {
            throw VolumeOperationFailure.vmNotFound(vmId, detail: "listVirtualMachines returned nothing for the test VM")
        }
        let ours = progress.jobId != nil
        switch vm.state {
        case "Stopped", "Destroyed":
            return .done(())
        case "Running" where !ours, "Stopping" where !ours && force, "Starting" where !ours && force:
            context.logger.info("stopping the test VM", metadata: ["vm_id": "\(vmId)", "state": "\(vm.state)", "forced": "\(force)"])
            return .send(StepProgress()) { AcceptedRequest(jobId: try await environment.cloudStack.stopVirtualMachine(id: vmId.value, forced: force)) }
        case "Running", "Stopping", "Starting", "Migrating":
            context.logger.debug("waiting for the test VM to stop", metadata: ["vm_id": "\(vmId)", "state": "\(vm.state)"])
            return .poll(pastTimeLimit: VolumeOperationFailure.testVMStopTimeout(
                vmId: vmId, state: vm.state, waited: environment.vmStopTimeout, volumeId: volumeId))
        default:
            throw VolumeOperationFailure.testVMUnstoppable(vmId: vmId, state: vm.state, volumeId: volumeId)
        }
    }

    func ended(_ ending: JobEnding, _ progress: StepProgress) async throws -> StepNext<Void> {
        guard case .failed(let error) = ending else { return .look() }
        if try await environment.cloudStack.virtualMachine(id: vmId)?.state == "Stopped" { return .done(()) }
        return .fail(error, saving: progress.forgettingJob(after: error))
    }
}
