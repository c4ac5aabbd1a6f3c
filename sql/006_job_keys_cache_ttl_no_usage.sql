-- Jobs named by any key, 1-hour cache writes priced apart, failed calls with nothing to price.
--
-- * job_key: the job's key as the service gave it (42, "upload-42") when it was not a
--   UUID; job_id then holds the UUID derived from it (uuid5 in ailedger's namespace, see
--   producer/jobs.py), so a job is found by its key or its UUID through one index.
-- * cache_write_1h_tokens: the part of cache_write_tokens written to Anthropic's 1-hour
--   cache, priced at its own rate (2x input; 5-minute writes are 1.25x).
-- * cost_source 'no_usage': a failed call that reported no usage, of a model with a price.
--   The provider bills nothing for it, so its cost is 0 and it is not counted as unpriced
--   (a model without a price, cost NULL). `ailedger reprice` reclassifies older rows.
ALTER TABLE ai_call_logs
    ADD COLUMN IF NOT EXISTS job_key TEXT,
    ADD COLUMN IF NOT EXISTS cache_write_1h_tokens INTEGER
        CHECK (cache_write_1h_tokens >= 0 AND cache_write_1h_tokens <= cache_write_tokens);

ALTER TABLE ai_call_logs DROP CONSTRAINT IF EXISTS ai_call_logs_cost_source_check;
ALTER TABLE ai_call_logs ADD CONSTRAINT ai_call_logs_cost_source_check
    CHECK (cost_source IN ('catalog', 'override', 'reported', 'unpriced', 'no_usage'));

ALTER TABLE price_overrides
    ADD COLUMN IF NOT EXISTS cache_write_1h_mtok NUMERIC(18, 9) CHECK (cache_write_1h_mtok >= 0);

ALTER TABLE ai_call_rollups
    ADD COLUMN IF NOT EXISTS cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS no_usage BIGINT NOT NULL DEFAULT 0;

