/**
 * The default transport: `POST {endpoint}/api/ingest`, a JSON array of events, over fetch.
 * No dependencies: fetch, CompressionStream and AbortSignal are in every supported runtime.
 */

import { INGEST_PATH } from "./constants.ts";
import type { Rejection } from "./errors.ts";
import type { EncodedEvent, SendOutcome, Transport } from "./transport.ts";

export interface HttpTransportOptions {
  /** The ailedger server's base URL (`https://ledger.example.com`), or the full ingest URL. */
  endpoint: string;
  /** An ingest token (one of the server's `AILEDGER_INGEST_TOKENS`). */
  token: string;
  /** A fetch to use instead of the global one (tests, proxies, Workers service bindings). */
  fetch?: typeof fetch;
  /** Compress bodies at least this large with gzip where CompressionStream exists (default 1024 bytes; 0 turns it off). */
  gzipMinBytes?: number;
  /** Give up on one request after this long and retry it (default 10 000 ms). */
  requestTimeoutMs?: number;
  /** Sent as `User-Agent` where the runtime allows it, and as `X-AILedger-Service`. */
  service?: string;
}

/** Parse `Retry-After` (seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function ingestUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, "");
  return base.endsWith(INGEST_PATH) ? base : `${base}${INGEST_PATH}`;
}

async function gzip(body: string): Promise<Uint8Array | undefined> {
  const Compression = (globalThis as { CompressionStream?: typeof CompressionStream }).CompressionStream;
  if (typeof Compression !== "function") return undefined;
  try {
    const stream = new Blob([body]).stream().pipeThrough(new Compression("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The `rejected` list of a 2xx answer, matched to the batch by index and checked by id. */
function rejectionsOf(body: unknown, batch: readonly EncodedEvent[]): Rejection[] {
  if (!isRecord(body) || !Array.isArray(body.rejected)) return [];
  const byId = new Map(batch.map((event, index) => [event.id, index]));
  const out: Rejection[] = [];
  const seen = new Set<number>();
  for (const item of body.rejected) {
    if (!isRecord(item)) continue;
    const id = typeof item.id === "string" ? item.id : null;
    let index = typeof item.index === "number" && Number.isInteger(item.index) ? item.index : -1;
    if (id !== null && batch[index]?.id !== id) index = byId.get(id) ?? index;
    if (index < 0 || index >= batch.length || seen.has(index)) continue;
    seen.add(index);
    const error = typeof item.error === "string" ? item.error : JSON.stringify(item.error ?? "rejected");
    out.push({ index, id: batch[index]!.id, error });
  }
  return out;
}

async function readText(response: Response): Promise<string> {
  try {
    return await response.text();
  } catch {
    return "";
  }
}

function summary(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

export class HttpTransport implements Transport {
  readonly description: string;
  private readonly url: string;
  private readonly token: string;
  private readonly fetchImpl: typeof fetch;
  private readonly gzipMinBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly service: string | undefined;

  constructor(options: HttpTransportOptions) {
    this.url = ingestUrl(options.endpoint);
    this.description = this.url;
    this.token = options.token;
    const fetchImpl = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (typeof fetchImpl !== "function") throw new TypeError("ailedger: this runtime has no fetch; pass options.fetch");
    // Called unbound, a native fetch may throw "Illegal invocation" (Workers, browsers).
    this.fetchImpl = options.fetch ?? ((input, init) => fetchImpl(input, init));
    this.gzipMinBytes = options.gzipMinBytes ?? 1024;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.service = options.service;
  }

  async send(batch: readonly EncodedEvent[], signal: AbortSignal): Promise<SendOutcome> {
    const body = `[${batch.map((event) => event.json).join(",")}]`;
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      Accept: "application/json",
      Authorization: `Bearer ${this.token}`,
    };
    if (this.service) headers["X-AILedger-Service"] = this.service;
    let payload: string | Uint8Array = body;
    if (this.gzipMinBytes > 0 && body.length >= this.gzipMinBytes) {
      const compressed = await gzip(body);
      if (compressed !== undefined) {
        payload = compressed;
        headers["Content-Encoding"] = "gzip";
      }
    }
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.requestTimeoutMs);
    const abort = () => timeout.abort();
    signal.addEventListener("abort", abort, { once: true });
    let response: Response;
    try {
      response = await this.fetchImpl(this.url, {
        method: "POST",
        headers,
        body: payload as BodyInit,
        signal: timeout.signal,
      });
    } catch (error) {
      const reason = timeout.signal.aborted
        ? signal.aborted
          ? "the logger closed during the request"
          : `no answer within ${this.requestTimeoutMs} ms`
        : error instanceof Error
          ? `${error.name}: ${error.message}${causeText(error)}`
          : String(error);
      return { kind: "retry", reason };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", abort);
    }
    return this.outcome(response, batch);
  }

  private async outcome(response: Response, batch: readonly EncodedEvent[]): Promise<SendOutcome> {
    const status = response.status;
    const text = await readText(response);
    if (status >= 200 && status < 300) {
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      return { kind: "accepted", rejected: rejectionsOf(body, batch) };
    }
    const detail = summary(text);
    const reason = `HTTP ${status}${detail ? `: ${detail}` : ""}`;
    if (status === 401 || status === 403) {
      return { kind: "auth", status, reason: `${reason} (check the ingest token)` };
    }
    if (status === 404 || status === 405) {
      return { kind: "auth", status, reason: `${reason} (check the endpoint: ${this.url})` };
    }
    if (status === 413 || status === 400 || status === 422) return { kind: "split", status, reason };
    const retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"));
    return retryAfterMs === undefined ? { kind: "retry", status, reason } : { kind: "retry", status, reason, retryAfterMs };
  }
}

function causeText(error: Error): string {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) return ` (${cause.message})`;
  return "";
}
