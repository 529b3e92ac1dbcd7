import Foundation
import PostgresNIO

/// One `device_mappings` row: which VM holds a volume volumed attached and, on an appliance,
/// its by-id link and device; plus the snapshot-tracking columns the API keeps (migration 0006).
public struct DeviceMapping: Sendable {
    public let volumeId: String
    public let vmId: String
    /// `appliance` or `remote`.
    public let operationMode: String
    /// CloudStack's `deviceid` slot (an int4 column: statements bind it as `Int32`).
    public let cloudStackDeviceId: Int?
    public let byIdPath: String?
    public let devicePath: String?
    /// The size recorded at attach: what the device behind the link must still measure.
    public let sizeBytes: Int64?
    public let attachedAt: Date
    public let verifiedAt: Date
    public let vmContextId: String?
    public let snapshotId: String?
    public let snapshotCreatedAt: Date?
    public let snapshotStatus: String

    static let columns = """
        volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes, attached_at, verified_at,
        vm_context_id, snapshot_id, snapshot_created_at, snapshot_status
        """

    /// Reads `columns` from the row's cell `start` on (a join may put other columns first).
    public init(row: PostgresRow, from start: Int = 0) throws {
        let cells = row.makeRandomAccess()
        volumeId = try cells[start].decode(String.self)
        vmId = try cells[start + 1].decode(String.self)
        operationMode = try cells[start + 2].decode(String.self)
        cloudStackDeviceId = try cells[start + 3].decode(Int32?.self).map(Int.init)
        byIdPath = try cells[start + 4].decode(String?.self)
        devicePath = try cells[start + 5].decode(String?.self)
        sizeBytes = try cells[start + 6].decode(Int64?.self)
        attachedAt = try cells[start + 7].decode(Date.self)
        verifiedAt = try cells[start + 8].decode(Date.self)
        vmContextId = try cells[start + 9].decode(String?.self)
        snapshotId = try cells[start + 10].decode(String?.self)
        snapshotCreatedAt = try cells[start + 11].decode(Date?.self)
        snapshotStatus = try cells[start + 12].decode(String.self)
    }
}

/// Every statement on `device_mappings`. The row is the worker's: handlers write it in
/// `OperationOutcome.commit`, reconcile repairs it only where no operation touched it, and the
/// API writes only the snapshot columns.
public enum DeviceMappingsTable {
    /// One row per attached volume. `attached_at` survives a re-verification of the same
    /// attachment and restarts when the volume moved to another VM. The snapshot-tracking
    /// columns are the API's: only a given `vmContextId` changes one of them.
    public static func upsert(
        volumeId: String, vmId: String, mode: String, cloudStackDeviceId: Int?, byIdPath: String?,
        devicePath: String?, sizeBytes: Int64?, vmContextId: String? = nil
    ) -> PostgresQuery {
        let slot = cloudStackDeviceId.map(Int32.init)
        return """
        INSERT INTO device_mappings (volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes,
                                     vm_context_id)
        VALUES (\(volumeId), \(vmId), \(mode), \(slot), \(byIdPath), \(devicePath), \(sizeBytes), \(vmContextId))
        ON CONFLICT (volume_id) DO UPDATE
           SET vm_context_id = coalesce(EXCLUDED.vm_context_id, device_mappings.vm_context_id),
               vm_id = EXCLUDED.vm_id, operation_mode = EXCLUDED.operation_mode,
               cloudstack_device_id = EXCLUDED.cloudstack_device_id, by_id_path = EXCLUDED.by_id_path,
               device_path = EXCLUDED.device_path, size_bytes = EXCLUDED.size_bytes,
               attached_at = CASE WHEN device_mappings.vm_id = EXCLUDED.vm_id
                                  THEN device_mappings.attached_at ELSE now() END,
               verified_at = now()
        """
    }

    /// A resized volume: its new size and, on the appliance, what its by-id link resolves to now.
    public static func resized(volumeId: String, sizeBytes: Int64, devicePath: String?) -> PostgresQuery {
        """
        UPDATE device_mappings SET size_bytes = \(sizeBytes), device_path = coalesce(\(devicePath), device_path), verified_at = now()
         WHERE volume_id = \(volumeId)
        """
    }

    public static func delete(volumeId: String) -> PostgresQuery {
        "DELETE FROM device_mappings WHERE volume_id = \(volumeId)"
    }

    /// `forUpdate` locks the row until the caller's transaction ends (an attach completing meanwhile waits).
    public static func byVolume(_ volumeId: String, forUpdate: Bool = false) -> PostgresQuery {
        let lock = forUpdate ? " FOR UPDATE" : ""
        return "SELECT \(unescaped: DeviceMapping.columns) FROM device_mappings WHERE volume_id = \(volumeId)\(unescaped: lock)"
    }

    /// The mapping whose by-id link or current device is `path` (the by-id link first).
    public static func byDevicePath(_ path: String) -> PostgresQuery {
        """
        SELECT \(unescaped: DeviceMapping.columns) FROM device_mappings
        WHERE by_id_path = \(path) OR device_path = \(path)
        ORDER BY (by_id_path = \(path)) DESC NULLS LAST LIMIT 1
        """
    }

