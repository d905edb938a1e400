// A real `rookery` node as a child process: the binary from ROOKERY_BIN (else the repo's debug
// build), on a free loopback port that it keeps across restarts, so a client that reconnects to
// the same URL finds the restarted node.

import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.js";
import { freeze, start } from "./processes.js";
import { waitFor, within } from "./wait.js";

const HERE = dirname(fileURLToPath(import.meta.url));

export const API_KEY = "test-api-key";

export function rookeryBin() {
  const bin = process.env.ROOKERY_BIN || resolve(HERE, "../../../../target/debug/rookery");
  if (!existsSync(bin)) {
    throw new Error(`no rookery binary at ${bin}: build it (cargo build --bin rookery) or set ROOKERY_BIN`);
  }
  return bin;
}

export class RookeryNode {
  constructor(id, port, env) {
    this.id = id;
    this.port = port;
    this.env = env;
    this.process = null;
  }

  /** Starts a node named `id` with `env` added to the defaults; resolves once it is ready. */
  static async start(id, env = {}) {
    const node = new RookeryNode(id, await freePort(), env);
    await node.start();
    return node;
  }

  get http() {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async start() {
    this.process = start(`rookery-${this.id}`, rookeryBin(), [], {
      ROOKERY_BIND: `127.0.0.1:${this.port}`,
      ROOKERY_NODE_ID: this.id,
      ROOKERY_LOG_FORMAT: "json",
      ROOKERY_WORKERS: "1",
      ROOKERY_DRAIN_DELAY_MS: "0",
      ROOKERY_API_KEY: API_KEY,
      ...this.env,
    });
    const exited = this.process.exited.then(({ code, signal }) => {
      throw new Error(`rookery ${this.id} exited at start (code ${code}, signal ${signal}); see test-artifacts/logs`);
    });
    await Promise.race([exited, waitFor(() => this.ready(), `rookery ${this.id} to be ready`, 15_000, 50)]);
    exited.catch(() => {});
  }

  async ready() {
    try {
      return (await fetch(`${this.http}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }

  /** Sends `signal` (SIGKILL: a crash; SIGTERM: a drain) and waits for the exit. */
  async stop(signal = "SIGKILL") {
    const running = this.process;
    if (!running) return;
    this.process = null;
    running.child.kill(signal);
    await within(running.exited, `rookery ${this.id} to exit on ${signal}`, 15_000);
  }

  async restart(signal = "SIGKILL") {
    await this.stop(signal);
    await this.start();
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the node: its sockets stay open but nothing answers. */
  async pause() {
    await freeze(this.process.child);
  }

  resume() {
    this.process.child.kill("SIGCONT");
  }

  /** The server API: stored messages of `room` (the newest `limit`). */
  async messages(room, limit = 500) {
    const response = await fetch(`${this.http}/api/v1/rooms/${room}/messages?limit=${limit}`, {
      headers: { Authorization: `Bearer ${API_KEY}` },
    });
    if (response.status !== 200) throw new Error(`listing ${room}: HTTP ${response.status}`);
    return (await response.json()).messages;
  }

  /** The server API: stores a message as `user`, as any client's would be. */
  async post(room, user, body) {
    const response = await fetch(`${this.http}/api/v1/rooms/${room}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ user, body }),
    });
    if (response.status !== 201) throw new Error(`posting to ${room}: HTTP ${response.status}`);
    return (await response.json()).id;
  }
}
