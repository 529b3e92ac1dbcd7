-- Snapshot tracking for the original daemon's test-failover rollback (CONTRACT §2, §8).
--
-- Before a test failover, the replication engine takes a CloudStack volume snapshot of every
-- volume of a VM and records it here through `POST /api/v1/snapshots/track`; a rollback
-- reads them back per VM context (`GET /api/v1/snapshots/vm/{vm_context_id}`), marks each
-- `rollback_complete` (`PUT /api/v1/snapshots/{volume_uuid}`) and clears them
-- (`DELETE /api/v1/snapshots/vm/{vm_context_id}`). The original kept these columns on its
-- device mappings (its migration 20250925140000_add_snapshot_tracking); so does volumed.
--
-- The VM context id is the engine's own name for a replicated VM (e.g.
-- `ctx-pgtest1-20250909-113839`), not a CloudStack UUID: any single line of text.
-- The mapping row belongs to the worker (attach, detach, cleanup write it); these columns
-- are only written by the API's snapshot routes and by an attach that carries
-- `vm_context_id`, and the worker's upsert leaves them alone.

ALTER TABLE device_mappings
    ADD COLUMN vm_context_id       text,
    ADD COLUMN snapshot_id         text,
    ADD COLUMN snapshot_created_at timestamptz,
    ADD COLUMN snapshot_status     text NOT NULL DEFAULT 'none';

ALTER TABLE device_mappings
    ADD CONSTRAINT device_mappings_snapshot_status_known CHECK (
        snapshot_status IN ('none', 'creating', 'ready', 'failed', 'rollback_complete')),
    ADD CONSTRAINT device_mappings_vm_context_id_is_one_line CHECK (
        vm_context_id IS NULL OR (vm_context_id ~ '^[^[:cntrl:]]{1,255}$' AND btrim(vm_context_id) <> '')),
    ADD CONSTRAINT device_mappings_snapshot_id_is_one_line CHECK (
        snapshot_id IS NULL OR (snapshot_id ~ '^[^[:cntrl:]]{1,255}$' AND btrim(snapshot_id) <> ''));

-- The rollback reads and clears by VM context.
CREATE INDEX device_mappings_vm_context ON device_mappings (vm_context_id) WHERE vm_context_id IS NOT NULL;

-- For dashboards: each mapped volume's VM context and snapshot, beside where it is attached.
CREATE VIEW volume_snapshots AS
SELECT m.volume_id,
       m.vm_context_id,
       m.vm_id,
       m.operation_mode,
       m.by_id_path,
       m.snapshot_id,
       m.snapshot_created_at,
       m.snapshot_status,
       v.name AS volume_name
FROM device_mappings m
LEFT JOIN volumes v ON v.volume_id = m.volume_id;
