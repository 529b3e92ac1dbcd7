-- volumed 0009: a worker's statements on its claimed rows probe the primary key, whatever the
-- statistics say.
--
-- They named both the claim token's digest and status = 'executing'. With statistics taken
-- before the running claims existed (autovacuum's analyze lags a burst, as 0004 found for the
-- claim), the planner expected about one executing row and read volume_operations_executing,
-- the partial index of every executing row, instead of probing the primary key: each
-- completion, checkpoint and heartbeat then cost O(rows executing). The digest is stored only
-- while a row executes (0005's guard clears it when the row leaves executing, and the rescue
-- clears it too), so the digest alone proves the status; without the status in the WHERE the
-- partial index no longer applies and the only access left is the primary key. The worker's
-- own statements (Schema/QueueSQL.swift) dropped the status the same way; this is 0008's
-- function with its completions written so.
CREATE OR REPLACE FUNCTION volume_operations_complete_and_claim(
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
         WHERE o.id = v.id AND o.claim_token = volume_operations_claim_digest(v.token)
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

-- The rule the statements above rely on, declared: a row carries a claim token's digest only
-- while it executes. 0005's guard and the rescue already keep it so; this makes the database
-- refuse any other write that would break it (a future trigger's slip, a superuser with triggers
-- off), so that a token can never match a row that is not executing. NOT VALID: rows written
-- before 0009 are not re-read (none is known to break it, and a terminal row never changes
-- again anyway); every row written from now on is checked.
ALTER TABLE volume_operations
    ADD CONSTRAINT volume_operations_claim_token_only_while_executing
    CHECK (claim_token IS NULL OR status = 'executing') NOT VALID;

-- Not done, though measured (issue 16): keeping the claim's plan for the session
-- (plan_cache_mode = force_generic_plan) would save its planning, 0.44 ms per claim. But a
-- session's plan is made at its first claim, typically while the queue is empty, and with an
-- empty table's statistics that plan scans every row of the table by volume for each candidate
-- (12 ms per 10-row claim in the side-by-side drain, against 1 ms). PostgreSQL's default,
-- planning each claim for the table as it is now, stays (0004's reason for the function holds).
