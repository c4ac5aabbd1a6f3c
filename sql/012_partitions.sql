-- ai_call_logs partitioned by month on timestamp (RANGE), so that retention drops whole
-- months instead of deleting rows, and each month's indexes stay the size of a month.
--
-- * The primary key becomes (id, timestamp): a partitioned table's unique keys must hold
--   its partition key. The producer sets the timestamp once, at the sender, and it travels
--   in the stream entry, so a redelivered event has the same (id, timestamp) and still
--   inserts nothing (worker/store.py: ON CONFLICT (id, timestamp) DO NOTHING).
-- * A DEFAULT partition takes any timestamp no month partition covers (a late event from
--   2019), so no batch ever fails for want of a partition. `ailedger partitions upkeep`
--   (ailedger/ops/partitions.py, hourly on `ailedger jobs`, and after every `ailedger
--   migrate`) creates this month and the next ones, moving rows out of DEFAULT first.
-- * An existing table is not copied: it becomes one partition, ai_call_logs_before_YYYY_MM,
--   covering everything up to the month boundary its bound check names. Before this file
--   runs, `ailedger migrate` prepares it without blocking writers
--   (ailedger.ops.partitions.prepare_conversion): the unique index (id, timestamp) built
--   CONCURRENTLY, and CHECK (timestamp < bound) added NOT VALID then VALIDATEd. With both
--   in place, what runs here under the exclusive lock only touches the catalog: ATTACH
--   finds the partition constraint implied by the check and skips its scan.
-- * Everything that hangs on the old table moves to the new parent, read from the catalog
--   so that whatever earlier migrations added comes along: CHECK constraints and defaults
--   (LIKE), every index (re-created on the empty parent; ATTACH adopts the old table's
--   matching ones instead of building them), every trigger (the rollup triggers: statement
--   triggers with transition tables are allowed on a partitioned table and see the rows
--   of every partition), and the reader's grant (queries through the parent need only the
--   parent's).

DO $migration$
DECLARE
    rel         regclass := to_regclass('ai_call_logs');
    bound       TIMESTAMPTZ;
    legacy      TEXT;
    has_rows    BOOLEAN;
    index_defs  TEXT[];
    index_names TEXT[];
    trigger_defs TEXT[];
    name        TEXT;
    def         TEXT;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = rel) = 'p' THEN
        RETURN;  -- already partitioned
    END IF;
    LOCK TABLE ai_call_logs IN ACCESS EXCLUSIVE MODE;
    has_rows := EXISTS (SELECT FROM ai_call_logs);

    SELECT (regexp_match(pg_get_constraintdef(c.oid), '''([^'']+)'''))[1]::TIMESTAMPTZ
    INTO bound
    FROM pg_constraint c WHERE c.conrelid = rel AND c.conname = 'ai_call_logs_partition_bound'
        AND c.convalidated;
    IF has_rows AND (bound IS NULL OR NOT EXISTS (
        SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = rel AND c.relname = 'ai_call_logs_id_timestamp_key' AND i.indisvalid
    )) THEN
        RAISE EXCEPTION 'ai_call_logs holds rows and is not prepared for partitioning'
            USING HINT = 'Apply this migration with `ailedger migrate`: it first builds the '
                '(id, timestamp) index and the bound check without blocking writers.';
    END IF;

    -- What moves to the parent, read before the old table is renamed (the definitions
    -- then still name ai_call_logs).
    SELECT coalesce(array_agg(pg_get_indexdef(i.indexrelid) ORDER BY c.relname), '{}'),
           coalesce(array_agg(c.relname::TEXT ORDER BY c.relname), '{}')
    INTO index_defs, index_names
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = rel AND NOT i.indisprimary
        AND c.relname <> 'ai_call_logs_id_timestamp_key';
    SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}')
    INTO trigger_defs
    FROM pg_trigger t WHERE t.tgrelid = rel AND NOT t.tgisinternal;
    FOR name IN SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = rel AND NOT t.tgisinternal
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON ai_call_logs', name);
    END LOOP;

    legacy := 'ai_call_logs_before_' || to_char(coalesce(bound, now()) AT TIME ZONE 'UTC',
                                                 'YYYY_MM');
    EXECUTE format('ALTER TABLE ai_call_logs RENAME TO %I', legacy);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT ai_call_logs_pkey', legacy);
    FOREACH name IN ARRAY index_names LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', name,
                       left(replace(name, 'ai_call_logs', legacy), 63));
    END LOOP;

    EXECUTE format(
        'CREATE TABLE ai_call_logs (LIKE %I INCLUDING ALL EXCLUDING INDEXES)'
        ' PARTITION BY RANGE (timestamp)', legacy);
    ALTER TABLE ai_call_logs DROP CONSTRAINT IF EXISTS ai_call_logs_partition_bound;
    ALTER TABLE ai_call_logs ADD CONSTRAINT ai_call_logs_pkey PRIMARY KEY (id, timestamp);
    FOREACH def IN ARRAY index_defs LOOP
        EXECUTE def;
    END LOOP;
    FOREACH def IN ARRAY trigger_defs LOOP
        EXECUTE def;
    END LOOP;
    GRANT SELECT ON ai_call_logs TO ailedger_reader;

    CREATE TABLE ai_call_logs_default PARTITION OF ai_call_logs DEFAULT;
    IF has_rows THEN
        EXECUTE format(
            'ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY USING INDEX ai_call_logs_id_timestamp_key',
            legacy, left(legacy || '_pkey', 63));
        EXECUTE format(
            'ALTER TABLE ai_call_logs ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
            legacy, bound);
    ELSE
        EXECUTE format('DROP TABLE %I', legacy);  -- nothing to keep: months from upkeep
    END IF;
END
$migration$;
