// A throwaway redis-server (from PATH) on a free port, with nothing persisted.

import { connect } from "node:net";
import { freePort } from "./ports.js";
import { start } from "./processes.js";
import { waitFor } from "./wait.js";

export async function startRedis() {
  const port = await freePort();
  const { child } = start(`redis-${port}`, "redis-server", [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
  ]);
  await waitFor(() => ping(port), `redis-server on port ${port}`, 10_000, 50);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => child.kill("SIGKILL"),
    /** Freezes (SIGSTOP) or thaws (SIGCONT) redis-server: what it is sent waits, unanswered. */
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    /** Deletes every key, as a Redis restarted without its data would have none. */
    flushAll: () => inline(port, "FLUSHALL"),
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

function ping(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(500, () => { socket.destroy(); resolve(false); });
    socket.once("error", () => resolve(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => { socket.destroy(); resolve(data.toString().startsWith("+PONG")); });
  });
}
