// The retry of a `send` answered `timeout` or `not_replicated`, against a scripted fake socket:
// how many times such a send goes out again, with which key, after which delays, and what it
// rejects with in the end. Only the count and the backoff are claimed here; that the node stores
// such a retry once is shown against the real binary in cluster.test.js (`timeout`) and
// replication.test.js (`not_replicated`).

import assert from "node:assert/strict";
import { test } from "node:test";
import { NotReplicatedError, PendingLimitError, Rookery, TimeoutError, UnavailableError } from "../../dist/index.js";

const WELCOME = {
  type: "welcome",
  session: "s",
  user: "u",
  node: "fake",
  heartbeat_ms: 60_000,
  limits: { max_frame_bytes: 65536, max_body_bytes: 16384, rate_per_sec: 20, burst: 40, max_rooms: 64 },
};

/** A WebSocket class whose "node" answers joins and answers each `send` with the next code of
 * `answers` ("timeout", "unavailable", ...; "ack" or none left: an ack). Every `send` frame is
 * recorded with when it went out. */
function fakeNode(answers) {
  const sends = [];
  const sockets = [];
  const script = [...answers];
  class FakeSocket {
    readyState = 0;
    onopen = null;
    onmessage = null;
    onclose = null;
    onerror = null;
    constructor() {
      sockets.push(this);
      setTimeout(() => {
        this.readyState = 1;
        this.reply(WELCOME);
      }, 0);
    }
    reply(frame) {
      setTimeout(() => this.onmessage?.({ data: JSON.stringify(frame) }), 0);
    }
    send(data) {
      const frame = JSON.parse(data);
      if (frame.type === "join") {
        this.reply({ type: "joined", ref: frame.ref, room: frame.room, members: [], member_count: 1, presence: true, last_id: null });
      } else if (frame.type === "send") {
        sends.push({ ...frame, at: performance.now(), socket: sockets.indexOf(this) });
        const answer = script.shift() ?? "ack";
        if (answer === "ack") this.reply({ type: "ack", ref: frame.ref, room: frame.room, id: `1-${sends.length}` });
        else this.reply({ type: "error", ref: frame.ref, code: answer, message: answer });
      }
    }
    close() {
      this.readyState = 3;
    }
    /** The connection is lost (1006). */
    drop() {
      this.readyState = 3;
      this.onclose?.({ code: 1006, reason: "" });
    }
  }
  return { WebSocket: FakeSocket, sends, sockets };
}

async function joined(options) {
  const client = new Rookery("ws://fake.invalid/ws", options);
  const room = await client.join("r");
  return { client, room };
}

test("a send answered `timeout` goes out again with the same key, after delays that double up to the ceiling", async () => {
  const node = fakeNode(["timeout", "timeout", "timeout", "ack"]);
  const backoff = { initialDelayMs: 40, maxDelayMs: 100, factor: 2 };
  // Jitter at its top, so each delay is its whole ceiling: a timer never fires early, so the
  // gaps have a lower bound however loaded the machine is (the jitter itself is a unit test of
  // the backoff).
  const random = Math.random;
  Math.random = () => 1;
  const { client, room } = await joined({ WebSocket: node.WebSocket, timeoutBackoff: backoff, maxPendingSends: 1 });
  try {
    const acked = room.send("hello");
    await new Promise((r) => setTimeout(r, 5));
    // Still pending while retried: the bound counts it.
    await assert.rejects(room.send("another"), PendingLimitError);
    assert.deepEqual(await acked, { id: "1-4" });
    assert.equal(node.sends.length, 4, "the first send and three retries");
    assert.equal(new Set(node.sends.map((s) => s.key)).size, 1, "every retry with the first key");
    assert.equal(new Set(node.sends.map((s) => s.ref)).size, 4, "each retry a new ref");
    assert.ok(node.sends.every((s) => s.body === "hello" && s.room === "r"));
    const ceilings = [40, 80, 100];
    for (let i = 1; i < node.sends.length; i++) {
      const waited = node.sends[i].at - node.sends[i - 1].at;
      assert.ok(waited >= ceilings[i - 1] - 5, `retry ${i} after ${waited} ms, before its delay of ${ceilings[i - 1]} ms`);
    }
    // Acknowledged: the slot is free again.
    assert.ok((await room.send("next")).id);
  } finally {
    Math.random = random;
    client.close();
  }
});

// A send answered the same way every time gives up after `timeoutRetries` retries, all with the
// first key, and rejects with the answer's error.
for (const [code, ErrorClass] of [
  ["timeout", TimeoutError],
  ["not_replicated", NotReplicatedError],
]) {
  test(`a send answered \`${code}\` every time rejects with ${ErrorClass.name} after \`timeoutRetries\` retries`, async () => {
    const node = fakeNode(Array(10).fill(code));
    const { client, room } = await joined({
      WebSocket: node.WebSocket,
      timeoutRetries: 2,
      timeoutBackoff: { initialDelayMs: 10, maxDelayMs: 20 },
    });
    try {
      await assert.rejects(room.send("doomed"), (e) => e instanceof ErrorClass && e.code === code);
      assert.equal(node.sends.length, 3, "the first send and two retries");
      assert.equal(new Set(node.sends.map((s) => s.key)).size, 1);
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(node.sends.length, 3, "nothing more after the rejection");
    } finally {
      client.close();
    }
  });
}

