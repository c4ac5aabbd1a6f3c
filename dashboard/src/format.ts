// Every number the dashboard shows is formatted here, for the reader's locale.
// Costs arrive as exact decimal strings; below a cent they keep their significant digits;
// an unknown cost (an unpriced model) is "—", never $0.

export const NONE = "—";

const locale = typeof navigator === "undefined" ? "en-US" : navigator.language;
const usd = new Intl.NumberFormat(locale, { style: "currency", currency: "USD" });
const usdSmall = new Intl.NumberFormat(locale, {
  style: "currency",
  currency: "USD",
  maximumSignificantDigits: 3,
});
const integer = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });
const percent1 = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
const percent2 = new Intl.NumberFormat(locale, {
  style: "percent",
  maximumSignificantDigits: 2,
});
const decimal2 = new Intl.NumberFormat(locale, {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const oneDecimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });

type Num = number | string | null | undefined;

function num(value: Num): number | null {
  if (value === null || value === undefined || value === "") return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** USD; `null` (unknown) is "—". Below a cent: three significant digits ($0.00000074). */
export function money(value: Num): string {
  const n = num(value);
  if (n === null) return NONE;
  if (n !== 0 && Math.abs(n) < 0.01) return usdSmall.format(n);
  return usd.format(n);
}

/** A cost that is unknown when every call behind it is unpriced. */
export function cost(value: Num, calls: number, unpriced: number): string {
  return calls > 0 && unpriced >= calls ? NONE : money(value);
}

export function count(value: Num): string {
  const n = num(value);
  return n === null ? NONE : integer.format(n);
}

/** Token counts: exact below 10,000, compact above (1.2M). */
export function tokens(value: Num): string {
  const n = num(value);
  if (n === null) return NONE;
  return Math.abs(n) < 10_000 ? integer.format(n) : compact.format(n);
}

export function percent(rate: Num): string {
  const n = num(rate);
  if (n === null) return NONE;
  return n !== 0 && Math.abs(n) < 0.01 ? percent2.format(n) : percent1.format(n);
}

export function confidence(value: Num): string {
  const n = num(value);
  return n === null ? NONE : decimal2.format(n);
}

/** Milliseconds as a reader says them: 850 ms, 4.2 s, 3 min 12 s, 2 h 5 min. */
export function duration(ms: Num): string {
  const n = num(ms);
  if (n === null) return NONE;
  if (n < 1000) return `${integer.format(n)} ms`;
  const s = n / 1000;
  if (s < 60) return `${oneDecimal.format(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m - h * 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function seconds(s: Num): string {
  const n = num(s);
  return n === null ? NONE : duration(n * 1000);
}

const dateTime = new Intl.DateTimeFormat(locale, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const clock = new Intl.DateTimeFormat(locale, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function when(iso: string | null | undefined): string {
  return iso ? dateTime.format(new Date(iso)) : NONE;
}

export function time(date: Date): string {
  return clock.format(date);
}
