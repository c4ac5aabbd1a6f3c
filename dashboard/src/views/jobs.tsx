// Recent PDF jobs: what each cost, sortable, searchable by job id.
import type { Api, JobList } from "../api";
import * as f from "../format";
import { useLoad } from "../hooks";
import { jobPath, setParams, timeRange } from "../route";
import { type Column, Table } from "../table";
import { RangeBar } from "./range";

type Row = JobList["jobs"][number];

const SORTABLE = new Set(["recent", "cost", "calls", "duration", "fallbacks", "errors"]);

export function JobsView(props: { api: Api; search: string; onUnauthorized: () => void }) {
  const params = new URLSearchParams(props.search);
  const range = timeRange(params);
  const q = params.get("q") ?? "";
  const sort = SORTABLE.has(params.get("sort") ?? "") ? params.get("sort")! : "recent";
  const key = [range.key, range.key === "custom" ? `${range.from}|${range.to}` : "", q, sort].join("|");
  const loaded = useLoad<JobList>(
    key,
    () => {
      const now = timeRange(new URLSearchParams(location.search));
      return props.api.get<JobList>("/api/admin/jobs", { from: now.from, to: now.to, q: q || undefined, sort });
    },
    range.live ? 30_000 : 0,
    props.onUnauthorized,
  );
  const columns: Column<Row>[] = [
    { key: "job_id", label: "Job", value: (r) => r.job_id, render: (r) => <a href={jobPath(r.job_id)} title={r.job_id}><code>{r.job_id.slice(0, 8)}…</code></a> },
    { key: "recent", label: "Last call", value: (r) => r.last_call_at, render: (r) => f.when(r.last_call_at) },
    { key: "calls", label: "Calls", numeric: true, value: (r) => r.calls, render: (r) => f.count(r.calls) },
    { key: "tokens", label: "Tokens", numeric: true, value: (r) => r.tokens, render: (r) => f.tokens(r.tokens) },
    { key: "cost", label: "Cost", numeric: true, value: (r) => (r.unpriced_calls >= r.calls ? null : r.cost),
      render: (r) => f.cost(r.cost, r.calls, r.unpriced_calls) },
    { key: "duration", label: "Duration", numeric: true, value: (r) => r.duration_ms, render: (r) => f.duration(r.duration_ms) },
    { key: "fallbacks", label: "Fallbacks", numeric: true, value: (r) => r.fallbacks, render: (r) => f.count(r.fallbacks) },
    { key: "errors", label: "Errors", numeric: true, value: (r) => r.errors, render: (r) => f.count(r.errors) },
  ];
  return (
    <div class="view jobs" data-view="jobs">
      <header class="view-head">
        <h1>Jobs</h1>
        <RangeBar params={params} range={range} updatedAt={loaded.updatedAt} loading={loaded.loading} />
      </header>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          const value = new FormData(e.currentTarget).get("q");
          setParams({ q: typeof value === "string" ? value.trim() : null });
        }}
      >
        <label class="filter grow">
          <span>Job id</span>
          <input name="q" type="search" value={q} placeholder="a job id or its first characters" autoComplete="off" spellcheck={false} />
        </label>
        <button type="submit">Search</button>
      </form>
      {loaded.error && <p class="error" role="alert">{loaded.error.message}</p>}
      <Table
        name="jobs"
        caption={loaded.data?.has_more ? "Jobs (the first 100)" : "Jobs"}
        columns={columns}
        rows={loaded.data?.jobs ?? []}
        rowKey={(r) => r.job_id}
        sort={{ key: sort, descending: true }}
        onSort={(s) => SORTABLE.has(s.key) && setParams({ sort: s.key === "recent" ? null : s.key })}
        filename="jobs.csv"
        empty={loaded.data ? "No jobs in this range." : "Loading…"}
      />
    </div>
  );
}
