/** Turns the fields a service logged into the JSON text of one event, at send time. */

import { errorName, redact, repairText } from "./redact.ts";
import { usageFromResponse } from "./usage.ts";

const PAYLOAD_FIELDS = ["request_data", "response_data"] as const;
const SKIPPED = new Set(["response", "jobId"]);

/** What the logger keeps of one `log()` call until it is sent. */
export interface LoggedCall {
  readonly id: string;
  /** Milliseconds since the epoch when `log()` was called. */
  readonly loggedAt: number;
  readonly fields: Record<string, unknown>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function timestampOf(value: unknown): unknown {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  return value;
}

function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === "string") return repairText(value);
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return `${errorName(value)}: ${value.message}`;
  return value;
}

/**
 * The event's JSON text: usage read from `response`, the timestamp (when the call started:
 * log time minus `latency_ms`), errors as "Name: message", payloads redacted and capped.
 * Never throws: a field that defeats the encoder is left out and named in `_encode_error`.
 */
export function encodeEvent(call: LoggedCall, maxPayloadBytes: number): string {
  const fields = call.fields;
  const event: Record<string, unknown> = {};
  try {
    for (const [name, value] of Object.entries(fields)) {
      if (value !== undefined && !SKIPPED.has(name)) event[name] = value;
    }
    event.id = call.id;
    if (event.job_id === undefined && fields.jobId !== undefined && fields.jobId !== null) event.job_id = fields.jobId;
    const response = fields.response;
    if (response !== undefined && response !== null) {
      for (const [name, value] of Object.entries(usageFromResponse(response))) {
        if (event[name] === undefined) event[name] = value;
      }
      if (event.response_data === undefined && isPlainObject(response)) event.response_data = response;
    }
    if (event.timestamp === undefined || event.timestamp === null) {
      // The event records when the call started; a logged latency tells how long ago.
      let started = call.loggedAt;
      const latency = event.latency_ms;
      if (typeof latency === "number" && Number.isFinite(latency) && latency > 0) started -= latency;
      event.timestamp = new Date(started).toISOString();
    } else {
      event.timestamp = timestampOf(event.timestamp);
    }
    for (const name of PAYLOAD_FIELDS) {
      const payload = event[name];
      if (payload !== undefined && payload !== null) event[name] = redact(payload, maxPayloadBytes);
    }
    return JSON.stringify(event, jsonValue);
  } catch (error) {
    // Something in the fields defeats the encoder (a throwing toJSON, a cycle outside the
    // payloads): send what can be sent, and say what the problem was, so the worker keeps
    // the call and its reason instead of the producer losing it.
    const safe: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(event)) {
      if (typeof value === "string") safe[name] = repairText(value);
      else if (typeof value === "number" || typeof value === "boolean" || value === null) safe[name] = value;
    }
    safe.id = call.id;
    if (typeof safe.timestamp !== "string") safe.timestamp = new Date(call.loggedAt).toISOString();
    const reason = error instanceof Error ? `${errorName(error)}: ${error.message}` : String(error);
    safe._encode_error = repairText(reason.slice(0, 500));
    try {
      return JSON.stringify(safe);
    } catch {
      return JSON.stringify({ id: call.id, timestamp: safe.timestamp, _encode_error: "unencodable" });
    }
  }
}
