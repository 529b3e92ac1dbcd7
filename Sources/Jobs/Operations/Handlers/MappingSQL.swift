import Foundation
import PostgresNIO

/// The statements the volume handlers run on `volumes`, `device_mappings` and
/// `vm_export_mappings`, in one place. Writes run inside the transaction that completes the
/// operation (`OperationOutcome.commit`), so a mapping never exists without its completed
/// operation and vice versa.
enum MappingSQL {
    /// A created (or adopted) volume. Re-running the commit for the same volume only refreshes it.
    static func upsertVolume(
        volumeId: String, name: String, sizeBytes: Int64, zoneId: String?, diskOfferingId: String?, state: String,
        operationId: UUID
    ) -> PostgresQuery {
        """
        INSERT INTO volumes (volume_id, name, size_bytes, zone_id, disk_offering_id, state, created_by_operation)
        VALUES (\(volumeId), \(name), \(sizeBytes), \(zoneId), \(diskOfferingId), \(state), \(operationId))
        ON CONFLICT (volume_id) DO UPDATE
           SET name = EXCLUDED.name, size_bytes = EXCLUDED.size_bytes,
               zone_id = coalesce(EXCLUDED.zone_id, volumes.zone_id),
               disk_offering_id = coalesce(EXCLUDED.disk_offering_id, volumes.disk_offering_id),
               state = EXCLUDED.state, updated_at = now()
        """
    }

    /// Marks a volume deleted. A volume volumed never recorded is added (when CloudStack told
    /// us its name and size) so the history shows what was deleted.
    static func markVolumeDeleted(volumeId: String, name: String?, sizeBytes: Int64?, zoneId: String?, operationId: UUID) -> PostgresQuery {
        if let name, let sizeBytes, sizeBytes > 0 {
            return """
                INSERT INTO volumes (volume_id, name, size_bytes, zone_id, state, created_by_operation)
                VALUES (\(volumeId), \(name), \(sizeBytes), \(zoneId), 'Deleted', \(operationId))
                ON CONFLICT (volume_id) DO UPDATE SET state = 'Deleted', updated_at = now()
                """
        }
        return "UPDATE volumes SET state = 'Deleted', updated_at = now() WHERE volume_id = \(volumeId)"
    }

    /// One row per attached volume. `attached_at` survives a re-verification of the same
    /// attachment and restarts when the volume moved to another VM. The snapshot-tracking
    /// columns (migration 0006) are the API's: only a given `vmContextId` changes one of them.
    static func upsertMapping(
        volumeId: String, vmId: String, mode: String, cloudStackDeviceId: Int32?, byIdPath: String?,
        devicePath: String?, sizeBytes: Int64?, vmContextId: String? = nil
    ) -> PostgresQuery {
        """
        INSERT INTO device_mappings (volume_id, vm_id, operation_mode, cloudstack_device_id, by_id_path, device_path, size_bytes,
                                     vm_context_id)
        VALUES (\(volumeId), \(vmId), \(mode), \(cloudStackDeviceId), \(byIdPath), \(devicePath), \(sizeBytes), \(vmContextId))
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

    static func deleteMapping(volumeId: String) -> PostgresQuery {
        "DELETE FROM device_mappings WHERE volume_id = \(volumeId)"
    }

    /// The mapping's VM, to report what an already-detached volume was last attached to.
    static func mappedVM(volumeId: String) -> PostgresQuery {
        "SELECT vm_id FROM device_mappings WHERE volume_id = \(volumeId)"
    }

    static func activeExports(volumeId: String) -> PostgresQuery {
        "SELECT export_name, vm_id FROM vm_export_mappings WHERE volume_id = \(volumeId) AND status = 'active' ORDER BY id"
    }

    /// Which of `volumeIds` volumed created, adopted or maps: volumes a VM destroy must not take.
    static func keptVolumes(among volumeIds: [String]) -> PostgresQuery {
        """
        SELECT v.volume_id FROM unnest(\(volumeIds)::text[]) AS v(volume_id)
        WHERE EXISTS (SELECT 1 FROM device_mappings m WHERE m.volume_id = v.volume_id)
           OR EXISTS (SELECT 1 FROM volumes x WHERE x.volume_id = v.volume_id AND x.state <> 'Deleted')
        ORDER BY v.volume_id
        """
    }
}
