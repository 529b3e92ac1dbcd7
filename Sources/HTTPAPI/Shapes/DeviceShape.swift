import Devices
import Foundation
import Operations
import Schema

/// The original daemon's device mapping, after its by-id migration: `device_path` is the
/// stable by-id link, `operation_mode` is `oma` (attached to this appliance) or `failover`
/// (attached to another VM), and the volume id goes out as both `volume_id` and
/// `volume_uuid`, since the original's server and client disagreed on the name.
enum DeviceShape {
    static func json(_ mapping: DeviceMapping, resolver: ByIdResolver?) -> JSONValue {
        .object([
            "id": .string(mapping.volumeId),
            "volume_id": .string(mapping.volumeId),
            "volume_uuid": .string(mapping.volumeId),
            "vm_id": .string(mapping.vmId),
            "device_path": .text(mapping.byIdPath),
            "operation_mode": .string(originalMode(mapping.operationMode)),
            "cloudstack_device_id": .number(mapping.cloudStackDeviceId),
            "cloudstack_state": "attached",
            "linux_state": .string(linuxState(mapping, resolver: resolver)),
            "size": .int(mapping.sizeBytes ?? 0),
            "last_sync": .time(mapping.verifiedAt),
            "created_at": .time(mapping.attachedAt),
            "updated_at": .time(mapping.verifiedAt),
        ])
    }

    /// `appliance` → `oma`, `remote` → `failover` (the original's names).
    static func originalMode(_ mode: String) -> String {
        mode == "appliance" ? "oma" : "failover"
    }

    /// On the appliance, whether the by-id link resolves to a device right now (`detected`)
    /// or not (`missing`); a disk of another VM has no device here (`not_applicable`).
    static func linuxState(_ mapping: DeviceMapping, resolver: ByIdResolver?) -> String {
        guard mapping.operationMode == "appliance" else { return "not_applicable" }
        guard let resolver else { return "unknown" }
        let device = try? resolver.currentDevice(volumeId: mapping.volumeId)
        return device == nil ? "missing" : "detected"
    }
}
