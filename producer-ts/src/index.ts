/**
 * @ailedger/producer: record every AI call a service makes, from Deno, Node, Bun and Workers.
 *
 *     import { AICallLogger, track, withJob } from "@ailedger/producer";
 *
 *     const ledger = new AICallLogger({ endpoint: "https://ledger.example.com", token });
 *     const message = await track("product_enrichment_stage2", "claude-sonnet-4-5",
 *       () => anthropic.messages.create({...}), { logger: ledger });
 *     await ledger.flush();
 *
 * `log()` returns at once and never throws; batches leave in the background.
 */

import { AICallLogger, type LoggerOptions } from "./logger.ts";
import type { CallFields } from "./event.ts";
import { setDefaultSink } from "./track.ts";

export { AICallLogger, type LoggerOptions, type ProducerStats } from "./logger.ts";
export type { CallFields, PartialCallFields } from "./event.ts";
export { track, TrackedCall, type TrackOptions, type CallSink } from "./track.ts";
export { withJob, currentJobId, hasAsyncContext } from "./context.ts";
export { AILedgerError, type ProblemKind, type Rejection } from "./errors.ts";
export {
  confidenceScore,
  confidenceScoreText,
  decideAction,
  DEFAULT_THRESHOLD,
  DEFAULT_WEIGHTS,
  type DecideOptions,
  type Decision,
  type DecimalLike,
} from "./scoring.ts";
export { usageFromResponse, type Usage } from "./usage.ts";
export { redact, redactText, isSecretKey, REDACTED } from "./redact.ts";
export { encodeEvent, type LoggedCall } from "./wire.ts";
export { HttpTransport, type HttpTransportOptions } from "./http.ts";
export type { EncodedEvent, SendOutcome, Transport } from "./transport.ts";
export type { BackoffOptions } from "./backoff.ts";
export {
  DEFAULT_STREAM,
  EVENT_FIELD,
  FALLBACK_TO_RULES,
  USE_AI_RESULT,
  VERSION_FIELD,
  WIRE_VERSION,
  type Action,
} from "./constants.ts";

let defaultInstance: AICallLogger | undefined;
let warnedUnconfigured = false;

/** Replace the default logger used by `logCall()` and `track()`; returns it. */
export function configure(options: LoggerOptions = {}): AICallLogger {
  const logger = new AICallLogger(options);
  const previous = defaultInstance;
  defaultInstance = logger;
  if (previous !== undefined) void previous.close();
  return logger;
}

/** The default logger, built from `AILEDGER_ENDPOINT` / `AILEDGER_INGEST_TOKEN` on first use. */
export function defaultLogger(): AICallLogger {
  defaultInstance ??= new AICallLogger();
  return defaultInstance;
}

function defaultOrNothing(): AICallLogger | undefined {
  try {
    return defaultLogger();
  } catch (error) {
    if (!warnedUnconfigured) {
      warnedUnconfigured = true;
      console.warn(`${error instanceof Error ? error.message : String(error)}; AI calls are not being recorded`);
    }
    return undefined;
  }
}

setDefaultSink(defaultOrNothing);

/** Record one AI call on the default logger; returns its id ("" when no logger is configured). Never throws. */
export function logCall(fields: CallFields): string {
  return defaultOrNothing()?.log(fields) ?? "";
}

/** Flush the default logger (true when there is none): `EdgeRuntime.waitUntil(flush())`. */
export function flush(timeoutMs?: number): Promise<boolean> {
  return defaultInstance === undefined ? Promise.resolve(true) : defaultInstance.flush(timeoutMs);
}

/** Close the default logger; the next `logCall()` builds a new one from the environment. */
export async function close(timeoutMs?: number): Promise<boolean> {
  const logger = defaultInstance;
  defaultInstance = undefined;
  return logger === undefined ? true : logger.close(timeoutMs);
}
