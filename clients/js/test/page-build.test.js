// The node embeds static/js, the committed build of this package's sources and of the page's
// script. This fails when they differ from what the sources build to now, i.e. when a change to
// src/ or page/ was committed without `npm run build:page`.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const COMMITTED = join(ROOT, "../../static/js");

function files(dir) {
  const found = new Map();
  const walk = (at) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.set(relative(dir, path), readFileSync(path, "utf8"));
    }
  };
  walk(dir);
  return found;
}

test("static/js is what clients/js builds to (run `npm run build:page` and commit)", () => {
  const fresh = mkdtempSync(join(tmpdir(), "rookery-page-"));
  try {
    execFileSync(process.execPath, [join(ROOT, "scripts/build-page.js"), fresh], { stdio: "inherit" });
    const built = files(fresh);
    const committed = files(COMMITTED);
    assert.deepEqual([...committed.keys()].sort(), [...built.keys()].sort(), "the same files");
    for (const [path, source] of built) assert.equal(committed.get(path), source, `static/js/${path} is stale`);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
});
