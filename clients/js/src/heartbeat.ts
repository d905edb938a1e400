// Liveness of a connection. The node pings every `heartbeat_ms`, but browsers answer WebSocket
// pings without telling the page, so the client cannot count on seeing them. Instead it watches
// for any frame: after one silent interval it sends a protocol `ping` (the node answers `pong`),
// and after two it declares the connection dead, so that a half-open TCP connection (a node
// frozen, a cable pulled) is replaced within seconds rather than when the OS gives up.

export class Watchdog {
  private lastHeard: number;
  private lastTick: number;
  private pinged = false;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly intervalMs: number,
    private readonly ping: () => void,
    private readonly dead: () => void,
    private readonly now: () => number = Date.now,
  ) {
    this.lastHeard = this.lastTick = now();
    this.timer = setInterval(() => this.tick(), Math.max(10, intervalMs / 4));
  }

  /** A frame arrived: the connection is alive. */
  heard(): void {
    this.lastHeard = this.now();
    this.pinged = false;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = this.now();
    const late = now - this.lastTick > this.intervalMs;
    this.lastTick = now;
    if (late) {
      // This host stopped running timers (a suspended laptop, a throttled background tab): the
      // silence is ours, not the node's. Ask, and give the answer a full interval.
      this.lastHeard = now - this.intervalMs;
      this.pinged = false;
    }
    const silent = now - this.lastHeard;
    if (silent >= 2 * this.intervalMs) {
      this.stop();
      this.dead();
    } else if (silent >= this.intervalMs && !this.pinged) {
      this.pinged = true;
      this.ping();
    }
  }
}
