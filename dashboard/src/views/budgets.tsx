// Budgets and alerts: each budget's spend against its limit with the projection, the alerts
// firing now and the recent past ones. Every text from the data set as text.
import type { Alerts, Api, BudgetState } from "../api";
import * as f from "../format";
import { useLoad } from "../hooks";
import { type Column, Table } from "../table";

type Alert = Alerts["active"][number];

interface Bundle {
  budgets: BudgetState[];
  alerts: Alerts;
}

const REFRESH_MS = 30_000;
const ALERT_TABLES = [
  { name: "active-alerts", caption: "Active alerts", past: false, empty: "No alert is firing." },
  { name: "alert-history", caption: "Recent alerts", past: true, empty: "No past alerts." },
];

/** Over the limit already, or heading there at this rate. */
export function overrun(b: BudgetState): "over" | "projected" | null {
  const limit = Number(b.limit_usd);
  if (Number(b.spent_usd) >= limit) return "over";
  if (b.projection_usd !== null && Number(b.projection_usd) > limit) return "projected";
  return null;
}

export function BudgetsView(props: { api: Api; onUnauthorized: () => void }) {
  const loaded = useLoad<Bundle>(
    "budgets",
    async () => {
      const [budgets, alerts] = await Promise.all([
        props.api.get<BudgetState[]>("/api/admin/budgets"),
        props.api.get<Alerts>("/api/admin/alerts", { history: "50" }),
      ]);
      return { budgets, alerts };
    },
    REFRESH_MS,
    props.onUnauthorized,
  );
  const data = loaded.data;
  return (
    <div class="view budgets" data-view="budgets" data-ready={data ? "true" : undefined}>
      <header class="view-head">
        <h1>Budgets and alerts</h1>
        <span class="updated muted small">
          {loaded.loading && !data ? "Loading…" : loaded.updatedAt ? `Updated ${f.time(loaded.updatedAt)}` : ""}
        </span>
      </header>
      {loaded.error && <p class="error" role="alert">{loaded.error.message}</p>}
      {data && (
        <>
          <BudgetList budgets={data.budgets} />
          {ALERT_TABLES.map((t) => (
            <Table
              key={t.name}
              name={t.name}
              caption={t.caption}
              columns={alertColumns(t.past)}
              rows={t.past ? data.alerts.history : data.alerts.active}
              rowKey={(a) => String(a.id)}
              filename={`${t.name}.csv`}
              empty={t.empty}
            />
          ))}
        </>
      )}
    </div>
  );
}

function BudgetList(props: { budgets: BudgetState[] }) {
  return (
    <section class="panel" data-panel="budgets" aria-label="Budgets">
      <header class="panel-head"><h2>Budgets</h2></header>
      {props.budgets.length === 0 ? (
        <p class="muted">
          No budgets. Add one with <code>ailedger budget add --scope all --period month --limit 500</code>.
        </p>
      ) : (
        <ul class="budget-list">
          {props.budgets.map((b) => (
            <BudgetItem key={b.id} budget={b} />
          ))}
        </ul>
      )}
    </section>
  );
}

function BudgetItem(props: { budget: BudgetState }) {
  const b = props.budget;
  const mark = overrun(b);
  const pct = Number(b.percent);
  return (
    <li class={`budget ${mark ?? ""}`} data-budget={b.id} data-scope={b.scope} data-overrun={mark ?? ""}>
      <div class="budget-head">
        <span class="budget-scope" data-field="scope">{b.scope === "job" ? "each job" : b.scope}</span>
        <span class="muted" data-field="period">per {b.period}</span>
        {mark && (
          <span class={`badge ${mark === "over" ? "bad" : "warn"}`} data-field="overrun">
            {mark === "over" ? "over the limit" : "overrun projected"}
          </span>
        )}
        <span class="spacer" />
        <span class="num">
          <span data-field="spent" data-value={b.spent_usd}>{f.money(b.spent_usd)}</span>
          {" of "}
          <span data-field="limit" data-value={b.limit_usd}>{f.money(b.limit_usd)}</span>
          {" · "}
          <span data-field="percent" data-value={b.percent}>{f.percent(pct / 100)}</span>
        </span>
      </div>
      <span
        class="bar-track budget-track"
        role="progressbar"
        aria-label={`${b.scope} spend against its limit`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.min(100, pct)}
      >
        <span class="bar" style={{ width: `${Math.min(100, Math.max(0, pct))}%` }} />
      </span>
      <p class="muted small">
        {b.projection_usd !== null ? (
          <>
            At this rate the period ends at{" "}
            <span data-field="projection" data-value={b.projection_usd}>{f.money(b.projection_usd)}</span>
            {` (${f.percent(b.elapsed)} of the ${b.period} gone, ends ${f.when(b.period_end)}).`}
          </>
        ) : (
          <>
            The costliest job this {b.period}; {f.count(b.jobs_active ?? 0)} jobs active
            {b.jobs_over_limit && b.jobs_over_limit.length > 0 && (
              <>, over the limit: <span data-field="jobs-over">{b.jobs_over_limit.join(", ")}</span></>
            )}
            .
          </>
        )}
        {b.unpriced_calls > 0 && ` ${f.count(b.unpriced_calls)} unpriced calls are not counted.`}
      </p>
    </li>
  );
}

function alertColumns(past: boolean): Column<Alert>[] {
  const columns: Column<Alert>[] = [
    { key: "name", label: "Rule", value: (a) => a.name, render: (a) => <code>{a.name}</code> },
    { key: "scope", label: "Scope", value: (a) => a.scope, render: (a) => a.scope || f.NONE },
    { key: "fired_at", label: past ? "Fired" : "Since", value: (a) => a.fired_at, render: (a) => f.when(a.fired_at) },
  ];
  if (past) {
    columns.push({ key: "resolved_at", label: "Resolved", value: (a) => a.resolved_at, render: (a) => f.when(a.resolved_at) });
  }
  columns.push({ key: "summary", label: "Message", value: (a) => a.summary, render: (a) => <span class="message">{a.summary}</span> });
  return columns;
}
