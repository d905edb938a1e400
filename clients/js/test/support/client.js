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
