-- ailedger_reader: the read-only role the metrics API connects with, so that nothing
-- reachable over HTTP can change a cost record. Roles belong to the whole Postgres
-- cluster: the first database migrated creates it, later ones only grant.
-- It is created without a password; where Postgres asks for one, set it once as an
-- administrator (ALTER ROLE ailedger_reader PASSWORD '...') and put it in
-- AILEDGER_API_DATABASE_URL. Tables added by later migrations grant SELECT themselves.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ailedger_reader') THEN
        BEGIN
            CREATE ROLE ailedger_reader LOGIN;
            -- Even a grant given by mistake later cannot turn into a write.
            ALTER ROLE ailedger_reader SET default_transaction_read_only = on;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it a moment ago
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role ailedger_reader is missing and % may not create roles',
                    current_user
                    USING HINT = 'Create it once as a superuser: CREATE ROLE ailedger_reader '
                        'LOGIN; ALTER ROLE ailedger_reader SET default_transaction_read_only '
                        '= on; then run ailedger migrate again.';
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO ailedger_reader', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO ailedger_reader', current_schema());
END
$$;

GRANT SELECT ON ai_call_logs, ai_call_rollups, ai_call_fallback_rollups, ai_call_rejects,
    price_overrides TO ailedger_reader;
