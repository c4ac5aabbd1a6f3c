// One job (a PDF upload): every AI call in order as a step, with the running total, live.
import { useEffect, useState } from "preact/hooks";
import type { Api, JobCall, JobCosts } from "../api";
import * as f from "../format";
import { followJob } from "../live";
import { imagePath } from "../route";
import { type Column, Table } from "../table";

type Step = JobCall & { step: number };

function merge(previous: JobCosts | null, answer: JobCosts): JobCosts {
  if (!previous || answer.offset === 0) return answer;
  const calls = previous.calls.slice(0, answer.offset).concat(answer.calls);
  return { ...answer, offset: 0, calls };
}

export function JobView(props: { api: Api; jobId: string; linkBase?: string; embedded?: boolean }) {
  const [job, setJob] = useState<JobCosts | null>(null);
  const [state, setState] = useState<{ mode: string; detail?: string }>({ mode: "connecting" });
  const [updated, setUpdated] = useState<Date | null>(null);
  useEffect(() => {
    setJob(null);
    return followJob(props.api, props.jobId, {
      onCalls: (answer) => {
        setJob((prev) => merge(prev, answer));
        setUpdated(new Date());
      },
      onState: (mode, detail) => setState({ mode, detail }),
    });
  }, [props.api, props.jobId]);

  const base = props.linkBase ?? "";
  const columns: Column<Step>[] = [
    { key: "step", label: "#", value: (r) => r.step, numeric: true },
    { key: "timestamp", label: "Time", value: (r) => r.timestamp, render: (r) => f.when(r.timestamp) },
    { key: "task", label: "Task", value: (r) => r.task },
    { key: "model", label: "Model", value: (r) => r.model },
    {
      key: "tokens",
      label: "Tokens in / out",
      numeric: true,
      value: (r) => (r.input_tokens ?? 0) + (r.output_tokens ?? 0),
      render: (r) => `${f.count(r.input_tokens)} / ${f.count(r.output_tokens)}`,
    },
    {
      key: "cost",
      label: "Cost",
      numeric: true,
      value: (r) => r.cost,
      render: (r) => (r.cost === null ? <span title="no price for this model">{f.NONE}</span> : f.money(r.cost)),
    },
    { key: "latency_ms", label: "Latency", numeric: true, value: (r) => r.latency_ms, render: (r) => f.duration(r.latency_ms) },
    { key: "confidence", label: "Confidence", numeric: true, value: (r) => r.confidence_score, render: (r) => f.confidence(r.confidence_score) },
    {
      key: "action",
      label: "Action",
      value: (r) => r.action,
      render: (r) =>
        r.action === "fallback_to_rules" ? (
          <span class="badge warn" title={r.fallback_reason ?? undefined}>fallback</span>
        ) : r.action === "use_ai_result" ? (
          <span class="badge ok">AI result</span>
        ) : (
          f.NONE
        ),
    },
    {
      key: "detail",
      label: "Error / reason",
      value: (r) => r.error_message ?? r.fallback_reason,
      render: (r) =>
        r.error_message ? <span class="error-text">{r.error_message}</span> : (r.fallback_reason ?? ""),
    },
    {
      key: "image_id",
      label: "Image",
      value: (r) => r.image_id,
      render: (r) => (r.image_id ? <a href={base + imagePath(r.image_id)}>{r.image_id}</a> : ""),
    },
    { key: "running_cost", label: "Running total", numeric: true, value: (r) => r.running_cost, render: (r) => f.money(r.running_cost) },
  ];
  const steps: Step[] = (job?.calls ?? []).map((c, i) => ({ ...c, step: i + 1 }));
  const t = job?.totals;
  const span =
    t?.first_call_at && t.last_call_at
      ? new Date(t.last_call_at).getTime() - new Date(t.first_call_at).getTime()
      : null;
  return (
    <div class="view job-view" data-view="job">
      <header class="view-head">
        <h1>
          Job <code data-job-id>{props.jobId}</code>
        </h1>
        <p class="status-line" aria-live="polite">
          <span class={`dot ${state.mode}`} aria-hidden="true" />
          <span data-live-state={state.mode}>
            {state.mode === "live"
              ? "Live: new calls appear as they are stored"
              : state.mode === "polling"
                ? "Refreshing every second"
                : state.mode === "error"
                  ? `Not updating: ${state.detail ?? ""}`
                  : "Connecting…"}
          </span>
          {updated && <span class="muted"> · updated {f.time(updated)}</span>}
        </p>
      </header>
      {t && (
        <div class="kpis">
          <Kpi name="calls" label="Calls" value={t.calls} text={f.count(t.calls)} />
          <Kpi name="cost" label="Cost" value={t.cost} text={f.cost(t.cost, t.calls, t.unpriced_calls)}
            note={t.unpriced_calls ? `${f.count(t.unpriced_calls)} unpriced` : undefined} />
          <Kpi name="tokens" label="Tokens" value={t.tokens} text={f.tokens(t.tokens)} />
          <Kpi name="errors" label="Errors" value={t.errors} text={f.count(t.errors)} />
          <Kpi name="fallbacks" label="Fallbacks" value={t.fallbacks} text={f.count(t.fallbacks)} />
          <Kpi name="span" label="Duration" value={span} text={f.duration(span)} />
        </div>
      )}
      <Table
        name="job-calls"
        caption={props.embedded ? "AI calls" : "AI calls, in order"}
        columns={columns}
        rows={steps}
        rowKey={(r) => r.id}
        filename={`job-${props.jobId}.csv`}
        empty={job ? "No calls recorded for this job yet." : "Loading…"}
      />
    </div>
  );
}

export function Kpi(props: {
  name: string;
  label: string;
  value: string | number | null | undefined;
  text: string;
  note?: preact.ComponentChildren;
  title?: string;
}) {
  return (
    <div class="kpi" data-kpi={props.name} data-value={props.value ?? ""} title={props.title}>
      <div class="kpi-label">{props.label}</div>
      <div class="kpi-value">{props.text}</div>
      {props.note && <div class="kpi-note">{props.note}</div>}
    </div>
  );
}
