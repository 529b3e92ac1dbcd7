import Worker
import Schema

/// Failures of the export and unexport operations that are not errors of the NBD backend
/// itself: the state of the tables does not allow the export.
public struct ExportOperationFailure: OperationFailure, CustomStringConvertible, Equatable {
    public let code: String
    public let message: String
    public let isTransient: Bool

    public var description: String { "\(code): \(message)" }

    /// Only a volume attached to this appliance is a local block device that nbdkit can serve.
    static func volumeNotOnAppliance(volumeId: String, mapping: DeviceMapping?) -> ExportOperationFailure {
        let state = mapping.map { "it is attached to VM \($0.vmId) (operation_mode '\($0.operationMode)')" }
            ?? "it has no device mapping"
        return ExportOperationFailure(
            code: "volume_not_on_appliance",
            message: "volume \(volumeId) is not attached to the appliance: \(state); attach it to the appliance first "
                + "(enqueue an attach with vm_id = the appliance VM), then export it",
            isTransient: false)
    }

    /// The (VM, disk) or the volume is already exported otherwise; exporting again would
    /// silently hand a replication peer another disk's bytes.
    static func conflict(requested: String, existing: ExportMapping) -> ExportOperationFailure {
        ExportOperationFailure(
            code: "export_conflict",
            message: "\(requested) conflicts with active export \(existing.exportName) (volume \(existing.volumeId), "
                + "VM \(existing.vmId) disk \(existing.diskUnitNumber)); unexport that one first",
            isTransient: false)
    }
}