-- The rollup definition of 004 with the two new tallies.
CREATE OR REPLACE FUNCTION ailedger_rollup_sql(source TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $fn$
SELECT format($sql$
WITH src AS MATERIALIZED (
    SELECT x.*,
        ailedger_latency_bucket(x.latency_ms) AS latency_bucket,
        ailedger_confidence_bucket(x.confidence_score) AS confidence_bucket,
        CASE WHEN x.action = 'fallback_to_rules'
             THEN ailedger_reason_key(x.fallback_reason) END AS reason_key
    FROM (%s) x
),
grains (grain) AS (VALUES ('minute'), ('hour'), ('day')),
rolled AS (
    INSERT INTO ai_call_rollups AS r (
        grain, bucket_start, task, model, provider, calls, errors, fallbacks,
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
        cache_write_1h_tokens, cost, unpriced, no_usage,
        latency_count, latency_sum_ms, latency_max_ms, latency_hist,
        confidence_count, confidence_sum, confidence_hist
    )
    SELECT
        g.grain, date_trunc(g.grain, s.timestamp, 'UTC'), s.task, s.model,
        coalesce(s.provider, ''),
        sum(s.sign),
        coalesce(sum(s.sign) FILTER (WHERE s.error_message IS NOT NULL), 0),
        coalesce(sum(s.sign) FILTER (WHERE s.action = 'fallback_to_rules'), 0),
        coalesce(sum(s.sign * s.input_tokens), 0),
        coalesce(sum(s.sign * s.output_tokens), 0),
        coalesce(sum(s.sign * s.cache_read_tokens), 0),
        coalesce(sum(s.sign * s.cache_write_tokens), 0),
        coalesce(sum(s.sign * s.cache_write_1h_tokens), 0),
        coalesce(sum(s.sign * s.cost), 0),
        coalesce(sum(s.sign) FILTER (WHERE s.cost IS NULL), 0),
        coalesce(sum(s.sign) FILTER (WHERE s.cost_source = 'no_usage'), 0),
        coalesce(sum(s.sign) FILTER (WHERE s.latency_ms IS NOT NULL), 0),
        coalesce(sum(s.sign * s.latency_ms::BIGINT), 0),
        max(s.latency_ms) FILTER (WHERE s.sign > 0),
        ailedger_histogram(
            s.latency_bucket, array_length(ailedger_latency_bounds(), 1) + 1, s.sign
        ),
        coalesce(sum(s.sign) FILTER (WHERE s.confidence_score IS NOT NULL), 0),
        coalesce(sum(s.sign * s.confidence_score), 0),
        ailedger_histogram(s.confidence_bucket, 20, s.sign)
    FROM src s CROSS JOIN grains g
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (grain, bucket_start, task, model, provider) DO UPDATE SET
        calls = r.calls + EXCLUDED.calls,
        errors = r.errors + EXCLUDED.errors,
        fallbacks = r.fallbacks + EXCLUDED.fallbacks,
        input_tokens = r.input_tokens + EXCLUDED.input_tokens,
        output_tokens = r.output_tokens + EXCLUDED.output_tokens,
        cache_read_tokens = r.cache_read_tokens + EXCLUDED.cache_read_tokens,
        cache_write_tokens = r.cache_write_tokens + EXCLUDED.cache_write_tokens,
        cache_write_1h_tokens = r.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
        cost = r.cost + EXCLUDED.cost,
        unpriced = r.unpriced + EXCLUDED.unpriced,
        no_usage = r.no_usage + EXCLUDED.no_usage,
        latency_count = r.latency_count + EXCLUDED.latency_count,
        latency_sum_ms = r.latency_sum_ms + EXCLUDED.latency_sum_ms,
        latency_max_ms = GREATEST(r.latency_max_ms, EXCLUDED.latency_max_ms),
        latency_hist = ARRAY(
            SELECT a + b FROM unnest(r.latency_hist, EXCLUDED.latency_hist) WITH ORDINALITY AS t (a, b, i)
            ORDER BY i
        ),
        confidence_count = r.confidence_count + EXCLUDED.confidence_count,
        confidence_sum = r.confidence_sum + EXCLUDED.confidence_sum,
        confidence_hist = ARRAY(
            SELECT a + b FROM unnest(r.confidence_hist, EXCLUDED.confidence_hist) WITH ORDINALITY AS t (a, b, i)
            ORDER BY i
        )
)
INSERT INTO ai_call_fallback_rollups AS f (grain, bucket_start, task, model, reason, calls)
SELECT
    g.grain, date_trunc(g.grain, s.timestamp, 'UTC'), s.task, s.model,
    s.reason_key, sum(s.sign)
FROM src s CROSS JOIN grains g
WHERE s.reason_key IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (grain, bucket_start, task, model, reason) DO UPDATE SET
    calls = f.calls + EXCLUDED.calls
$sql$, source)
$fn$;

-- 004's trigger function, now also moving rows whose 1-hour cache writes or cost source
-- changed (a reprice that turns an unpriced failed call into a no-usage one).
CREATE OR REPLACE FUNCTION ailedger_rollup_changes() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM ailedger_new) THEN
        RETURN NULL;  -- a batch delivered again: nothing inserted, nothing to count
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE ailedger_rollup_sql('SELECT n.*, 1 AS sign FROM ailedger_new n');
    ELSE
        -- Only rows whose counted columns changed: a re-pricing that changes one cost
        -- moves one row's worth of rollups.
        EXECUTE ailedger_rollup_sql($src$
            WITH changed AS (
                SELECT id FROM ailedger_new n JOIN ailedger_old o USING (id)
                WHERE (n.timestamp, n.task, n.model, n.provider, n.input_tokens,
                       n.output_tokens, n.cache_read_tokens, n.cache_write_tokens,
                       n.cache_write_1h_tokens, n.cost, n.cost_source, n.latency_ms,
                       n.confidence_score, n.action, n.fallback_reason, n.error_message)
                    IS DISTINCT FROM
                      (o.timestamp, o.task, o.model, o.provider, o.input_tokens,
                       o.output_tokens, o.cache_read_tokens, o.cache_write_tokens,
                       o.cache_write_1h_tokens, o.cost, o.cost_source, o.latency_ms,
                       o.confidence_score, o.action, o.fallback_reason, o.error_message)
            )
            SELECT n.*, 1 AS sign FROM ailedger_new n JOIN changed USING (id)
            UNION ALL
            SELECT o.*, -1 AS sign FROM ailedger_old o JOIN changed USING (id)
        $src$);
    END IF;
    RETURN NULL;
END
$$;
