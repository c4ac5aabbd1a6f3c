/**
 * AICallLogger: `log()` appends to a bounded buffer and returns; batches leave in the
 * background, through the ingest API (default) or straight to Redis.
 *
 * The caller pays for an id, a clock reading and an array push. Usage extraction,
 * redaction and encoding happen when a batch is taken, off the caller's path. Failed
 * batches go back to the front of the buffer and are retried with backoff, so order is
 * kept and memory stays within `maxBuffer` events; an event that finds the buffer full
 * is dropped and counted. The same id is sent on every attempt, so a retry that
 * duplicates an earlier delivery is dropped by the server, never stored twice.
 */

import { Backoff, type BackoffOptions } from "./backoff.ts";
import { currentJobId } from "./context.ts";
import { AILedgerError, type Rejection } from "./errors.ts";
import type { CallFields } from "./event.ts";
import { HttpTransport } from "./http.ts";
import { utf8Length } from "./redact.ts";
import { backgroundTimer, newEventId, onProcessIdle, readEnv, type TimerHandle } from "./runtime.ts";
import type { EncodedEvent, SendOutcome, Transport } from "./transport.ts";
import { encodeEvent, type LoggedCall } from "./wire.ts";

export interface LoggerOptions {
  /** The ailedger server's base URL; default `AILEDGER_ENDPOINT`. */
  endpoint?: string;
  /** An ingest token; default `AILEDGER_INGEST_TOKEN`. */
  token?: string;
  /** The service's name: added to every event as `service`, and sent as a header. */
  service?: string;
  /** Where batches go instead of the ingest API (e.g. `RedisTransport`). */
  transport?: Transport;
  /** Events per request (default 500). */
  batchSize?: number;
  /** The longest an event waits for a batch to fill (default 1000 ms). */
  flushIntervalMs?: number;
  /** Events held at most, sent or not; past it new events are dropped and counted (default 10 000). */
  maxBuffer?: number;
  /** The cap on `request_data` and `response_data`, each, in JSON bytes (default 16 384). */
  maxPayloadBytes?: number;
  /** The cap on one request's JSON, before compression (default 1 000 000 bytes). */
  maxBatchBytes?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** Compress request bodies at least this large (default 1024 bytes; 0 turns it off). */
  gzipMinBytes?: number;
  /** Give up on one request after this long and retry it (default 10 000 ms). */
  requestTimeoutMs?: number;
  /** Delays between attempts after a failure (default 100 ms doubling up to 10 s). */
  backoff?: BackoffOptions;
  /** After a refused token or endpoint, wait at least this long before trying again (default 30 000 ms). */
  authRetryMs?: number;
  /** The longest `Retry-After` obeyed (default 300 000 ms). */
  maxRetryAfterMs?: number;
  /** Told once per problem (refused token, overflow, outage) and of every refused event; default console.warn. */
  onError?: (error: AILedgerError) => void;
  /** Node and Bun: flush when the process has nothing left to do (default true). */
  flushOnExit?: boolean;
  /** How long that exit flush, and `close()`, wait (default 5000 ms). */
  exitTimeoutMs?: number;
}

/** What the logger has done so far. */
export interface ProducerStats {
  /** `log()` calls. */
  logged: number;
  /** Held in memory: waiting for a batch, in flight, or waiting for a retry. */
  buffered: number;
  /** Accepted by the server (or Redis). */
  sent: number;
  /** Lost on this side: buffer full, logged after `close()`, or still unsent when `close()` gave up. */
  dropped: number;
  /** Refused by the server for good (each reported through `onError`), or too large to send. */
  rejected: number;
  /** Attempts that failed and were retried. */
  retries: number;
}

interface Pending {
  readonly seq: number;
  readonly call: LoggedCall;
  encoded?: EncodedEvent;
}

interface FlushWaiter {
  readonly target: number;
  failed: boolean;
  resolve(ok: boolean): void;
}

