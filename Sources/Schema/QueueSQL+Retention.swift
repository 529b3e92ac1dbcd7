import Foundation
import PostgresNIO

/// Retention (`volumed prune`): the statements that delete finished history. Kept beside
/// QueueSQL so every statement on the queue tables is in the Schema module.
extension QueueSQL {
    /// The cutoff on the database's clock: operations that finished before it are pruned.
    public static func retentionCutoff(olderThanSeconds seconds: Int64) -> PostgresQuery {
        "SELECT now() - \(seconds)::float8 * interval '1 second'"
    }

    /// Deletes up to `limit` terminal operations that finished before `cutoff`, oldest first,
    /// together with their events, in one statement (one short transaction). Walks the
    /// `volume_operations_completed_at` index; `completed_at` is set only on terminal rows
    /// (a CHECK constraint), so pending and executing rows can never match, and terminal rows
    /// never change again, so there is nothing to race. SKIP LOCKED lets two prunes share work.
    /// Returns the operations and events deleted.
    public static func pruneBatch(cutoff: Date, limit: Int) -> PostgresQuery {
        """
        WITH doomed AS (
            SELECT id FROM volume_operations
            WHERE completed_at < \(cutoff) AND status IN ('completed', 'failed', 'cancelled')
            ORDER BY completed_at
            LIMIT \(limit)
            FOR UPDATE SKIP LOCKED
        ), events AS (
            DELETE FROM volume_operation_events e USING doomed d WHERE e.operation_id = d.id
            RETURNING 1
        ), operations AS (
            DELETE FROM volume_operations o USING doomed d WHERE o.id = d.id
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM operations)::int8, (SELECT count(*) FROM events)::int8
        """
    }

    /// What `pruneBatch` would delete, all batches together (`--dry-run`).
    public static func pruneCount(cutoff: Date) -> PostgresQuery {
        """
        SELECT count(*)::int8,
               coalesce(sum((SELECT count(*) FROM volume_operation_events e WHERE e.operation_id = o.id)), 0)::int8
        FROM volume_operations o
        WHERE o.completed_at < \(cutoff) AND o.status IN ('completed', 'failed', 'cancelled')
        """
    }
}
