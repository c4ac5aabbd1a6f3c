-- Time-bucketed rollups of ai_call_logs: what the metrics API reads instead of the raw table.
--
-- One row per (grain, bucket start, task, model, provider) at three grains: minute, hour
-- and day (UTC). A time range is answered from the coarsest rows that fit inside it (whole
-- days from day rows, the hours at its edges from hour rows, the minutes beyond from minute
-- rows), so any range with minute resolution reads at most a few hundred rows per task
-- and model, whatever the size of the raw table.
--
-- A statement trigger keeps them in step IN THE SAME TRANSACTION as the change to the raw
-- table, from its transition tables: an INSERT ... ON CONFLICT DO NOTHING sees only the
-- rows it really inserted, so a re-delivered batch adds nothing; an UPDATE (re-pricing)
-- takes the old rows out and puts the new ones in. Deleting raw rows (retention) leaves
-- the rollups alone: the history outlives the payloads. ailedger_rebuild_rollups()
-- recomputes a range from the raw rows after a manual repair.
--
-- Latency and confidence percentiles come from fixed histograms. Latency bucket i holds
-- the calls with bounds[i-1] < latency_ms <= bounds[i] (bounds below; the last bucket
-- holds everything above 1,000,000 ms); consecutive bounds are at most 25% apart, so a
-- percentile reported as its bucket's upper bound is never below the true value and at
-- most 25% above it. Confidence scores have two decimals; bucket i holds
-- [0.05 * (i - 1), 0.05 * i), the last one also 1.00.

CREATE TABLE IF NOT EXISTS ai_call_rollups (
    grain             TEXT NOT NULL CHECK (grain IN ('minute', 'hour', 'day')),
    bucket_start      TIMESTAMPTZ NOT NULL,
    task              TEXT NOT NULL,
    model             TEXT NOT NULL,
    provider          TEXT NOT NULL,  -- '' when the event named none
    calls             BIGINT NOT NULL,
    errors            BIGINT NOT NULL,
    fallbacks         BIGINT NOT NULL,
    input_tokens      BIGINT NOT NULL,
    output_tokens     BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    cost              NUMERIC NOT NULL,  -- exact sum of the priced calls' cost
    unpriced          BIGINT NOT NULL,
    latency_count     BIGINT NOT NULL,
    latency_sum_ms    BIGINT NOT NULL,
    latency_max_ms    INTEGER,
    latency_hist      INTEGER[] NOT NULL,
    confidence_count  BIGINT NOT NULL,
    confidence_sum    NUMERIC NOT NULL,
    confidence_hist   INTEGER[] NOT NULL,
    PRIMARY KEY (grain, bucket_start, task, model, provider)
) WITH (fillfactor = 70);  -- room on the page: the current buckets update in place (HOT)

-- Fallbacks by reason (ailedger_reason_key), for "top fallback reasons".
CREATE TABLE IF NOT EXISTS ai_call_fallback_rollups (
    grain        TEXT NOT NULL CHECK (grain IN ('minute', 'hour', 'day')),
    bucket_start TIMESTAMPTZ NOT NULL,
    task         TEXT NOT NULL,
    model        TEXT NOT NULL,
    reason       TEXT NOT NULL,  -- '' when the event gave none
    calls        BIGINT NOT NULL,
    PRIMARY KEY (grain, bucket_start, task, model, reason)
) WITH (fillfactor = 70);

CREATE OR REPLACE FUNCTION ailedger_latency_bounds() RETURNS INTEGER[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
        12, 14, 16, 20, 25, 30, 35, 40, 50, 60, 70, 80, 100,
        120, 140, 160, 200, 250, 300, 350, 400, 500, 600, 700, 800, 1000,
        1200, 1400, 1600, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 7000, 8000, 10000,
        12000, 14000, 16000, 20000, 25000, 30000, 35000, 40000, 50000, 60000, 70000, 80000,
        100000, 120000, 140000, 160000, 200000, 250000, 300000, 350000, 400000, 500000,
        600000, 700000, 800000, 1000000
    ]
$$;

CREATE OR REPLACE FUNCTION ailedger_latency_bucket(ms INTEGER) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- width_bucket counts the bounds <= ms - 1, i.e. the bounds below ms: 1-based index of
    -- the first bound >= ms, or one past the last bound.
    SELECT width_bucket(ms - 1, ailedger_latency_bounds()) + 1
$$;

CREATE OR REPLACE FUNCTION ailedger_confidence_bucket(score NUMERIC) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN score >= 1 THEN 20 ELSE floor(score * 20)::INTEGER + 1 END
$$;

