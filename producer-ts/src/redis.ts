/**
 * `@ailedger/producer/redis`: XADD events straight to the ailedger stream, for Node servers
 * next to the Redis the workers read. The entry format is the Python producer's exactly:
 * fields `e` (the event as one JSON object) and `v` ("1"), one pipeline per batch.
 *
 * ioredis is an optional peer dependency, imported on first use; or pass your own client.
 */

import { DEFAULT_STREAM, EVENT_FIELD, VERSION_FIELD, WIRE_VERSION } from "./constants.ts";
import { AICallLogger, type LoggerOptions } from "./logger.ts";
import { readEnv } from "./runtime.ts";
import type { EncodedEvent, SendOutcome, Transport } from "./transport.ts";

/** The part of an ioredis pipeline this transport uses. */
export interface RedisPipelineLike {
  xadd(...args: string[]): unknown;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
}

/** The part of an ioredis client this transport uses. */
export interface RedisLike {
  pipeline(): RedisPipelineLike;
  quit?(): Promise<unknown>;
  disconnect?(): void;
  on?(event: string, listener: (...args: unknown[]) => void): unknown;
}

export interface RedisTransportOptions {
  /** An ioredis client (or compatible); the transport leaves it open on close. */
  client?: RedisLike;
  /** Used when no client is given; default `AILEDGER_REDIS_URL`, else redis://127.0.0.1:6379/0. */
  url?: string;
  /** The stream key; default `AILEDGER_STREAM`, else `ailedger:events`. */
  stream?: string;
  /** Treat a pipeline not answered within this long as failed, and retry it (default 5000 ms). */
  timeoutMs?: number;
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisLike;

async function loadIoredis(): Promise<RedisConstructor> {
  const specifier = "ioredis";
  const module = (await import(specifier)) as { default?: unknown; Redis?: unknown };
  const candidates = [module.Redis, (module.default as { default?: unknown } | undefined)?.default, module.default];
  const ctor = candidates.find((c) => typeof c === "function");
  if (ctor === undefined) throw new Error("the ioredis module has no Redis class");
  return ctor as RedisConstructor;
}

export class RedisTransport implements Transport {
  readonly stream: string;
  readonly description: string;
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly ownsClient: boolean;
  private client: Promise<RedisLike> | undefined;

  constructor(options: RedisTransportOptions = {}) {
    this.stream = options.stream ?? readEnv("AILEDGER_STREAM") ?? DEFAULT_STREAM;
    this.url = options.url ?? readEnv("AILEDGER_REDIS_URL") ?? "redis://127.0.0.1:6379/0";
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.ownsClient = options.client === undefined;
    if (options.client !== undefined) this.client = Promise.resolve(options.client);
    this.description = `Redis stream ${this.stream}`;
  }

  private connect(): Promise<RedisLike> {
    this.client ??= loadIoredis().then((Redis) => {
      const client = new Redis(this.url, {
        // Fail fast and let the logger's backoff decide when to try again.
        maxRetriesPerRequest: 1,
        connectTimeout: 1000,
        retryStrategy: (times: number) => Math.min(100 * 2 ** times, 2000),
      });
      client.on?.("error", () => {
        // Reported through send outcomes, once per outage, by the logger.
      });
      return client;
    });
    this.client.catch(() => {
      this.client = undefined; // not installed, or a broken URL: try again next time
    });
    return this.client;
  }

  async send(batch: readonly EncodedEvent[], signal: AbortSignal): Promise<SendOutcome> {
    let client: RedisLike;
    try {
      client = await this.connect();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return { kind: "retry", reason: `cannot load ioredis (npm install ioredis): ${reason}` };
    }
    const pipeline = client.pipeline();
    for (const event of batch) {
      pipeline.xadd(this.stream, "*", EVENT_FIELD, event.json, VERSION_FIELD, WIRE_VERSION);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const giveUp = new Promise<SendOutcome>((resolve) => {
      timer = setTimeout(() => resolve({ kind: "retry", reason: `no answer within ${this.timeoutMs} ms` }), this.timeoutMs);
      onAbort = () => resolve({ kind: "retry", reason: "the logger closed during the request" });
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    const exec = pipeline.exec().then(
      (results): SendOutcome => {
        const failed = (results ?? []).find(([error]) => error !== null);
        if (results === null) return { kind: "retry", reason: "the pipeline was discarded" };
        // Some entries may be in already: sending the batch again is safe, the workers
        // store each event id once.
        if (failed !== undefined) return { kind: "retry", reason: String(failed[0]?.message ?? failed[0]) };
        return { kind: "accepted", rejected: [] };
      },
      (error: unknown): SendOutcome => ({
        kind: "retry",
        reason: error instanceof Error ? error.message : String(error),
      }),
    );
    try {
      return await Promise.race([exec, giveUp]);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    }
  }

  async close(): Promise<void> {
    const pending = this.client;
    this.client = undefined;
    if (!this.ownsClient || pending === undefined) return;
    let client: RedisLike;
    try {
      client = await pending;
    } catch {
      return;
    }
    const status = (client as { status?: unknown }).status;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // QUIT lets pending replies arrive; a client that never connected just hangs up.
      if (status === "ready" && client.quit !== undefined) {
        await Promise.race([client.quit(), new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
      }
    } catch {
      // Already gone.
    } finally {
      clearTimeout(timer);
      client.disconnect?.();
    }
  }
}

/**
 * A logger that XADDs to Redis. Options are the logger's and the transport's; the send
 * interval defaults to 50 ms, as in the Python producer.
 */
export function createRedisLogger(options: LoggerOptions & RedisTransportOptions = {}): AICallLogger {
  const { client, url, stream, timeoutMs, ...loggerOptions } = options;
  const transport = new RedisTransport({
    ...(client !== undefined && { client }),
    ...(url !== undefined && { url }),
    ...(stream !== undefined && { stream }),
    ...(timeoutMs !== undefined && { timeoutMs }),
  });
  return new AICallLogger({ flushIntervalMs: 50, ...loggerOptions, transport });
}
