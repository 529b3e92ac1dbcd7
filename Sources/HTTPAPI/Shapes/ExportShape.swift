import Schema

/// The original daemon's NBD export object (`{id, volume_id, export_name, device_path, port,
/// status, created_at, updated_at, metadata}`) with the mapping's own fields beside it.
enum ExportShape {
    static func json(_ export: ExportMapping) -> JSONValue {
        var metadata: [String: JSONValue] = [
            "vm_id": .string(export.vmId),
            "disk_unit_number": .string(String(export.diskUnitNumber)),
        ]
        if let vmName = export.vmName { metadata["vm_name"] = .string(vmName) }
        if let jobId = export.jobId { metadata["job_id"] = .string(jobId) }
        return .object([
            "id": .string(String(export.id)),
            "volume_id": .string(export.volumeId),
            "vm_id": .string(export.vmId),
            "vm_name": .text(export.vmName),
            "job_id": .text(export.jobId),
            "disk_unit_number": .int(Int64(export.diskUnitNumber)),
            "export_name": .string(export.exportName),
            "device_path": .string(export.devicePath),
            "port": .int(Int64(export.nbdPort)),
            "status": .string(export.status),
            "created_at": .time(export.createdAt),
            "updated_at": .time(export.updatedAt),
            "metadata": .object(metadata),
        ])
    }
}
