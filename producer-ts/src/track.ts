/** `track()`: measure an AI call's latency and record its outcome; errors are recorded and rethrown. */

import { FALLBACK_TO_RULES } from "./constants.ts";
import type { CallFields, PartialCallFields } from "./event.ts";
import { errorName } from "./redact.ts";

/** Anything with `log(fields) → id`: an AICallLogger, or a stand-in in tests. */
export interface CallSink {
  log(fields: CallFields): string;
}

export interface TrackOptions extends PartialCallFields {
  /** The logger to record on; default the module's default logger. */
  logger?: CallSink;
}

/** One AI call being measured: `record()` adds fields (tokens, a response, scores). */
export class TrackedCall {
  readonly fields: Record<string, unknown>;
  /** The id of the recorded event, once the call has ended. */
  eventId = "";

  constructor(fields: Record<string, unknown>) {
    this.fields = fields;
  }

  /** Add or replace fields of the event, e.g. `{ response }` or `{ confidence_breakdown }`. */
  record(fields: PartialCallFields): void {
    Object.assign(this.fields, fields);
  }
}

function looksLikeResponse(value: unknown): boolean {
  return value !== null && typeof value === "object" && "usage" in value;
}

function describe(error: unknown): { text: string; name: string } {
  if (error instanceof Error) {
    const name = errorName(error);
    return { text: `${name}: ${error.message}`, name };
  }
  return { text: `Error: ${String(error)}`, name: "Error" };
}

let resolveDefault: () => CallSink | undefined = () => undefined;

/** Set by the package's entry point, so that `track()` without a logger uses the default one. */
export function setDefaultSink(resolve: () => CallSink | undefined): void {
  resolveDefault = resolve;
}

/**
 * Run `fn` as one tracked AI call and return what it returns.
 *
 * Latency is measured with `performance.now()`, `timestamp` is when the call started. When
 * `fn` returns an SDK response (anything with `usage`), model, provider and token counts
 * are read from it. When it throws, the error is recorded as `error_message`
 * ("Name: message") with `action: "fallback_to_rules"`, and rethrown: tracking never
 * swallows an error, and a logging problem never becomes the caller's.
 */
export async function track<T>(
  task: string,
  model: string,
  fn: (call: TrackedCall) => T | Promise<T>,
  options: TrackOptions = {},
): Promise<T> {
  const { logger, ...extra } = options;
  const call = new TrackedCall({ task, model, ...extra });
  const startedWall = Date.now();
  const started = performance.now();
  try {
    const result = await fn(call);
    if (looksLikeResponse(result) && call.fields.response === undefined) call.fields.response = result;
    return result;
  } catch (error) {
    const { text, name } = describe(error);
    call.fields.error_message ??= text.slice(0, 2000);
    call.fields.action ??= FALLBACK_TO_RULES;
    call.fields.fallback_reason ??= `error: ${name}`;
    throw error;
  } finally {
    try {
      const fields = call.fields;
      fields.latency_ms = Math.round(performance.now() - started);
      fields.timestamp ??= new Date(startedWall).toISOString();
      const sink = logger ?? resolveDefault();
      if (sink !== undefined) call.eventId = sink.log(fields as CallFields);
    } catch {
      // Recording is best effort; the call's own outcome stands.
    }
  }
}
