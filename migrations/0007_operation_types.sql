-- volumed 0007: operation types are rows, not literals (issue 14).
--
-- `volume_operation_types` holds one row per type: whether it needs a volume_id or a vm_id,
-- and where it must run. The type column references it (under the name of the CHECK it
-- replaces), the admit-time rules and the claim read it. A new type is a handler plus one row.
-- Every row of a database at 0006 meets the table's rules; the claim function keeps its name
-- and signature.

CREATE TABLE volume_operation_types (
    type           text    PRIMARY KEY,
    needs_volume_id boolean NOT NULL,
    needs_vm_id    boolean NOT NULL,
    -- Which worker may claim an operation of this type:
    --   any_worker          any worker (it touches no local device);
    --   registered_vm       the appliance named by vm_id when vm_id is a registered appliance
    --                       (volumed_appliances), else any worker (a remote VM's attach);
    --   vm_appliance        the appliance named by vm_id, or the claiming worker's own when
    --                       vm_id is NULL (cleanup hands a volume back to it);
    --   volume_appliance    the appliance holding the volume's `appliance` mapping, else any
    --                       worker (the volume is not a local device anywhere).
    runs_on        text    NOT NULL,
    CONSTRAINT volume_operation_types_runs_on_known CHECK (
        runs_on IN ('any_worker', 'registered_vm', 'vm_appliance', 'volume_appliance')),
    CONSTRAINT volume_operation_types_name_is_word CHECK (type ~ '^[a-z][a-z_]*$')
);

INSERT INTO volume_operation_types (type, needs_volume_id, needs_vm_id, runs_on) VALUES
    ('create',   false, false, 'any_worker'),
    ('attach',   true,  true,  'registered_vm'),
    ('detach',   true,  false, 'volume_appliance'),
    ('delete',   true,  false, 'volume_appliance'),
    ('export',   true,  true,  'volume_appliance'),
    ('unexport', true,  false, 'volume_appliance'),
    ('cleanup',  true,  false, 'vm_appliance'),
    ('resize',   true,  false, 'volume_appliance');

-- Inserts and claims read the type's row as the caller; the table holds no secret, so all may
-- read it and an upgrade needs no new grant.
GRANT SELECT ON volume_operation_types TO PUBLIC;

-- ---------------------------------------------------------------------------------------
-- The type: a foreign key under the old CHECK's name; a type in use can be neither renamed nor deleted.
ALTER TABLE volume_operations DROP CONSTRAINT volume_operations_type_known;
ALTER TABLE volume_operations ADD CONSTRAINT volume_operations_type_known
    FOREIGN KEY (type) REFERENCES volume_operation_types (type);

-- ---------------------------------------------------------------------------------------
-- volume_id / vm_id required: the table's flags, raised as the CHECKs were (message, constraint
-- name, SQLSTATE) with the rule as DETAIL. An unknown type passes here; the foreign key refuses it.
ALTER TABLE volume_operations DROP CONSTRAINT volume_operations_volume_id_required;
ALTER TABLE volume_operations DROP CONSTRAINT volume_operations_vm_id_required;

CREATE FUNCTION volume_operations_type_rules() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rule volume_operation_types;
BEGIN
    SELECT * INTO rule FROM volume_operation_types t WHERE t.type = NEW.type;
    IF rule.needs_volume_id AND NEW.volume_id IS NULL THEN
        RAISE EXCEPTION 'new row for relation "volume_operations" violates check constraint "volume_operations_volume_id_required"'
            USING ERRCODE = 'check_violation', COLUMN = 'volume_id', TABLE = 'volume_operations',
                  CONSTRAINT = 'volume_operations_volume_id_required',
                  DETAIL = format('%s operations need a volume_id (volume_operation_types.needs_volume_id)', NEW.type),
                  HINT = 'set volume_id to the CloudStack volume UUID the operation acts on';
    END IF;
    IF rule.needs_vm_id AND NEW.vm_id IS NULL THEN
        RAISE EXCEPTION 'new row for relation "volume_operations" violates check constraint "volume_operations_vm_id_required"'
            USING ERRCODE = 'check_violation', COLUMN = 'vm_id', TABLE = 'volume_operations',
                  CONSTRAINT = 'volume_operations_vm_id_required',
                  DETAIL = format('%s operations need a vm_id (volume_operation_types.needs_vm_id)', NEW.type),
                  HINT = 'set vm_id to the CloudStack VM UUID the operation targets';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER volume_operations_type_rules
    BEFORE INSERT OR UPDATE OF type, volume_id, vm_id ON volume_operations
    FOR EACH ROW
    EXECUTE FUNCTION volume_operations_type_rules();

-- ---------------------------------------------------------------------------------------
-- The claim: 0005's, routed by the type's row (one primary-key probe per candidate).
CREATE OR REPLACE FUNCTION volume_operations_claim_with_token(
    p_worker          text,
    p_appliance_vm_id text,
    p_limit           bigint,
    p_lease_ms        float8
) RETURNS TABLE (
    id           uuid,
    type         text,
    volume_id    text,
    vm_id        text,
    request      text,
    checkpoint   text,
    attempts     integer,
    max_attempts integer,
    claimed_by   text,
    created_at   timestamptz,
    claim_token  text
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    -- The same selection as 0004 (migrations/0004_claim_plan.sql explains each rule and the
    -- planner settings); gen_random_uuid() makes one token per locked row.
    RETURN QUERY
    WITH next AS (
        SELECT o.id, gen_random_uuid()::text AS token
        FROM volume_operations o
        WHERE o.status = 'pending'
          AND o.run_after <= now()
          AND NOT EXISTS (
              SELECT 1 FROM volume_operations b
              WHERE b.volume_id = o.volume_id
                AND b.status IN ('pending', 'executing')
                AND (b.seq < o.seq OR b.status = 'executing'))
          AND CASE (SELECT t.runs_on FROM volume_operation_types t WHERE t.type = o.type)
              WHEN 'any_worker' THEN true
              WHEN 'registered_vm' THEN NOT EXISTS (
                  SELECT 1 FROM volumed_appliances a
                  WHERE a.vm_id = o.vm_id AND a.vm_id IS DISTINCT FROM p_appliance_vm_id)
              WHEN 'vm_appliance' THEN lower(coalesce(o.vm_id, p_appliance_vm_id)) = lower(p_appliance_vm_id)
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
           claim_token = volume_operations_claim_digest(next.token),
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
           attempts = o.attempts + 1,
           started_at = coalesce(o.started_at, now()),
           updated_at = now()
      FROM next
     WHERE o.id = next.id
    RETURNING o.id, o.type, o.volume_id, o.vm_id, o.request::text, o.checkpoint::text,
              o.attempts, o.max_attempts, o.claimed_by, o.created_at, next.token;
END
$$;
