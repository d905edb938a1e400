// The client under test, set up for tests: the `ws` package as WebSocket (Node 20 has no global
// one), short reconnect delays, and a recorder of what each room delivered.

import WebSocket from "ws";
import { Rookery } from "../../dist/index.js";

export function client(url, options = {}) {
  return new Rookery(url, {
    WebSocket,
    reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
    connectTimeoutMs: 3000,
    ...options,
  });
}

/** Records a room's events: `messages`, `gaps`, `joins`. */
export function record(room) {
  const seen = { messages: [], gaps: [], joins: [], presence: [] };
  room.on("message", (m) => seen.messages.push(m));
  room.on("gap", (g) => seen.gaps.push(g));
  room.on("joined", (j) => seen.joins.push(j));
  room.on("presence", (p) => seen.presence.push(p));
  return seen;
}

/** Records the client's states. */
export function states(rookery) {
  const all = [];
  rookery.on("state", (s) => all.push(s));
  return all;
}

/** A `ws` WebSocket class that records every frame its connections send and receive (parsed),
 * in `frames.sent` and `frames.received`: what went over the wire to and from the real node. */
export function recordingWebSocket() {
  const frames = { sent: [], received: [] };
  class Recording extends WebSocket {
    send(data, ...rest) {
      frames.sent.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
    get onmessage() {
      return super.onmessage;
    }
    set onmessage(listener) {
      super.onmessage = listener && ((event) => {
        frames.received.push(JSON.parse(String(event.data)));
        listener(event);
      });
    }
  }
  return { WebSocket: Recording, frames };
}
