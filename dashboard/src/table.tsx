// A dense sortable table whose rows leave as CSV exactly as shown.
import type { ComponentChildren } from "preact";
import { type Cell, download, toCsv } from "./csv";

export interface Column<R> {
  key: string;
  label: string;
  /** The raw figure: what sorting uses, what the CSV holds, and the cell's data-value. */
  value: (row: R) => Cell;
  render?: (row: R) => ComponentChildren;
  numeric?: boolean;
  title?: string;
}

export interface Sort {
  key: string;
  descending: boolean;
}

export function parseSort(text: string | null, fallback: string): Sort {
  const raw = text || fallback;
  return raw.startsWith("-")
    ? { key: raw.slice(1), descending: false }
    : { key: raw, descending: true };
}

export function sortRows<R>(rows: R[], columns: Column<R>[], sort: Sort | null): R[] {
  const column = sort && columns.find((c) => c.key === sort.key);
  if (!sort || !column) return rows;
  const keyed = rows.map((row, i) => ({ row, i, v: column.value(row) }));
  keyed.sort((a, b) => {
    const x = a.v;
    const y = b.v;
    if (x === y) return a.i - b.i;
    if (x === null || x === undefined || x === "") return 1; // unknown last, either way
    if (y === null || y === undefined || y === "") return -1;
    const nx = Number(x);
    const ny = Number(y);
    const cmp =
      column.numeric && !Number.isNaN(nx) && !Number.isNaN(ny)
        ? nx - ny
        : String(x).localeCompare(String(y));
    return (sort.descending ? -cmp : cmp) || a.i - b.i;
  });
  return keyed.map((k) => k.row);
}

export function csvOf<R>(rows: R[], columns: Column<R>[]): string {
  return toCsv(
    columns.map((c) => c.key),
    rows.map((row) => columns.map((c) => c.value(row))),
  );
}

export function Table<R>(props: {
  name: string;
  caption: string;
  columns: Column<R>[];
  rows: R[];
  sort?: Sort | null;
  onSort?: (sort: Sort) => void;
  rowKey: (row: R) => string;
  filename?: string;
  empty?: string;
  footer?: ComponentChildren;
  actions?: ComponentChildren;
}) {
  const sort = props.sort ?? null;
  const rows = sortRows(props.rows, props.columns, sort);
  return (
    <section class="panel" data-table={props.name}>
      <header class="panel-head">
        <h2>{props.caption}</h2>
        <div class="panel-actions">
          {props.actions}
          <button
            type="button"
            class="ghost"
            data-csv={props.name}
            disabled={rows.length === 0}
            onClick={() => download(props.filename ?? `${props.name}.csv`, csvOf(rows, props.columns))}
          >
            CSV
          </button>
        </div>
      </header>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              {props.columns.map((c) => {
                const active = sort?.key === c.key;
                const ariaSort = active ? (sort!.descending ? "descending" : "ascending") : undefined;
                return (
                  <th
                    scope="col"
                    class={c.numeric ? "num" : undefined}
                    aria-sort={ariaSort}
                    title={c.title}
                    key={c.key}
                  >
                    {props.onSort ? (
                      <button
                        type="button"
                        class="sort"
                        data-sort={c.key}
                        onClick={() =>
                          props.onSort!({ key: c.key, descending: active ? !sort!.descending : true })
                        }
                      >
                        {c.label}
                        <span aria-hidden="true" class="arrow">
                          {active ? (sort!.descending ? "▼" : "▲") : ""}
                        </span>
                      </button>
                    ) : (
                      c.label
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 ? (
              <tr>
                <td class="empty" colSpan={props.columns.length}>
                  {props.empty ?? "No calls in this range."}
                </td>
              </tr>
            ) : (
              rows.map((row) => (
                <tr key={props.rowKey(row)} data-row={props.rowKey(row)}>
                  {props.columns.map((c) => {
                    const v = c.value(row);
                    return (
                      <td
                        key={c.key}
                        class={c.numeric ? "num" : undefined}
                        data-col={c.key}
                        data-value={v === null || v === undefined ? "" : String(v)}
                      >
                        {c.render ? c.render(row) : v === null || v === undefined ? "" : String(v)}
                      </td>
                    );
                  })}
                </tr>
              ))
            )}
          </tbody>
          {props.footer}
        </table>
      </div>
    </section>
  );
}
