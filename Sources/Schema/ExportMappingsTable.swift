import Foundation
import PostgresNIO

/// One `vm_export_mappings` row: an NBD export of a volume, keyed to a VM and its disk number.
public struct ExportMapping: Sendable, Equatable {
    public let id: Int64
    public let vmId: String
    public let diskUnitNumber: Int
    public let volumeId: String
    public let exportName: String
    /// Always the stable by-id path for rows this volumed wrote; older rows may hold `/dev/vdX`
    /// until `ExportReconciler` rewrites them.
    public var devicePath: String
    public let nbdPort: Int
    public let jobId: String?
    public let vmName: String?
    /// `active` or `removed`.
    public let status: String
    public let createdAt: Date
    public let updatedAt: Date

    static let columns = """
        id, vm_id, disk_unit_number, volume_id, export_name, device_path, nbd_port, job_id, vm_name, status, created_at, updated_at
        """
    /// How many cells `init(row:)` reads: a join puts other columns after them.
    public static let width = 12

    public init(row: PostgresRow) throws {
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
        createdAt = try cells[10].decode(Date.self)
        updatedAt = try cells[11].decode(Date.self)
    }
}

/// Every statement on `vm_export_mappings` (handlers write it in `OperationOutcome.commit`).
public enum ExportMappingsTable {
    /// Active rows that collide with a new export: the same (VM, disk) or the same export name.
    public static func activeConflicts(vmId: String, diskUnitNumber: Int, exportName: String) -> PostgresQuery {
        """
        SELECT \(unescaped: ExportMapping.columns) FROM vm_export_mappings
        WHERE status = 'active'
          AND ((vm_id = \(vmId) AND disk_unit_number = \(diskUnitNumber)) OR export_name = \(exportName))
        ORDER BY id
        """
    }

    public static func byExportName(_ exportName: String) -> PostgresQuery {
        "SELECT \(unescaped: ExportMapping.columns) FROM vm_export_mappings WHERE export_name = \(exportName)"
    }

    public static func activeByVolume(_ volumeId: String) -> PostgresQuery {
        "SELECT \(unescaped: ExportMapping.columns) FROM vm_export_mappings WHERE volume_id = \(volumeId) AND status = 'active' ORDER BY id"
    }

    /// The active export of a volume, else its most recently removed one.
    public static func latestByVolume(_ volumeId: String) -> PostgresQuery {
        """
        SELECT \(unescaped: ExportMapping.columns) FROM vm_export_mappings WHERE volume_id = \(volumeId)
        ORDER BY (status = 'active') DESC, updated_at DESC, id DESC LIMIT 1
        """
    }

    /// Newest first; a nil filter matches every row.
    public static func list(volumeId: String?, status: String?, vmName: String?, limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: ExportMapping.columns) FROM vm_export_mappings
        WHERE (\(volumeId)::text IS NULL OR volume_id = \(volumeId)) AND (\(status)::text IS NULL OR status = \(status))
          AND (\(vmName)::text IS NULL OR vm_name = \(vmName))
        ORDER BY created_at DESC, id DESC
        LIMIT \(limit)
        """
    }

    /// Every active row with the volume's `DeviceMapping` after it (cell `ExportMapping.width`
    /// on; NULLs when it has none), for reconciliation.
    public static func activeWithDeviceMappings() -> PostgresQuery {
        func qualified(_ columns: String, _ table: String) -> String {
            columns.split(separator: ",").map { table + "." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .joined(separator: ", ")
        }
        return """
            SELECT \(unescaped: qualified(ExportMapping.columns, "e")), \(unescaped: qualified(DeviceMapping.columns, "d"))
            FROM vm_export_mappings e LEFT JOIN device_mappings d ON d.volume_id = e.volume_id
            WHERE e.status = 'active'
            ORDER BY e.id
            """
    }

    /// Creates the export's row, or re-activates the row a previous export of the same volume
    /// left `removed` (export names are unique across all rows, one per volume).
    public static func upsertActive(
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
    public static func upsertApplianceExport(applianceVMId: String, volumeId: String, exportName: String, devicePath: String,
                                             nbdPort: Int) -> [PostgresQuery] {
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

    public static func markRemoved(exportName: String) -> PostgresQuery {
        "UPDATE vm_export_mappings SET status = 'removed', updated_at = now() WHERE export_name = \(exportName) AND status = 'active'"
    }

    public static func rewriteDevicePath(id: Int64, devicePath: String) -> PostgresQuery {
        "UPDATE vm_export_mappings SET device_path = \(devicePath), updated_at = now() WHERE id = \(id) AND status = 'active'"
    }
}
