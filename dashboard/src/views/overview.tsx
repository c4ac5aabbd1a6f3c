// The overview: what the range cost and how good the calls were, filtered by task/model/provider.
import type { AIMetrics, Api, ConfidenceReport, JobsSummary } from "../api";
import { PALETTE, TimeChart } from "../chart";
import * as f from "../format";
import { useLoad } from "../hooks";
import { setParams, timeRange } from "../route";
import { type Column, parseSort, Table } from "../table";
import { Kpi } from "./job";
import { RangeBar } from "./range";
import { ConfidencePanel } from "./whatif";

type ModelRow = AIMetrics["by_model"][number];
type TaskRow = AIMetrics["by_task"][number];
type Stats = AIMetrics["totals"];

interface Bundle {
  options: AIMetrics;
  metrics: AIMetrics;
  confidence: ConfidenceReport;
  jobs: JobsSummary;
  models: string[] | null; // the model filter sent, provider resolved
}

const REFRESH_MS = 30_000;
const NO_MODEL = "\u0000none"; // a provider with no models in range: match nothing

export function Overview(props: { api: Api; search: string; onUnauthorized: () => void }) {
  const params = new URLSearchParams(props.search);
  const task = params.get("task");
  const model = params.get("model");
  const provider = params.get("provider");
  const range = timeRange(params);
  const key = [range.key, range.key === "custom" ? `${range.from}|${range.to}` : "", task, model, provider].join("|");

  const loaded = useLoad<Bundle>(
    key,
    async () => {
      const now = timeRange(new URLSearchParams(location.search), new Date());
      const span = { from: now.from, to: now.to };
      const options = await props.api.get<AIMetrics>("/api/admin/ai-metrics", span);
      // The API filters by task and model; a provider is the models it served in the range.
      let models: string[] | null = model ? [model] : null;
      if (provider) {
        const served = options.by_model.filter((m) => m.providers.includes(provider)).map((m) => m.model);
        models = (models ?? served).filter((m) => served.includes(m));
        if (models.length === 0) models = [NO_MODEL];
      }
      const filters = { ...span, from: options.range.from, to: options.range.to, task: task ?? undefined, model: models ?? undefined };
      const [metrics, confidence, jobs] = await Promise.all([
        task || models ? props.api.get<AIMetrics>("/api/admin/ai-metrics", filters) : Promise.resolve(options),
        props.api.get<ConfidenceReport>("/api/admin/confidence", filters),
        props.api.get<JobsSummary>("/api/admin/jobs-summary", filters),
      ]);
      return { options, metrics, confidence, jobs, models };
    },
    range.live ? REFRESH_MS : 0,
    props.onUnauthorized,
  );

  const data = loaded.data;
  const m = data?.metrics;
  const filterBy = (name: string, value: string) => setParams({ [name]: value });
  return (
    <div class="view overview" data-view="overview" data-ready={m && !loaded.loading ? "true" : undefined}>
      <header class="view-head">
        <h1>Overview</h1>
        <RangeBar params={params} range={range} updatedAt={loaded.updatedAt} loading={loaded.loading} answered={m?.range} />
      </header>
      <Filters params={params} options={data?.options} />
      {loaded.error && (
        <p class="error" role="alert">
          {loaded.error.message}
        </p>
      )}
      {m && data && (
        <>
          <Kpis totals={m.totals} jobs={data.jobs} />
          <NeedsPrice rows={m.by_model} />
          <div class="grid two">
            <section class="panel">
              <header class="panel-head"><h2>Cost over time, by model</h2></header>
              <CostChart metrics={m} />
            </section>
            <section class="panel">
              <header class="panel-head"><h2>Calls over time</h2></header>
              <TimeChart
                name="calls"
                label="Calls per bucket"
                x={m.timeline.map((p) => Date.parse(p.start) / 1000)}
                series={[{ label: "Calls", values: m.timeline.map((p) => p.calls) }]}
                format={(v) => f.tokens(v)}
              />
            </section>
          </div>
          <Table
            name="models"
            caption="By model"
            columns={modelColumns(filterBy)}
            rows={m.by_model}
            rowKey={(r) => r.model}
            sort={parseSort(params.get("msort"), "cost")}
            onSort={(s) => setParams({ msort: `${s.descending ? "" : "-"}${s.key}` }, { replace: true })}
            filename="ai-costs-by-model.csv"
          />
          <Table
            name="tasks"
            caption="By task"
            columns={taskColumns(filterBy)}
            rows={m.by_task}
            rowKey={(r) => r.task}
            sort={parseSort(params.get("tsort"), "cost")}
            onSort={(s) => setParams({ tsort: `${s.descending ? "" : "-"}${s.key}` }, { replace: true })}
            filename="ai-costs-by-task.csv"
          />
          <div class="grid two">
            <ConfidencePanel report={data.confidence} params={params} />
            <div class="stack">
              <FallbackReasons metrics={m} />
              <QueueHealth metrics={m} />
            </div>
          </div>
          <p class="muted small">{m.percentile_note}.</p>
        </>
      )}
    </div>
  );
}

