// The WebSocket seam. Browsers and Node.js 22 have a global `WebSocket`; Node.js 20 does not, so
// an implementation with the same interface (the `ws` package) can be passed in. Only the part of
// the standard interface the client uses is typed here, so the package's declarations need no
// DOM types.
/** `WebSocket.OPEN`, the same in every implementation. */
export const OPEN = 1;
/** The implementation given, else the global one; without either the client cannot work. */
export function webSocketImplementation(given) {
    const found = given ?? globalThis.WebSocket;
    if (!found) {
        throw new TypeError("no WebSocket implementation: pass one as the `WebSocket` option (e.g. the `ws` package)");
    }
    return found;
}
/** The URL with the credentials the node reads (`?user=` or `?token=`: browsers cannot set headers). */
export function connectUrl(base, user, token) {
    const url = new URL(base);
    if (user !== undefined)
        url.searchParams.set("user", user);
    if (token !== undefined)
        url.searchParams.set("token", token);
    return url.toString();
}
/**
 * The HTTP status of a refused handshake, where the implementation tells it: `ws` reports
 * "Unexpected server response: 401" in its error event. Browsers hide it (a refusal looks like
 * any failed connection), so there a refusal is retried with backoff like a network error.
 */
export function refusedStatus(errorEvent) {
    const event = errorEvent;
    const text = String(event?.message ?? event?.error?.message ?? "");
    const match = /Unexpected server response: (\d{3})/.exec(text);
    return match ? Number(match[1]) : undefined;
}
/**
 * Ends a connection the client gave up on, without waiting for the peer: a dead peer never
 * answers a close handshake. `ws` has `terminate()` for that; elsewhere `close()` is all there is.
 */
export function abandon(socket, code, reason) {
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    try {
        const terminate = socket.terminate;
        if (typeof terminate === "function")
            terminate.call(socket);
        else
            socket.close(code, reason);
    }
    catch {
        // Closing a socket that never opened may throw; it is being dropped either way.
    }
}