function positive(value: number | undefined, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : fallback;
}

function defaultReport(error: AILedgerError): void {
  console.warn(`ailedger: ${error.message}`);
}

export class AICallLogger {
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly maxBuffer: number;
  readonly maxPayloadBytes: number;
  readonly maxBatchBytes: number;
  readonly service: string | undefined;
  private readonly transport: Transport;
  private readonly backoff: Backoff;
  private readonly authRetryMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly exitTimeoutMs: number;
  private readonly report: (error: AILedgerError) => void;

  private queue: Pending[] = [];
  private inflight: Pending[] = [];
  private seq = 0;
  private waiters: FlushWaiter[] = [];
  /** Events lost while no flush was waiting for them: the next flush() says false. */
  private unreportedLosses = 0;
  private loop: Promise<void> | undefined;
  private timer: TimerHandle | undefined;
  private timerDue = Infinity;
  private retryAt = 0;
  private readonly abort = new AbortController();
  private closing = false;
  private closed = false;
  private authFailing = false;
  private unreachable = false;
  private overflowing = false;

  /** After a split: the size of the next batch, so halves go one at a time. */
  private nextBatchLimit: number | undefined;
  private counts = { logged: 0, sent: 0, dropped: 0, rejected: 0, retries: 0 };

  constructor(options: LoggerOptions = {}) {
    this.batchSize = Math.floor(positive(options.batchSize, 500));
    this.flushIntervalMs = positive(options.flushIntervalMs, 1000);
    this.maxBuffer = Math.floor(positive(options.maxBuffer, 10_000));
    this.maxPayloadBytes = Math.floor(positive(options.maxPayloadBytes, 16_384));
    this.maxBatchBytes = Math.floor(positive(options.maxBatchBytes, 1_000_000));
    this.authRetryMs = positive(options.authRetryMs, 30_000);
    this.maxRetryAfterMs = positive(options.maxRetryAfterMs, 300_000);
    this.exitTimeoutMs = positive(options.exitTimeoutMs, 5000);
    this.backoff = new Backoff(options.backoff);
    this.service = options.service;
    const onError = options.onError ?? defaultReport;
    this.report = (error) => {
      try {
        onError(error);
      } catch {
        // A failing error handler must not break the sender.
      }
    };
    if (options.transport !== undefined) {
      this.transport = options.transport;
    } else {
      const endpoint = options.endpoint ?? readEnv("AILEDGER_ENDPOINT");
      const token = options.token ?? readEnv("AILEDGER_INGEST_TOKEN");
      if (!endpoint) {
        throw new TypeError("ailedger: no endpoint; pass { endpoint, token } or set AILEDGER_ENDPOINT");
      }
      if (!token) {
        throw new TypeError("ailedger: no ingest token; pass { token } or set AILEDGER_INGEST_TOKEN");
      }
      this.transport = new HttpTransport({
        endpoint,
        token,
        ...(options.fetch !== undefined && { fetch: options.fetch }),
        ...(options.gzipMinBytes !== undefined && { gzipMinBytes: options.gzipMinBytes }),
        ...(options.requestTimeoutMs !== undefined && { requestTimeoutMs: options.requestTimeoutMs }),
        ...(options.service !== undefined && { service: options.service }),
      });
    }
    if (options.flushOnExit ?? true) watchExit(this);
  }

  // -- the caller's side ---------------------------------------------------

