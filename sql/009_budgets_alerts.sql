-- Budgets, alert rules, the alerts they raised, and the outbox that delivers them.
--
-- Deciding and sending are two steps joined by the outbox: an alert row and its
-- notifications (one outbox row per receiver) are written in ONE transaction, and a
-- deliverer sends them later, retried until they arrive or are marked failed. Unique
-- keys make the decision idempotent: a budget threshold fires once per (budget, period,
-- scope, threshold) and a rule has at most one open alert per scope, so evaluators that
-- restart or run side by side never notify twice.

CREATE TABLE IF NOT EXISTS budgets (
    id          BIGSERIAL PRIMARY KEY,
    scope_kind  TEXT NOT NULL CHECK (scope_kind IN ('all', 'task', 'model', 'provider', 'job')),
    scope_value TEXT NOT NULL DEFAULT '',  -- the task, model or provider; '' for all and job
    period      TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    limit_usd   NUMERIC(18, 6) NOT NULL CHECK (limit_usd > 0),
    thresholds  NUMERIC[] NOT NULL DEFAULT '{50, 80, 100}',  -- percent of the limit
    notify      TEXT[] NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CHECK ((scope_kind IN ('all', 'job')) = (scope_value = ''))
);

-- Rules over the rollups and the queue; `params` are the rule's knobs (docs/alerts.md).
CREATE TABLE IF NOT EXISTS alert_rules (
    name    TEXT PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('cost_spike', 'fallback_rate', 'error_rate',
                                          'queue_lag', 'pending_age', 'dead_letters',
                                          'unpriced_model')),
    params  JSONB NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    notify  TEXT[] NOT NULL DEFAULT '{}'  -- empty: AILEDGER_ALERT_NOTIFY
);

INSERT INTO alert_rules (name, kind, params) VALUES
    ('cost_spike', 'cost_spike', '{"factor": 3, "min_cost_usd": 5, "days": 7}'),
    ('fallback_rate', 'fallback_rate',
        '{"max_rate": 0.3, "window_minutes": 15, "min_calls": 50, "by": "task"}'),
    ('error_rate', 'error_rate',
        '{"max_rate": 0.1, "window_minutes": 15, "min_calls": 50, "by": "model"}'),
    ('queue_lag', 'queue_lag', '{"max_lag": 10000}'),
    ('pending_age', 'pending_age', '{"max_age_s": 300}'),
    ('dead_letters', 'dead_letters', '{"window_minutes": 60, "min_new": 1}'),
    ('unpriced_model', 'unpriced_model', '{"window_days": 7}')
ON CONFLICT (name) DO NOTHING;

-- Every alert ever raised: the history, and (resolved_at IS NULL) the active ones.
-- Budget alerts keep budget_id without a foreign key: removing a budget keeps its history.
CREATE TABLE IF NOT EXISTS alerts (
    id           BIGSERIAL PRIMARY KEY,
    source       TEXT NOT NULL CHECK (source IN ('budget', 'rule')),
    kind         TEXT NOT NULL,  -- budget_threshold, budget_projection, or the rule's kind
    budget_id    BIGINT,
    rule         TEXT,
    period_start TIMESTAMPTZ,
    scope_key    TEXT NOT NULL DEFAULT '',
    threshold    TEXT NOT NULL DEFAULT '',
    summary      TEXT NOT NULL,
    details      JSONB NOT NULL DEFAULT '{}',
    fired_at     TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ,
    CHECK ((source = 'budget') = (budget_id IS NOT NULL AND period_start IS NOT NULL)),
    CHECK ((source = 'rule') = (rule IS NOT NULL))
);

-- A budget threshold fires once per period and scope, ever.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_budget_once
    ON alerts (budget_id, period_start, scope_key, threshold) WHERE source = 'budget';
-- A rule has at most one firing alert per scope; once resolved it may fire again.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_rule_open
    ON alerts (rule, scope_key) WHERE source = 'rule' AND resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_fired_at ON alerts (fired_at DESC);

-- One row per receiver URL: its delivery state. A deliverer holds the row's lock
-- (FOR UPDATE SKIP LOCKED) while it sends that receiver's oldest message, so one
-- receiver's messages go out one at a time, in order, by one deliverer.
CREATE TABLE IF NOT EXISTS alert_receivers (
    url             TEXT PRIMARY KEY,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    failures        INTEGER NOT NULL DEFAULT 0,  -- in a row
    last_error      TEXT
);

CREATE TABLE IF NOT EXISTS alert_outbox (
    id           BIGSERIAL PRIMARY KEY,
    alert_id     BIGINT NOT NULL REFERENCES alerts (id),
    event        TEXT NOT NULL CHECK (event IN ('firing', 'resolved')),
    url          TEXT NOT NULL REFERENCES alert_receivers (url),
    channel      TEXT NOT NULL CHECK (channel IN ('webhook', 'slack')),
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at TIMESTAMPTZ,
    failed_at    TIMESTAMPTZ,
    last_error   TEXT
);

CREATE INDEX IF NOT EXISTS alert_outbox_pending
    ON alert_outbox (url, id) WHERE delivered_at IS NULL AND failed_at IS NULL;

GRANT SELECT ON budgets, alert_rules, alerts, alert_receivers, alert_outbox TO ailedger_reader;
