// Requests answered by a frame that echoes their `ref` (`leave` -> `left`, `history` ->
// `history`). These do not outlive their connection: a `history` page asked of a node that died
// is asked again by the application, which knows whether it still wants it.
export class Requests {
    constructor() {
        this.waiting = new Map();
    }
    /** Registers `ref` and returns the promise its answer settles. */
    expect(ref) {
        return new Promise((resolve, reject) => {
            this.waiting.set(ref, { resolve: resolve, reject });
        });
    }
    has(ref) {
        return this.waiting.has(ref);
    }
    resolve(ref, frame) {
        const waiting = this.waiting.get(ref);
        if (!waiting)
            return false;
        this.waiting.delete(ref);
        waiting.resolve(frame);
        return true;
    }
    reject(ref, error) {
        const waiting = this.waiting.get(ref);
        if (!waiting)
            return false;
        this.waiting.delete(ref);
        waiting.reject(error);
        return true;
    }
    rejectAll(error) {
        const all = [...this.waiting.values()];
        this.waiting.clear();
        for (const waiting of all)
            waiting.reject(error);
    }
}
