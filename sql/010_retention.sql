-- Retention drops payloads and old raw rows; the rollups are the history and stay.
--
-- `ailedger retention run` sets `SET LOCAL ailedger.retention = 'on'` in each of its
-- transactions. The rollup triggers (sql/004) then do not run: what retention changes
-- (request_data, response_data, deleted rows) must never move a rollup, and skipping
-- the trigger also spares each 10k-row batch the comparison of its transition tables.
-- The triggers are recreated with a WHEN condition rather than a new function body, so
-- the function stays the one sql/004 (and any later migration) defines.

DROP TRIGGER IF EXISTS ailedger_rollup_update ON ai_call_logs;
CREATE TRIGGER ailedger_rollup_update
    AFTER UPDATE ON ai_call_logs
    REFERENCING OLD TABLE AS ailedger_old NEW TABLE AS ailedger_new
    FOR EACH STATEMENT
    WHEN (current_setting('ailedger.retention', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ailedger_rollup_changes();

-- How far each policy has already gone, so a daily run reads only the new day of rows.
CREATE TABLE IF NOT EXISTS retention_progress (
    policy     TEXT PRIMARY KEY,
    done_until TIMESTAMPTZ NOT NULL
);
