import Foundation
import Logging
import PostgresNIO
import Schema

/// The snapshot-tracking columns of `device_mappings` (migration 0006), the only rows the API
/// writes itself: bookkeeping the replication engine keeps about snapshots it took, with no
/// CloudStack side effect, so nothing to queue. The mapping row stays the worker's; these
/// statements change only the snapshot columns and `vm_context_id`.
struct SnapshotSQL {
    let client: PostgresClient
    let logger: Logger

    /// One mapped volume's snapshot record.
    struct Row: Sendable {
        let volumeId: String
        let vmContextId: String?
        let operationMode: String
        let byIdPath: String?
        let snapshotId: String?
        let snapshotCreatedAt: Date?
        let snapshotStatus: String

        init(row: PostgresRow) throws {
            (volumeId, vmContextId, operationMode, byIdPath, snapshotId, snapshotCreatedAt, snapshotStatus) =
                try row.decode((String, String?, String, String?, String?, Date?, String).self)
        }
    }

    private static let columns = "volume_id, vm_context_id, operation_mode, by_id_path, snapshot_id, snapshot_created_at, snapshot_status"

    /// Records a snapshot taken now and the volume's VM context; nil when the volume has no mapping.
    func track(volumeId: String, vmContextId: String, snapshotId: String, status: String) async throws -> Row? {
        try await rows("""
            UPDATE device_mappings
               SET vm_context_id = \(vmContextId), snapshot_id = \(snapshotId), snapshot_created_at = now(),
                   snapshot_status = \(status)
             WHERE volume_id = \(volumeId)
            RETURNING \(unescaped: Self.columns)
            """).first
    }

    /// Changes what is given: a new snapshot id (its time restarts) and/or a status; nil when
    /// the volume has no mapping.
    func update(volumeId: String, snapshotId: String?, status: String?) async throws -> Row? {
        try await rows("""
            UPDATE device_mappings
               SET snapshot_id = coalesce(\(snapshotId), snapshot_id),
                   snapshot_created_at = CASE WHEN \(snapshotId)::text IS NULL THEN snapshot_created_at ELSE now() END,
                   snapshot_status = coalesce(\(status), snapshot_status)
             WHERE volume_id = \(volumeId)
            RETURNING \(unescaped: Self.columns)
            """).first
    }

    /// Every mapped volume of a VM context, tracked snapshot or not (as the original listed them).
    func snapshots(vmContextId: String) async throws -> [Row] {
        try await rows("""
            SELECT \(unescaped: Self.columns) FROM device_mappings
             WHERE vm_context_id = \(vmContextId)
             ORDER BY attached_at, volume_id
            """)
    }

    /// Forgets the snapshots of a VM context's volumes (the context itself stays); returns how
    /// many volumes had something to forget.
    func clear(vmContextId: String) async throws -> Int {
        try await rows("""
            UPDATE device_mappings
               SET snapshot_id = NULL, snapshot_created_at = NULL, snapshot_status = 'none'
             WHERE vm_context_id = \(vmContextId) AND (snapshot_id IS NOT NULL OR snapshot_status <> 'none')
            RETURNING \(unescaped: Self.columns)
            """).count
    }

    private func rows(_ query: PostgresQuery) async throws -> [Row] {
        try await client.rows(query, logger: logger).map(Row.init(row:))
    }
}