  /** Record one AI call; returns its event id at once. Never throws. */
  log(fields: CallFields): string {
    let id = "";
    try {
      const given = fields?.id;
      id = typeof given === "string" && given ? given : newEventId();
      const seq = ++this.seq;
      this.counts.logged += 1;
      if (this.closed || this.queue.length + this.inflight.length >= this.maxBuffer) {
        this.lose(seq, "dropped");
        if (!this.overflowing) {
          this.overflowing = true;
          const why = this.closed
            ? "the logger is closed; events logged after close() are dropped"
            : `the buffer is full (${this.maxBuffer} events); dropping events until ${this.transport.description} takes the buffered ones`;
          queueMicrotask(() => this.report(new AILedgerError("overflow", why)));
        }
        return id;
      }
      const copy: Record<string, unknown> = { ...fields };
      if (copy.job_id === undefined && copy.jobId === undefined) {
        const job = currentJobId();
        if (job !== undefined) copy.job_id = job;
      }
      if (this.service !== undefined && copy.service === undefined) copy.service = this.service;
      this.queue.push({ seq, call: { id, loggedAt: Date.now(), fields: copy } });
      this.wake(this.queue.length >= this.batchSize ? 0 : this.flushIntervalMs);
      return id;
    } catch {
      // The promise: logging never breaks the caller.
      this.counts.dropped += 1;
      return id;
    }
  }

