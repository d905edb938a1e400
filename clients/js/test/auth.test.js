// Credentials: a refused token stops reconnecting (a retry would be refused the same way), an
// expired token closes the session with 1008, and a token provider gets a fresh token on every
// connection, so it alone may reconnect after expiry.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AuthError } from "../dist/index.js";
import { client, states } from "./support/client.js";
import { sign } from "./support/jwt.js";
import { killAll } from "./support/processes.js";
import { RookeryNode } from "./support/rookery.js";
import { sleep, waitFor, within } from "./support/wait.js";

const SECRET = "test-secret-of-at-least-32-bytes!"; // the node refuses HS256 secrets under 32 bytes

after(killAll);

describe("a node with JWT auth", () => {
  let node;
  before(async () => {
    node = await RookeryNode.start("jwt", {
      ROOKERY_AUTH: "jwt",
      ROOKERY_JWT_SECRET: SECRET,
      ROOKERY_JWT_LEEWAY_SECS: "0",
    });
  });

  test("a refused token closes the client with AuthError and no retry", async () => {
    let calls = 0;
    const errors = [];
    const mallory = client(node.ws, {
      token: () => {
        calls += 1;
        return sign("wrong-secret", "mallory");
      },
    });
    const seen = states(mallory);
    mallory.on("error", (e) => errors.push(e));
    await assert.rejects(within(mallory.join("lobby"), "the join to fail"), AuthError);
    assert.equal(mallory.state, "closed");
    assert.ok(mallory.closeError instanceof AuthError);
    assert.equal(errors.length, 1);
    await sleep(600); // several backoff ceilings (50..400 ms): a retry would have happened
    assert.equal(calls, 1, "the token provider is not asked again");
    assert.deepEqual(seen, ["connecting", "closed"]);
  });

  test("an expired token (1008) stops a client that cannot refresh it", async () => {
    // `exp` is in whole seconds: two of them leave at least one for the join.
    const token = sign(SECRET, "olivia", 2);
    const olivia = client(node.ws, { token });
    const room = await within(olivia.join("lobby"), "join");
    assert.equal(room.joined, true);
    await waitFor(() => olivia.state === "closed", "the node to close the expired session", 5000);
    assert.ok(olivia.closeError instanceof AuthError);
    assert.equal(olivia.closeError.closeCode, 1008);
    assert.equal(olivia.closeError.reason, "token expired");
    await assert.rejects(room.send("too late"), AuthError);
  });

  test("a token provider is asked again after expiry, and the room is re-joined", async () => {
    let calls = 0;
    const peggy = client(node.ws, {
      token: async () => {
        calls += 1;
        return sign(SECRET, "peggy", calls === 1 ? 2 : 3600);
      },
    });
    const room = await within(peggy.join("lobby"), "join");
    await waitFor(() => calls === 2 && room.joined, "a reconnect with a fresh token", 5000);
    assert.equal(peggy.state, "open");
    assert.match((await within(room.send("still here"), "ack")).id, /^\d+-\d+$/);
    peggy.close();
  });
});
