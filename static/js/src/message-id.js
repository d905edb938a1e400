// Message ids are `<ms>-<seq>` and order as the integer pair (ms, seq): "5-10" is after "5-9",
// so they must never be compared as text. The client keeps, per room, the newest id it handed to
// the application, and uses this order to drop anything at or before it (once, in order).
/** The id to resume from when a room was empty at the first join: every stored id is after it. */
export const ORIGIN_ID = "0-0";
function parts(id) {
    const dash = id.indexOf("-");
    // BigInt: `ms` alone fits a double, but `seq` is unbounded in the protocol.
    return dash < 0 ? [BigInt(id), 0n] : [BigInt(id.slice(0, dash)), BigInt(id.slice(dash + 1))];
}
/** Negative when `a` is before `b`, zero when equal, positive when after. */
export function compareIds(a, b) {
    const [am, as] = parts(a);
    const [bm, bs] = parts(b);
    if (am !== bm)
        return am < bm ? -1 : 1;
    return as === bs ? 0 : as < bs ? -1 : 1;
}
/** Whether `id` comes after `last` (anything comes after nothing). */
export function isAfter(id, last) {
    return last === null || compareIds(id, last) > 0;
}
