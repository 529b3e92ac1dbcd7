-- volumed 0005: the database trusts only the claim (issue 12).
--
-- Until now any role allowed to `UPDATE (status)` (the orchestrator role of deploy/grants.sql)
-- could finish or requeue an executing operation while its worker was still running it; seq
-- could be written with OVERRIDING SYSTEM VALUE; terminal rows kept their status but not their
-- other columns; and ids differing only in letter case escaped the per-volume rules. From here:
--   * every claim hands its worker a random claim token; the row keeps only the token's
--     SHA-256 (`claim_token`, readable by everyone, useless to anyone but the holder);
--   * an executing row changes only when the statement proves the token (see
--     volume_operations_require_claim below), when someone asks to cancel it, or when the
--     rescuer returns it after its lease expired;
--   * an INSERT sets only the request columns; seq is drawn by the database for every row;
--   * terminal rows never change again, in any column;
--   * volume_id and vm_id are stored in lower case, whatever case a client sends;
--   * request may nest JSON objects and arrays at most 32 levels deep.
--
-- Upgrading: workers of an older volumed can no longer claim (the claim function they call is
-- gone) but can still heartbeat and finish the operations they claimed before this migration
-- (rows with no claim token), so a rolling restart loses and repeats nothing.

-- ---------------------------------------------------------------------------------------
-- The claim token.
ALTER TABLE volume_operations ADD COLUMN claim_token text;
-- Only ever a digest at rest: a statement that writes a token (its proof) has it replaced by
-- the trigger before the row is stored, so no plain token is ever readable in the table.
ALTER TABLE volume_operations ADD CONSTRAINT volume_operations_claim_token_is_digest
    CHECK (claim_token ~ '^[0-9a-f]{64}$');

-- The digest of a claim token, as stored in claim_token. Inlinable (no SET clause); only
-- pg_catalog functions.
CREATE FUNCTION volume_operations_claim_digest(p_token text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT encode(sha256(convert_to(p_token, 'UTF8')), 'hex') $$;

-- ---------------------------------------------------------------------------------------
-- seq: drawn by the admit trigger below for every row, never by the client. An identity
-- column takes any value under OVERRIDING SYSTEM VALUE, and a row with a small seq jumped the
-- per-volume order (and made the order check fail unrelated statements). Without a default,
-- a client-supplied seq is visible to the trigger (non-NULL) and refused.
DO $$
DECLARE
    next_seq bigint;
BEGIN
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s',
                   pg_get_serial_sequence('volume_operations', 'seq'))
       INTO next_seq;
    ALTER TABLE volume_operations ALTER COLUMN seq DROP IDENTITY;
    CREATE SEQUENCE volume_operations_seq AS bigint OWNED BY volume_operations.seq;
    PERFORM setval('volume_operations_seq',
                   greatest(next_seq, coalesce((SELECT max(seq) + 1 FROM volume_operations), 1)), false);
END $$;

-- The next seq. The admit trigger runs with the inserting role's rights, and an orchestrator
-- role has no privilege on the sequence (an identity column needed none): this function lends
-- it the owner's, for this one call.
CREATE FUNCTION volume_operations_next_seq() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT
AS $$ SELECT nextval('volume_operations_seq') $$;