    public static func byVM(_ vmId: String) -> PostgresQuery {
        "SELECT \(unescaped: DeviceMapping.columns) FROM device_mappings WHERE vm_id = \(vmId) ORDER BY attached_at, volume_id"
    }

    public static func all() -> PostgresQuery {
        "SELECT \(unescaped: DeviceMapping.columns) FROM device_mappings ORDER BY volume_id"
    }

    /// `volumed device`: the row as one JSON object, in the database's own JSON rendering.
    public static func json(volumeId: String) -> PostgresQuery {
        """
        SELECT json_build_object('volume_id', volume_id, 'vm_id', vm_id, 'operation_mode', operation_mode,
               'cloudstack_device_id', cloudstack_device_id, 'by_id_path', by_id_path, 'device_path', device_path,
               'size_bytes', size_bytes, 'attached_at', attached_at, 'verified_at', verified_at)::text
        FROM device_mappings WHERE volume_id = \(volumeId)
        """
    }

    /// Mappings and active exports, for the API's summary totals.
    public static func totals() -> PostgresQuery {
        """
        SELECT (SELECT count(*) FROM device_mappings)::int8,
               (SELECT count(*) FROM vm_export_mappings WHERE status = 'active')::int8
        """
    }

    // MARK: Reconcile

    /// An adopted volume's mapping on the appliance; nothing when a mapping (or its by-id
    /// path) exists by now.
    public static func adopt(
        volumeId: String, vmId: String, cloudStackDeviceId: Int?, byIdPath: String, devicePath: String, sizeBytes: Int64
    ) -> PostgresQuery {
        let slot = cloudStackDeviceId.map(Int32.init)
        return """
        INSERT INTO device_mappings (volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes)
        VALUES (\(volumeId), \(vmId), 'appliance', \(slot), \(byIdPath), \(devicePath), \(sizeBytes))
        ON CONFLICT DO NOTHING
        RETURNING volume_id
        """
    }

    /// Points an appliance mapping at the device its link resolves to (and at CloudStack's
    /// device slot, when known), only while it is as `expected` (read earlier) says.
    public static func updateDevice(
        _ expected: DeviceMapping, devicePath: String, byIdPath: String, cloudStackDeviceId: Int?
    ) -> PostgresQuery {
        let oldSlot = expected.cloudStackDeviceId.map(Int32.init)
        let newSlot = (cloudStackDeviceId ?? expected.cloudStackDeviceId).map(Int32.init)
        return """
            UPDATE device_mappings
               SET device_path = \(devicePath), by_id_path = \(byIdPath),
                   cloudstack_device_id = \(newSlot), verified_at = now()
             WHERE volume_id = \(expected.volumeId) AND vm_id = \(expected.vmId) AND operation_mode = 'appliance'
               AND by_id_path IS NOT DISTINCT FROM \(expected.byIdPath)
               AND device_path IS NOT DISTINCT FROM \(expected.devicePath)
               AND cloudstack_device_id IS NOT DISTINCT FROM \(oldSlot)
            RETURNING volume_id
            """
    }

    // MARK: Snapshot tracking (the API's)

    /// Records a snapshot taken now and the volume's VM context; no row when the volume has no mapping.
    public static func trackSnapshot(volumeId: String, vmContextId: String, snapshotId: String, status: String) -> PostgresQuery {
        """
        UPDATE device_mappings
           SET vm_context_id = \(vmContextId), snapshot_id = \(snapshotId), snapshot_created_at = now(),
               snapshot_status = \(status)
         WHERE volume_id = \(volumeId)
        RETURNING \(unescaped: DeviceMapping.columns)
        """
    }

    /// Changes what is given: a new snapshot id (its time restarts) and/or a status; no row
    /// when the volume has no mapping.
    public static func updateSnapshot(volumeId: String, snapshotId: String?, status: String?) -> PostgresQuery {
        """
        UPDATE device_mappings
           SET snapshot_id = coalesce(\(snapshotId), snapshot_id),
               snapshot_created_at = CASE WHEN \(snapshotId)::text IS NULL THEN snapshot_created_at ELSE now() END,
               snapshot_status = coalesce(\(status), snapshot_status)
         WHERE volume_id = \(volumeId)
        RETURNING \(unescaped: DeviceMapping.columns)
        """
    }

    /// Every mapped volume of a VM context, tracked snapshot or not (as the original listed them).
    public static func byVMContext(_ vmContextId: String) -> PostgresQuery {
        """
        SELECT \(unescaped: DeviceMapping.columns) FROM device_mappings
         WHERE vm_context_id = \(vmContextId)
         ORDER BY attached_at, volume_id
        """
    }

    /// Forgets the snapshots of a VM context's volumes (the context itself stays); a row for
    /// each volume that had something to forget.
    public static func clearSnapshots(vmContextId: String) -> PostgresQuery {
        """
        UPDATE device_mappings
           SET snapshot_id = NULL, snapshot_created_at = NULL, snapshot_status = 'none'
         WHERE vm_context_id = \(vmContextId) AND (snapshot_id IS NOT NULL OR snapshot_status <> 'none')
        RETURNING volume_id
        """
    }
}
