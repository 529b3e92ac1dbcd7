-- Least-privilege roles for volumed (docs/operations.md, "Roles and grants").
-- Run as the owner of the volumed schema, after `volumed migrate`, with psql:
--   psql "$ADMIN_URL" -v orchestrator=replication_engine -v worker=volumed_worker \
--        -v dashboard=grafana -f deploy/grants.sql
-- The roles must exist (CREATE ROLE … LOGIN); this file only grants. Run it again after
-- an upgrade that adds tables or functions: every GRANT here is idempotent.
--
-- Ownership stays with the migrating role: neither orchestrators nor workers can change the
-- schema. The triggers run as the caller, so whoever writes volume_operations also needs
-- INSERT on the audit log.

-- Orchestrators: enqueue, cancel, read results, wait.
GRANT USAGE ON SCHEMA public TO :"orchestrator";
GRANT SELECT, INSERT ON volume_operations TO :"orchestrator";
GRANT UPDATE (status) ON volume_operations TO :"orchestrator";       -- UPDATE … SET status = 'cancelled'
-- No other column: an executing row moves only for the worker that proves its claim token
-- (migration 0005); the database turns an orchestrator's status change into a cancel request
-- or refuses it, whatever this file grants.
GRANT INSERT ON volume_operation_events TO :"orchestrator";          -- written by the triggers
GRANT SELECT ON volume_operation_events, volumes, device_mappings, vm_export_mappings, volume_operation_types,
               volume_operation_stats, volume_operations_stuck, volume_inventory, volume_snapshots TO :"orchestrator";
GRANT EXECUTE ON FUNCTION volume_operation_enqueue(text, text, text, jsonb, text, smallint, integer),
                          volume_operation_cancel(uuid) TO :"orchestrator";

-- Workers (volumed worker / serve / reconcile / prune): run the queue and own the mappings.
GRANT USAGE ON SCHEMA public TO :"worker";
GRANT SELECT, INSERT, UPDATE, DELETE ON volume_operations, volume_operation_events, volumes,
      device_mappings, vm_export_mappings, volumed_appliances TO :"worker";
GRANT SELECT ON schema_migrations, volume_operation_types, volume_operation_stats, volume_operations_stuck,
               volume_inventory, volume_snapshots TO :"worker";
GRANT EXECUTE ON FUNCTION volume_operations_claim_with_token(text, text, bigint, float8),
                          volume_operations_claim_digest(text),
                          volume_operation_enqueue(text, text, text, jsonb, text, smallint, integer),
                          volume_operation_cancel(uuid) TO :"worker";

-- Dashboards: read only.
GRANT USAGE ON SCHEMA public TO :"dashboard";
GRANT SELECT ON volume_operation_stats, volume_operations_stuck, volume_inventory, volume_snapshots,
               volume_operations, volume_operation_events, volume_operation_types, volumes, device_mappings,
               vm_export_mappings TO :"dashboard";