  /**
   * Send what is buffered; resolves true once everything logged before this call was
   * accepted, false when `timeoutMs` passes first, or when something logged since the
   * previous flush was dropped or refused. Never rejects: hand it to
   * `EdgeRuntime.waitUntil(logger.flush())` or `ctx.waitUntil(logger.flush())`.
   */
  flush(timeoutMs: number = 5000): Promise<boolean> {
    const target = this.seq;
    const lost = this.unreportedLosses > 0;
    this.unreportedLosses = 0;
    const first = this.firstPendingSeq();
    if (first === undefined || first > target) return Promise.resolve(!lost);
    if (this.authFailing || this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let timer: TimerHandle | undefined;
      const waiter: FlushWaiter = {
        target,
        failed: lost,
        resolve: (ok) => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(ok);
        },
      };
      this.waiters.push(waiter);
      timer = setTimeout(() => waiter.resolve(false), Math.max(0, timeoutMs));
      this.wake(0);
    });
  }

  /**
   * Flush with a deadline, then stop: later `log()` calls are dropped and counted, and
   * what is still unsent when the deadline passes is dropped too. True if all was sent.
   */
  async close(timeoutMs: number = this.exitTimeoutMs): Promise<boolean> {
    if (this.closed) return this.queue.length === 0 && this.inflight.length === 0;
    this.closing = true;
    unwatchExit(this);
    const sent = await this.flush(timeoutMs);
    this.closed = true;
    this.abort.abort();
    this.clearTimer();
    await this.loop;
    const left = this.queue.length + this.inflight.length;
    for (const pending of this.queue) this.lose(pending.seq, "dropped");
    this.queue = [];
    for (const waiter of [...this.waiters]) waiter.resolve(false);
    try {
      await this.transport.close?.();
    } catch {
      // Closing a connection that is already gone is no news.
    }
    return sent && left === 0;
  }

  get stats(): ProducerStats {
    return { ...this.counts, buffered: this.queue.length + this.inflight.length };
  }

  // -- the sender's side -----------------------------------------------------

  private firstPendingSeq(): number | undefined {
    return this.inflight[0]?.seq ?? this.queue[0]?.seq;
  }

  /** Make sure a send happens within `delayMs` (later, while a retry is not yet due). */
  private wake(delayMs: number): void {
    if (this.loop !== undefined || this.closed) return; // the running loop sees new work
    const now = Date.now();
    const due = Math.max(now + delayMs, this.retryAt);
    if (this.timer !== undefined && this.timerDue <= due) return;
    this.clearTimer();
    this.timerDue = due;
    this.timer = backgroundTimer(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.start();
    }, due - now);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  private start(): void {
    if (this.loop !== undefined || this.closed) return;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
      this.afterRun();
    });
  }

  /** After a run: wait for the next retry, the interval, or nothing. */
  private afterRun(): void {
    if (this.closed) return;
    const first = this.queue[0];
    if (first === undefined) return;
    if (this.urgent()) this.wake(0);
    else this.wake(first.call.loggedAt + this.flushIntervalMs - Date.now());
  }

  /** Whether the oldest buffered events should leave now rather than wait for more. */
  private urgent(): boolean {
    const first = this.queue[0];
    if (first === undefined) return false;
    if (this.queue.length >= this.batchSize || this.closing) return true;
    if (this.waiters.some((w) => w.target >= first.seq)) return true;
    return Date.now() - first.call.loggedAt >= this.flushIntervalMs;
  }

  private async run(): Promise<void> {
    while (!this.closed && this.queue.length > 0 && Date.now() >= this.retryAt && this.urgent()) {
      const batch = this.take();
      let outcome: SendOutcome;
      try {
        outcome = await this.transport.send(
          batch.map((p) => p.encoded!),
          this.abort.signal,
        );
      } catch (error) {
        // Transports should not throw; one that does is treated as an outage.
        outcome = { kind: "retry", reason: error instanceof Error ? error.message : String(error) };
      }
      this.inflight = [];
      try {
        this.settle(batch, outcome);
      } catch (error) {
        // Guarded: the loop never dies of one bad answer. The batch is not retried.
        for (const pending of batch) this.lose(pending.seq, "dropped");
        this.report(new AILedgerError("protocol", `could not handle the answer: ${String(error)}`));
      }
      this.resolveWaiters();
    }
  }

  /** Move the oldest events, up to one batch and `maxBatchBytes`, into `inflight`, encoded. */
  private take(): Pending[] {
    let bytes = 2;
    let count = 0;
    const limit = this.nextBatchLimit ?? this.batchSize;
    this.nextBatchLimit = undefined;
    for (const pending of this.queue) {
      if (count >= limit) break;
      if (pending.encoded === undefined) {
        const json = encodeEvent(pending.call, this.maxPayloadBytes);
        pending.encoded = { id: pending.call.id, json, bytes: utf8Length(json) };
      }
      if (count > 0 && bytes + pending.encoded.bytes + 1 > this.maxBatchBytes) break;
      bytes += pending.encoded.bytes + 1;
      count += 1;
    }
    const batch = this.queue.splice(0, count);
    this.inflight = batch;
    return batch;
  }

  private settle(batch: Pending[], outcome: SendOutcome): void {
    if (this.closed && outcome.kind !== "accepted") {
      for (const pending of batch) this.lose(pending.seq, "dropped");
      return;
    }
    switch (outcome.kind) {
      case "accepted":
        return this.accepted(batch, outcome.rejected);
      case "split":
        return this.split(batch, outcome.reason);
      case "retry": {
        this.queue.unshift(...batch);
        this.counts.retries += 1;
        let delay = this.backoff.nextDelay();
        if (outcome.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(outcome.retryAfterMs, this.maxRetryAfterMs));
        this.retryAt = Date.now() + delay;
        if (!this.unreachable) {
          this.unreachable = true;
          this.report(
            new AILedgerError(
              "unreachable",
              `cannot deliver to ${this.transport.description} (${outcome.reason}); ` +
                `keeping up to ${this.maxBuffer} events in memory and retrying`,
              outcome.status === undefined ? {} : { status: outcome.status },
            ),
          );
        }
        return;
      }
      case "auth": {
        this.queue.unshift(...batch);
        this.counts.retries += 1;
        this.retryAt = Date.now() + Math.max(this.authRetryMs, this.backoff.nextDelay());
        if (!this.authFailing) {
          this.authFailing = true;
          this.report(
            new AILedgerError(
              "auth",
              `${this.transport.description} refused the logger: ${outcome.reason}; ` +
                `keeping up to ${this.maxBuffer} events buffered and retrying every ${Math.round(this.authRetryMs / 1000)} s`,
              { status: outcome.status },
            ),
          );
        }
        // Waiting would not help: flushes say false now instead of at their deadline.
        for (const waiter of [...this.waiters]) waiter.resolve(false);
        return;
      }
    }
  }

  private accepted(batch: Pending[], rejected: readonly Rejection[]): void {
    if (this.unreachable || this.authFailing) this.backoff.reset();
    this.unreachable = false;
    this.authFailing = false;
    this.retryAt = 0;
    const refused = new Set<number>();
    for (const rejection of rejected) {
      const pending = batch[rejection.index];
      if (pending === undefined || refused.has(rejection.index)) continue;
      refused.add(rejection.index);
      this.lose(pending.seq, "rejected");
    }
    this.counts.sent += batch.length - refused.size;
    if (refused.size > 0) {
      const first = rejected[0]!;
      const more = refused.size > 1 ? ` (and ${refused.size - 1} more)` : "";
      this.report(
        new AILedgerError(
          "rejected",
          `${this.transport.description} refused ${refused.size} event(s): ${first.id}: ${first.error}${more}`,
          { rejections: rejected.filter((r) => batch[r.index] !== undefined) },
        ),
      );
    }
    if (this.overflowing && this.queue.length < this.maxBuffer / 2) this.overflowing = false;
  }

  /** Refused as a whole (too large, or a bad event in it): halve it until the culprit is alone. */
  private split(batch: Pending[], reason: string): void {
    if (batch.length > 1) {
      this.queue.unshift(...batch);
      // The next take() stops at the first half; the second half follows as its own batch.
      this.nextBatchLimit = Math.ceil(batch.length / 2);
      return;
    }
    const pending = batch[0]!;
    this.lose(pending.seq, "rejected");
    const size = pending.encoded?.bytes ?? 0;
    this.report(
      new AILedgerError("rejected", `${this.transport.description} refused event ${pending.call.id} (${size} bytes): ${reason}`, {
        rejections: [{ index: 0, id: pending.call.id, error: reason }],
      }),
    );
  }


  /** An event that will never reach the server: counted, and owed to a flush as false. */
  private lose(seq: number, as: "dropped" | "rejected"): void {
    this.counts[as] += 1;
    let covered = false;
    for (const waiter of this.waiters) {
      if (waiter.target >= seq) {
        waiter.failed = true;
        covered = true;
      }
    }
    if (!covered) this.unreportedLosses += 1;
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const first = this.firstPendingSeq();
    for (const waiter of [...this.waiters]) {
      if (first === undefined || first > waiter.target) waiter.resolve(!waiter.failed);
    }
  }

  /** Called when a Node or Bun process has nothing left to do. */
  flushBeforeExit(): Promise<boolean> | undefined {
    if (this.closed || this.queue.length + this.inflight.length === 0) return undefined;
    unwatchExit(this);
    return this.flush(this.exitTimeoutMs);
  }
}

/** Open loggers to flush when a Node or Bun process is about to exit. */
const exitFlush = new Set<WeakRef<AICallLogger>>();
const exitRefs = new WeakMap<AICallLogger, WeakRef<AICallLogger>>();
let exitHookArmed = false;

function watchExit(logger: AICallLogger): void {
  // Cloudflare Workers have no WeakRef, and no process exit either: there, flush() goes to
  // ctx.waitUntil().
  if (typeof WeakRef === "undefined") return;
  const ref = new WeakRef(logger);
  exitRefs.set(logger, ref);
  exitFlush.add(ref);
  armExitHook();
}

function unwatchExit(logger: AICallLogger): void {
  const ref = exitRefs.get(logger);
  if (ref !== undefined) exitFlush.delete(ref);
}

function armExitHook(): void {
  if (exitHookArmed) return;
  exitHookArmed = onProcessIdle(() => {
    exitHookArmed = false;
    let started = false;
    for (const ref of [...exitFlush]) {
      const logger = ref.deref();
      if (logger === undefined) exitFlush.delete(ref);
      else if (logger.flushBeforeExit() !== undefined) started = true;
    }
    // Once those flushes end the process goes idle again: look once more then.
    if (started && exitFlush.size > 0) armExitHook();
  });
}
