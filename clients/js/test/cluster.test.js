// The client against two real nodes sharing a redis-server: resume after a node is killed and
// restarted, failover to the other node, and sends pending across a reconnect; and against a
// redis-server that stops answering for a while, so the node answers `send` with `timeout`.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { TimeoutError } from "../dist/index.js";
import { client, record, recordingWebSocket } from "./support/client.js";
import { killAll } from "./support/processes.js";
import { Proxy } from "./support/proxy.js";
import { startRedis } from "./support/redis.js";
import { RookeryNode } from "./support/rookery.js";
import { sleep, waitFor, within } from "./support/wait.js";

after(killAll);

describe("two nodes on one redis-server", () => {
  let a, b;
  const clients = [];
  const open = (...args) => {
    const c = client(...args);
    clients.push(c);
    return c;
  };
  before(async () => {
    const redis = await startRedis();
    const env = { ROOKERY_REDIS_URL: redis.url, ROOKERY_HEARTBEAT_MS: "500" };
    [a, b] = await Promise.all([RookeryNode.start("a", env), RookeryNode.start("b", env)]);
  });
  after(() => clients.forEach((c) => c.close()));

  test("a node killed and restarted: its client resumes with nothing lost or repeated", async () => {
    const reader = open(a.ws, { user: "reader" });
    const writer = open(b.ws, { user: "writer" });
    const room = await within(reader.join("restart"), "reader's join");
    const saw = record(room);
    const out = await within(writer.join("restart"), "writer's join");
    const acks = [];
    for (let i = 0; i < 30; i++) {
      if (i === 10) await a.stop("SIGKILL");
      if (i === 20) await a.start();
      acks.push((await within(out.send(`n${i}`), `ack ${i}`)).id);
      await sleep(10);
    }
    await waitFor(() => saw.messages.length >= 30, "the reader to have all 30", 10_000);
    await sleep(200);
    assert.deepEqual(saw.messages.map((m) => m.id), acks, "every message once, in order");
    assert.equal(reader.welcome.node, "a");
  });

  test("failover: given both nodes' URLs, the client moves to the live one", async () => {
    const mover = open([a.ws, b.ws], { user: "mover" });
    const writer = open(b.ws, { user: "writer2" });
    const room = await within(mover.join("failover"), "join");
    assert.equal(mover.welcome.node, "a");
    const saw = record(room);
    const out = await within(writer.join("failover"), "writer's join");
    await within(out.send("before"), "ack");
    await a.stop("SIGKILL");
    const during = [];
    for (let i = 0; i < 5; i++) during.push((await within(out.send(`during ${i}`), "ack")).id);
    await waitFor(() => mover.welcome?.node === "b" && room.joined, "the client to resume on b", 10_000);
    await waitFor(() => saw.messages.length === 6, "all 6 messages", 5000);
    assert.deepEqual(saw.messages.map((m) => m.body), ["before", ...[0, 1, 2, 3, 4].map((i) => `during ${i}`)]);
    assert.deepEqual(saw.messages.slice(1).map((m) => m.id), during);
    await a.start();
  });

  test("a send on a connection that died before the node read it is stored once", async () => {
    const sender = open([a.ws, b.ws], { user: "sender" });
    const room = await within(sender.join("pending"), "join");
    const saw = record(room);
    // Frozen, node a takes the frame into its socket buffer but never reads it; killed, it
    // never will. The client's only copy is in its outbox.
    await a.pause();
    const acked = room.send("in flight");
    await sleep(50);
    await a.stop("SIGKILL");
    const { id } = await within(acked, "the ack, from node b after the failover", 10_000);
    assert.equal(sender.welcome.node, "b");
    await waitFor(() => saw.messages.length === 1, "the message delivered");
    assert.equal(saw.messages[0].id, id);
    const stored = (await b.messages("pending")).filter((m) => m.body === "in flight");
    assert.deepEqual(stored.map((m) => m.id), [id], "stored once");
    await a.start();
  });

  test("exactly once: a send stored but not acknowledged is not stored again (the server's `key`)", async () => {
    const proxy = await Proxy.start(a.port);
    try {
      const sender = open(proxy.ws, { user: "keyed" });
      const room = await within(sender.join("keyed"), "join");
      // The node gets the frame and stores the message, but its ack never reaches the client.
      proxy.swallowReplies();
      const acked = room.send("stored, ack lost");
      await waitFor(async () => (await b.messages("keyed")).length === 1, "the message stored", 5000);
      proxy.cut();
      proxy.heal();
      const { id } = await within(acked, "the ack of the resend", 10_000);
      const stored = (await b.messages("keyed")).filter((m) => m.body === "stored, ack lost");
      assert.deepEqual(stored.map((m) => m.id), [id], "the resend with the same key was not stored again");
    } finally {
      await proxy.close();
    }
  });
});

