// The client against one real node on the memory engine: the basics, typed errors, the pending
// limit, the liveness watchdog, `recovered: false` surfaced as `gap`.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  BadRequestError,
  PendingLimitError,
  TooLargeError,
  compareIds,
} from "../dist/index.js";
import { client, record, states } from "./support/client.js";
import { killAll } from "./support/processes.js";
import { Proxy } from "./support/proxy.js";
import { RookeryNode } from "./support/rookery.js";
import { sleep, waitFor, within } from "./support/wait.js";

after(killAll);

describe("one node, memory engine", () => {
  let node;
  const clients = [];
  const open = (...args) => {
    const c = client(...args);
    clients.push(c);
    return c;
  };
  before(async () => {
    node = await RookeryNode.start("mem", { ROOKERY_HEARTBEAT_MS: "400", ROOKERY_MAX_BODY_BYTES: "100" });
  });
  after(() => clients.forEach((c) => c.close()));

  test("two clients chat: members, presence, ack ids, one order", async () => {
    const alice = open(node.ws, { user: "alice" });
    const seenStates = states(alice);
    const aliceRoom = await within(alice.join("chat"), "alice's join");
    const aliceSaw = record(aliceRoom);
    const bob = open(node.ws, { user: "bob" });
    const bobRoom = await within(bob.join("chat"), "bob's join");
    const bobSaw = record(bobRoom);
    assert.deepEqual([...bobRoom.members.keys()], ["alice", "bob"]);
    await waitFor(() => aliceRoom.members.has("bob"), "alice to see bob join");
    assert.deepEqual(aliceSaw.presence, [{ room: "chat", event: "join", user: "bob" }]);

    const acks = [];
    for (let i = 0; i < 10; i++) acks.push(aliceRoom.send(`m${i}`));
    const ids = (await within(Promise.all(acks), "the acks")).map((a) => a.id);
    await waitFor(() => bobSaw.messages.length === 10, "bob to get 10 messages");
    assert.deepEqual(bobSaw.messages.map((m) => m.body), [...Array(10).keys()].map((i) => `m${i}`));
    assert.deepEqual(bobSaw.messages.map((m) => m.id), ids);
    assert.equal(bobSaw.messages[0].user, "alice");
    await waitFor(() => aliceSaw.messages.length === 10, "alice to get her own 10");
    assert.equal(alice.welcome.user, "alice");
    assert.deepEqual(seenStates, ["connecting", "open"]);

    await within(bobRoom.leave(), "bob's leave");
    await waitFor(() => !aliceRoom.members.has("bob"), "alice to see bob leave");
  });

  test("history pages backwards in id order", async () => {
    const carol = open(node.ws, { user: "carol" });
    const room = await within(carol.join("pages"), "join");
    for (let i = 0; i < 5; i++) await within(room.send(`p${i}`), "ack");
    const newest = await within(room.history({ limit: 2 }), "history");
    assert.deepEqual(newest.map((m) => m.body), ["p3", "p4"]);
    const older = await within(room.history({ before: newest[0].id, limit: 2 }), "history");
    assert.deepEqual(older.map((m) => m.body), ["p1", "p2"]);
    assert.ok(compareIds(older[1].id, newest[0].id) < 0);
  });

  test("error frames reject with typed errors", async () => {
    const dave = open(node.ws, { user: "dave" });
    const room = await within(dave.join("errors"), "join");
    await assert.rejects(room.send("x".repeat(101)), TooLargeError);
    await assert.rejects(dave.join("not a room name"), (e) => e instanceof BadRequestError && e.code === "bad_request");
    await assert.rejects(room.history({ limit: 1000 }), BadRequestError);
    // The room still works after refusals.
    assert.match((await within(room.send("fine"), "ack")).id, /^\d+-\d+$/);
  });

  test("a frozen node is found silent and replaced; sends made meanwhile are bounded and kept", async () => {
    const erin = open(node.ws, { user: "erin", maxPendingSends: 2 });
    const seenStates = states(erin);
    const room = await within(erin.join("frozen"), "join");
    const saw = record(room);
    await node.pause();
    let thawed = false;
    try {
      // Two heartbeats (400 ms) of silence: the watchdog gives the connection up.
      await waitFor(() => erin.state === "reconnecting", "the client to give up the silent connection", 3000);
      // Sends made while no connection works wait for one; beyond the bound `send` rejects at
      // once. (Sends that were on the lost connection are the idempotency key's business: see
      // cluster.test.js.)
      const first = room.send("while frozen 1");
      const second = room.send("while frozen 2");
      await assert.rejects(within(room.send("one too many"), "the rejection", 100), PendingLimitError);
      node.resume();
      thawed = true;
      const acks = await within(Promise.all([first, second]), "acks after the reconnect");
      await waitFor(() => saw.messages.length === 2, "both messages delivered");
      assert.deepEqual(saw.messages.map((m) => m.id), acks.map((a) => a.id));
      assert.equal(erin.state, "open");
      assert.deepEqual(seenStates.slice(-2), ["reconnecting", "open"]);
    } finally {
      if (!thawed) node.resume();
    }
    const stored = (await node.messages("frozen")).map((m) => m.body);
    assert.deepEqual(stored, ["while frozen 1", "while frozen 2"]);
  });
});

describe("a short history: missed messages already trimmed", () => {
  let node;
  let proxy;
  before(async () => {
    node = await RookeryNode.start("trim", { ROOKERY_HISTORY_LEN: "5" });
    proxy = await Proxy.start(node.port);
  });
  after(() => proxy?.close());

  test("recovered: false is reported as a gap, and what is retained arrives in order, once", async () => {
    const frank = client(proxy.ws, { user: "frank" });
    const grace = client(node.ws, { user: "grace" });
    try {
      const room = await within(frank.join("short"), "frank's join");
      const saw = record(room);
      const sender = await within(grace.join("short"), "grace's join");
      await within(sender.send("before"), "ack");
      await waitFor(() => saw.messages.length === 1, "frank to get the first message");
      proxy.partition();
      await waitFor(() => frank.state === "reconnecting", "frank to lose the node");
      for (let i = 0; i < 10; i++) await within(sender.send(`missed ${i}`), "ack");
      proxy.heal();
      // `record` started after the first join: the one `joined` it sees is the re-join.
      await waitFor(() => saw.joins.length === 1, "frank to re-join");
      assert.deepEqual([saw.joins[0].resumed, saw.joins[0].recovered], [true, false]);
      assert.deepEqual(saw.gaps, [{ room: "short", after: saw.messages[0].id, cause: "trimmed" }]);
      await waitFor(() => saw.messages.length === 6, "the 5 retained messages");
      assert.deepEqual(saw.messages.map((m) => m.body), ["before", "missed 5", "missed 6", "missed 7", "missed 8", "missed 9"]);
      await sleep(100);
      assert.equal(saw.messages.length, 6, "nothing delivered twice");
    } finally {
      frank.close();
      grace.close();
    }
  });
});
