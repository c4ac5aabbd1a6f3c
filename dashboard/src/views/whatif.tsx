// Confidence per task with its threshold, and what another threshold would have given.
import type { ConfidenceReport, TaskConfidence } from "../api";
import * as f from "../format";
import { setParams } from "../route";

interface Outcome {
  below: number; // scored calls under the threshold: they fall back to rules
  rate: number | null; // of the scored calls
  discardedCost: number; // AI cost of calls whose result is not used
  usedCost: number;
}

/** What threshold `t` would have given, from the task's 0.05-wide bins. */
export function outcome(task: TaskConfidence, t: number): Outcome {
  let below = 0;
  let scored = 0;
  let discardedCost = 0;
  let usedCost = 0;
  for (const bin of task.bins) {
    scored += bin.calls;
    // Scores have two decimals and thresholds move in bin steps: a bin is wholly below or not.
    if (Number(bin.high) <= t + 1e-9) {
      below += bin.calls;
      discardedCost += Number(bin.cost);
    } else {
      usedCost += Number(bin.cost);
    }
  }
  return { below, rate: scored ? below / scored : null, discardedCost, usedCost };
}

export function ConfidencePanel(props: { report: ConfidenceReport; params: URLSearchParams }) {
  const tasks = props.report.tasks.filter((t) => t.scored_calls > 0);
  return (
    <section class="panel" data-panel="confidence">
      <header class="panel-head">
        <h2>Confidence by task</h2>
      </header>
      {tasks.length === 0 ? (
        <p class="muted">No scored calls in this range.</p>
      ) : (
        <div class="histograms">
          {tasks.map((t) => (
            <TaskHistogram key={t.task} task={t} params={props.params} />
          ))}
        </div>
      )}
      <p class="muted small">Moving a threshold is a what-if over this range; {props.report.cost_note}.</p>
    </section>
  );
}

function TaskHistogram(props: { task: TaskConfidence; params: URLSearchParams }) {
  const t = props.task;
  const configured = Number(t.threshold);
  const param = `th.${t.task}`;
  const asked = Number(props.params.get(param));
  const threshold = props.params.get(param) && asked >= 0 && asked <= 1 ? asked : configured;
  const top = Math.max(1, ...t.bins.map((b) => b.calls));
  const now = outcome(t, configured);
  const then = outcome(t, threshold);
  const id = `th-${t.task.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  return (
    <figure class="histogram" data-task={t.task}>
      <figcaption>
        <strong>{t.task}</strong> <span class="muted">{f.count(t.scored_calls)} scored</span>
      </figcaption>
      <div class="hist-bars" role="img" aria-label={`Confidence distribution of ${t.task}`}>
        {t.bins.map((b) => (
          <span
            key={b.low}
            class={Number(b.high) <= threshold + 1e-9 ? "hbar below" : "hbar"}
            style={{ height: `${(100 * b.calls) / top}%` }}
            title={`${f.confidence(b.low)}–${f.confidence(b.high)}: ${f.count(b.calls)} calls`}
          />
        ))}
        <span class="threshold" style={{ left: `${threshold * 100}%` }} data-threshold={threshold} aria-hidden="true" />
        {threshold !== configured && (
          <span class="threshold configured" style={{ left: `${configured * 100}%` }} aria-hidden="true" />
        )}
      </div>
      <div class="hist-axis" aria-hidden="true"><span>0</span><span>0.5</span><span>1</span></div>
      <label class="whatif" for={id}>
        <span>Threshold {f.confidence(threshold)}{threshold !== configured ? ` (configured ${f.confidence(configured)})` : ""}</span>
        <input
          id={id}
          type="range"
          min="0"
          max="1"
          step="0.05"
          value={threshold}
          data-whatif={t.task}
          onInput={(e) => {
            const v = Number((e.target as HTMLInputElement).value);
            setParams({ [param]: Math.abs(v - configured) < 1e-9 ? null : v.toFixed(2) }, { replace: true });
          }}
        />
      </label>
      <p class="whatif-result" data-whatif-result={t.task} data-rate={then.rate ?? ""} data-discarded={then.discardedCost.toFixed(12)}>
        {f.percent(then.rate)} of scored calls fall back ({f.count(then.below)})
        {threshold !== configured && <span class="muted"> · now {f.percent(now.rate)}</span>}
        <br />
        AI cost of discarded results ≈ {f.money(then.discardedCost)}
        {threshold !== configured && <span class="muted"> · now {f.money(now.discardedCost)}</span>}
        ; used ≈ {f.money(then.usedCost)}
      </p>
    </figure>
  );
}
