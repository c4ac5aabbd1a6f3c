-- Prices that win over the genai-prices catalog: models it lacks, negotiated rates.
-- A call is priced with the override whose effective_from is the latest one at or
-- before the call's timestamp. Token rates are USD per million tokens.
CREATE TABLE IF NOT EXISTS price_overrides (
    provider                 TEXT NOT NULL DEFAULT '',
    model                    TEXT NOT NULL,
    effective_from           TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    input_mtok               NUMERIC(18, 9) CHECK (input_mtok >= 0),
    output_mtok              NUMERIC(18, 9) CHECK (output_mtok >= 0),
    cache_read_mtok          NUMERIC(18, 9) CHECK (cache_read_mtok >= 0),
    cache_write_mtok         NUMERIC(18, 9) CHECK (cache_write_mtok >= 0),
    per_image                NUMERIC(18, 9) CHECK (per_image >= 0),
    per_request              NUMERIC(18, 9) CHECK (per_request >= 0),
    note                     TEXT,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (provider, model, effective_from)
);
