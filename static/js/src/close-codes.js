// What a WebSocket close code means for reconnecting. The node closes with 1001 (heartbeat
// timeout), 1012 (it is stopping) and 1013 (slow consumer), and the network's 1006 covers crashes
// and lost links: after those, reconnecting and re-joining with `since` loses nothing. 1008 is
// policy (an expired token, or too many bad requests), and the other codes report a client that
// broke the protocol: reconnecting would be refused or fail the same way again.
export const RECONNECT_CODES = [1001, 1006, 1012, 1013];
/** The node is stopping on purpose: its clients should move to another node at once. */
export const SERVER_RESTARTING = 1012;
/** Policy: the token expired, or the client sent too many bad requests. */
export const POLICY_VIOLATION = 1008;
/** The reason the node gives with 1008 when the token expired (docs/protocol.md). */
export const TOKEN_EXPIRED_REASON = "token expired";
/** Code the client closes with when it gives up on a connection itself. */
export const CLIENT_GAVE_UP = 4000;
/**
 * Decides what to do after a close the client did not ask for. An expired token is the one
 * policy close worth a new connection, and only when a token provider can supply a fresh one.
 */
export function closeVerdict(code, reason, reconnectCodes, canRefreshToken) {
    if (reconnectCodes.includes(code))
        return "reconnect";
    if (code === POLICY_VIOLATION) {
        return reason === TOKEN_EXPIRED_REASON && canRefreshToken ? "reconnect" : "auth";
    }
    return "fatal";
}
