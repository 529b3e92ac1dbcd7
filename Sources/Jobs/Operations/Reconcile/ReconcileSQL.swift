import Devices
import CloudStack
import Foundation
import PostgresNIO

/// The statements reconcile runs, in one place.
enum ReconcileSQL {
    /// Only one reconcile at a time across all workers and CLIs: this transaction-scoped
    /// lock, taken with a try (as the rescuer's), held for the length of one pass.
    static let lockKey: Int64 = 0x766F_6C75_6D65_6403

    static func tryLock() -> PostgresQuery {
        "SELECT pg_try_advisory_xact_lock(\(lockKey))"
    }

    static func mappings() -> PostgresQuery {
        """
        SELECT volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes
        FROM device_mappings ORDER BY volume_id
        """
    }

    /// Volumes volumed created or adopted and has not seen deleted.
    static func liveVolumes() -> PostgresQuery {
        "SELECT volume_id, name, state FROM volumes WHERE state <> 'Deleted' ORDER BY volume_id"
    }

    /// The names failed or cancelled creates asked for: a volume of such a name that nothing
    /// tracks may have been made by a createVolume whose reply was lost.
    static func namesOfUnfinishedCreates() -> PostgresQuery {
        """
        SELECT DISTINCT request->>'name' FROM volume_operations
        WHERE type = 'create' AND status IN ('failed', 'cancelled') AND request->>'name' IS NOT NULL
        """
    }

    /// Every volume id volumed tracks: `volumes` rows, and ids any operation names or checkpointed.
    static func trackedVolumeIds(among ids: [String]) -> PostgresQuery {
        """
        SELECT volume_id FROM volumes WHERE volume_id = ANY(\(ids))
        UNION SELECT volume_id FROM volume_operations WHERE volume_id = ANY(\(ids))
        UNION SELECT checkpoint->>'volume_id' FROM volume_operations WHERE checkpoint->>'volume_id' = ANY(\(ids))
        """
    }

    /// Volumes with unfinished operations (served by `volume_operations_unfinished_by_volume`).
    static func busyVolumes() -> PostgresQuery {
        "SELECT DISTINCT volume_id FROM volume_operations WHERE status IN ('pending', 'executing') AND volume_id IS NOT NULL"
    }

    /// True when no operation on the volume is unfinished, and none finished since the pass
    /// began to look. An operation claimed after the pass read the busy volumes finishes with
    /// `completed_at` (its finishing transaction's start) after `since`; the millisecond of
    /// slack covers the microsecond a timestamp may lose on its way through `Date`.
    static func untouched(volumeId: String, since: Date) -> PostgresQuery {
        """
        SELECT NOT EXISTS (
            SELECT 1 FROM volume_operations
            WHERE volume_id = \(volumeId)
              AND (status IN ('pending', 'executing') OR completed_at > \(since)::timestamptz - interval '1 millisecond'))
        """
    }

    /// The mapping, locked until the repair commits (an attach completing meanwhile waits).
    static func lockMapping(volumeId: String) -> PostgresQuery {
        """
        SELECT volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path
        FROM device_mappings WHERE volume_id = \(volumeId) FOR UPDATE
        """
    }

    /// An adopted volume's mapping; nothing when a mapping (or its by-id path) exists by now.
    static func adoptMapping(volume: CloudStackVolume, vmId: String, device: ResolvedDevice) -> PostgresQuery {
        let slot = volume.deviceid.map(Int32.init)
        let size = Int64(device.sizeBytes)
        return """
            INSERT INTO device_mappings (volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes)
            VALUES (\(volume.id), \(vmId), 'appliance', \(slot), \(device.byIdPath), \(device.devicePath), \(size))
            ON CONFLICT DO NOTHING
            RETURNING volume_id
            """
    }

    /// An adopted volume's `volumes` row, unless one exists (`created_by_operation` stays
    /// NULL: no operation made it).
    static func adoptVolume(_ volume: CloudStackVolume) -> PostgresQuery {
        """
        INSERT INTO volumes (volume_id, name, size_bytes, zone_id, disk_offering_id, state)
        VALUES (\(volume.id), \(volume.name), \(volume.size), \(volume.zoneid), \(volume.diskofferingid), \(volume.state))
        ON CONFLICT (volume_id) DO NOTHING
        """
    }

    /// Points the mapping at the device its link resolves to, only while it is as reconcile read it.
    static func updateDevice(_ mapping: MappedVolume, to device: ResolvedDevice, cloudStackDeviceId: Int?) -> PostgresQuery {
        let oldSlot = mapping.cloudStackDeviceId.map(Int32.init)
        let newSlot = (cloudStackDeviceId ?? mapping.cloudStackDeviceId).map(Int32.init)
        return """
            UPDATE device_mappings
               SET device_path = \(device.devicePath), by_id_path = \(device.byIdPath),
                   cloudstack_device_id = \(newSlot), verified_at = now()
             WHERE volume_id = \(mapping.volumeId) AND vm_id = \(mapping.vmId) AND operation_mode = 'appliance'
               AND by_id_path IS NOT DISTINCT FROM \(mapping.byIdPath)
               AND device_path IS NOT DISTINCT FROM \(mapping.devicePath)
               AND cloudstack_device_id IS NOT DISTINCT FROM \(oldSlot)
            RETURNING volume_id
            """
    }
}