-- Fallback reasons grouped as a reader wants them: "confidence 0.61 below threshold 0.70"
-- and "confidence 0.64 below threshold 0.70" are one reason, decimals shown as <n>.
CREATE OR REPLACE FUNCTION ailedger_reason_key(reason TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(regexp_replace(coalesce(reason, ''), '[0-9]+\.[0-9]+', '<n>', 'g'), 200)
$$;

-- Adds `weight` (1, or -1 for a row taken out) to bucket `idx` of a `size`-bucket histogram.
CREATE OR REPLACE FUNCTION ailedger_histogram_step(
    state INTEGER[], idx INTEGER, size INTEGER, weight INTEGER
) RETURNS INTEGER[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF state IS NULL THEN
        state := array_fill(0, ARRAY[size]);
    END IF;
    IF idx IS NOT NULL THEN
        state[idx] := state[idx] + weight;
    END IF;
    RETURN state;
END
$$;

CREATE OR REPLACE AGGREGATE ailedger_histogram(INTEGER, INTEGER, INTEGER) (
    SFUNC = ailedger_histogram_step,
    STYPE = INTEGER[]
);

-- The one definition of how rows become rollups. `source` is a query yielding
-- ai_call_logs columns plus `sign` (1: add the row, -1: take it out). Upserts run in key
-- order, so concurrent workers lock rollup rows in the same order and cannot deadlock.
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
        input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, unpriced,
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
        coalesce(sum(s.sign * s.cost), 0),
        coalesce(sum(s.sign) FILTER (WHERE s.cost IS NULL), 0),
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
        cost = r.cost + EXCLUDED.cost,
        unpriced = r.unpriced + EXCLUDED.unpriced,
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
            SELECT n.*, 1 AS sign FROM ailedger_new n JOIN ailedger_old o USING (id)
            WHERE (n.timestamp, n.task, n.model, n.provider, n.input_tokens, n.output_tokens,
                   n.cache_read_tokens, n.cache_write_tokens, n.cost, n.latency_ms,
                   n.confidence_score, n.action, n.fallback_reason, n.error_message)
                IS DISTINCT FROM
                  (o.timestamp, o.task, o.model, o.provider, o.input_tokens, o.output_tokens,
                   o.cache_read_tokens, o.cache_write_tokens, o.cost, o.latency_ms,
                   o.confidence_score, o.action, o.fallback_reason, o.error_message)
            UNION ALL
            SELECT o.*, -1 AS sign FROM ailedger_old o JOIN ailedger_new n USING (id)
            WHERE (n.timestamp, n.task, n.model, n.provider, n.input_tokens, n.output_tokens,
                   n.cache_read_tokens, n.cache_write_tokens, n.cost, n.latency_ms,
                   n.confidence_score, n.action, n.fallback_reason, n.error_message)
                IS DISTINCT FROM
                  (o.timestamp, o.task, o.model, o.provider, o.input_tokens, o.output_tokens,
                   o.cache_read_tokens, o.cache_write_tokens, o.cost, o.latency_ms,
                   o.confidence_score, o.action, o.fallback_reason, o.error_message)
        $src$);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ailedger_rollup_insert
    AFTER INSERT ON ai_call_logs
    REFERENCING NEW TABLE AS ailedger_new
    FOR EACH STATEMENT EXECUTE FUNCTION ailedger_rollup_changes();

CREATE TRIGGER ailedger_rollup_update
    AFTER UPDATE ON ai_call_logs
    REFERENCING OLD TABLE AS ailedger_old NEW TABLE AS ailedger_new
    FOR EACH STATEMENT EXECUTE FUNCTION ailedger_rollup_changes();

-- Recompute the rollups of [from_ts, to_ts), widened to whole UTC days, from the raw rows.
CREATE OR REPLACE FUNCTION ailedger_rebuild_rollups(from_ts TIMESTAMPTZ, to_ts TIMESTAMPTZ)
RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    lo TIMESTAMPTZ := date_trunc('day', from_ts, 'UTC');
    hi TIMESTAMPTZ := date_trunc('day', to_ts, 'UTC');
BEGIN
    IF hi < to_ts THEN
        hi := hi + INTERVAL '1 day';
    END IF;
    -- Writers wait until the rebuild commits: a batch committed halfway through would be
    -- counted twice or not at all. Readers go on.
    LOCK TABLE ai_call_logs IN SHARE MODE;
    DELETE FROM ai_call_rollups WHERE bucket_start >= lo AND bucket_start < hi;
    DELETE FROM ai_call_fallback_rollups WHERE bucket_start >= lo AND bucket_start < hi;
    EXECUTE ailedger_rollup_sql(format(
        'SELECT l.*, 1 AS sign FROM ai_call_logs l WHERE l.timestamp >= %L AND l.timestamp < %L',
        lo, hi
    ));
END
$$;

-- Rows stored before this migration.
SELECT ailedger_rebuild_rollups('-infinity', 'infinity');