-- ---------------------------------------------------------------------------------------
-- How deeply `request` nests JSON containers, counting the outermost as 1; stops counting
-- once past p_stop_after (so a hostile document costs no more than the limit's levels).
CREATE FUNCTION volume_operations_json_depth(p_value jsonb, p_stop_after integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    level jsonb[] := ARRAY[p_value]; -- the containers at the current depth
    depth integer := 0;
BEGIN
    IF jsonb_typeof(p_value) NOT IN ('object', 'array') THEN
        RETURN 0;
    END IF;
    LOOP
        depth := depth + 1;
        IF depth > p_stop_after THEN
            RETURN depth;
        END IF;
        level := ARRAY(
            SELECT ch.child
            FROM unnest(level) AS c(v),
                 LATERAL (SELECT value FROM jsonb_each(CASE WHEN jsonb_typeof(c.v) = 'object' THEN c.v ELSE '{}' END)
                          UNION ALL
                          SELECT value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(c.v) = 'array' THEN c.v ELSE '[]' END))
                     AS ch(child)
            WHERE jsonb_typeof(ch.child) IN ('object', 'array'));
        IF cardinality(level) = 0 THEN
            RETURN depth;
        END IF;
    END LOOP;
END $$;

-- An INSERT sets only the request columns; everything else is the queue's bookkeeping.
CREATE FUNCTION volume_operations_admit() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    max_depth constant integer := 32;
    bookkeeping text[];
    request_text text;
    too_deep text;
BEGIN
    IF NEW.status IS DISTINCT FROM 'pending' THEN
        RAISE EXCEPTION 'a new operation must have status pending (got %)', NEW.status
            USING ERRCODE = 'check_violation', COLUMN = 'status',
                  HINT = 'leave status, claimed_by, lease_expires_at and completed_at out of the INSERT';
    END IF;
    bookkeeping := array_remove(ARRAY[
        CASE WHEN NEW.seq IS NOT NULL THEN 'seq' END,
        CASE WHEN NEW.attempts IS DISTINCT FROM 0 THEN 'attempts' END,
        CASE WHEN NEW.claimed_by IS NOT NULL THEN 'claimed_by' END,
        CASE WHEN NEW.claim_token IS NOT NULL THEN 'claim_token' END,
        CASE WHEN NEW.lease_expires_at IS NOT NULL THEN 'lease_expires_at' END,
        CASE WHEN NEW.started_at IS NOT NULL THEN 'started_at' END,
        CASE WHEN NEW.checkpoint IS NOT NULL THEN 'checkpoint' END,
        CASE WHEN NEW.response IS NOT NULL THEN 'response' END,
        CASE WHEN NEW.error IS NOT NULL THEN 'error' END,
        CASE WHEN NEW.error_code IS NOT NULL THEN 'error_code' END,
        CASE WHEN NEW.cancel_requested_at IS NOT NULL THEN 'cancel_requested_at' END,
        CASE WHEN NEW.completed_at IS NOT NULL THEN 'completed_at' END,
        CASE WHEN NEW.created_at IS DISTINCT FROM now() THEN 'created_at' END,
        CASE WHEN NEW.updated_at IS DISTINCT FROM now() THEN 'updated_at' END], NULL);
    IF cardinality(bookkeeping) > 0 THEN
        RAISE EXCEPTION 'a new operation cannot set % (the queue''s bookkeeping)', array_to_string(bookkeeping, ', ')
            USING ERRCODE = 'check_violation', COLUMN = bookkeeping[1],
                  HINT = 'an INSERT sets only type, volume_id, vm_id, request, idempotency_key, priority, max_attempts and run_after; leave the other columns out';
    END IF;
    NEW.seq := volume_operations_next_seq();

    -- Nesting depth: the count of '{' and '[' bounds it from above (brackets inside strings only
    -- add to the count), so ordinary requests skip the walk; one over 64 KiB is refused by
    -- volume_operations_request_size without one.
    IF jsonb_typeof(NEW.request) = 'object' THEN
        request_text := NEW.request::text;
        IF octet_length(request_text) <= 65536
           AND length(request_text) - length(translate(request_text, '{[', '')) > max_depth THEN
            SELECT e.key INTO too_deep
            FROM jsonb_each(NEW.request) e
            WHERE volume_operations_json_depth(e.value, max_depth - 1) > max_depth - 1
            ORDER BY e.key LIMIT 1;
            IF too_deep IS NOT NULL THEN
                RAISE EXCEPTION 'request.% nests JSON objects and arrays more than % levels deep (counting request itself); at most % are allowed', too_deep, max_depth, max_depth
                    USING ERRCODE = 'check_violation', COLUMN = 'request',
                          CONSTRAINT = 'volume_operations_request_depth',
                          HINT = 'flatten request.' || too_deep || ': volumed''s requests are flat objects, and metadata a few levels at most';
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER volume_operations_admit
    BEFORE INSERT ON volume_operations
    FOR EACH ROW
    EXECUTE FUNCTION volume_operations_admit();

-- The admit trigger says all the old insert guard said, naming every offending column.
DROP TRIGGER volume_operations_guard_insert ON volume_operations;
DROP FUNCTION volume_operations_guard_insert();

-- ---------------------------------------------------------------------------------------
-- Canonical lower-case ids, for plain INSERTs too: the one-executing-per-volume index, the
-- per-volume order and the claim's routing compare ids as text.
CREATE FUNCTION volume_operations_lower_case_ids() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    NEW.volume_id := lower(NEW.volume_id);
    NEW.vm_id := lower(NEW.vm_id);
    RETURN NEW;
END $$;

CREATE TRIGGER volume_operations_lower_case_ids
    BEFORE INSERT OR UPDATE OF volume_id, vm_id ON volume_operations
    FOR EACH ROW
    WHEN (NEW.volume_id <> lower(NEW.volume_id) OR NEW.vm_id <> lower(NEW.vm_id))
    EXECUTE FUNCTION volume_operations_lower_case_ids();

-- ---------------------------------------------------------------------------------------
-- The order check of the statement trigger looked at every row that was executing after the
-- statement, so one out-of-order row (a seq written by a client) failed every heartbeat of
-- its worker, for all volumes at once, and leases of unrelated volumes expired. It now looks
-- only at rows that became executing in this statement (a claim): a heartbeat, a checkpoint or
-- a cancel request never fails for another row's sake. The join of the transition tables is a
-- hash join (nested loops off): they have no statistics, and a nested loop was n² per batch.
CREATE OR REPLACE FUNCTION volume_operations_after_update() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET enable_nestloop = off AS $$
DECLARE
    became_pending boolean := false;
BEGIN
    -- Creation order per volume: nothing may start while an older operation on the same
    -- volume is unfinished. The claim already guarantees it; this is the backstop for any
    -- other client. A scalar subquery, not EXISTS: it stays a probe of the index by volume_id.
    IF EXISTS (
        SELECT 1 FROM new_rows n JOIN old_rows o USING (id)
        WHERE n.status = 'executing' AND o.status <> 'executing' AND n.volume_id IS NOT NULL
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

-- Existing rows in canonical case. Before the guards below exist, so terminal rows can still
-- be rewritten this once. An executing row whose volume already executes under another
-- spelling (the very bug this fixes) keeps its id: it finishes as it is.
UPDATE volume_operations SET volume_id = lower(volume_id), vm_id = lower(vm_id)
 WHERE (volume_id <> lower(volume_id) OR vm_id <> lower(vm_id)) AND status <> 'executing';
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id FROM volume_operations
             WHERE status = 'executing' AND (volume_id <> lower(volume_id) OR vm_id <> lower(vm_id))
    LOOP
        BEGIN
            UPDATE volume_operations SET volume_id = lower(volume_id), vm_id = lower(vm_id) WHERE id = r.id;
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------
-- seq and id never change.
CREATE FUNCTION volume_operations_guard_identity() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION 'operation %: id and seq never change', OLD.id
        USING ERRCODE = 'check_violation',
              HINT = 'seq is the creation order the queue keeps; enqueue a new operation instead';
END $$;

CREATE TRIGGER volume_operations_guard_identity
    BEFORE UPDATE OF id, seq ON volume_operations
    FOR EACH ROW
    WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.seq IS DISTINCT FROM OLD.seq)
    EXECUTE FUNCTION volume_operations_guard_identity();

-- Terminal rows never change again, in any column (the status guard of 0001 covered only
-- status; response and request could be rewritten).
CREATE FUNCTION volume_operations_guard_final() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    changed text;
BEGIN
    SELECT string_agg(n.key, ', ' ORDER BY n.key) INTO changed
      FROM jsonb_each(to_jsonb(NEW)) n JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
     WHERE n.value IS DISTINCT FROM o.value;
    RAISE EXCEPTION 'operation % is already % and never changes again (the statement changed %)', OLD.id, OLD.status, changed
        USING ERRCODE = 'check_violation',
              HINT = 'terminal operations never change; enqueue a new operation instead';
END $$;

CREATE TRIGGER volume_operations_guard_final
    BEFORE UPDATE ON volume_operations
    FOR EACH ROW
    WHEN (OLD.status IN ('completed', 'failed', 'cancelled') AND OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION volume_operations_guard_final();

-- Only the worker holding the claim moves an executing row.
--
-- The proof: the statement writes the claim's token into claim_token (`SET claim_token =
-- <token>`), and this trigger checks that its digest is the stored one, then puts the digest
-- back (or clears it when the row leaves `executing`). A statement that does not write the
-- column leaves NEW.claim_token equal to the stored digest, whose own digest never matches; a
-- role without UPDATE on claim_token (the orchestrator) cannot write it at all; the digest
-- everyone can read does not give the token away. Worker statements also name the digest in
-- their WHERE, so a stale handler's write changes zero rows ("lost the lease") instead of
-- failing a whole batch.
--
-- Without the proof an executing row takes only:
--   * a cancel request (status 'cancelled', turned into cancel_requested_at by the 0001 guard,
--     or volume_operation_cancel): the worker stops between steps and finishes it itself;
--   * the rescue of an expired lease (back to pending, or failed after max_attempts), which
--     clears the lease: it needs UPDATE on lease_expires_at, so only a worker role rescues;
--   * for a row claimed before this migration (no claim token), the statements of the older
--     worker that claimed it: they all write lease_expires_at or checkpoint, which the
--     orchestrator role cannot.
-- Named to fire after volume_operations_guard_transition (triggers fire in name order), so a
-- plain cancel already reads as a cancel request here.
CREATE FUNCTION volume_operations_require_claim() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    changed text[];
BEGIN
    IF OLD.status = 'pending' THEN
        RAISE EXCEPTION 'operation % cannot start without a claim token', OLD.id
            USING ERRCODE = 'check_violation',
                  HINT = 'workers claim with volume_operations_claim_with_token(), which hands each claim its token';
    END IF;
    IF OLD.claim_token IS NOT NULL AND NEW.claim_token IS DISTINCT FROM OLD.claim_token
       AND volume_operations_claim_digest(NEW.claim_token) = OLD.claim_token THEN
        NEW.claim_token := CASE WHEN NEW.status = 'executing' THEN OLD.claim_token END;
        RETURN NEW;
    END IF;

    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO changed
      FROM jsonb_each(to_jsonb(NEW)) n JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
     WHERE n.value IS DISTINCT FROM o.value;
    -- A cancel request.
    IF NEW.status = 'executing' AND NEW.cancel_requested_at IS NOT NULL
       AND changed <@ ARRAY['cancel_requested_at', 'updated_at'] THEN
        RETURN NEW;
    END IF;
    -- A cancel sent again after the request: still only a request.
    IF NEW.status = 'cancelled' AND OLD.cancel_requested_at IS NOT NULL
       AND changed <@ ARRAY['status', 'completed_at', 'updated_at'] THEN
        NEW.status := 'executing';
        NEW.completed_at := NULL;
        NEW.updated_at := OLD.updated_at;
        RETURN NEW;
    END IF;
    -- The rescue of an expired lease.
    IF OLD.lease_expires_at < now() AND NEW.status IN ('pending', 'failed') AND NEW.lease_expires_at IS NULL
       AND changed <@ ARRAY['status', 'error', 'error_code', 'completed_at', 'claimed_by', 'lease_expires_at',
                            'run_after', 'updated_at', 'claim_token'] THEN
        NEW.claim_token := NULL;
        RETURN NEW;
    END IF;
    -- A row an older worker claimed before this migration.
    IF OLD.claim_token IS NULL AND NEW.claim_token IS NULL
       AND ('lease_expires_at' = ANY(changed) OR 'checkpoint' = ANY(changed)) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'operation % is executing under the claim of worker %; only that worker, with its claim token, can change it (the statement changed %)',
                    OLD.id, OLD.claimed_by, array_to_string(changed, ', ')
        USING ERRCODE = 'check_violation',
              HINT = 'to stop it, cancel it (volume_operation_cancel or UPDATE … SET status = ''cancelled''): its worker stops between steps; if that worker died, the rescuer returns the operation when its lease expires';
END $$;

CREATE TRIGGER volume_operations_require_claim
    BEFORE UPDATE ON volume_operations
    FOR EACH ROW
    WHEN ((OLD.status = 'executing' AND OLD.* IS DISTINCT FROM NEW.*)
       OR (OLD.status = 'pending' AND NEW.status = 'executing' AND NEW.claim_token IS NULL))
    EXECUTE FUNCTION volume_operations_require_claim();

-- ---------------------------------------------------------------------------------------
-- The claim, as 0004's, plus a token per claimed row: returned to the worker, its digest kept
-- in the row. 0004's function is dropped so that a worker of an older volumed, which would
-- never present a token, stops claiming (it still finishes what it holds, see above).
DROP FUNCTION volume_operations_claim(text, text, bigint, float8);

CREATE FUNCTION volume_operations_claim_with_token(
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

-- ---------------------------------------------------------------------------------------
-- Enqueue: ids compared in canonical case (the insert stores them so), so a repeated call
-- with the same key and an upper-case id returns the first operation.
CREATE OR REPLACE FUNCTION volume_operation_enqueue(
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
       OR existing.volume_id IS DISTINCT FROM lower(p_volume_id)
       OR existing.vm_id IS DISTINCT FROM lower(p_vm_id)
       OR existing.request IS DISTINCT FROM coalesce(p_request, '{}') THEN
        RAISE EXCEPTION 'idempotency key % already names operation % with different parameters',
                        p_idempotency_key, existing.id
            USING ERRCODE = 'unique_violation',
                  HINT = 'use a new idempotency key for a different operation';
    END IF;
    RETURN existing.id;
END $$;