test("the default is five retries; `timeoutRetries: 0` rejects at the first timeout", async () => {
  const five = fakeNode(Array(10).fill("timeout"));
  const a = await joined({ WebSocket: five.WebSocket, timeoutBackoff: { initialDelayMs: 5, maxDelayMs: 10 } });
  const none = fakeNode(["timeout"]);
  const b = await joined({ WebSocket: none.WebSocket, timeoutRetries: 0 });
  try {
    await assert.rejects(a.room.send("x"), TimeoutError);
    assert.equal(five.sends.length, 6);
    await assert.rejects(b.room.send("y"), TimeoutError);
    assert.equal(none.sends.length, 1);
  } finally {
    a.client.close();
    b.client.close();
  }
});

test("a send answered `not_replicated` goes out again with the same key until it is acked", async () => {
  const node = fakeNode(["not_replicated", "not_replicated", "ack"]);
  const { client, room } = await joined({ WebSocket: node.WebSocket, timeoutBackoff: { initialDelayMs: 10, maxDelayMs: 20 } });
  try {
    assert.deepEqual(await room.send("at risk"), { id: "1-3" });
    assert.equal(node.sends.length, 3, "the first send and two retries");
    assert.equal(new Set(node.sends.map((s) => s.key)).size, 1, "every retry with the first key");
  } finally {
    client.close();
  }
});

test("`timeout` and `not_replicated` answers share one budget; the send rejects with the last one's error", async () => {
  const backoff = { initialDelayMs: 5, maxDelayMs: 10 };
  const a = fakeNode(["timeout", "not_replicated", "timeout", "not_replicated"]);
  const b = fakeNode(["not_replicated", "timeout", "not_replicated", "timeout"]);
  const first = await joined({ WebSocket: a.WebSocket, timeoutRetries: 2, timeoutBackoff: backoff });
  const second = await joined({ WebSocket: b.WebSocket, timeoutRetries: 2, timeoutBackoff: backoff });
  try {
    await assert.rejects(first.room.send("x"), TimeoutError);
    assert.equal(a.sends.length, 3, "two retries in all, whichever answer asked for them");
    await assert.rejects(second.room.send("y"), NotReplicatedError);
    assert.equal(b.sends.length, 3);
  } finally {
    first.client.close();
    second.client.close();
  }
});

test("`unavailable` (nothing stored) is not retried: the send rejects at once", async () => {
  const node = fakeNode(["unavailable"]);
  const { client, room } = await joined({ WebSocket: node.WebSocket, timeoutBackoff: { initialDelayMs: 5, maxDelayMs: 10 } });
  try {
    await assert.rejects(room.send("x"), UnavailableError);
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(node.sends.length, 1);
  } finally {
    client.close();
  }
});

test("close() during a retry's delay rejects the send and sends nothing more", async () => {
  const node = fakeNode(["timeout"]);
  const random = Math.random;
  Math.random = () => 1; // the delay at its ceiling: close() surely comes while it runs
  try {
    const { client, room } = await joined({ WebSocket: node.WebSocket, timeoutBackoff: { initialDelayMs: 200, maxDelayMs: 200 } });
    const sent = room.send("x");
    await new Promise((r) => setTimeout(r, 20));
    client.close();
    await assert.rejects(sent, (e) => e.code === "closed");
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(node.sends.length, 1);
  } finally {
    Math.random = random;
  }
});

test("a connection lost during a retry's delay: the re-join sends it once, the delay sends nothing more", async () => {
  const node = fakeNode(["timeout", "ack"]);
  const random = Math.random;
  Math.random = () => 1; // every delay at its ceiling: the retry waits the full 150 ms
  const { client, room } = await joined({
    WebSocket: node.WebSocket,
    reconnect: { initialDelayMs: 5, maxDelayMs: 5 },
    timeoutBackoff: { initialDelayMs: 150, maxDelayMs: 150 },
  });
  try {
    const acked = room.send("x");
    await new Promise((r) => setTimeout(r, 20));
    node.sockets.at(-1).drop();
    assert.deepEqual(await acked, { id: "1-2" });
    assert.equal(node.sockets.length, 2, "reconnected once");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(node.sends.length, 2, "sent again at the re-join, and not again when the delay ran out");
    assert.equal(node.sends[0].key, node.sends[1].key);
    assert.deepEqual(node.sends.map((s) => s.socket), [0, 1], "the resend on the new connection");
  } finally {
    Math.random = random;
    client.close();
  }
});
