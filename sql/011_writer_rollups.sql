-- The worker adds the rollups of its own inserts; the INSERT trigger stands aside for it.
--
-- The statement trigger of sql/004 builds each inserted row's latency and confidence
-- histograms in PL/pgSQL: for the worker's batches that cost more than storing the rows.
-- The worker knows which rows it inserted (all of them when its COPY into the table
-- succeeds; those `INSERT … ON CONFLICT DO NOTHING RETURNING id` names when some were
-- stored already), adds them up per minute, hour and day itself and writes one upsert
-- per rollup key, in the same transaction (worker/rollups.py). Its transactions say so
-- with `SET LOCAL ailedger.rollups = 'writer'`, and the INSERT trigger then does not
-- run. Every other INSERT (by hand, by tests, by tools) is still rolled up by the
-- trigger, and UPDATEs (re-pricing) and retention are as before (sql/004, sql/010).

DROP TRIGGER IF EXISTS ailedger_rollup_insert ON ai_call_logs;
CREATE TRIGGER ailedger_rollup_insert
    AFTER INSERT ON ai_call_logs
    REFERENCING NEW TABLE AS ailedger_new
    FOR EACH STATEMENT
    WHEN (current_setting('ailedger.rollups', true) IS DISTINCT FROM 'writer')
    EXECUTE FUNCTION ailedger_rollup_changes();

-- Two histograms of the same size added bucket by bucket: what an upsert into an
-- existing rollup row does with the new rows' histograms.
CREATE OR REPLACE FUNCTION ailedger_histogram_add(a INTEGER[], b INTEGER[]) RETURNS INTEGER[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT x + y FROM unnest(a, b) WITH ORDINALITY AS t (x, y, i) ORDER BY i)
$$;
