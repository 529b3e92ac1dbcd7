import Worker

/// Failures the volume handlers decide themselves (as opposed to errors CloudStack, the
/// by-id resolver or NBD report): the volume is in a state the operation must not change
/// on its own. Each message names the cause and the fix.
struct VolumeOperationFailure: OperationFailure, CustomStringConvertible {
    let code: String
    let message: String
    let isTransient: Bool

    var description: String { "\(code): \(message)" }

    static func volumeNotFound(_ volumeId: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_not_found",
            message: "volume \(volumeId) does not exist in CloudStack (listVolumes returned nothing); check the operation's volume_id",
            isTransient: false)
    }

    static func vmNotFound(_ vmId: String, detail: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "vm_not_found",
            message: "VM \(vmId) does not exist in CloudStack (\(detail)); check the operation's vm_id",
            isTransient: false)
    }

    static func attachedElsewhere(volumeId: String, attachedTo: String, requested: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_attached_elsewhere",
            message: "volume \(volumeId) is attached to VM \(attachedTo), not \(requested); detach it first",
            isTransient: false)
    }

    static func volumeAttached(volumeId: String, vmId: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_attached",
            message: "volume \(volumeId) is attached to VM \(vmId); detach it first or pass \"force\": true to detach and delete it",
            isTransient: false)
    }

    static func volumeExported(volumeId: String, exports: [String]) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_exported",
            message: "volume \(volumeId) is exported over NBD as \(exports.joined(separator: ", ")); "
                + "unexport it first or pass \"force\": true to remove the export and detach",
            isTransient: false)
    }

    static func noExportRemover(volumeId: String, exports: [String]) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "export_removal_unavailable",
            message: "volume \(volumeId) is exported as \(exports.joined(separator: ", ")) and force was passed, "
                + "but this volumed has no export manager configured to remove exports; enqueue an unexport first",
            isTransient: false)
    }

    static func exportsRemain(volumeId: String, exports: [String]) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "volume_exported",
            message: "volume \(volumeId) is still exported as \(exports.joined(separator: ", ")) after removing its exports; "
                + "the operation will be retried",
            isTransient: true)
    }

    static func sizeMismatch(volumeId: String, device: ResolvedDevice, cloudStackBytes: Int64) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "device_size_mismatch",
            message: "by-id link \(device.byIdPath) resolves to \(device.devicePath) of \(device.sizeBytes) bytes, but CloudStack "
                + "reports volume \(volumeId) as \(cloudStackBytes) bytes; the link points at another disk: check udev and the "
                + "appliance's disks before using it",
            isTransient: false)
    }

    static func jobWithoutVolume(jobId: String, command: String) -> VolumeOperationFailure {
        VolumeOperationFailure(
            code: "cloudstack_bad_response",
            message: "CloudStack async job \(jobId) for \(command) succeeded without returning the volume; check the CloudStack version",
            isTransient: false)
    }
}
