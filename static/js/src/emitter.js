// A small typed event emitter, so the package needs no runtime dependency and the same code runs
// in browsers and Node.js. A listener that throws must not break the client's bookkeeping (a
// message half-delivered to the room's listeners would be lost), so its error is rethrown
// asynchronously, where the host reports it as uncaught, and dispatch goes on.
export class Emitter {
    constructor() {
        this.listeners = {};
    }
    /** Adds a listener; returns a function that removes it. */
    on(event, listener) {
        let set = this.listeners[event];
        if (!set) {
            set = new Set();
            this.listeners[event] = set;
        }
        set.add(listener);
        return () => this.off(event, listener);
    }
    off(event, listener) {
        this.listeners[event]?.delete(listener);
    }
    emit(event, ...args) {
        const set = this.listeners[event];
        if (!set)
            return;
        for (const listener of [...set]) {
            try {
                listener(...args);
            }
            catch (error) {
                queueMicrotask(() => {
                    throw error;
                });
            }
        }
    }
}
