-- The service that made the call: set from the ingest token bound to a service
-- (AILEDGER_INGEST_TOKENS="pdf-extractor:<token>"), or the event's own `service` field.
ALTER TABLE ai_call_logs ADD COLUMN IF NOT EXISTS service TEXT;
