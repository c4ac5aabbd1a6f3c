// Every view is a function of the URL: path for the view, query for range, filters and sorts.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { view: "overview" }
  | { view: "jobs" }
  | { view: "budgets" }
  | { view: "job"; id: string }
  | { view: "image"; id: string }
  | { view: "missing"; path: string };

export function parseRoute(pathname: string): Route {
  if (pathname === "/" || pathname === "") return { view: "overview" };
  if (pathname === "/jobs" || pathname === "/jobs/") return { view: "jobs" };
  if (pathname === "/budgets" || pathname === "/budgets/") return { view: "budgets" };
  const job = /^\/jobs\/([^/]+)$/.exec(pathname);
  if (job) return { view: "job", id: decodeURIComponent(job[1]!) };
  if (pathname.startsWith("/images/") && pathname.length > "/images/".length) {
    // Image ids may hold "/": everything after the prefix, each segment decoded.
    const id = pathname.slice("/images/".length).split("/").map(decodeURIComponent).join("/");
    return { view: "image", id };
  }
  return { view: "missing", path: pathname };
}

export function imagePath(id: string): string {
  return `/images/${id.split("/").map(encodeURIComponent).join("/")}`;
}

export function jobPath(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}

const NAVIGATED = "ailedger:navigate";

export function navigate(href: string, { replace = false } = {}): void {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  window.dispatchEvent(new Event(NAVIGATED));
}

/** Sets (or, with null, removes) query parameters of the current URL. */
export function setParams(changes: Record<string, string | null>, opts = {}): void {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === "") params.delete(key);
    else params.set(key, value);
  }
  const qs = params.toString();
  navigate(`${location.pathname}${qs ? `?${qs}` : ""}`, opts);
}

export function useLocation(): { pathname: string; search: string } {
  const read = () => ({ pathname: location.pathname, search: location.search });
  const [loc, setLoc] = useState(read);
  useEffect(() => {
    const update = () => setLoc(read());
    window.addEventListener("popstate", update);
    window.addEventListener(NAVIGATED, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(NAVIGATED, update);
    };
  }, []);
  return loc;
}

/** A click on an internal link changes the view without reloading the page. */
export function followLink(event: MouseEvent): void {
  const link = (event.target as Element | null)?.closest?.("a");
  if (
    !link ||
    event.defaultPrevented ||
    event.button !== 0 ||
    event.metaKey ||
    event.ctrlKey ||
    event.shiftKey ||
    event.altKey ||
    link.target ||
    link.hasAttribute("download") ||
    link.origin !== location.origin ||
    link.pathname.startsWith("/api/") ||
    link.pathname.startsWith("/docs")
  ) {
    return;
  }
  event.preventDefault();
  navigate(link.pathname + link.search + link.hash);
}

// -- time ranges ----------------------------------------------------------------------

export const RANGES: Record<string, { label: string; ms: number }> = {
  "1h": { label: "1 h", ms: 3_600_000 },
  "24h": { label: "24 h", ms: 86_400_000 },
  "7d": { label: "7 d", ms: 7 * 86_400_000 },
  "30d": { label: "30 d", ms: 30 * 86_400_000 },
};

export interface TimeRange {
  key: string; // a RANGES key, or "custom"
  from: string;
  to: string;
  live: boolean; // relative to now: refreshed
}

export function timeRange(params: URLSearchParams, now = new Date()): TimeRange {
  const from = params.get("from");
  const to = params.get("to");
  if (params.get("range") === "custom" || (from && !params.get("range"))) {
    const end = to ? new Date(to) : now;
    const start = from ? new Date(from) : new Date(end.getTime() - RANGES["24h"]!.ms);
    if (!Number.isNaN(start.getTime()) && !Number.isNaN(end.getTime())) {
      return { key: "custom", from: start.toISOString(), to: end.toISOString(), live: !to };
    }
  }
  const key = params.get("range") ?? "24h";
  const span = (RANGES[key] ?? RANGES["24h"]!).ms;
  return {
    key: RANGES[key] ? key : "24h",
    from: new Date(now.getTime() - span).toISOString(),
    to: now.toISOString(),
    live: true,
  };
}
