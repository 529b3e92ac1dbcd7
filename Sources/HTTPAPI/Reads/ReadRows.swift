import Foundation
import PostgresNIO

/// One `device_mappings` row.
struct DeviceMappingRow: Sendable {
    let volumeId: String
    let vmId: String
    /// `appliance` or `remote`.
    let operationMode: String
    let cloudStackDeviceId: Int?
    let byIdPath: String?
    let devicePath: String?
    let sizeBytes: Int64?
    let attachedAt: Date
    let verifiedAt: Date

    static let columns = """
        volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes, attached_at, verified_at
        """

    init(row: PostgresRow) throws {
        let (volumeId, vmId, mode, deviceId, byId, device, size, attached, verified) =
            try row.decode((String, String, String, Int32?, String?, String?, Int64?, Date, Date).self)
        self.volumeId = volumeId
        self.vmId = vmId
        operationMode = mode
        cloudStackDeviceId = deviceId.map(Int.init)
        byIdPath = byId
        devicePath = device
        sizeBytes = size
        attachedAt = attached
        verifiedAt = verified
    }
}

/// One `volumes` row: a volume volumed created or adopted.
struct VolumeRow: Sendable {
    let volumeId: String
    let name: String
    let sizeBytes: Int64
    let zoneId: String?
    let diskOfferingId: String?
    let state: String
    let createdAt: Date
    let updatedAt: Date

    static let columns = "volume_id, name, size_bytes, zone_id, disk_offering_id, state, created_at, updated_at"

    init(row: PostgresRow) throws {
        (volumeId, name, sizeBytes, zoneId, diskOfferingId, state, createdAt, updatedAt) =
            try row.decode((String, String, Int64, String?, String?, String, Date, Date).self)
    }
}

/// One `vm_export_mappings` row.
struct ExportRow: Sendable {
    let id: Int64
    let vmId: String
    let diskUnitNumber: Int
    let volumeId: String
    let exportName: String
    let devicePath: String
    let nbdPort: Int
    let jobId: String?
    let vmName: String?
    let status: String
    let createdAt: Date
    let updatedAt: Date

    static let columns = """
        id, vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name, status, created_at, updated_at
        """

    init(row: PostgresRow) throws {
        let cells = row.makeRandomAccess()
        id = try cells["id"].decode(Int64.self)
        vmId = try cells["vm_id"].decode(String.self)
        diskUnitNumber = try cells["disk_unit_number"].decode(Int.self)
        volumeId = try cells["volume_id"].decode(String.self)
        exportName = try cells["export_name"].decode(String.self)
        devicePath = try cells["device_path"].decode(String.self)
        nbdPort = try cells["nbd_port"].decode(Int.self)
        jobId = try cells["job_id"].decode(String?.self)
        vmName = try cells["vm_name"].decode(String?.self)
        status = try cells["status"].decode(String.self)
        createdAt = try cells["created_at"].decode(Date.self)
        updatedAt = try cells["updated_at"].decode(Date.self)
    }
}
