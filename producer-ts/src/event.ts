/** The fields of one AI call, as the worker and the ingest API accept them (SPEC §2). */

import type { Action } from "./constants.ts";

/**
 * One AI call. Names are the event's own (snake_case), the same as the Python producer's
 * keyword arguments and the JSON the worker stores. Fields not listed are passed through.
 */
export interface CallFields {
  /** The event id; made by the logger (a random UUID) when absent. */
  id?: string;
  /** When the call started; made by the logger from the clock and `latency_ms` when absent. */
  timestamp?: string | Date | number;
  /** The processing job (e.g. a PDF upload) the call belongs to, a UUID. */
  job_id?: string | null;
  /** Same as `job_id`; the camelCase spelling for callers without a `withJob` scope. */
  jobId?: string | null;
  task: string;
  model: string;
  provider?: string;
  input_tokens?: number;
  output_tokens?: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  /** The part of `cache_write_tokens` written to the 1-hour cache (Anthropic). */
  cache_write_1h_tokens?: number;
  image_id?: string;
  latency_ms?: number;
  confidence_breakdown?: Record<string, number>;
  confidence_score?: number | string;
  action?: Action;
  fallback_reason?: string;
  /** Text, or an Error, recorded as "Name: message". */
  error_message?: string | Error;
  request_data?: unknown;
  response_data?: unknown;
  /** USD, when the service knows it; the worker prices the call otherwise. */
  cost?: number | string;
  /**
   * An SDK response (Anthropic, OpenAI, Together) or its JSON: model, provider and token
   * counts are read from it where the event does not already say, and a plain JSON
   * response becomes `response_data` unless that is given.
   */
  response?: unknown;
  [extra: string]: unknown;
}

/** `CallFields` without the required ones: what `track()` and `record()` take. */
export type PartialCallFields = Partial<CallFields>;
