import Foundation
import PostgresNIO

/// Every statement the queue runtime runs, in one place.
///
/// Each claim hands its worker a random claim token (the row keeps only its SHA-256, in
/// `claim_token`). Every statement that changes a claimed row proves the claim: it names the
/// token's digest in its WHERE (a handler whose claim was rescued and given to another changes
/// nothing: zero rows back means "lost the lease", never success) and writes the token itself
/// into `claim_token`, which the database's guard (`volume_operations_require_claim`,
/// migrations/0005_claim_token.sql) checks and replaces by the digest again. Nobody else, and no
/// older claim of the same worker, can move an executing row.
///
/// The digest is stored only while the row executes (the guard clears it on the way out, and so
/// does the rescue), so the token alone proves `executing`, and these WHEREs do not name the
/// status: with it, a planner whose statistics predate the running claims (they lag a burst)
/// walked `volume_operations_executing`, every executing row, for each statement instead of
/// probing the primary key (migrations/0009_worker_plans.sql, `ClaimCostTests`).
public enum QueueSQL {
    /// Claims up to `limit` operations for `worker` in one statement: the oldest claimable
    /// operation of each volume, by priority then creation order, honouring `run_after` and
    /// appliance routing (a `cleanup`, which ends with the volume on an appliance, only on a
    /// worker that has one: the one its `vm_id` names when set). The statement itself is
    /// `volume_operations_claim_with_token` (migrations/0005_claim_token.sql, the selection of
    /// 0004_claim_plan.sql), a function so that it carries the planner settings that keep its
    /// cost independent of how many rows are pending; each row comes back with its token.
    public static func claim(worker: String, applianceVMId: String?, limit: Int, leaseMilliseconds: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: ClaimedOperation.columns)
        FROM volume_operations_claim_with_token(\(worker), \(applianceVMId), \(limit), \(Double(leaseMilliseconds)))
        """
    }

    /// Completes many operations that have no mapping writes, in one statement (group commit).
    public static func completeBatch(ids: [UUID], tokens: [String], responses: [String]) -> PostgresQuery {
        """
        UPDATE volume_operations o
           SET status = 'completed', response = v.response::jsonb, error = NULL, error_code = NULL,
               lease_expires_at = NULL, completed_at = now(), updated_at = now(), claim_token = v.token
          FROM unnest(\(ids)::uuid[], \(tokens)::text[], \(responses)::text[]) AS v(id, token, response)
         WHERE o.id = v.id AND o.claim_token = volume_operations_claim_digest(v.token)
        RETURNING o.id
        """
    }

    /// `completeBatch` and, in the same statement and commit, a claim of up to `limit` more
    /// (migrations/0008_complete_and_claim.sql). Each row is `ClaimedOperation.columns` plus
    /// `completed` last: true for an operation this completed (only `id` set), false for a claim.
    public static func completeAndClaim(ids: [UUID], tokens: [String], responses: [String], worker: String,
                                        applianceVMId: String?, limit: Int, leaseMilliseconds: Int) -> PostgresQuery {
        """
        SELECT \(unescaped: ClaimedOperation.columns), completed
        FROM volume_operations_complete_and_claim(\(ids)::uuid[], \(tokens)::text[], \(responses)::text[],
                                                  \(worker), \(applianceVMId), \(limit), \(Double(leaseMilliseconds)))
        """
    }

    /// Completes one operation; run inside the transaction that also writes its mappings.
    public static func complete(id: UUID, token: String, response: String?, volumeId: String?) -> PostgresQuery {
        """
        UPDATE volume_operations
           SET status = 'completed', response = \(response)::jsonb, error = NULL, error_code = NULL,
               volume_id = coalesce(\(volumeId), volume_id),
               lease_expires_at = NULL, completed_at = now(), updated_at = now(), claim_token = \(token)
         WHERE id = \(id) AND claim_token = volume_operations_claim_digest(\(token))
        RETURNING id
        """
    }

    public static func fail(id: UUID, token: String, error: String, errorCode: String) -> PostgresQuery {
        """
        UPDATE volume_operations
           SET status = 'failed', error = \(error), error_code = \(errorCode),
               lease_expires_at = NULL, completed_at = now(), updated_at = now(), claim_token = \(token)
         WHERE id = \(id) AND claim_token = volume_operations_claim_digest(\(token))
        RETURNING id
        """
    }

    /// Back to pending after a transient error, not before `delayMilliseconds`; the checkpoint stays.
    public static func retry(id: UUID, token: String, delayMilliseconds: Int, error: String, errorCode: String) -> PostgresQuery {
        """
        UPDATE volume_operations
           SET status = 'pending', error = \(error), error_code = \(errorCode),
               run_after = now() + \(delayMilliseconds)::float8 * interval '1 millisecond',
               claimed_by = NULL, lease_expires_at = NULL, updated_at = now(), claim_token = \(token)
         WHERE id = \(id) AND claim_token = volume_operations_claim_digest(\(token))
        RETURNING id
        """
    }

    /// Finishes an operation whose cancellation was requested (only then may it be cancelled).
    public static func cancel(id: UUID, token: String) -> PostgresQuery {
        """
        UPDATE volume_operations
           SET status = 'cancelled', lease_expires_at = NULL, completed_at = now(), updated_at = now(),
               claim_token = \(token)
         WHERE id = \(id) AND claim_token = volume_operations_claim_digest(\(token))
           AND cancel_requested_at IS NOT NULL
        RETURNING id
        """
    }

    /// Hands claimed operations back at shutdown: pending again at once, the attempt not
    /// counted, the checkpoint kept so the next worker resumes.
    public static func release(ids: [UUID], tokens: [String]) -> PostgresQuery {
        """
        UPDATE volume_operations o
           SET status = 'pending', claimed_by = NULL, lease_expires_at = NULL,
               attempts = greatest(o.attempts - 1, 0), run_after = now(), updated_at = now(), claim_token = v.token
          FROM unnest(\(ids)::uuid[], \(tokens)::text[]) AS v(id, token),
               (SELECT set_config('volumed.event_detail', 'released at worker shutdown', true)) AS detail
         WHERE o.id = v.id AND o.claim_token = volume_operations_claim_digest(v.token)
        RETURNING o.id
        """
    }

    /// Stores a handler's progress; fails (zero rows) when the lease is gone.
    public static func saveCheckpoint(id: UUID, token: String, checkpoint: String) -> PostgresQuery {
        """
        UPDATE volume_operations SET checkpoint = \(checkpoint)::jsonb, claim_token = \(token)
         WHERE id = \(id) AND claim_token = volume_operations_claim_digest(\(token))
        RETURNING id
        """
    }

    /// Extends the leases of the claims this worker still holds; returns the token of each one
    /// it still holds and whether cancellation was requested. A claim missing from the result
    /// was lost. One statement for all of them; the database's rules never fail it for one
    /// row's sake (0005), and `LeaseHeartbeat` falls back to one statement per claim if it does.
    public static func heartbeat(ids: [UUID], tokens: [String], leaseMilliseconds: Int) -> PostgresQuery {
        """
        UPDATE volume_operations o
           SET lease_expires_at = now() + \(leaseMilliseconds)::float8 * interval '1 millisecond', claim_token = v.token
          FROM unnest(\(ids)::uuid[], \(tokens)::text[]) AS v(id, token)
         WHERE o.id = v.id AND o.claim_token = volume_operations_claim_digest(v.token)
        RETURNING v.token, o.cancel_requested_at IS NOT NULL
        """
    }

    /// Only one rescuer runs at a time across all workers: this transaction-scoped lock.
    public static let rescuerLockKey: Int64 = 0x766F_6C75_6D65_6402

    /// The executing operations whose lease expired, oldest expiry first, locked until the
    /// rescuer's transaction ends (another rescuer skips them).
    public static func lockExpired(limit: Int) -> PostgresQuery {
        """
        SELECT id, attempts, max_attempts FROM volume_operations
        WHERE status = 'executing' AND lease_expires_at < now()
        ORDER BY lease_expires_at
        LIMIT \(limit)
        FOR UPDATE SKIP LOCKED
        """
    }

    /// Returns expired operations to `pending` (checkpoint intact) where `retries` says so
    /// (the rescuer asks `shouldRetry` per row), and fails the others. Guarded by status and
    /// lease time again, so a row completing at the same moment is never overwritten.
    public static func rescue(ids: [UUID], retries: [Bool]) -> PostgresQuery {
        """
        UPDATE volume_operations o
           SET status = CASE WHEN v.retry THEN 'pending' ELSE 'failed' END,
               error = CASE WHEN v.retry THEN o.error
                   ELSE format('worker %s stopped renewing its lease while running this operation, and it has now been tried %s times (max_attempts); look at that worker''s log, then enqueue the operation again', o.claimed_by, o.attempts)
                   END,
               error_code = CASE WHEN v.retry THEN o.error_code ELSE 'lease_expired' END,
               completed_at = CASE WHEN NOT v.retry THEN now() END,
               claimed_by = CASE WHEN NOT v.retry THEN o.claimed_by END,
               lease_expires_at = NULL,
               run_after = now(),
               updated_at = now()
          FROM unnest(\(ids)::uuid[], \(retries)::bool[]) AS v(id, retry),
               (SELECT set_config('volumed.event_detail', 'lease expired', true)) AS detail
         WHERE o.id = v.id AND o.status = 'executing' AND o.lease_expires_at < now()
        RETURNING o.id, o.status
        """
    }

    /// Pending and executing rows across the queue, read from the partial index of unfinished
    /// rows (history never enters it), for the queue-depth gauge.
    public static let depth: PostgresQuery = """
        SELECT count(*) FILTER (WHERE status = 'pending')::int8, count(*) FILTER (WHERE status = 'executing')::int8
        FROM volume_operations WHERE status IN ('pending', 'executing')
        """

    public static func registerAppliance(vmId: String) -> PostgresQuery {
        """
        INSERT INTO volumed_appliances (vm_id) VALUES (\(vmId))
        ON CONFLICT (vm_id) DO UPDATE SET last_seen = now()
        """
    }
}
