-- volumed 0008: a completion and the next claim share one commit (issue 16).
--
-- A worker used to spend two commits on every operation at small claim batches: the claim,
-- and later the completion. With durable commits each one waits for its WAL flush, so at
-- batch 1 an operation cost two flushes; the profile of the side-by-side drain
-- (BENCHMARKS.md) found nothing else of that size. This function completes a group of
-- operations exactly as the worker's group commit did (QueueSQL.completeBatch) and, in the
-- same transaction, claims up to p_limit new ones exactly as volume_operations_claim_with_token
-- does: one statement, one commit, for the slots the completions free.
--
-- Every rule holds as before: the completions are guarded by the claim token's digest (a lost
-- lease completes nothing and comes back as no row), the statement triggers write the audit
-- events and send the completion NOTIFYs at commit, and the claim runs after the completions
-- in the same transaction, so the next operation of a volume just completed is claimable and
-- the per-volume order check sees the completion. When the claim part is refused (the order
-- backstop or the one-executing-per-volume index caught a race with another worker), only the
-- claim is rolled back: the completions commit, and the worker's claim loop claims again.
--
-- It runs with the caller's rights, like the claim: only a role that may claim and complete
-- (deploy/grants.sql's worker) gets anything done with it, so EXECUTE stays with PUBLIC and an
-- upgrade needs no new grant.
--
-- Rows: one per completed operation (completed = true, only id set), then one per claimed
-- operation (completed = false, with its claim token).
CREATE FUNCTION volume_operations_complete_and_claim(
    p_ids             uuid[],
    p_tokens          text[],
    p_responses       text[],
    p_worker          text,
    p_appliance_vm_id text,
    p_limit           bigint,
    p_lease_ms        float8
) RETURNS TABLE (
    completed    boolean,
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
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH done AS (
        UPDATE volume_operations o
           SET status = 'completed', response = v.response::jsonb, error = NULL, error_code = NULL,
               lease_expires_at = NULL, completed_at = now(), updated_at = now(), claim_token = v.token
          FROM unnest(p_ids, p_tokens, p_responses) AS v(id, token, response)
         WHERE o.id = v.id AND o.status = 'executing' AND o.claim_token = volume_operations_claim_digest(v.token)
        RETURNING o.id
    )
    SELECT true, done.id, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
           NULL::integer, NULL::integer, NULL::text, NULL::timestamptz, NULL::text
    FROM done;

    IF p_limit > 0 THEN
        BEGIN
            RETURN QUERY
            SELECT false, c.id, c.type, c.volume_id, c.vm_id, c.request, c.checkpoint,
                   c.attempts, c.max_attempts, c.claimed_by, c.created_at, c.claim_token
            FROM volume_operations_claim_with_token(p_worker, p_appliance_vm_id, p_limit, p_lease_ms) c;
        EXCEPTION WHEN check_violation OR unique_violation THEN
            NULL; -- the claim loop claims again; the completions stand
        END;
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------
-- The insert's per-row rules, in one trigger. An INSERT ran two row triggers (0005's admit and
-- 0007's type rules) and built the list of bookkeeping columns for every row; together they
-- were a third of a bulk insert's time. Now the admit trigger also applies the type's
-- volume_id/vm_id rules (same messages, constraint names and SQLSTATEs as 0007's), and names
-- the offending bookkeeping columns only when there is one. volume_operations_type_rules stays
-- for UPDATEs of type, volume_id or vm_id.
CREATE OR REPLACE FUNCTION volume_operations_admit() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    max_depth constant integer := 32;
    bookkeeping text[];
    request_text text;
    too_deep text;
    rule volume_operation_types;
BEGIN
    IF NEW.status IS DISTINCT FROM 'pending' THEN
        RAISE EXCEPTION 'a new operation must have status pending (got %)', NEW.status
            USING ERRCODE = 'check_violation', COLUMN = 'status',
                  HINT = 'leave status, claimed_by, lease_expires_at and completed_at out of the INSERT';
    END IF;
    IF NEW.seq IS NOT NULL OR NEW.attempts IS DISTINCT FROM 0 OR NEW.claimed_by IS NOT NULL
       OR NEW.claim_token IS NOT NULL OR NEW.lease_expires_at IS NOT NULL OR NEW.started_at IS NOT NULL
       OR NEW.checkpoint IS NOT NULL OR NEW.response IS NOT NULL OR NEW.error IS NOT NULL
       OR NEW.error_code IS NOT NULL OR NEW.cancel_requested_at IS NOT NULL OR NEW.completed_at IS NOT NULL
       OR NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now() THEN
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
        RAISE EXCEPTION 'a new operation cannot set % (the queue''s bookkeeping)', array_to_string(bookkeeping, ', ')
            USING ERRCODE = 'check_violation', COLUMN = bookkeeping[1],
                  HINT = 'an INSERT sets only type, volume_id, vm_id, request, idempotency_key, priority, max_attempts and run_after; leave the other columns out';
    END IF;
    NEW.seq := volume_operations_next_seq();

    -- The type's rules (0007's volume_operations_type_rules, which now runs for UPDATEs only).
    -- A type missing from the table passes here and is refused by the foreign key.
    IF NEW.volume_id IS NULL OR NEW.vm_id IS NULL THEN
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
    END IF;

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

DROP TRIGGER volume_operations_type_rules ON volume_operations;
CREATE TRIGGER volume_operations_type_rules
    BEFORE UPDATE OF type, volume_id, vm_id ON volume_operations
    FOR EACH ROW
    EXECUTE FUNCTION volume_operations_type_rules();

-- ---------------------------------------------------------------------------------------
-- The claim token's digest runs three times per operation (the claim, the completion's WHERE,
-- the claim guard). 0005 wrote it to be inlined, but declared it IMMUTABLE around convert_to,
-- which is STABLE: PostgreSQL inlines a SQL function only when the body is no more volatile
-- than the declaration, so every call ran as a query of its own (about 6 µs against 2 µs
-- inlined, in a loop of 100,000). Same result, now inlined.
ALTER FUNCTION volume_operations_claim_digest(text) STABLE;
