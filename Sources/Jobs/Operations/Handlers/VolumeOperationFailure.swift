import Primitives
import Devices
import CloudStack
import Schema
import Worker

/// Failures the handlers decide themselves (as opposed to errors CloudStack, the by-id
/// resolver or NBD report): the volume, or the tables (for an export), are in a state the
/// operation must not change on its own. Each message names the cause and the fix.
/// Permanent unless made `isTransient`.
struct VolumeOperationFailure: OperationFailure, CustomStringConvertible {
    let code: String
    let message: String
    var isTransient = false

    var description: String { "\(code): \(message)" }

    static func volumeNotFound(_ volumeId: CloudStackID) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_not_found",
            message: "volume \(volumeId) does not exist in CloudStack (listVolumes returned nothing); check the operation's volume_id")
    }

    static func vmNotFound(_ vmId: CloudStackID, detail: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "vm_not_found",
            message: "VM \(vmId) does not exist in CloudStack (\(detail)); check the operation's vm_id")
    }

    static func attachedElsewhere(volumeId: CloudStackID, attachedTo: CloudStackID, requested: CloudStackID) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_attached_elsewhere",
            message: "volume \(volumeId) is attached to VM \(attachedTo), not \(requested); detach it first")
    }

    static func volumeAttached(volumeId: CloudStackID, vmId: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_attached",
            message: "volume \(volumeId) is attached to VM \(vmId); detach it first or pass \"force\": true to detach and delete it")
    }

    static func volumeExported(volumeId: CloudStackID, exports: [String]) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_exported",
            message: "volume \(volumeId) is exported over NBD as \(exports.joined(separator: ", ")); "
                + "unexport it first or pass \"force\": true to remove the export and detach")
    }

    static func noExportRemover(volumeId: CloudStackID, exports: [String]) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "export_removal_unavailable",
            message: "volume \(volumeId) is exported as \(exports.joined(separator: ", ")), which the detach must remove first, "
                + "but this volumed has no export manager configured to remove exports; enqueue an unexport first")
    }

    static func exportsRemain(volumeId: CloudStackID, exports: [String]) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_exported",
            message: "volume \(volumeId) is still exported as \(exports.joined(separator: ", ")) after removing its exports; "
                + "the operation will be retried",
            isTransient: true)
    }

    static func sizeMismatch(volumeId: CloudStackID, device: ResolvedDevice, cloudStackBytes: Int64) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "device_size_mismatch",
            message: "by-id link \(device.byIdPath) resolves to \(device.devicePath) of \(device.sizeBytes) bytes, but CloudStack "
                + "reports volume \(volumeId) as \(cloudStackBytes) bytes; the link points at another disk: check udev and the "
                + "appliance's disks before using it")
    }

    static func vmNotStoppedForRoot(volumeId: CloudStackID, vmId: CloudStackID, state: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "vm_not_stopped",
            message: "volume \(volumeId) cannot be attached as the root disk (device 0) of VM \(vmId): the VM is \(state), and "
                + "CloudStack attaches a root disk only to a Stopped VM; stop the VM (stopVirtualMachine) and enqueue the attach again")
    }

    static func attachedToThirdVM(volumeId: CloudStackID, attachedTo: CloudStackID, testVmId: CloudStackID, applianceVmId: CloudStackID) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_attached_elsewhere",
            message: "volume \(volumeId) is attached to VM \(attachedTo), neither the test VM \(testVmId) nor the appliance "
                + "\(applianceVmId); check the cleanup's test_vm_id, or detach the volume from \(attachedTo) first")
    }

    static func testVMStopTimeout(vmId: CloudStackID, state: String, waited: Duration, volumeId: CloudStackID) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "test_vm_stop_timeout",
            message: "test VM \(vmId) did not reach Stopped within \(secondsText(waited)) (it is \(state)); volume \(volumeId) is still "
                + "attached to it and nothing was detached. Check the VM and its host in CloudStack; when the hypervisor cannot "
                + "stop it, enqueue the cleanup again with \"force\": true (a forced stop marks it Stopped)")
    }

    static func testVMUnstoppable(vmId: CloudStackID, state: String, volumeId: CloudStackID) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "test_vm_unstoppable",
            message: "test VM \(vmId) is \(state), a state CloudStack cannot stop it from; volume \(volumeId) is still attached to it. "
                + "Repair the VM in CloudStack (or stop it with force) and enqueue the cleanup again")
    }

    /// CloudStack's detach timed out (KVM's wait.detach.device) and the disk's by-id link is
    /// still on the appliance after `waited` more: something in the guest holds the device.
    static func detachDeviceHeld(volumeId: CloudStackID, vmId: CloudStackID, waited: Duration, cloudStackError: CloudStackError) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "detach_device_held",
            message: "detaching volume \(volumeId) from appliance \(vmId) timed out in CloudStack (\(cloudStackError.errorText ?? cloudStackError.message)) "
                + "and its by-id link was still present \(secondsText(waited)) later: the appliance still holds the disk. "
                + "The detach is retried; if it keeps failing, release the device on the appliance (unmount it, deactivate LVM "
                + "volume groups on it, stop processes that have it open) and enqueue the detach again",
            isTransient: true)
    }

    static func cleanupNeedsAppliance(volumeId: CloudStackID) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "appliance_required",
            message: "a cleanup hands volume \(volumeId) back to the appliance this worker runs on, but this worker has no "
                + "appliance VM; run it with VOLUMED_APPLIANCE_VM_ID set")
    }

    // MARK: export

    /// Only a volume attached to this appliance is a local block device that nbdkit can serve.
    static func volumeNotOnAppliance(volumeId: String, mapping: DeviceMapping?) -> VolumeOperationFailure {
        let state = mapping.map { "it is attached to VM \($0.vmId) (operation_mode '\($0.operationMode)')" }
            ?? "it has no device mapping"
        return VolumeOperationFailure(
            code: "volume_not_on_appliance",
            message: "volume \(volumeId) is not attached to the appliance: \(state); attach it to the appliance first "
                + "(enqueue an attach with vm_id = the appliance VM), then export it")
    }

    /// The (VM, disk) or the volume is already exported otherwise; exporting again would
    /// silently hand a replication peer another disk's bytes.
    static func conflict(requested: String, existing: ExportMapping) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "export_conflict",
            message: "\(requested) conflicts with active export \(existing.exportName) (volume \(existing.volumeId), "
                + "VM \(existing.vmId) disk \(existing.diskUnitNumber)); unexport that one first")
    }
}
