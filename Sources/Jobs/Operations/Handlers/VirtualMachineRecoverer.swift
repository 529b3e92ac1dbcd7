import CloudStack
import Worker

/// Bringing a destroyed (not yet expunged) test-failover VM back to `Stopped`, so the volume
/// it holds as ROOT can come off it.
///
/// A destroyed VM keeps its ROOT volume attached, and expunging it deletes that volume with
/// it; CloudStack detaches a ROOT volume only from a `Stopped` VM
/// (VolumeApiServiceImpl.validateRootVolumeDetachAttach refuses `Destroyed`, despite its
/// message). recoverVirtualMachine (RecoverVMCmd, synchronous) turns `Destroyed` into
/// `Stopped`; the caller then detaches, and destroys the VM again afterwards.
///
/// Crash safety: the caller's checkpoint says `recovered` before the request is sent, so a
/// worker that dies after CloudStack recovered the VM leaves the next one knowing the VM is to
/// be destroyed again; a run that finds the VM `Stopped` sends nothing. CloudStack refuses a
/// second recover of a VM that is no longer Destroyed (431), so the request never repeats an
/// effect.
struct VirtualMachineRecoverer: Sendable {
    let environment: OperationEnvironment

    /// Recovers `vmId` when it is `Destroyed`; otherwise sends nothing. `markRecovering` saves
    /// the caller's checkpoint mark before the request. Returns whether it sent a recover.
    func recoverIfDestroyed(
        vmId: CloudStackID, context: OperationContext, markRecovering: @Sendable () async throws -> Void
    ) async throws -> Bool {
        guard let vm = try await environment.cloudStack.virtualMachine(id: vmId) else {
            throw VolumeOperationFailure.vmNotFound(vmId, detail: "listVirtualMachines returned nothing for the test VM")
        }
        guard vm.state == "Destroyed" else { return false }
        try context.checkCancellation()
        try await markRecovering()
        context.logger.notice("the test VM is destroyed but still holds the volume; recovering it to detach the volume",
                              metadata: ["vm_id": "\(vmId)"])
        do {
            let recovered = try await environment.cloudStack.recoverVirtualMachine(id: vmId.value)
            context.logger.info("test VM recovered", metadata: ["vm_id": "\(vmId)", "state": "\(recovered.state)"])
        } catch let error as CloudStackError where error.provesRequestRefused {
            // Someone else recovered it meanwhile: what we wanted.
            if try await environment.cloudStack.virtualMachine(id: vmId)?.state == "Stopped" { return true }
            throw error
        }
        return true
    }
}
