-- Per-job rollups: what the Jobs page and the overview's "average cost per PDF job" read,
-- instead of grouping the raw rows of a range (sql/004 does the same for time buckets).
--
-- One row per (job, task, model, provider): the calls' whole figures and when they ran.
-- A range's jobs are those active in it: rows with first_call_at < `to` and
-- last_call_at >= `from`; their figures are the whole job's (a job is a few minutes of
-- calls, and what it cost is the question). At 10 million calls this is ~1 row per 10 of
-- them, of which a day's range reads a few thousand.
--
-- Kept by statement triggers from the same transition tables as the time rollups, in the
-- same transaction: a re-delivered batch inserts nothing and adds nothing; re-pricing
-- takes the old rows out and puts the new ones in. Retention (ailedger.retention = 'on')
-- moves nothing: the history outlives the raw rows.

CREATE TABLE IF NOT EXISTS ai_job_rollups (
    job_id        UUID NOT NULL,
    task          TEXT NOT NULL,
    model         TEXT NOT NULL,
    provider      TEXT NOT NULL,  -- '' when the event named none
    calls         BIGINT NOT NULL,
    tokens        BIGINT NOT NULL,  -- input + output (sql: ailedger/api/figures.py)
    cost          NUMERIC NOT NULL,  -- exact sum of the priced calls' cost
    unpriced      BIGINT NOT NULL,
    fallbacks     BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    first_call_at TIMESTAMPTZ NOT NULL,
    last_call_at  TIMESTAMPTZ NOT NULL,
    last_end_at   TIMESTAMPTZ NOT NULL,  -- the latest call's start + latency
    PRIMARY KEY (job_id, task, model, provider)
) WITH (fillfactor = 70);
-- Covering: a range's jobs, their count and cost come from the index alone.
CREATE INDEX IF NOT EXISTS ai_job_rollups_last_call ON ai_job_rollups (last_call_at)
    INCLUDE (first_call_at, job_id, task, model, cost, unpriced);
GRANT SELECT ON ai_job_rollups TO ailedger_reader;

CREATE OR REPLACE FUNCTION ailedger_job_rollup_sql(source TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $fn$
SELECT format($sql$
INSERT INTO ai_job_rollups AS j (
    job_id, task, model, provider, calls, tokens, cost, unpriced, fallbacks, errors,
    first_call_at, last_call_at, last_end_at
)
SELECT s.job_id, s.task, s.model, coalesce(s.provider, ''),
    sum(s.sign),
    coalesce(sum(s.sign * (coalesce(s.input_tokens, 0)::bigint + coalesce(s.output_tokens, 0))), 0),
    coalesce(sum(s.sign * s.cost), 0),
    coalesce(sum(s.sign) FILTER (WHERE s.cost IS NULL), 0),
    coalesce(sum(s.sign) FILTER (WHERE s.action = 'fallback_to_rules'), 0),
    coalesce(sum(s.sign) FILTER (WHERE s.error_message IS NOT NULL), 0),
    min(s.timestamp), max(s.timestamp),
    max(s.timestamp + make_interval(secs => coalesce(s.latency_ms, 0) / 1000.0))
FROM (%s) s
WHERE s.job_id IS NOT NULL
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
ON CONFLICT (job_id, task, model, provider) DO UPDATE SET
    calls = j.calls + EXCLUDED.calls,
    tokens = j.tokens + EXCLUDED.tokens,
    cost = j.cost + EXCLUDED.cost,
    unpriced = j.unpriced + EXCLUDED.unpriced,
    fallbacks = j.fallbacks + EXCLUDED.fallbacks,
    errors = j.errors + EXCLUDED.errors,
    first_call_at = LEAST(j.first_call_at, EXCLUDED.first_call_at),
    last_call_at = GREATEST(j.last_call_at, EXCLUDED.last_call_at),
    last_end_at = GREATEST(j.last_end_at, EXCLUDED.last_end_at)
$sql$, source)
$fn$;

CREATE OR REPLACE FUNCTION ailedger_job_rollup_changes() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM ailedger_new WHERE job_id IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE ailedger_job_rollup_sql('SELECT n.*, 1 AS sign FROM ailedger_new n');
    ELSE
        -- Only rows whose counted columns changed (a re-priced cost, a reclassified call).
        -- Times only grow: a row moved earlier or later widens its job's span.
        EXECUTE ailedger_job_rollup_sql($src$
            SELECT n.*, 1 AS sign FROM ailedger_new n JOIN ailedger_old o USING (id)
            WHERE (n.job_id, n.timestamp, n.task, n.model, n.provider, n.input_tokens,
                   n.output_tokens, n.cost, n.latency_ms, n.action, n.error_message)
                IS DISTINCT FROM
                  (o.job_id, o.timestamp, o.task, o.model, o.provider, o.input_tokens,
                   o.output_tokens, o.cost, o.latency_ms, o.action, o.error_message)
            UNION ALL
            SELECT o.*, -1 AS sign FROM ailedger_old o JOIN ailedger_new n USING (id)
            WHERE (n.job_id, n.timestamp, n.task, n.model, n.provider, n.input_tokens,
                   n.output_tokens, n.cost, n.latency_ms, n.action, n.error_message)
                IS DISTINCT FROM
                  (o.job_id, o.timestamp, o.task, o.model, o.provider, o.input_tokens,
                   o.output_tokens, o.cost, o.latency_ms, o.action, o.error_message)
        $src$);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS ailedger_job_rollup_insert ON ai_call_logs;
CREATE TRIGGER ailedger_job_rollup_insert
    AFTER INSERT ON ai_call_logs
    REFERENCING NEW TABLE AS ailedger_new
    FOR EACH STATEMENT EXECUTE FUNCTION ailedger_job_rollup_changes();
DROP TRIGGER IF EXISTS ailedger_job_rollup_update ON ai_call_logs;
CREATE TRIGGER ailedger_job_rollup_update
    AFTER UPDATE ON ai_call_logs
    REFERENCING OLD TABLE AS ailedger_old NEW TABLE AS ailedger_new
    FOR EACH STATEMENT
    WHEN (current_setting('ailedger.retention', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ailedger_job_rollup_changes();

-- Every job's rollups from the raw rows (after a manual repair; and below, once).
CREATE OR REPLACE FUNCTION ailedger_rebuild_job_rollups() RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE ai_call_logs IN SHARE MODE;  -- writers wait, readers go on
    DELETE FROM ai_job_rollups;
    EXECUTE ailedger_job_rollup_sql(
        'SELECT l.*, 1 AS sign FROM ai_call_logs l WHERE l.job_id IS NOT NULL'
    );
END
$$;

SELECT ailedger_rebuild_job_rollups();
