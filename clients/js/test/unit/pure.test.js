// The client's pure parts, without a node: id order, backoff, close-code policy, the outbox
// bound, and a room's once-in-order delivery when a replay overlaps what was delivered (a real
// node never sends such an overlap, so only here can that guard be seen to work).

import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff } from "../../dist/backoff.js";
import { closeVerdict, RECONNECT_CODES } from "../../dist/close-codes.js";
import { compareIds } from "../../dist/message-id.js";
import { Outbox } from "../../dist/outbox.js";
import { Room } from "../../dist/room.js";
import {
  NotReplicatedError,
  PendingLimitError,
  RateLimitedError,
  ServerError,
  serverError,
  TimeoutError,
} from "../../dist/errors.js";

test("ids order as (ms, seq), not as text", () => {
  assert.ok(compareIds("5-10", "5-9") > 0);
  assert.ok(compareIds("10-0", "9-99") > 0);
  assert.equal(compareIds("7-3", "7-3"), 0);
  assert.ok(compareIds("0-0", "1-0") < 0);
});

test("backoff: full jitter under a doubling ceiling, reset after success", () => {
  const top = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, factor: 2 }, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => top.next()), [100, 200, 400, 800, 1000, 1000]);
  top.reset();
  assert.equal(top.next(), 100);
  const bottom = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, factor: 2 }, () => 0);
  assert.equal(bottom.next(), 0);
});

test("close codes: reconnect on 1001/1006/1012/1013, stop on policy and protocol errors", () => {
  for (const code of [1001, 1006, 1012, 1013]) assert.equal(closeVerdict(code, "", RECONNECT_CODES, false), "reconnect");
  assert.equal(closeVerdict(1008, "too many bad requests", RECONNECT_CODES, true), "auth");
  assert.equal(closeVerdict(1008, "token expired", RECONNECT_CODES, false), "auth");
  assert.equal(closeVerdict(1008, "token expired", RECONNECT_CODES, true), "reconnect");
  for (const code of [1002, 1003, 1007, 1009]) assert.equal(closeVerdict(code, "", RECONNECT_CODES, true), "fatal");
});

test("every error code has its class; unknown codes stay ServerError", () => {
  const limited = serverError("rate_limited", "slow down");
  assert.ok(limited instanceof RateLimitedError && limited.code === "rate_limited");
  assert.ok(serverError("timeout", "") instanceof TimeoutError);
  assert.ok(serverError("not_replicated", "") instanceof NotReplicatedError);
  const codes = ["bad_request", "not_joined", "forbidden", "too_large", "rate_limited", "room_limit", "unavailable", "timeout", "not_replicated", "internal"];
  for (const code of codes) {
    const error = serverError(code, "");
    assert.notEqual(error.constructor, ServerError, code);
    assert.equal(error.code, code);
  }
  assert.equal(serverError("from_the_future", "").constructor, ServerError);
});

test("the outbox refuses beyond its bound and frees a slot on ack", () => {
  const outbox = new Outbox(1);
  const first = outbox.add("r", "a", "k1");
  assert.ok(!(first instanceof PendingLimitError));
  assert.ok(outbox.add("r", "b", "k2") instanceof PendingLimitError);
  outbox.sent(first.entry, "ref1");
  assert.ok(outbox.ack("ref1", "1-0"));
  assert.ok(!(outbox.add("r", "c", "k3") instanceof PendingLimitError));
});

test("a room delivers each id once, in order, whatever overlaps", () => {
  const room = new Room("r", {});
  const got = [];
  room.on("message", (m) => got.push(m.id));
  room._joined({ type: "joined", room: "r", members: [], member_count: 0, presence: true, last_id: "5-0" }, undefined);
  for (const id of ["4-0", "5-0", "6-0", "6-0", "5-1", "7-0"]) room._message({ id, room: "r", user: "u", body: "", ts: 0 });
  assert.deepEqual(got, ["6-0", "7-0"]);
  assert.equal(room._since(), "7-0");
});
