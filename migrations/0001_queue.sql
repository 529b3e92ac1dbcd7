-- volumed 0001: the operation queue, its audit log, and the rules the database enforces.
--
-- Everything an orchestrator relies on is enforced here, not in the worker, so a plain
-- INSERT/UPDATE from psql or any language behaves exactly like the Swift client:
--   * only known types and statuses (CHECK);
--   * request is a JSON object; ids are CloudStack UUIDs (CHECK);
--   * at most one executing operation per volume (partial unique index);
--   * operations on one volume start in creation order (claim query + guard trigger);
--   * a terminal row never changes status again (guard trigger);
--   * every status change is appended to volume_operation_events (statement trigger);
--   * NOTIFY volume_operation_pending / volume_operation_completed (statement triggers).

CREATE EXTENSION IF NOT EXISTS pgcrypto; -- gen_random_uuid() on PostgreSQL 12; built in from 13

CREATE TABLE volume_operations (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Creation order. created_at ties inside one transaction; seq never does.
    seq              bigint      GENERATED ALWAYS AS IDENTITY,
    type             text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending',
    volume_id        text,
    vm_id            text,
    request          jsonb       NOT NULL DEFAULT '{}',
    response         jsonb,
    error            text,
    error_code       text,
    idempotency_key  text,
    priority         smallint    NOT NULL DEFAULT 0,
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 5,
    run_after        timestamptz NOT NULL DEFAULT now(),
    claimed_by       text,
    lease_expires_at timestamptz,
    checkpoint       jsonb,
    -- Set when someone asks to cancel an executing operation; the worker stops between steps.
    cancel_requested_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,

    CONSTRAINT volume_operations_type_known CHECK (
        type IN ('create', 'attach', 'detach', 'delete', 'export', 'unexport', 'cleanup')),
    CONSTRAINT volume_operations_status_known CHECK (
        status IN ('pending', 'executing', 'completed', 'failed', 'cancelled')),
    CONSTRAINT volume_operations_volume_id_required CHECK (
        type = 'create' OR volume_id IS NOT NULL),
    CONSTRAINT volume_operations_volume_id_is_uuid CHECK (
        volume_id ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'),
    CONSTRAINT volume_operations_vm_id_required CHECK (
        type NOT IN ('attach', 'export') OR vm_id IS NOT NULL),
    CONSTRAINT volume_operations_vm_id_is_uuid CHECK (
        vm_id ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'),
    CONSTRAINT volume_operations_request_is_object CHECK (jsonb_typeof(request) = 'object'),
    CONSTRAINT volume_operations_request_size CHECK (octet_length(request::text) <= 65536),
    CONSTRAINT volume_operations_idempotency_key_size CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    CONSTRAINT volume_operations_attempts_valid CHECK (attempts >= 0 AND max_attempts BETWEEN 1 AND 100),
    CONSTRAINT volume_operations_executing_has_lease CHECK (
        status <> 'executing' OR (claimed_by IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT volume_operations_failed_has_error CHECK (
        status <> 'failed' OR (error IS NOT NULL AND error_code IS NOT NULL)),
    CONSTRAINT volume_operations_completed_at_iff_terminal CHECK (
        (status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL))
);

-- Low fillfactor and an aggressive autovacuum: queue rows are updated two or three times
-- each and must not bloat the claim path (see docs/operations.md).
ALTER TABLE volume_operations SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

CREATE UNIQUE INDEX volume_operations_idempotency_key
    ON volume_operations (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The claim path: only pending rows, in claim order. History never enters this index.
CREATE INDEX volume_operations_claimable
    ON volume_operations (priority, seq) INCLUDE (run_after) WHERE status = 'pending';

-- Per-volume ordering: the unfinished operations of each volume, oldest first.
CREATE INDEX volume_operations_unfinished_by_volume
    ON volume_operations (volume_id, seq) WHERE status IN ('pending', 'executing');

-- At most one executing operation per volume, whatever any client does.
CREATE UNIQUE INDEX volume_operations_one_executing_per_volume
    ON volume_operations (volume_id) WHERE status = 'executing' AND volume_id IS NOT NULL;

-- Executing rows for the rescuer (lease_expires_at is deliberately not indexed, so the
-- heartbeat that extends it stays a HOT update).
CREATE INDEX volume_operations_executing
    ON volume_operations (claimed_by) WHERE status = 'executing';

-- History lookups for the API and dashboards.
CREATE INDEX volume_operations_by_volume ON volume_operations (volume_id, created_at);
CREATE INDEX volume_operations_completed_at ON volume_operations (completed_at) WHERE completed_at IS NOT NULL;

CREATE TABLE volume_operation_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id uuid        NOT NULL,
    from_status  text,        -- NULL for the insert
    to_status    text        NOT NULL,
    worker       text,
    at           timestamptz NOT NULL DEFAULT now(),
    detail       text
);
CREATE INDEX volume_operation_events_operation ON volume_operation_events (operation_id, id);
CREATE INDEX volume_operation_events_at ON volume_operation_events (at);

-- Appliances whose workers have started: an attach to one of these VMs must run on that
-- appliance's worker, because only there does the disk appear as a local block device.
CREATE TABLE volumed_appliances (
    vm_id      text        PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE volumes (
    volume_id        text        PRIMARY KEY,
    name             text        NOT NULL,
    size_bytes       bigint      NOT NULL CHECK (size_bytes > 0),
    zone_id          text,
    disk_offering_id text,
    state            text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- The operation that created or adopted this volume (NULL when adopted by reconcile).
    created_by_operation uuid
);

CREATE TABLE device_mappings (
    volume_id            text        PRIMARY KEY,
    vm_id                text        NOT NULL,
    operation_mode       text        NOT NULL CHECK (operation_mode IN ('appliance', 'remote')),
    cloudstack_device_id integer,
    by_id_path           text,
    device_path          text,
    size_bytes           bigint      CHECK (size_bytes > 0),
    attached_at          timestamptz NOT NULL DEFAULT now(),
    verified_at          timestamptz NOT NULL DEFAULT now(),
    -- An appliance mapping is a local block device reached through its stable by-id link.
    CONSTRAINT device_mappings_appliance_has_by_id CHECK (
        operation_mode <> 'appliance' OR (by_id_path IS NOT NULL AND by_id_path LIKE '/%'))
);
-- One row per volume; each remote VM may hold any number of volumes (no placeholder path).
CREATE INDEX device_mappings_vm ON device_mappings (vm_id);
CREATE UNIQUE INDEX device_mappings_by_id_path ON device_mappings (by_id_path) WHERE by_id_path IS NOT NULL;

CREATE TABLE vm_export_mappings (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vm_id            text        NOT NULL,
    disk_unit_number integer     NOT NULL CHECK (disk_unit_number >= 0),
    volume_id        text        NOT NULL,
    export_name      text        NOT NULL UNIQUE,
    device_path      text        NOT NULL,
    nbd_port         integer     NOT NULL CHECK (nbd_port BETWEEN 1 AND 65535),
    job_id           text,
    vm_name          text,
    status           text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX vm_export_mappings_active_disk
    ON vm_export_mappings (vm_id, disk_unit_number) WHERE status = 'active';
CREATE INDEX vm_export_mappings_volume ON vm_export_mappings (volume_id);

-- ---------------------------------------------------------------------------------------
-- Row guard: legal status transitions only; terminal rows are final; a plain
-- `UPDATE … SET status = 'cancelled'` on an executing row becomes a cancel request.
-- Runs only for the unusual cases (WHEN clauses), never on the worker's hot path.
CREATE FUNCTION volume_operations_guard_transition() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF OLD.status IN ('completed', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'operation % is already % and cannot become %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation',
                  HINT = 'terminal operations never change; enqueue a new operation instead';
    END IF;
    IF OLD.status = 'executing' AND NEW.status = 'cancelled' AND OLD.cancel_requested_at IS NULL THEN
        -- The worker holding it stops between steps and finishes it as cancelled.
        NEW.status := 'executing';
        NEW.cancel_requested_at := now();
        NEW.completed_at := NULL;
        NEW.updated_at := now();
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'operation % cannot go from % to %', OLD.id, OLD.status, NEW.status
        USING ERRCODE = 'check_violation',
              HINT = 'pending rows may only be claimed or cancelled; only the worker holding an executing row finishes it';
END $$;

CREATE TRIGGER volume_operations_guard_transition
    BEFORE UPDATE OF status ON volume_operations
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'pending'   AND NEW.status IN ('executing', 'cancelled'))
        OR (OLD.status = 'executing' AND NEW.status IN ('pending', 'completed', 'failed'))
        OR (OLD.status = 'executing' AND NEW.status = 'cancelled' AND OLD.cancel_requested_at IS NOT NULL)))
    EXECUTE FUNCTION volume_operations_guard_transition();

-- Timestamps for plain-SQL cancels (the worker sets them itself).
CREATE FUNCTION volume_operations_stamp_terminal() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    NEW.completed_at := now();
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER volume_operations_stamp_terminal
    BEFORE UPDATE OF status ON volume_operations
    FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.completed_at IS NULL)
    EXECUTE FUNCTION volume_operations_stamp_terminal();

-- Inserts must start pending and unclaimed.
CREATE FUNCTION volume_operations_guard_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION 'a new operation must have status pending (got %)', NEW.status
        USING ERRCODE = 'check_violation',
              HINT = 'leave status, claimed_by, lease_expires_at and completed_at out of the INSERT';
END $$;

CREATE TRIGGER volume_operations_guard_insert
    BEFORE INSERT ON volume_operations
    FOR EACH ROW
    WHEN (NEW.status <> 'pending' OR NEW.claimed_by IS NOT NULL OR NEW.completed_at IS NOT NULL)
    EXECUTE FUNCTION volume_operations_guard_insert();

-- ---------------------------------------------------------------------------------------
-- Statement triggers: one audit INSERT and at most one pending NOTIFY per statement, one
-- completion NOTIFY per finished row (each waiter needs its own id), sent at commit.
CREATE FUNCTION volume_operations_after_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO volume_operation_events (operation_id, from_status, to_status, worker, detail)
    SELECT n.id, NULL, n.status, NULL, n.type FROM inserted n;
    IF FOUND THEN
        PERFORM pg_notify('volume_operation_pending', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER volume_operations_after_insert
    AFTER INSERT ON volume_operations
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION volume_operations_after_insert();

CREATE FUNCTION volume_operations_after_update() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    became_pending boolean := false;
BEGIN
    -- Creation order per volume: nothing may start while an older operation on the same
    -- volume is unfinished. The claim query already guarantees it; this is the backstop
    -- for any other client.
    IF EXISTS (
        SELECT 1
        FROM new_rows n JOIN old_rows o USING (id)
        WHERE o.status = 'pending' AND n.status = 'executing' AND n.volume_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM volume_operations b
                      WHERE b.volume_id = n.volume_id AND b.seq < n.seq
                        AND b.status IN ('pending', 'executing')))
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

CREATE TRIGGER volume_operations_after_update
    AFTER UPDATE ON volume_operations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION volume_operations_after_update();

-- ---------------------------------------------------------------------------------------
-- Enqueue with idempotency: a repeated key returns the first id; a repeated key with other
-- parameters is an error (it is almost certainly a bug in the caller).
CREATE FUNCTION volume_operation_enqueue(
    p_type            text,
    p_volume_id       text,
    p_vm_id           text,
    p_request         jsonb DEFAULT '{}',
    p_idempotency_key text  DEFAULT NULL,
    p_priority        smallint DEFAULT 0,
    p_max_attempts    integer DEFAULT 5
) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    new_id   uuid;
    existing volume_operations%ROWTYPE;
BEGIN
    INSERT INTO volume_operations (type, volume_id, vm_id, request, idempotency_key, priority, max_attempts)
    VALUES (p_type, p_volume_id, p_vm_id, coalesce(p_request, '{}'), p_idempotency_key,
            coalesce(p_priority, 0), coalesce(p_max_attempts, 5))
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NOT NULL THEN
        RETURN new_id;
    END IF;

    SELECT * INTO existing FROM volume_operations WHERE idempotency_key = p_idempotency_key;
    IF existing.type IS DISTINCT FROM p_type
       OR existing.volume_id IS DISTINCT FROM p_volume_id
       OR existing.vm_id IS DISTINCT FROM p_vm_id
       OR existing.request IS DISTINCT FROM coalesce(p_request, '{}') THEN
        RAISE EXCEPTION 'idempotency key % already names operation % with different parameters',
                        p_idempotency_key, existing.id
            USING ERRCODE = 'unique_violation',
                  HINT = 'use a new idempotency key for a different operation';
    END IF;
    RETURN existing.id;
END $$;

-- Cancel: pending rows are cancelled at once; executing rows get a cancel request that the
-- worker honours between steps. Returns the status after the call.
CREATE FUNCTION volume_operation_cancel(p_id uuid) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    result text;
BEGIN
    UPDATE volume_operations
       SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
           completed_at = CASE WHEN status = 'pending' THEN now() ELSE completed_at END,
           cancel_requested_at = CASE WHEN status = 'executing' THEN coalesce(cancel_requested_at, now())
                                      ELSE cancel_requested_at END,
           updated_at = now()
     WHERE id = p_id AND status IN ('pending', 'executing')
    RETURNING status INTO result;
    IF result IS NULL THEN
        SELECT status INTO result FROM volume_operations WHERE id = p_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no operation with id %', p_id USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    RETURN result;
END $$;
