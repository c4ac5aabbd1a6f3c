// One image: what each processing step (embedding, vision analysis, validation…) cost.
import type { Api, ImageCosts } from "../api";
import * as f from "../format";
import { useLoad } from "../hooks";
import { jobPath } from "../route";
import { type Column, Table } from "../table";
import { Kpi } from "./job";

type Step = ImageCosts["steps"][number];

export function ImageView(props: { api: Api; imageId: string; linkBase?: string; embedded?: boolean }) {
  const loaded = useLoad(`${props.api.base}|${props.imageId}`, () =>
    // One segment, "/" and "." included: the API's path takes any text before /ai-costs.
    props.api.get<ImageCosts>(`/api/admin/images/${encodeURIComponent(props.imageId)}/ai-costs`),
  );
  const base = props.linkBase ?? "";
  const columns: Column<Step>[] = [
    { key: "task", label: "Step", value: (r) => r.task },
    { key: "models", label: "Models", value: (r) => r.models.join(" ") , render: (r) => r.models.join(", ") },
    { key: "calls", label: "Calls", numeric: true, value: (r) => r.calls, render: (r) => f.count(r.calls) },
    { key: "tokens", label: "Tokens", numeric: true, value: (r) => r.tokens, render: (r) => f.tokens(r.tokens) },
    { key: "latency_ms", label: "Latency (sum)", numeric: true, value: (r) => r.latency_ms, render: (r) => f.duration(r.latency_ms) },
    { key: "cost", label: "Cost", numeric: true, value: (r) => (r.unpriced_calls >= r.calls ? null : r.cost),
      render: (r) => f.cost(r.cost, r.calls, r.unpriced_calls) },
  ];
  const data = loaded.data;
  const t = data?.total;
  return (
    <div class="view image-view" data-view="image">
      <header class="view-head">
        <h1>
          Image <code data-image-id>{props.imageId}</code>
        </h1>
        {loaded.error && <p class="error" role="alert">{loaded.error.message}</p>}
      </header>
      {t && (
        <div class="kpis">
          <Kpi name="cost" label="Total cost" value={t.cost} text={f.cost(t.cost, t.calls, t.unpriced_calls)}
            note={t.unpriced_calls ? `${f.count(t.unpriced_calls)} unpriced` : undefined} />
          <Kpi name="calls" label="Calls" value={t.calls} text={f.count(t.calls)} />
          <Kpi name="tokens" label="Tokens" value={t.tokens} text={f.tokens(t.tokens)} />
          <Kpi name="steps" label="Steps" value={data.steps.length} text={f.count(data.steps.length)} />
        </div>
      )}
      <Table
        name="image-steps"
        caption="Cost per step"
        columns={columns}
        rows={data?.steps ?? []}
        rowKey={(r) => r.task}
        filename="image-steps.csv"
        empty={data ? "No calls recorded for this image." : "Loading…"}
        footer={
          t && data.steps.length > 0 ? (
            <tfoot>
              <tr data-row="total">
                <th scope="row">Total</th>
                <td />
                <td class="num">{f.count(t.calls)}</td>
                <td class="num">{f.tokens(t.tokens)}</td>
                <td class="num">{f.duration(t.latency_ms)}</td>
                <td class="num" data-col="cost" data-value={t.cost}>{f.cost(t.cost, t.calls, t.unpriced_calls)}</td>
              </tr>
            </tfoot>
          ) : undefined
        }
      />
      {data && data.job_ids.length > 0 && !props.embedded && (
        <p class="muted">
          Part of {data.job_ids.length === 1 ? "job" : "jobs"}{" "}
          {data.job_ids.map((id, i) => (
            <>
              {i > 0 && ", "}
              <a href={base + jobPath(id)}>{id}</a>
            </>
          ))}
        </p>
      )}
    </div>
  );
}