function Filters(props: { params: URLSearchParams; options: AIMetrics | undefined }) {
  const o = props.options;
  const tasks = o ? o.by_task.map((t) => t.task).sort() : [];
  const models = o ? o.by_model.map((m) => m.model).sort() : [];
  const providers = o ? [...new Set(o.by_model.flatMap((m) => m.providers))].sort() : [];
  const select = (name: string, label: string, values: string[]) => {
    const current = props.params.get(name) ?? "";
    const all = current && !values.includes(current) ? [current, ...values] : values;
    return (
      <label class="filter">
        <span>{label}</span>
        <select name={name} value={current} onChange={(e) => setParams({ [name]: (e.target as HTMLSelectElement).value })}>
          <option value="">All</option>
          {all.map((v) => (
            <option value={v} key={v}>{v}</option>
          ))}
        </select>
      </label>
    );
  };
  const any = ["task", "model", "provider"].some((n) => props.params.get(n));
  return (
    <form class="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
      {select("task", "Task", tasks)}
      {select("model", "Model", models)}
      {select("provider", "Provider", providers)}
      {any && (
        <button type="button" class="ghost" onClick={() => setParams({ task: null, model: null, provider: null })}>
          Clear filters
        </button>
      )}
    </form>
  );
}

function Kpis(props: { totals: Stats; jobs: JobsSummary }) {
  const t = props.totals;
  return (
    <div class="kpis" aria-label="Totals">
      <Kpi name="cost" label="Cost" value={t.cost} text={f.cost(t.cost, t.calls, t.unpriced_calls)}
        note={t.unpriced_calls ? <a href="#needs-price">+ {f.count(t.unpriced_calls)} unpriced</a> : "all calls priced"} />
      <Kpi name="calls" label="Calls" value={t.calls} text={f.count(t.calls)} />
      <Kpi name="tokens" label="Tokens" value={t.tokens} text={f.tokens(t.tokens)}
        note={`${f.tokens(t.input_tokens)} in · ${f.tokens(t.output_tokens)} out`} />
      <Kpi name="error_rate" label="Error rate" value={t.error_rate} text={f.percent(t.error_rate)} note={`${f.count(t.errors)} errors`} />
      <Kpi name="fallback_rate" label="Fallback rate" value={t.fallback_rate} text={f.percent(t.fallback_rate)} note={`${f.count(t.fallbacks)} fallbacks`} />
      <Kpi name="confidence_mean" label="Mean confidence" value={t.confidence_mean} text={f.confidence(t.confidence_mean)} note={`${f.count(t.scored_calls)} scored`} />
      <Kpi name="unpriced_calls" label="Unpriced calls" value={t.unpriced_calls} text={f.count(t.unpriced_calls)}
        note={t.unpriced_calls ? <a href="#needs-price">models need a price</a> : undefined} />
      <Kpi name="average_job_cost" label="Avg cost per PDF job" value={props.jobs.average_cost} text={f.money(props.jobs.average_cost)}
        note={<a href="/jobs">{f.count(props.jobs.jobs)} jobs</a>} />
    </div>
  );
}

function NeedsPrice(props: { rows: ModelRow[] }) {
  const missing = props.rows.filter((r) => r.unpriced_calls > 0);
  if (missing.length === 0) return null;
  return (
    <section class="panel notice" id="needs-price" aria-label="Models without a price">
      <h2>Models without a price</h2>
      <p>
        These calls are recorded without a cost (shown as {f.NONE}, never $0). Add a price override for
        each model, then run <code>ailedger reprice</code>.
      </p>
      <ul class="needs-price">
        {missing.map((r) => (
          <li key={r.model} data-unpriced-model={r.model}>
            <code>{r.model}</code> {r.providers.length > 0 && <span class="muted">({r.providers.join(", ")})</span>}:{" "}
            {f.count(r.unpriced_calls)} calls
          </li>
        ))}
      </ul>
    </section>
  );
}

function CostChart(props: { metrics: AIMetrics }) {
  const m = props.metrics;
  const models = m.by_model.map((r) => r.model); // dearest first: the bottom of the stack
  return (
    <TimeChart
      name="cost"
      label="Cost per bucket, stacked by model"
      stacked
      x={m.timeline.map((p) => Date.parse(p.start) / 1000)}
      series={models.map((name) => ({
        label: name,
        values: m.timeline.map((p) => (p.by_model[name] ? Number(p.by_model[name]!.cost) : null)),
      }))}
      format={(v) => f.money(v)}
    />
  );
}

