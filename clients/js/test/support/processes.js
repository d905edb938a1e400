// Every server a test file starts (rookery nodes, redis-server) is registered here and killed
// when the file's tests end, even when they fail or the process exits early, so no run leaves a
// node holding a port.

import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "test-artifacts");
const LOGS = join(ARTIFACTS, "logs");

const running = new Set();

/** Starts `command`, its output appended to test-artifacts/logs/<name>.log. */
export function start(name, command, args, env = {}) {
  mkdirSync(LOGS, { recursive: true });
  const log = createWriteStream(join(LOGS, `${name}.log`), { flags: "a" });
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  running.add(child);
  exited.then(() => running.delete(child));
  child.on("error", (error) => log.write(`spawn failed: ${error}\n`));
  return { child, exited };
}

/**
 * Freezes `child` (SIGSTOP) and resolves once every thread of it has stopped: `kill` only
 * queues the signal, and a thread may still run for a moment, long enough to read a frame a
 * test sends right after. Linux only (it reads /proc).
 */
export async function freeze(child) {
  child.kill("SIGSTOP");
  const stopped = () => {
    try {
      const threads = readdirSync(`/proc/${child.pid}/task`);
      // The state follows the command name's closing parenthesis (the name may hold any).
      const state = (t) => {
        const stat = readFileSync(`/proc/${child.pid}/task/${t}/stat`, "utf8");
        return stat[stat.lastIndexOf(")") + 2];
      };
      return threads.every((t) => state(t) === "T");
    } catch {
      return false;
    }
  };
  for (const started = Date.now(); !stopped(); ) {
    if (Date.now() - started > 2000) throw new Error(`process ${child.pid} did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Kills every process still running (SIGKILL: tests that need a clean stop do it themselves). */
export async function killAll() {
  const all = [...running];
  for (const child of all) child.kill("SIGKILL");
  await Promise.all(all.map((child) => (child.exitCode !== null || child.signalCode !== null ? null : new Promise((r) => child.once("exit", r)))));
}

process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});
