import Foundation
import Logging
import PostgresNIO

/// One `vm_export_mappings` row.
public struct ExportMapping: Sendable, Equatable {
    public let id: Int64
    public let vmId: String
    public let diskUnitNumber: Int
    public let volumeId: String
    public let exportName: String
    /// Always the stable by-id path for rows this volumed wrote; older rows may hold `/dev/vdX`
    /// until `ExportReconciler` rewrites them.
    public internal(set) var devicePath: String
    public let nbdPort: Int
    public let jobId: String?
    public let vmName: String?
    public let status: String

    static let columns = "id, vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name, status"

    /// Reads the first ten columns in `columns` order; queries may append more after them.
    init(row: PostgresRow) throws {
        let cells = row.makeRandomAccess()
        id = try cells[0].decode(Int64.self)
        vmId = try cells[1].decode(String.self)
        diskUnitNumber = try cells[2].decode(Int.self)
        volumeId = try cells[3].decode(String.self)
        exportName = try cells[4].decode(String.self)
        devicePath = try cells[5].decode(String.self)
        nbdPort = try cells[6].decode(Int.self)
        jobId = try cells[7].decode(String?.self)
        vmName = try cells[8].decode(String?.self)
        status = try cells[9].decode(String.self)
    }
}

/// What `device_mappings` says about a volume: which VM holds it and, on an appliance, its by-id link.
struct VolumeDeviceMapping: Sendable {
    let vmId: String
    let operationMode: String
    let byIdPath: String?
    /// The size recorded at attach: what the device behind the link must still measure.
    var sizeBytes: Int64? = nil
}

/// The statements the export handlers, the remover and the reconciler run, in one place.
/// Writes that finish an operation run inside its completing transaction (`OperationOutcome.commit`).
enum ExportMappingSQL {
    static func deviceMapping(volumeId: String) -> PostgresQuery {
        "SELECT vm_id, operation_mode, by_id_path, size_bytes FROM device_mappings WHERE volume_id = \(volumeId)"
    }

    /// Active rows that collide with a new export: the same (VM, disk) or the same export name.
    static func activeConflicts(vmId: String, diskUnitNumber: Int, exportName: String) -> PostgresQuery {
        let select = "SELECT \(ExportMapping.columns) FROM vm_export_mappings"
        return """
            \(unescaped: select)
            WHERE status = 'active'
              AND ((vm_id = \(vmId) AND disk_unit_number = \(diskUnitNumber)) OR export_name = \(exportName))
            ORDER BY id
            """
    }

    static func byExportName(_ exportName: String) -> PostgresQuery {
        let select = "SELECT \(ExportMapping.columns) FROM vm_export_mappings"
        return "\(unescaped: select) WHERE export_name = \(exportName)"
    }

    static func activeByVolume(_ volumeId: String) -> PostgresQuery {
        let select = "SELECT \(ExportMapping.columns) FROM vm_export_mappings"
        return "\(unescaped: select) WHERE volume_id = \(volumeId) AND status = 'active' ORDER BY id"
    }

    /// Every active row with the volume's device mapping (NULLs when it has none), for reconciliation.
    static func activeWithDeviceMappings() -> PostgresQuery {
        let columns = ExportMapping.columns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: ", ")
        return """
            SELECT \(unescaped: columns), d.vm_id, d.operation_mode, d.by_id_path, d.size_bytes
            FROM vm_export_mappings e LEFT JOIN device_mappings d ON d.volume_id = e.volume_id
            WHERE e.status = 'active'
            ORDER BY e.id
            """
    }

    /// Creates the export's row, or re-activates the row a previous export of the same volume
    /// left `removed` (export names are unique across all rows, one per volume).
    static func upsertActive(
        vmId: String, diskUnitNumber: Int, volumeId: String, exportName: String, devicePath: String,
        nbdPort: Int, jobId: String?, vmName: String
    ) -> PostgresQuery {
        """
        INSERT INTO vm_export_mappings (vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name, status)
        VALUES (\(vmId), \(diskUnitNumber), \(volumeId), \(exportName), \(devicePath), \(nbdPort), \(jobId), \(vmName), 'active')
        ON CONFLICT (export_name) DO UPDATE
           SET vm_id = EXCLUDED.vm_id, disk_unit_number = EXCLUDED.disk_unit_number,
               volume_id = EXCLUDED.volume_id, device_path = EXCLUDED.device_path,
               nbd_port = EXCLUDED.nbd_port, job_id = EXCLUDED.job_id, vm_name = EXCLUDED.vm_name,
               status = 'active',
               created_at = CASE WHEN vm_export_mappings.status = 'removed' THEN now() ELSE vm_export_mappings.created_at END,
               updated_at = now()
        """
    }

    /// The export an attach to the appliance makes: keyed to the appliance (`vm_id`, and as
    /// `vm_name` too, as the original daemon did) under its lowest free disk number, chosen
    /// inside the completing transaction. The advisory lock serialises concurrent attach
    /// commits on one appliance (the queue serialises only per volume), so two volumes never
    /// pick the same number. Re-activates a `removed` row of the same volume.
    static func upsertApplianceExport(applianceVMId: String, volumeId: String, exportName: String, devicePath: String, nbdPort: Int)
        -> [PostgresQuery]
    {
        let lockKey = "vm_export_mappings:" + applianceVMId.lowercased()
        return [
            "SELECT pg_advisory_xact_lock(hashtext(\(lockKey)))",
            """
            INSERT INTO vm_export_mappings (vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name, status)
            SELECT \(applianceVMId),
                   (SELECT min(n) FROM generate_series(0, (SELECT count(*) FROM vm_export_mappings
                                                            WHERE vm_id = \(applianceVMId) AND status = 'active')::int) AS n
                     WHERE NOT EXISTS (SELECT 1 FROM vm_export_mappings e
                                       WHERE e.vm_id = \(applianceVMId) AND e.status = 'active' AND e.disk_unit_number = n)),
                   \(volumeId), \(exportName), \(devicePath), \(nbdPort), NULL, \(applianceVMId), 'active'
            ON CONFLICT (export_name) DO UPDATE
               SET vm_id = EXCLUDED.vm_id, disk_unit_number = EXCLUDED.disk_unit_number,
                   volume_id = EXCLUDED.volume_id, device_path = EXCLUDED.device_path,
                   nbd_port = EXCLUDED.nbd_port, job_id = NULL, vm_name = EXCLUDED.vm_name,
                   status = 'active', created_at = now(), updated_at = now()
               WHERE vm_export_mappings.status = 'removed'
            """,
        ]
    }

    static func markRemoved(exportName: String) -> PostgresQuery {
        "UPDATE vm_export_mappings SET status = 'removed', updated_at = now() WHERE export_name = \(exportName) AND status = 'active'"
    }

    /// Volumes an operation is running on right now: the reconciler leaves their exports alone.
    static func volumesWithExecutingOperations() -> PostgresQuery {
        "SELECT volume_id FROM volume_operations WHERE status = 'executing' AND volume_id IS NOT NULL"
    }

    static func rewriteDevicePath(id: Int64, devicePath: String) -> PostgresQuery {
        "UPDATE vm_export_mappings SET device_path = \(devicePath), updated_at = now() WHERE id = \(id) AND status = 'active'"
    }
}

extension PostgresClient {
    /// Runs `query` and decodes every row with `decode` (never hanging on a connection that
    /// closes under it: `rows`).
    func decodedRows<T>(_ query: PostgresQuery, logger: Logger, _ decode: (PostgresRow) throws -> T) async throws -> [T] {
        try await rows(query, logger: logger).map(decode)
    }
}
