/** Capped exponential backoff with jitter, small enough for tests to shrink. */

export interface BackoffOptions {
  /** The first delay, in milliseconds (default 100). */
  baseMs?: number;
  /** The longest delay, in milliseconds (default 10 000). */
  capMs?: number;
  /** A source of uniform numbers in [0, 1), for tests. */
  random?: () => number;
}

/**
 * Delay before the next attempt: `base * 2 ** attempts`, capped, drawn uniformly from
 * [delay / 2, delay] like the Python producer's, so that many producers that lost the
 * same server do not come back in lockstep.
 */
export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  attempts = 0;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 100;
    this.capMs = options.capMs ?? 10_000;
    this.random = options.random ?? Math.random;
  }

  nextDelay(): number {
    const delay = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempts, 30));
    this.attempts += 1;
    return delay / 2 + this.random() * (delay / 2);
  }

  reset(): void {
    this.attempts = 0;
  }
}
