// Reconnect delays: exponential backoff with full jitter. After a node dies, every one of its
// clients reconnects; drawing each delay uniformly from [0, ceiling] spreads them out instead of
// letting them arrive in waves, while the doubling ceiling keeps a long outage cheap.
export const DEFAULT_BACKOFF = { initialDelayMs: 1000, maxDelayMs: 30000, factor: 2 };
export class Backoff {
    constructor(options = DEFAULT_BACKOFF, random = Math.random) {
        this.options = options;
        this.random = random;
        this.attempt = 0;
    }
    /** The ceiling of the next delay, without drawing it. */
    ceiling() {
        const { initialDelayMs, maxDelayMs, factor } = this.options;
        return Math.min(maxDelayMs, initialDelayMs * factor ** this.attempt);
    }
    /** The next delay: uniform in [0, ceiling]; each call raises the ceiling. */
    next() {
        const delay = Math.round(this.random() * this.ceiling());
        this.attempt += 1;
        return delay;
    }
    /** A connection worked: start again from the first ceiling. */
    reset() {
        this.attempt = 0;
    }
}
