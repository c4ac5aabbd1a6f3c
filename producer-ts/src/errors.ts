/** What the logger reports through `onError`: one class, told apart by `kind`. */

export type ProblemKind =
  /** The server refused the token (401/403) or the endpoint (404/405): events stay buffered. */
  | "auth"
  /** The server took the request but refused some events; `rejections` says which and why. */
  | "rejected"
  /** The buffer was full (or the logger closed): new events are being dropped. */
  | "overflow"
  /** The server could not be reached or answered 429/5xx: the logger is retrying. */
  | "unreachable"
  /** The server answered something this logger does not understand. */
  | "protocol";

export interface Rejection {
  /** The event's position in the batch that carried it. */
  index: number;
  id: string | null;
  error: string;
}

export class AILedgerError extends Error {
  override readonly name = "AILedgerError";
  readonly kind: ProblemKind;
  /** The HTTP status, where the problem came from an answer. */
  readonly status: number | undefined;
  /** For `rejected`: the events the server refused and why. */
  readonly rejections: readonly Rejection[];

  constructor(
    kind: ProblemKind,
    message: string,
    options: { status?: number; rejections?: readonly Rejection[]; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.status = options.status;
    this.rejections = options.rejections ?? [];
  }
}
