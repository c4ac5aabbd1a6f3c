/**
 * A stand-in for `POST /api/ingest` that keeps to the server's contract: 202 with
 * `{"accepted": [...ids], "rejected": [{"index", "id", "error"}]}`, 401 for a bad token,
 * 413 for a body over the limit, and scripted 503/429 answers for outage tests.
 */

import { serve, type LocalServer } from "./server.ts";

export interface ScriptedAnswer {
  status: number;
  retryAfter?: string;
  body?: string;
}

export interface IngestOptions {
  token?: string;
  /** Refuse decompressed bodies larger than this with 413. */
  maxBodyBytes?: number;
  /** Refuse an event with this reason (per-item rejection), or accept it with null. */
  reject?: (event: Record<string, unknown>) => string | null;
  port?: number;
}

export interface SeenRequest {
  status: number;
  events: number;
  gzip: boolean;
  bytes: number;
  authorization: string | null;
  service: string | null;
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export class IngestServer {
  readonly token: string;
  /** Stored events by id, as the table would keep them (once each). */
  readonly stored = new Map<string, Record<string, unknown>>();
  /** Every delivery of an accepted id, duplicates included. */
  readonly deliveries: string[] = [];
  readonly requests: SeenRequest[] = [];
  readonly script: ScriptedAnswer[] = [];
  private server: LocalServer | undefined;
  private readonly options: IngestOptions;
  port = 0;

  constructor(options: IngestOptions = {}) {
    this.options = options;
    this.token = options.token ?? "test-token";
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = await serve((request) => this.handle(request), this.port || this.options.port || 0);
    this.port = this.server.port;
    return this;
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  get duplicates(): number {
    return this.deliveries.length - new Set(this.deliveries).size;
  }

  private answer(seen: Omit<SeenRequest, "status">, status: number, body: unknown, headers: Record<string, string> = {}): Response {
    this.requests.push({ ...seen, status });
    return new Response(typeof body === "string" ? body : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json", ...headers },
    });
  }

  private async handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    let bytes: Uint8Array = new Uint8Array(await request.arrayBuffer());
    const gzip = request.headers.get("content-encoding") === "gzip";
    const seen = {
      events: 0,
      gzip,
      bytes: bytes.byteLength,
      authorization: request.headers.get("authorization"),
      service: request.headers.get("x-ailedger-service"),
    };
    if (path !== "/api/ingest" || request.method !== "POST") return this.answer(seen, 404, { error: "not found" });
    if (seen.authorization !== `Bearer ${this.token}`) return this.answer(seen, 401, { error: "invalid ingest token" });
    const scripted = this.script.shift();
    if (scripted !== undefined) {
      const headers: Record<string, string> = scripted.retryAfter ? { "Retry-After": scripted.retryAfter } : {};
      return this.answer(seen, scripted.status, scripted.body ?? { error: "scripted" }, headers);
    }
    if (gzip) bytes = await gunzip(bytes);
    if (this.options.maxBodyBytes !== undefined && bytes.byteLength > this.options.maxBodyBytes) {
      return this.answer(seen, 413, { error: `body of ${bytes.byteLength} bytes is over the ${this.options.maxBodyBytes}-byte limit` });
    }
    let events: unknown;
    try {
      events = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return this.answer(seen, 400, { error: "body is not JSON" });
    }
    if (!Array.isArray(events)) return this.answer(seen, 400, { error: "body must be a JSON array of events" });
    seen.events = events.length;
    const accepted: string[] = [];
    const rejected: Array<{ index: number; id: string | null; error: string }> = [];
    events.forEach((event: Record<string, unknown>, index: number) => {
      const id = typeof event?.id === "string" ? event.id : null;
      const reason = id === null ? "id: missing" : (this.options.reject?.(event) ?? null);
      if (reason !== null) {
        rejected.push({ index, id, error: reason });
        return;
      }
      accepted.push(id!);
      this.deliveries.push(id!);
      if (!this.stored.has(id!)) this.stored.set(id!, event);
    });
    return this.answer(seen, 202, { accepted, rejected });
  }
}
