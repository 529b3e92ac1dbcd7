import Foundation
import PostgresNIO

/// The statements on `volume_operations` outside the queue runtime: clients, the API and
/// reconcile. Kept beside QueueSQL so every statement on the table is in one module.
extension QueueSQL {
    /// Through `volume_operation_enqueue` (migrations), which judges the row as a plain INSERT
    /// is judged; a repeated idempotency key returns the first operation's id.
    public static func enqueue(type: String, volumeId: String?, vmId: String?, request: String, idempotencyKey: String?,
                               priority: Int16, maxAttempts: Int) -> PostgresQuery {
        """
        SELECT volume_operation_enqueue(\(type), \(volumeId), \(vmId), \(request)::jsonb, \(idempotencyKey),
                                        \(priority)::smallint, \(maxAttempts)::int)
        """
    }

    /// Cancels a pending operation, or asks the worker to stop an executing one; the status after.
    public static func cancel(_ id: UUID) -> PostgresQuery {
        "SELECT volume_operation_cancel(\(id))"
    }

    public static func operation(_ id: UUID) -> PostgresQuery {
        "SELECT \(unescaped: OperationRecord.columns) FROM volume_operations WHERE id = \(id)"
    }

    /// Newest first; a nil filter matches every row.
    public static func operations(type: String?, status: String?, volumeId: String?, vmId: String?, limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: OperationRecord.columns) FROM volume_operations
        WHERE (\(type)::text IS NULL OR type = \(type)) AND (\(status)::text IS NULL OR status = \(status))
          AND (\(volumeId)::text IS NULL OR volume_id = \(volumeId)) AND (\(vmId)::text IS NULL OR vm_id = \(vmId))
        ORDER BY created_at DESC, seq DESC
        LIMIT \(limit)
        """
    }

    /// Executing operations (longest running first), then pending ones (in claim order).
    public static func unfinished(limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: OperationRecord.columns) FROM volume_operations
        WHERE status IN ('pending', 'executing')
        ORDER BY status = 'pending', started_at NULLS LAST, priority, seq
        LIMIT \(limit)
        """
    }

    /// The latest finished operations (the `completed_at` index), newest first.
    public static func recentlyFinished(limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: OperationRecord.columns) FROM volume_operations
        WHERE completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT \(limit)
        """
    }

    public static func recentFailures(limit: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: OperationRecord.columns) FROM volume_operations
        WHERE status = 'failed' ORDER BY completed_at DESC LIMIT \(limit)
        """
    }

    /// The newest operation of each volume in `volumeIds`.
    public static func lastOperations(volumeIds: [String]) -> PostgresQuery {
        """
        SELECT DISTINCT ON (volume_id) \(unescaped: OperationRecord.columns) FROM volume_operations
        WHERE volume_id = ANY(\(volumeIds)::text[])
        ORDER BY volume_id, created_at DESC, seq DESC
        """
    }

    /// Volumes with unfinished operations, read from the partial indexes of pending
    /// (`volume_operations_claimable`) and executing (`volume_operations_executing`) rows.
    public static func busyVolumes() -> PostgresQuery {
        "SELECT DISTINCT volume_id FROM volume_operations WHERE status IN ('pending', 'executing') AND volume_id IS NOT NULL"
    }

    /// Volumes an operation is running on right now.
    public static func executingVolumes() -> PostgresQuery {
        "SELECT volume_id FROM volume_operations WHERE status = 'executing' AND volume_id IS NOT NULL"
    }

    /// True when no operation on the volume is unfinished, and none finished since `since`.
    /// An operation claimed after that finishes with `completed_at` (its finishing
    /// transaction's start) after `since`; the millisecond of slack covers the microsecond a
    /// timestamp may lose on its way through `Date`.
    public static func untouched(volumeId: String, since: Date) -> PostgresQuery {
        """
        SELECT NOT EXISTS (
            SELECT 1 FROM volume_operations
            WHERE volume_id = \(volumeId)
              AND (status IN ('pending', 'executing') OR completed_at > \(since)::timestamptz - interval '1 millisecond'))
        """
    }

    /// The names failed or cancelled creates asked for: a volume of such a name that nothing
    /// tracks may have been made by a createVolume whose reply was lost.
    public static func namesOfUnfinishedCreates() -> PostgresQuery {
        """
        SELECT DISTINCT request->>'name' FROM volume_operations
        WHERE type = 'create' AND status IN ('failed', 'cancelled') AND request->>'name' IS NOT NULL
        """
    }
}
