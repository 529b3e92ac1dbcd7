-- volumed 0003: table health for the queue's history (LESSONS.md "Table health").
--
-- Queue tables bloat: River, Que and pg-boss users hit autovacuum starvation and slow
-- queries at millions of rows. volumed ships two remedies: `volumed prune --older-than`
-- (batched deletes of finished operations and their events) and autovacuum settings that
-- keep up with the queue's write pattern instead of PostgreSQL's defaults (vacuum at 20 %
-- dead rows, analyze at 10 % changed rows), which on a table of millions of rows wait for
-- hundreds of thousands of dead rows.
--
-- volume_operations got its settings in 0001 and keeps them (fillfactor 70, vacuum at 1 %
-- dead rows, analyze at 2 %, cost delay 1 ms; pgqueuer ships the same scale factor and
-- fillfactor): every row is updated two or three times (claim, heartbeats, finish), so free
-- space on each page keeps those updates HOT, and vacuum must follow closely. They are not
-- set again here, so a value an operator tuned since is not silently reset.
--
-- ALTER TABLE … SET (autovacuum and fillfactor parameters) takes only a SHARE UPDATE
-- EXCLUSIVE lock: running workers keep claiming and finishing while this migration applies.

-- volume_operation_events is append-only: rows are inserted by the status triggers and only
-- ever deleted by prune, in batches. So:
--   * vacuum at 1 % dead rows, so the space a prune frees is reusable soon after it runs
--     instead of after a fifth of the table has been deleted;
--   * vacuum after 5 % new rows too (PostgreSQL 13+; the default waits for 20 %): on an
--     insert-only table these passes are what set the visibility map (index-only scans on
--     (operation_id, id) for audits) and freeze rows a little at a time, instead of in one
--     late anti-wraparound vacuum of millions of rows;
--   * analyze at 2 %, so the planner's row estimates for the `at` range scans of dashboards
--     follow the table's growth;
--   * fillfactor stays 100: rows are never updated, so free space per page would be wasted.
ALTER TABLE volume_operation_events SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);
