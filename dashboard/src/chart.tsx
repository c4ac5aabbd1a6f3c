// Time series charts (uPlot): cost stacked by model, calls over time.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export const PALETTE = [
  "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2",
  "#b279a2", "#eeca3b", "#9d755d", "#ff9da6", "#8c8c8c",
];

export interface Series {
  label: string;
  values: (number | null)[];
}

export function TimeChart(props: {
  name: string;
  label: string;
  x: number[]; // Unix seconds
  series: Series[];
  stacked?: boolean;
  format: (v: number) => string;
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const raw = props.series;
    // Stacked bars: each series drawn at the sum of itself and those below it, the tallest
    // first, so the lower ones paint over; the legend still shows each series' own value.
    const drawn = props.stacked ? stack(raw) : raw.map((s) => s.values);
    const order = props.stacked ? raw.map((_, i) => raw.length - 1 - i) : raw.map((_, i) => i);
    const bars = uPlot.paths.bars!({ size: [0.8, 40], gap: 1 });
    const css = getComputedStyle(el);
    const axis = css.getPropertyValue("--muted").trim() || "#666";
    const grid = css.getPropertyValue("--grid").trim() || "#ddd";
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height: props.height ?? 200,
      legend: { live: true },
      cursor: { points: { show: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.05 : 1] } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          size: 64,
          values: (_u, ticks) => ticks.map((t) => props.format(t)),
        },
      ],
      series: [
        {},
        ...order.map((i) => ({
          label: raw[i]!.label,
          stroke: PALETTE[i % PALETTE.length],
          fill: PALETTE[i % PALETTE.length] + (props.stacked ? "" : "33"),
          width: props.stacked ? 0 : 1.5,
          paths: props.stacked ? bars : undefined,
          points: { show: false },
          value: (_u: uPlot, _v: number | null, _si: number, idx: number | null) => {
            const v = idx === null ? null : raw[i]!.values[idx];
            return v === null || v === undefined ? "—" : props.format(v);
          },
        })),
      ],
    };
    const data = [props.x, ...order.map((i) => drawn[i]!)] as uPlot.AlignedData;
    const plot = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 200), height: opts.height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [props.x, props.series, props.stacked]);
  return <div class="chart" ref={box} data-chart={props.name} role="img" aria-label={props.label} />;
}

function stack(series: Series[]): (number | null)[][] {
  const sums = series[0]?.values.map(() => 0) ?? [];
  return series.map((s) =>
    s.values.map((v, j) => {
      sums[j] = (sums[j] ?? 0) + (v ?? 0);
      return sums[j]!;
    }),
  );
}