function statColumns<R extends Stats>(): Column<R>[] {
  return [
    { key: "calls", label: "Calls", numeric: true, value: (r) => r.calls, render: (r) => f.count(r.calls) },
    { key: "tokens", label: "Tokens", numeric: true, value: (r) => r.tokens, render: (r) => f.tokens(r.tokens) },
    {
      key: "cost",
      label: "Cost",
      numeric: true,
      value: (r) => (r.unpriced_calls >= r.calls ? null : r.cost),
      render: (r) => f.cost(r.cost, r.calls, r.unpriced_calls),
    },
    { key: "unpriced_calls", label: "Unpriced", numeric: true, value: (r) => r.unpriced_calls, render: (r) => (r.unpriced_calls ? f.count(r.unpriced_calls) : "") },
    { key: "p50", label: "p50", numeric: true, title: "Median latency", value: (r) => r.latency_ms.p50, render: (r) => f.duration(r.latency_ms.p50) },
    { key: "p95", label: "p95", numeric: true, value: (r) => r.latency_ms.p95, render: (r) => f.duration(r.latency_ms.p95) },
    { key: "p99", label: "p99", numeric: true, value: (r) => r.latency_ms.p99, render: (r) => f.duration(r.latency_ms.p99) },
    { key: "confidence_mean", label: "Confidence", numeric: true, value: (r) => r.confidence_mean, render: (r) => f.confidence(r.confidence_mean) },
    { key: "fallback_rate", label: "Fallback", numeric: true, value: (r) => r.fallback_rate, render: (r) => f.percent(r.fallback_rate) },
    { key: "error_rate", label: "Errors", numeric: true, value: (r) => r.error_rate, render: (r) => f.percent(r.error_rate) },
  ];
}

function modelColumns(filterBy: (name: string, value: string) => void): Column<ModelRow>[] {
  return [
    {
      key: "model",
      label: "Model",
      value: (r) => r.model,
      render: (r) => (
        <button type="button" class="link" title={`Show only ${r.model}`} onClick={() => filterBy("model", r.model)}>
          {r.model}
        </button>
      ),
    },
    { key: "providers", label: "Provider", value: (r) => r.providers.join(" "), render: (r) => r.providers.join(", ") },
    ...statColumns<ModelRow>(),
  ];
}

function taskColumns(filterBy: (name: string, value: string) => void): Column<TaskRow>[] {
  return [
    {
      key: "task",
      label: "Task",
      value: (r) => r.task,
      render: (r) => (
        <button type="button" class="link" title={`Show only ${r.task}`} onClick={() => filterBy("task", r.task)}>
          {r.task}
        </button>
      ),
    },
    ...statColumns<TaskRow>(),
  ];
}

function FallbackReasons(props: { metrics: AIMetrics }) {
  const reasons = props.metrics.top_fallback_reasons;
  const top = Math.max(1, ...reasons.map((r) => r.calls));
  return (
    <section class="panel" data-panel="fallback-reasons">
      <header class="panel-head"><h2>Top fallback reasons</h2></header>
      {reasons.length === 0 ? (
        <p class="muted">No fallbacks in this range.</p>
      ) : (
        <ol class="bars">
          {reasons.map((r, i) => (
            <li key={r.reason} data-reason={r.reason} data-value={r.calls}>
              <span class="bar-label">{r.reason || "(no reason given)"}</span>
              <span class="bar-track" aria-hidden="true">
                <span class="bar" style={{ width: `${(100 * r.calls) / top}%`, background: PALETTE[i % PALETTE.length] }} />
              </span>
              <span class="num">{f.count(r.calls)}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function QueueHealth(props: { metrics: AIMetrics }) {
  const q = props.metrics.queue;
  return (
    <section class="panel" data-panel="queue">
      <header class="panel-head"><h2>Queue health</h2></header>
      {q ? (
        <>
          <p class={`verdict ${q.ok ? "ok" : "bad"}`} data-verdict={q.ok ? "ok" : "bad"}>
            <span class={`dot ${q.ok ? "live" : "error"}`} aria-hidden="true" />
            {q.verdict}
          </p>
          <dl class="facts">
            <Fact name="lag" label="Not yet delivered" value={q.lag} text={f.count(q.lag)} />
            <Fact name="pending" label="Pending (unacknowledged)" value={q.pending} text={f.count(q.pending)} />
            <Fact name="oldest_pending_age_s" label="Oldest pending" value={q.oldest_pending_age_s} text={f.seconds(q.oldest_pending_age_s)} />
            <Fact name="workers_alive" label="Workers with a heartbeat" value={q.workers_alive} text={f.count(q.workers_alive)} />
            <Fact name="dead_letter" label="Dead letters" value={q.dead_letter} text={f.count(q.dead_letter)} />
            <Fact name="length" label="Stream length" value={q.length} text={f.count(q.length)} />
          </dl>
        </>
      ) : (
        <p class="error">{props.metrics.queue_error ?? "queue unknown"}</p>
      )}
    </section>
  );
}

function Fact(props: { name: string; label: string; value: number | null; text: string }) {
  return (
    <div data-fact={props.name} data-value={props.value ?? ""}>
      <dt>{props.label}</dt>
      <dd>{props.text}</dd>
    </div>
  );
}
