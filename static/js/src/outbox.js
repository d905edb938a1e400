// Sends waiting for their `ack`. A send survives reconnects: when the connection drops before the
// ack, the same frame (same idempotency `key`) goes out again once its room is re-joined, so a
// message the node already stored is not stored twice. A send answered `timeout` (the node's
// engine did not answer: the message may be stored) or `not_replicated` (stored, but not yet on
// enough Redis replicas) stays here too while the client retries it with the same key after a
// backoff. The outbox is bounded, so an application that keeps sending while offline learns it
// at once (`PendingLimitError`) instead of filling memory.
import { PendingLimitError } from "./errors.js";
export class Outbox {
    constructor(limit) {
        this.limit = limit;
        // Insertion order is send order: resends keep the order the application sent in.
        this.pending = new Map();
        this.byRef = new Map();
    }
    get size() {
        return this.pending.size;
    }
    /** Queues a send; rejects at once when `limit` sends are already waiting. */
    add(room, body, key) {
        if (this.pending.size >= this.limit)
            return new PendingLimitError(this.limit);
        let entry;
        const acked = new Promise((resolve, reject) => {
            entry = { key, room, body, ref: undefined, retries: 0, backoff: undefined, retryTimer: undefined, resolve, reject };
        });
        this.pending.set(key, entry);
        return { entry, acked };
    }
    /** Records the ref a send went out with on this connection (a retry waiting is now moot). */
    sent(entry, ref) {
        clearTimeout(entry.retryTimer);
        entry.retryTimer = undefined;
        if (entry.ref !== undefined)
            this.byRef.delete(entry.ref);
        entry.ref = ref;
        this.byRef.set(ref, entry);
    }
    /** The room's sends waiting for an ack, in send order. */
    forRoom(room) {
        return [...this.pending.values()].filter((entry) => entry.room === room);
    }
    has(ref) {
        return this.byRef.has(ref);
    }
    /** The send that went out with `ref` on this connection, if it still waits. */
    byReference(ref) {
        return this.byRef.get(ref);
    }
    /** Whether `entry` still waits for its ack (not acknowledged, rejected or dropped since). */
    isPending(entry) {
        return this.pending.get(entry.key) === entry;
    }
    /** The node answered the send with `timeout` or `not_replicated`: it stays pending, no longer
     * answered by its ref, until it is sent again (by a retry, or after a re-join, whichever comes
     * first). */
    detach(entry) {
        if (entry.ref !== undefined)
            this.byRef.delete(entry.ref);
        entry.ref = undefined;
    }
    ack(ref, id) {
        const entry = this.take(ref);
        entry?.resolve({ id });
        return entry !== undefined;
    }
    fail(ref, error) {
        const entry = this.take(ref);
        entry?.reject(error);
        return entry !== undefined;
    }
    /** The connection dropped: no ref is answered any more, every send waits for a resend. */
    disconnected() {
        for (const entry of this.pending.values())
            entry.ref = undefined;
        this.byRef.clear();
    }
    rejectRoom(room, error) {
        for (const entry of this.forRoom(room)) {
            this.remove(entry);
            entry.reject(error);
        }
    }
    rejectAll(error) {
        const all = [...this.pending.values()];
        this.pending.clear();
        this.byRef.clear();
        for (const entry of all) {
            clearTimeout(entry.retryTimer);
            entry.reject(error);
        }
    }
    take(ref) {
        const entry = this.byRef.get(ref);
        if (entry)
            this.remove(entry);
        return entry;
    }
    remove(entry) {
        clearTimeout(entry.retryTimer);
        entry.retryTimer = undefined;
        this.pending.delete(entry.key);
        if (entry.ref !== undefined)
            this.byRef.delete(entry.ref);
    }
}
/** A fresh idempotency key: 128 random bits as hex (32 characters; the protocol allows 64). */
export function newKey() {
    const bytes = new Uint8Array(16);
    const crypto = globalThis.crypto;
    if (crypto)
        crypto.getRandomValues(bytes);
    else
        for (let i = 0; i < bytes.length; i++)
            bytes[i] = Math.floor(Math.random() * 256);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
