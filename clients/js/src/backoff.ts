// Reconnect delays: exponential backoff with full jitter. After a node dies, every one of its
// clients reconnects; drawing each delay uniformly from [0, ceiling] spreads them out instead of
// letting them arrive in waves, while the doubling ceiling keeps a long outage cheap.

export interface BackoffOptions {
  /** Ceiling of the first delay (ms). */
  initialDelayMs: number;
  /** The ceiling stops growing here (ms). */
  maxDelayMs: number;
  /** How much the ceiling grows per failed attempt. */
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialDelayMs: 1000, maxDelayMs: 30000, factor: 2 };

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The ceiling of the next delay, without drawing it. */
  ceiling(): number {
    const { initialDelayMs, maxDelayMs, factor } = this.options;
    return Math.min(maxDelayMs, initialDelayMs * factor ** this.attempt);
  }

  /** The next delay: uniform in [0, ceiling]; each call raises the ceiling. */
  next(): number {
    const delay = Math.round(this.random() * this.ceiling());
    this.attempt += 1;
    return delay;
  }

  /** A connection worked: start again from the first ceiling. */
  reset(): void {
    this.attempt = 0;
  }
}
