/** How a batch of encoded events leaves the process, and what the logger makes of the answer. */

import type { Rejection } from "./errors.ts";

/** One event ready to send: its id and its JSON text. */
export interface EncodedEvent {
  readonly id: string;
  readonly json: string;
  /** The UTF-8 size of `json`. */
  readonly bytes: number;
}

export type SendOutcome =
  /** Taken; `rejected` lists the events refused for good (indexes into the batch). */
  | { readonly kind: "accepted"; readonly rejected: readonly Rejection[] }
  /** Not taken this time (down, overloaded, timed out): the same batch is sent again later. */
  | { readonly kind: "retry"; readonly reason: string; readonly retryAfterMs?: number; readonly status?: number }
  /** Token or endpoint refused: the events stay buffered; the problem is reported once. */
  | { readonly kind: "auth"; readonly reason: string; readonly status: number }
  /** The batch as a whole was refused for its size or content: split it to find the culprit. */
  | { readonly kind: "split"; readonly reason: string; readonly status: number };

export interface Transport {
  /** Send one batch; never throws (failures are outcomes). */
  send(batch: readonly EncodedEvent[], signal: AbortSignal): Promise<SendOutcome>;
  /** Release connections the transport opened itself. */
  close?(): Promise<void>;
  /** Where events go, for messages. */
  readonly description: string;
}
