-- Entries that could not be stored, kept with the reason and the raw payload so
-- that they can be replayed once the cause is fixed (`ailedger dlq replay`).
CREATE TABLE IF NOT EXISTS ai_call_rejects (
    stream_id        TEXT PRIMARY KEY,
    stream           TEXT NOT NULL,
    event_id         TEXT,
    reason           TEXT NOT NULL,
    raw              BYTEA NOT NULL,
    delivery_count   INTEGER NOT NULL DEFAULT 1,
    first_seen       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_seen        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    replayed_at      TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS idx_ai_call_rejects_last_seen ON ai_call_rejects (last_seen);
