// Builds the chat page's JavaScript into static/js (or into the folder given as the first
// argument, which the test that compares it with the committed files uses). The node embeds
// static/js, so the built files are committed and running a node needs no Node.js.

import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { rmSync } from "node:fs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = resolve(process.argv[2] ?? join(root, "../../static/js"));
rmSync(outDir, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.page.json"), "--outDir", outDir], {
  stdio: "inherit",
});
