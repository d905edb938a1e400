// A small typed event emitter, so the package needs no runtime dependency and the same code runs
// in browsers and Node.js. A listener that throws must not break the client's bookkeeping (a
// message half-delivered to the room's listeners would be lost), so its error is rethrown
// asynchronously, where the host reports it as uncaught, and dispatch goes on.

// Each event maps to the tuple of its listener's arguments.
export type EventMap = { [event: string]: unknown[] };

export type Listener<A extends unknown[]> = (...args: A) => void;

export class Emitter<E extends EventMap> {
  private listeners: { [K in keyof E]?: Set<Listener<E[K]>> } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.listeners[event];
    if (!set) {
      set = new Set();
      this.listeners[event] = set;
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.listeners[event]?.delete(listener);
  }

  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.listeners[event];
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
