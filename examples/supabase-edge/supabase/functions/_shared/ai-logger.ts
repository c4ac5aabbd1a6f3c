/**
 * One ailedger logger per isolate, and the helpers this project's edge functions use to
 * record their AI calls with it.
 *
 *     import { flushInBackground, logAnthropic, trackCall } from "../_shared/ai-logger.ts";
 *
 * Configured from the function's secrets (`supabase secrets set`):
 * `AILEDGER_ENDPOINT` (the ailedger server's base URL) and `AILEDGER_INGEST_TOKEN`
 * (one of the server's `AILEDGER_INGEST_TOKENS`). Without them the functions still work
 * and say once, in the function's logs, that their AI calls are not being recorded.
 */

import { AICallLogger, track, type CallFields, type TrackedCall, type TrackOptions } from "@ailedger/producer";

/** What Supabase's runtime offers to keep an isolate alive after the response. */
interface EdgeRuntimeLike {
  waitUntil(promise: Promise<unknown>): void;
}

/** How long the events of one request may take to leave, at most. */
const FLUSH_TIMEOUT_MS = 5_000;

let logger: AICallLogger | undefined;
let unconfigured = false;

/** The isolate's logger, made on first use from the function's secrets; undefined without them. */
export function ledger(): AICallLogger | undefined {
  if (logger !== undefined || unconfigured) return logger;
  const endpoint = Deno.env.get("AILEDGER_ENDPOINT");
  const token = Deno.env.get("AILEDGER_INGEST_TOKEN");
  if (!endpoint || !token) {
    unconfigured = true;
    console.warn(
      "ailedger: AILEDGER_ENDPOINT or AILEDGER_INGEST_TOKEN is not set, so AI calls are not being " +
        "recorded; set both with `supabase secrets set AILEDGER_ENDPOINT=… AILEDGER_INGEST_TOKEN=…`",
    );
    return undefined;
  }
  logger = new AICallLogger({
    endpoint,
    token,
    service: Deno.env.get("AILEDGER_SERVICE") ?? "supabase-edge",
    // An edge request is short: send each batch soon rather than after a second.
    flushIntervalMs: 200,
  });
  return logger;
}

/** What a function knows about a call beyond the provider's response. */
export interface CallContext {
  task: string;
  /** The model asked for: recorded when the response does not say (a failed call). */
  model?: string;
  /** Why the call failed; recorded as `error_message`, with `action: "fallback_to_rules"`. */
  error?: unknown;
  /** The processing job (the PDF upload) the call was made for. */
  jobId?: string;
  imageId?: string;
  latencyMs?: number;
  /** The request sent to the provider; redacted and size-capped before it leaves. */
  request?: unknown;
  confidence?: Record<string, number>;
  /** Any other event field (`fallback_reason`, `action`, …). */
  extra?: Partial<CallFields>;
}

function fields(response: unknown, provider: string, context: CallContext): CallFields {
  const reported = (response as { model?: unknown } | null | undefined)?.model;
  const model = typeof reported === "string" && reported ? reported : context.model ?? "unknown";
  const error = context.error;
  return {
    ...context.extra,
    task: context.task,
    model,
    provider,
    response,
    ...(context.jobId !== undefined && { job_id: context.jobId }),
    ...(context.imageId !== undefined && { image_id: context.imageId }),
    ...(context.latencyMs !== undefined && { latency_ms: Math.round(context.latencyMs) }),
    ...(context.request !== undefined && { request_data: context.request }),
    ...(context.confidence !== undefined && { confidence_breakdown: context.confidence }),
    ...(error !== undefined && {
      error_message: error instanceof Error ? error : String(error),
      action: "fallback_to_rules" as const,
    }),
  };
}

/**
 * Record one Anthropic Messages API call from its response (the JSON or the SDK object):
 * model and token counts, cache reads and writes included, come from `response.usage`.
 * For a failed call pass `undefined`, `model` and `error`. Returns the event id ("" when
 * the logger is not configured). Never throws.
 */
export function logAnthropic(response: unknown, context: CallContext): string {
  return ledger()?.log(fields(response, "anthropic", context)) ?? "";
}

/** Record one Together AI chat completion from its response (OpenAI-compatible JSON). */
export function logTogether(response: unknown, context: CallContext): string {
  return ledger()?.log(fields(response, "together", context)) ?? "";
}

/**
 * Run `fn` as one AI call and record it: latency measured, tokens read from the response
 * it returns, an error recorded (`error_message`, `fallback_to_rules`) and rethrown.
 * Without a configured logger `fn` simply runs.
 */
export function trackCall<T>(
  task: string,
  model: string,
  fn: (call: TrackedCall) => T | Promise<T>,
  options: Omit<TrackOptions, "logger"> = {},
): Promise<T> {
  const sink = ledger();
  return track(task, model, fn, sink === undefined ? { ...options, logger: { log: () => "" } } : { ...options, logger: sink });
}

/**
 * Let this request's events leave without holding up the response.
 *
 * On Supabase, `EdgeRuntime.waitUntil` keeps the isolate alive until the flush ends, and
 * this resolves at once. Elsewhere (plain `deno run`, tests) it waits for the flush, at most
 * `timeoutMs`. Never rejects; events that could not leave in time stay buffered and are
 * retried with the isolate's next requests.
 */
export async function flushInBackground(timeoutMs: number = FLUSH_TIMEOUT_MS): Promise<void> {
  const sink = ledger();
  if (sink === undefined) return;
  const sent = sink.flush(timeoutMs);
  const runtime = (globalThis as { EdgeRuntime?: EdgeRuntimeLike }).EdgeRuntime;
  if (runtime !== undefined && typeof runtime.waitUntil === "function") {
    runtime.waitUntil(sent);
    return;
  }
  await sent;
}
