// A throwaway redis-server (from PATH) on a free port, with nothing persisted; optionally a
// replica of another.

import { mkdirSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { ARTIFACTS, freeze, start } from "./processes.js";
import { waitFor } from "./wait.js";

/** Starts a redis-server; with `replicaOf` (a port), as a replica of the one on that port. */
export async function startRedis({ replicaOf } = {}) {
  const port = await freePort();
  // A replica writes the snapshot it syncs from into its directory: a fresh one of its own, not
  // the working directory (nor a leftover snapshot a server on the same port would load).
  const dir = join(ARTIFACTS, "redis", String(port));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const { child } = start(`redis-${port}`, "redis-server", [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
    // A replica attaching syncs at once, not after the primary's default 5 s wait for others.
    "--repl-diskless-sync-delay", "0",
    ...(replicaOf === undefined ? [] : ["--replicaof", "127.0.0.1", String(replicaOf)]),
  ]);
  await waitFor(() => ping(port), `redis-server on port ${port}`, 10_000, 50);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => child.kill("SIGKILL"),
    /** Freezes (SIGSTOP) or thaws (SIGCONT) redis-server: what it is sent waits, unanswered. */
    pause: () => freeze(child),
    resume: () => child.kill("SIGCONT"),
    /** Deletes every key, as a Redis restarted without its data would have none. */
    flushAll: () => inline(port, "FLUSHALL"),
    /** `INFO replication`'s `master_link_status` of a replica: "up" once it has synced. */
    masterLink: async () => /master_link_status:(\w+)/.exec(await bulk(port, "INFO replication"))?.[1],
  };
}

/** Sends one inline command and resolves with the first line of the reply. */
function inline(port, command) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(2000, () => { socket.destroy(); reject(new Error(`redis ${command}: no reply`)); });
    socket.once("error", reject);
    socket.once("connect", () => socket.write(`${command}\r\n`));
    socket.once("data", (data) => { socket.destroy(); resolve(data.toString().split("\r\n")[0]); });
  });
}

/** Sends one inline command whose reply is a bulk string (as INFO's is) and resolves with it. */
function bulk(port, command) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let reply = Buffer.alloc(0);
    socket.setTimeout(2000, () => { socket.destroy(); reject(new Error(`redis ${command}: no reply`)); });
    socket.once("error", reject);
    socket.once("connect", () => socket.write(`${command}\r\n`));
    socket.on("data", (data) => {
      reply = Buffer.concat([reply, data]);
      const header = reply.indexOf("\r\n");
      if (header < 0) return;
      const length = Number(reply.subarray(1, header).toString());
      if (reply.length < header + 2 + length) return;
      socket.destroy();
      resolve(reply.subarray(header + 2, header + 2 + length).toString());
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(500, () => { socket.destroy(); resolve(false); });
    socket.once("error", () => resolve(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => { socket.destroy(); resolve(data.toString().startsWith("+PONG")); });
  });
}
