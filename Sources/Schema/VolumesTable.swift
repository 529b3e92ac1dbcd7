import Foundation
import PostgresNIO

/// One `volumes` row: a volume volumed created or adopted.
public struct VolumeRecord: Sendable {
    public let volumeId: String
    public let name: String
    public let sizeBytes: Int64
    public let zoneId: String?
    public let diskOfferingId: String?
    /// CloudStack's state when volumed last wrote it; `Deleted` once volumed deleted it.
    public let state: String
    public let createdAt: Date
    public let updatedAt: Date

    static let columns = "volume_id, name, size_bytes, zone_id, disk_offering_id, state, created_at, updated_at"

    public init(row: PostgresRow) throws {
        (volumeId, name, sizeBytes, zoneId, diskOfferingId, state, createdAt, updatedAt) =
            try row.decode((String, String, Int64, String?, String?, String, Date, Date).self)
    }
}

/// Every statement on `volumes` (handlers write it in `OperationOutcome.commit`), and the
/// questions "does volumed know this volume?" that read it with the other tables.
public enum VolumesTable {
    /// A created (or adopted) volume. Re-running the commit for the same volume only refreshes it.
    public static func upsert(
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

    /// A resized volume's new size.
    public static func resized(volumeId: String, sizeBytes: Int64) -> PostgresQuery {
        "UPDATE volumes SET size_bytes = \(sizeBytes), updated_at = now() WHERE volume_id = \(volumeId)"
    }

    /// An adopted volume's row, unless one exists (`created_by_operation` stays NULL: no
    /// operation made it).
    public static func adopt(volumeId: String, name: String, sizeBytes: Int64, zoneId: String?, diskOfferingId: String?,
                             state: String) -> PostgresQuery {
        """
        INSERT INTO volumes (volume_id, name, size_bytes, zone_id, disk_offering_id, state)
        VALUES (\(volumeId), \(name), \(sizeBytes), \(zoneId), \(diskOfferingId), \(state))
        ON CONFLICT (volume_id) DO NOTHING
        """
    }

    /// Marks a volume deleted. A volume volumed never recorded is added (when CloudStack told
    /// us its name and size) so the history shows what was deleted.
    public static func markDeleted(volumeId: String, name: String?, sizeBytes: Int64?, zoneId: String?, operationId: UUID)
        -> PostgresQuery
    {
        if let name, let sizeBytes, sizeBytes > 0 {
            return """
                INSERT INTO volumes (volume_id, name, size_bytes, zone_id, state, created_by_operation)
                VALUES (\(volumeId), \(name), \(sizeBytes), \(zoneId), 'Deleted', \(operationId))
                ON CONFLICT (volume_id) DO UPDATE SET state = 'Deleted', updated_at = now()
                """
        }
        return "UPDATE volumes SET state = 'Deleted', updated_at = now() WHERE volume_id = \(volumeId)"
    }

    public static func byId(_ volumeId: String) -> PostgresQuery {
        "SELECT \(unescaped: VolumeRecord.columns) FROM volumes WHERE volume_id = \(volumeId)"
    }

    /// Volumes volumed created or adopted and has not seen deleted.
    public static func live() -> PostgresQuery {
        "SELECT \(unescaped: VolumeRecord.columns) FROM volumes WHERE state <> 'Deleted' ORDER BY volume_id"
    }

    /// Which of `volumeIds` volumed created, adopted or maps: volumes a VM destroy must not take.
    public static func kept(among volumeIds: [String]) -> PostgresQuery {
        """
        SELECT v.volume_id FROM unnest(\(volumeIds)::text[]) AS v(volume_id)
        WHERE EXISTS (SELECT 1 FROM device_mappings m WHERE m.volume_id = v.volume_id)
           OR EXISTS (SELECT 1 FROM volumes x WHERE x.volume_id = v.volume_id AND x.state <> 'Deleted')
        ORDER BY v.volume_id
        """
    }

    /// Which of `volumeIds` volumed tracks: `volumes` rows, and ids any operation names or checkpointed.
    public static func tracked(among volumeIds: [String]) -> PostgresQuery {
        """
        SELECT volume_id FROM volumes WHERE volume_id = ANY(\(volumeIds))
        UNION SELECT volume_id FROM volume_operations WHERE volume_id = ANY(\(volumeIds))
        UNION SELECT checkpoint->>'volume_id' FROM volume_operations WHERE checkpoint->>'volume_id' = ANY(\(volumeIds))
        """
    }

    /// Which of `volumeIds` belong to a `volumes` row or to a create other than `operationId`
    /// (its result, or the volume its checkpoint recorded).
    public static func ownedByOtherCreates(among volumeIds: [String], excluding operationId: UUID) -> PostgresQuery {
        """
        SELECT volume_id FROM volumes WHERE volume_id = ANY(\(volumeIds))
        UNION
        SELECT coalesce(volume_id, checkpoint->>'volume_id') FROM volume_operations
         WHERE type = 'create' AND id <> \(operationId)
           AND coalesce(volume_id, checkpoint->>'volume_id') = ANY(\(volumeIds))
        """
    }
}
