// The client against a node that asks for a Redis replica (ROOKERY_REDIS_MIN_REPLICAS=1) on a
// redis-server that has none: the node stores every message but answers its `send` with
// `not_replicated` (no replica confirmed it within 250 ms). The client sends it again with the
// same key: with no replica ever, it rejects with NotReplicatedError and the message is stored
// once; with a replica attached while it retries, a retry is acked with the id of the one stored
// message.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { NotReplicatedError } from "../dist/index.js";
import { client, record, recordingWebSocket } from "./support/client.js";
import { killAll } from "./support/processes.js";
import { startRedis } from "./support/redis.js";
import { RookeryNode } from "./support/rookery.js";
import { sleep, waitFor, within } from "./support/wait.js";

after(killAll);

describe("a node that asks for a replica, on a redis-server without one", () => {
  let primary, node;
  before(async () => {
    primary = await startRedis();
    node = await RookeryNode.start("replicated", {
      ROOKERY_REDIS_URL: primary.url,
      ROOKERY_REDIS_MIN_REPLICAS: "1",
      ROOKERY_HEARTBEAT_MS: "500",
    });
  });

  const sendsOf = (frames, body) => frames.sent.filter((f) => f.type === "send" && f.body === body);
  const notReplicated = (frames, sends) =>
    frames.received.filter((f) => f.type === "error" && f.code === "not_replicated" && sends.some((s) => s.ref === f.ref));

  /** The room's stored messages, as the server API and the protocol's `history` both list them. */
  async function stored(room) {
    const listed = (await node.messages(room.name)).map((m) => [m.id, m.body]);
    const page = (await within(room.history({ limit: 100 }), "history")).map((m) => [m.id, m.body]);
    assert.deepEqual(page, listed, "`history` and the server API agree");
    return listed;
  }

  test("a send never replicated is retried with its key, then rejects with NotReplicatedError; it is stored once", async () => {
    const wire = recordingWebSocket();
    const sender = client(node.ws, {
      user: "hopeful",
      WebSocket: wire.WebSocket,
      timeoutRetries: 2,
      timeoutBackoff: { initialDelayMs: 50, maxDelayMs: 100 },
    });
    try {
      const room = await within(sender.join("unreplicated"), "join");
      const saw = record(room);
      await assert.rejects(
        within(room.send("at risk"), "the rejection", 15_000),
        (e) => e instanceof NotReplicatedError && e.code === "not_replicated",
      );
      const sends = sendsOf(wire.frames, "at risk");
      assert.equal(sends.length, 3, "the first send and two retries");
      assert.equal(new Set(sends.map((f) => f.key)).size, 1, "all with the same key");
      assert.equal(notReplicated(wire.frames, sends).length, 3, "each answered `not_replicated`");
      // Stored the first time; the retries found the key and stored nothing new.
      const messages = await stored(room);
      assert.deepEqual(messages.map(([, body]) => body), ["at risk"], "stored once");
      // Stored, so it may be delivered, though its send rejected: if so, once, under that id.
      await sleep(300);
      assert.ok(saw.messages.length <= 1, `delivered ${saw.messages.length} times`);
      for (const m of saw.messages) assert.equal(m.id, messages[0][0]);
    } finally {
      sender.close();
    }
  });

  test("a replica attached while the send is retried: it resolves with the id of the one stored message", async () => {
    const wire = recordingWebSocket();
    const sender = client(node.ws, {
      user: "patient",
      WebSocket: wire.WebSocket,
      // Room for the replica to start and sync while the send is still being retried.
      timeoutRetries: 20,
      timeoutBackoff: { initialDelayMs: 200, maxDelayMs: 400 },
    });
    let replica;
    try {
      const room = await within(sender.join("replicated"), "join");
      const saw = record(room);
      const acked = room.send("safe at last");
      await waitFor(() => notReplicated(wire.frames, sendsOf(wire.frames, "safe at last")).length > 0, "a `not_replicated` answer", 10_000);
      replica = await startRedis({ replicaOf: primary.port });
      const { id } = await within(acked, "the ack of a retry", 15_000);
      assert.equal(await replica.masterLink(), "up", "acked with the replica in sync");
      const sends = sendsOf(wire.frames, "safe at last");
      assert.ok(sends.length >= 2, `sent again after \`not_replicated\` (${sends.length} send frames)`);
      assert.equal(new Set(sends.map((f) => f.key)).size, 1, "every retry with the same key");
      assert.deepEqual(await stored(room), [[id, "safe at last"]], "stored once, and acknowledged with that id");
      await waitFor(() => saw.messages.length >= 1, "the message delivered");
      await sleep(300);
      assert.deepEqual(saw.messages.map((m) => m.id), [id], "delivered once");
    } finally {
      sender.close();
      replica?.stop();
    }
  });
});
