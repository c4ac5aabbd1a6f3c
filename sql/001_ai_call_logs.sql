-- ai_call_logs: one row per AI call.
-- Keeps every column of the platform's original table with the same names and
-- meanings, and its five indexes. Deliberate changes:
--   * cost is NUMERIC(18, 12): DECIMAL(10, 6) rounded a 37-token embedding call
--     ($0.00000074) to $0.000001, a 35% error that adds up over millions of chunks.
--   * provider, cache token counts, image_id: needed for correct, attributable cost.
--   * cost_source says where the cost came from; 'unpriced' rows have cost NULL.
--   * ingest_notes records what the worker had to clean or drop to store the row.
CREATE TABLE IF NOT EXISTS ai_call_logs (
    id                    UUID PRIMARY KEY,
    timestamp             TIMESTAMPTZ NOT NULL,
    job_id                UUID,
    task                  TEXT NOT NULL,
    model                 TEXT NOT NULL,
    provider              TEXT,
    input_tokens          INTEGER CHECK (input_tokens >= 0),
    output_tokens         INTEGER CHECK (output_tokens >= 0),
    cache_read_tokens     INTEGER CHECK (cache_read_tokens >= 0),
    cache_write_tokens    INTEGER CHECK (cache_write_tokens >= 0),
    image_id              TEXT,
    cost                  NUMERIC(18, 12) CHECK (cost >= 0),
    cost_source           TEXT NOT NULL DEFAULT 'unpriced'
                          CHECK (cost_source IN ('catalog', 'override', 'reported', 'unpriced')),
    latency_ms            INTEGER CHECK (latency_ms >= 0),
    confidence_score      DECIMAL(3, 2) CHECK (confidence_score BETWEEN 0 AND 1),
    confidence_breakdown  JSONB,
    action                TEXT CHECK (action IN ('use_ai_result', 'fallback_to_rules')),
    fallback_reason       TEXT,
    request_data          JSONB,
    response_data         JSONB,
    error_message         TEXT,
    ingest_notes          JSONB,
    created_at            TIMESTAMPTZ DEFAULT NOW(),
    CHECK ((cost IS NULL) = (cost_source = 'unpriced'))
);

CREATE INDEX IF NOT EXISTS idx_ai_call_logs_job_id    ON ai_call_logs (job_id);
CREATE INDEX IF NOT EXISTS idx_ai_call_logs_task      ON ai_call_logs (task);
CREATE INDEX IF NOT EXISTS idx_ai_call_logs_model     ON ai_call_logs (model);
CREATE INDEX IF NOT EXISTS idx_ai_call_logs_timestamp ON ai_call_logs (timestamp);
CREATE INDEX IF NOT EXISTS idx_ai_call_logs_action    ON ai_call_logs (action);
CREATE INDEX IF NOT EXISTS idx_ai_call_logs_image_id  ON ai_call_logs (image_id)
    WHERE image_id IS NOT NULL;
