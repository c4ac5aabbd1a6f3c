// The range picker: 1 h, 24 h, 7 d, 30 d or custom, kept in the URL.
import * as f from "../format";
import { RANGES, setParams, type TimeRange } from "../route";

function localInput(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function RangeBar(props: {
  params: URLSearchParams;
  range: TimeRange;
  updatedAt: Date | null;
  loading: boolean;
  answered?: { from: string; to: string };
}) {
  const r = props.range;
  const pick = (key: string) =>
    key === "custom"
      ? setParams({ range: "custom", from: r.from, to: r.to })
      : setParams({ range: key === "24h" ? null : key, from: null, to: null });
  const setBound = (name: "from" | "to", value: string) => {
    const d = new Date(value);
    if (!Number.isNaN(d.getTime())) setParams({ range: "custom", [name]: d.toISOString() });
  };
  return (
    <div class="rangebar">
      <div class="segmented" role="group" aria-label="Time range">
        {[...Object.entries(RANGES).map(([k, v]) => [k, v.label] as const), ["custom", "Custom"] as const].map(([k, label]) => (
          <button type="button" key={k} data-range={k} aria-pressed={r.key === k} onClick={() => pick(k)}>
            {label}
          </button>
        ))}
      </div>
      {r.key === "custom" && (
        <span class="custom-range">
          <label>
            <span class="sr-only">From</span>
            <input type="datetime-local" value={localInput(r.from)} onChange={(e) => setBound("from", (e.target as HTMLInputElement).value)} />
          </label>
          <span aria-hidden="true">–</span>
          <label>
            <span class="sr-only">To</span>
            <input type="datetime-local" value={localInput(r.to)} onChange={(e) => setBound("to", (e.target as HTMLInputElement).value)} />
          </label>
        </span>
      )}
      <span class="updated muted" aria-live="polite" data-from={props.answered?.from} data-to={props.answered?.to}>
        {props.loading ? "Loading…" : props.updatedAt ? `Updated ${f.time(props.updatedAt)}${r.live ? " · refreshes every 30 s" : ""}` : ""}
      </span>
    </div>
  );
}
