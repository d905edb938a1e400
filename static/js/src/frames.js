// The wire protocol's frames (docs/protocol.md), as the client sends and receives them. Only the
// fields the client reads are typed; the server may add more (unknown fields are ignored).
/** Parses one text frame; anything that is not a JSON object with a string `type` is `null`. */
export function parseFrame(text) {
    let value;
    try {
        value = JSON.parse(text);
    }
    catch {
        return null;
    }
    if (typeof value !== "object" || value === null || typeof value.type !== "string") {
        return null;
    }
    return value;
}
