-- volumed 0004: a claim whose cost does not depend on how many rows are pending.
--
-- The claim used to be one statement sent by the worker. Its plan depended on the table's
-- statistics: after a burst of inserts into a queue analysed while nearly empty (the
-- usual case: autovacuum's analyze lags a burst by up to a minute), the planner expected a
-- handful of pending rows, so it read *every* pending row, checked each one's volume order,
-- sorted them all and then kept the first few. Each claim cost O(pending): draining 10,000
-- operations 100 at a time took 93 ms per claim instead of 1 ms (measured, BENCHMARKS.md).
--
-- As a function it can carry its own planner settings: with sorts, bitmap and sequential
-- scans off, the only plan left walks `volume_operations_claimable` in (priority, seq) order,
-- stops as soon as `p_limit` rows are locked, and finds each locked row again by its primary
-- key, whatever the statistics say. PL/pgSQL keeps the plan for the session, which saves
-- planning it again at every claim (a millisecond, measured).
CREATE FUNCTION volume_operations_claim(
    p_worker          text,
    p_appliance_vm_id text,
    p_limit           bigint,
    p_lease_ms        float8
) RETURNS SETOF volume_operations
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
BEGIN
    -- Only `pending` rows whose `run_after` has come; only the oldest unfinished operation
    -- of each volume, and none while one of that volume executes (so a batch never holds two
    -- rows of one volume); operations that need a local block device (an attach to a
    -- registered appliance VM, anything on a volume mapped to an appliance) only on that
    -- appliance's worker; a cleanup (it ends with the volume on an appliance) only on a
    -- worker that has an appliance, the one its vm_id names when set; by priority, then
    -- creation order. The CTE with LIMIT … SKIP LOCKED
    -- is the optimisation fence that keeps the UPDATE to exactly the locked rows.
    RETURN QUERY
    WITH next AS (
        SELECT o.id
        FROM volume_operations o
        WHERE o.status = 'pending'
          AND o.run_after <= now()
          AND NOT EXISTS (
              SELECT 1 FROM volume_operations b
              WHERE b.volume_id = o.volume_id
                AND b.status IN ('pending', 'executing')
                AND (b.seq < o.seq OR b.status = 'executing'))
          AND CASE o.type
              WHEN 'create' THEN true
              WHEN 'attach' THEN NOT EXISTS (
                  SELECT 1 FROM volumed_appliances a
                  WHERE a.vm_id = o.vm_id AND a.vm_id IS DISTINCT FROM p_appliance_vm_id)
              WHEN 'cleanup' THEN lower(coalesce(o.vm_id, p_appliance_vm_id)) = lower(p_appliance_vm_id)
              ELSE NOT EXISTS (
                  SELECT 1 FROM device_mappings m
                  WHERE m.volume_id = o.volume_id AND m.operation_mode = 'appliance'
                    AND m.vm_id IS DISTINCT FROM p_appliance_vm_id)
              END
        ORDER BY o.priority, o.seq
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE volume_operations o
       SET status = 'executing',
           claimed_by = p_worker,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           attempts = o.attempts + 1,
           started_at = coalesce(o.started_at, now()),
           updated_at = now()
      FROM next
     WHERE o.id = next.id
    RETURNING o.*;
END
$$;

-- The statement trigger's order check joined new_rows to old_rows; transition tables have no
-- statistics, so that join ran as a nested loop, n² comparisons per claimed batch (1.3 ms for
-- 100 rows). It needs no join: a row that is `executing` after any statement must have no
-- older unfinished operation on its volume. The claim never starts one out of order, and
-- nothing makes an older row unfinished again while a newer one executes (a retry or rescue
-- returns the executing row itself to pending, and the one-executing-per-volume index
-- keeps any other row of that volume from running meanwhile).
--
-- The same statistics trap as the claim: PL/pgSQL caches the check's plan in each session,
-- and a statement trigger also fires for UPDATEs that touch no row (an idle heartbeat), so the
-- plan was often made while the table was empty: a sequential scan, or a whole-index scan, per
-- new row, 300–800 ms for a batch of 100 in a 10,000-row queue (measured). A per-row subquery
-- with sequential scans off leaves one plan: an index probe by volume_id.
CREATE OR REPLACE FUNCTION volume_operations_after_update() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
    became_pending boolean := false;
BEGIN
    -- Creation order per volume: nothing may start while an older operation on the same
    -- volume is unfinished. The claim already guarantees it; this is the backstop for any
    -- other client.
    -- A scalar subquery, not EXISTS: the planner never turns it into a join, so it stays a
    -- probe of the index by volume_id for each new row.
    IF EXISTS (
        SELECT 1 FROM new_rows n
        WHERE n.status = 'executing' AND n.volume_id IS NOT NULL
          AND (SELECT true FROM volume_operations b
               WHERE b.volume_id = n.volume_id AND b.seq < n.seq
                 AND b.status IN ('pending', 'executing')
               LIMIT 1))
    THEN
        RAISE EXCEPTION 'an operation was started before an older unfinished operation on the same volume'
            USING ERRCODE = 'check_violation',
                  HINT = 'operations on one volume run in creation order';
    END IF;

    INSERT INTO volume_operation_events (operation_id, from_status, to_status, worker, detail)
    SELECT n.id, o.status, n.status,
           coalesce(n.claimed_by, o.claimed_by),
           coalesce(nullif(current_setting('volumed.event_detail', true), ''),
                    CASE WHEN n.status IN ('failed', 'pending') THEN n.error_code END)
    FROM new_rows n JOIN old_rows o USING (id)
    WHERE n.status <> o.status;

    PERFORM pg_notify('volume_operation_completed',
                      json_build_object('id', n.id, 'type', n.type, 'status', n.status,
                                        'volume_id', n.volume_id)::text)
    FROM new_rows n JOIN old_rows o USING (id)
    WHERE n.status IN ('completed', 'failed', 'cancelled') AND o.status <> n.status;

    SELECT EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o USING (id)
                   WHERE n.status = 'pending' AND o.status <> 'pending')
    INTO became_pending;
    IF became_pending THEN
        PERFORM pg_notify('volume_operation_pending', '');
    END IF;
    RETURN NULL;
END $$;

-- Fewer index entries per operation. Every status change is a non-HOT update (status is in
-- the partial indexes' predicates), so each one adds an entry to every index whose predicate
-- the new row version meets, and each audit row adds one to every index of the event log.
-- * One index by volume serves both the history lookups and the per-volume order checks
--   (the claim's and the trigger's): a volume has a handful of operations, so reading its
--   finished ones too costs nothing, while a second, partial index cost an entry at insert
--   and another at every claim.
-- * Events are read by operation; nothing reads them by time alone (retention deletes them
--   with their operations), so the `at` index only cost an entry per audit row.
DROP INDEX volume_operations_unfinished_by_volume;
DROP INDEX volume_operations_by_volume;
CREATE INDEX volume_operations_by_volume ON volume_operations (volume_id, seq);
DROP INDEX volume_operation_events_at;

-- volume_operation_cancel runs with its owner's rights, so an orchestrator role needs only
-- EXECUTE on it (and UPDATE of status, for the plain-SQL cancel), not UPDATE on the
-- bookkeeping columns it stamps (deploy/grants.sql). search_path is pinned (0001), as a
-- SECURITY DEFINER function's must be, and PUBLIC loses the EXECUTE every new function
-- gets: only roles granted it may cancel.
ALTER FUNCTION volume_operation_cancel(uuid) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION volume_operation_cancel(uuid) FROM PUBLIC;