describe("a redis-server that loses its data", () => {
  test("the node's `gap` frame reaches the application as a gap event, and delivery goes on", async () => {
    const redis = await startRedis();
    const env = { ROOKERY_REDIS_URL: redis.url, ROOKERY_HEARTBEAT_MS: "500" };
    const [c, d] = await Promise.all([RookeryNode.start("c", env), RookeryNode.start("d", env)]);
    const reader = client(c.ws, { user: "reader" });
    const writer = client(d.ws, { user: "writer" });
    try {
      const room = await within(reader.join("flushed"), "reader's join");
      const saw = record(room);
      const out = await within(writer.join("flushed"), "writer's join");
      await within(out.send("before"), "ack");
      await waitFor(() => saw.messages.length === 1, "the first message");
      assert.equal(await redis.flushAll(), "+OK");
      await waitFor(() => saw.gaps.length > 0, "a gap", 15_000);
      assert.equal(saw.gaps[0].cause, "server");
      assert.equal(saw.gaps[0].room, "flushed");
      const { id } = await within(waitFor(async () => out.send("after").catch(() => null), "a send to succeed again", 15_000, 200), "ack");
      await waitFor(() => saw.messages.some((m) => m.id === id), "delivery after the gap", 15_000);
    } finally {
      reader.close();
      writer.close();
    }
  });
});

describe("a redis-server that stops answering for a while", () => {
  // Frozen (SIGSTOP), redis-server keeps what the node sends it unanswered: the node's call times
  // out (its Redis response timeout is 500 ms) and it answers the send with `timeout`, though the
  // command is on its way and is stored once redis-server runs again.
  let redis, node;
  before(async () => {
    redis = await startRedis();
    node = await RookeryNode.start("slow", { ROOKERY_REDIS_URL: redis.url, ROOKERY_HEARTBEAT_MS: "500" });
  });
  after(() => redis?.resume());

  const sendsOf = (frames, body) => frames.sent.filter((f) => f.type === "send" && f.body === body);
  const timeoutsFor = (frames, sends) =>
    frames.received.filter((f) => f.type === "error" && f.code === "timeout" && sends.some((s) => s.ref === f.ref));

  test("a send answered `timeout` is sent again with the same key and stored once", async () => {
    const wire = recordingWebSocket();
    const sender = client(node.ws, {
      user: "patient",
      WebSocket: wire.WebSocket,
      timeoutBackoff: { initialDelayMs: 300, maxDelayMs: 600 },
    });
    try {
      const room = await within(sender.join("slow"), "join");
      const saw = record(room);
      await redis.pause();
      let acked;
      try {
        acked = room.send("slow store");
        await waitFor(() => timeoutsFor(wire.frames, sendsOf(wire.frames, "slow store")).length > 0, "a `timeout` answer", 10_000);
      } finally {
        redis.resume();
      }
      const { id } = await within(acked, "the ack of a retry", 15_000);
      const sends = sendsOf(wire.frames, "slow store");
      assert.ok(sends.length >= 2, `sent again after the timeout (${sends.length} send frames)`);
      assert.equal(new Set(sends.map((f) => f.key)).size, 1, "every retry with the same key");
      const stored = (await node.messages("slow")).filter((m) => m.body === "slow store");
      assert.deepEqual(stored.map((m) => m.id), [id], "stored once, and acknowledged with that id");
      await waitFor(() => saw.messages.length >= 1, "the message delivered");
      await sleep(300);
      assert.deepEqual(saw.messages.map((m) => m.id), [id], "delivered once");
    } finally {
      sender.close();
    }
  });

  test("a send that keeps timing out rejects with TimeoutError; its copies are stored once", async () => {
    const wire = recordingWebSocket();
    const sender = client(node.ws, {
      user: "impatient",
      WebSocket: wire.WebSocket,
      timeoutRetries: 2,
      timeoutBackoff: { initialDelayMs: 50, maxDelayMs: 100 },
    });
    try {
      const room = await within(sender.join("slower"), "join");
      await redis.pause();
      try {
        await assert.rejects(within(room.send("never acked"), "the rejection", 15_000), TimeoutError);
      } finally {
        redis.resume();
      }
      const sends = sendsOf(wire.frames, "never acked");
      assert.equal(sends.length, 3, "the first send and two retries");
      assert.equal(new Set(sends.map((f) => f.key)).size, 1, "all with the same key");
      assert.equal(timeoutsFor(wire.frames, sends).length, 3);
      // All three reached the node, which passed them on before it gave up waiting: redis-server,
      // running again, stores the first and recognises the key of the other two.
      await waitFor(async () => (await node.messages("slower")).length > 0, "the message stored", 10_000);
      await sleep(500);
      const stored = (await node.messages("slower")).filter((m) => m.body === "never acked");
      assert.equal(stored.length, 1, "stored once");
    } finally {
      sender.close();
    }
  });
});
