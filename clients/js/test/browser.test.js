// The chat page in headless Chromium (Debian's `chromium`, driven by playwright-core): two pages
// chat through a node, see each other in the member list, and resume with nothing lost after
// the node is killed and restarted (two nodes on one redis-server: what is sent meanwhile goes
// through the other). Screenshots go to test-artifacts/ for CI to keep.

import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { ARTIFACTS, killAll } from "./support/processes.js";
import { startRedis } from "./support/redis.js";
import { RookeryNode } from "./support/rookery.js";
import { within } from "./support/wait.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const WAIT = 10_000;

after(killAll);

// On a developer's machine without Chromium these tests are skipped, saying why; under CI they
// fail instead, so a missing install step cannot pass for a green run.
const missing = !existsSync(CHROMIUM) && !process.env.CI && `no Chromium at ${CHROMIUM}: apt-get install -y chromium`;

describe("the chat page in Chromium", { skip: missing }, () => {
  let a, b, browser;
  before(async () => {
    const redis = await startRedis();
    const env = { ROOKERY_REDIS_URL: redis.url, ROOKERY_HEARTBEAT_MS: "1000" };
    [a, b] = await Promise.all([RookeryNode.start("a", env), RookeryNode.start("b", env)]);
    browser = await within(chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] }), "Chromium to start", 30_000);
  });
  after(() => browser?.close());

  async function login(user, room) {
    const page = await browser.newPage({ viewport: { width: 900, height: 500 } });
    page.setDefaultTimeout(WAIT);
    const errors = [];
    page.on("pageerror", (error) => errors.push(error));
    await page.goto(a.http);
    await page.fill("#user", user);
    await page.fill("#room", room);
    await page.click("#login button");
    await page.waitForSelector('#status[data-state="open"]');
    await page.waitForSelector("#text:enabled");
    page.errors = errors;
    return page;
  }

  const bodies = (page) => page.$$eval("#log .msg:not(.pending) .body", (els) => els.map((e) => e.textContent));
  const members = (page) => page.$$eval("#member-list li", (els) => els.map((e) => e.textContent));

  async function say(page, text) {
    await page.fill("#text", text);
    await page.press("#text", "Enter");
  }

  test("two pages chat, see each other, and resume after a node restart with nothing lost", async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const alice = await login("alice", "lobby");
    const bob = await login("bob", "lobby");
    await alice.waitForFunction(() => [...document.querySelectorAll("#member-list li")].some((li) => li.textContent === "bob"));
    assert.deepEqual(await members(bob), ["alice", "bob"]);

    await say(alice, "hello bob");
    await bob.waitForSelector('#log .msg:has-text("hello bob")');
    await say(bob, "hi alice");
    await alice.waitForSelector('#log .msg:has-text("hi alice")');
    assert.equal(await alice.locator('#log .msg.own:has-text("hello bob")').count(), 1, "own message told apart");
    assert.equal(await alice.locator('#log .msg.own:has-text("hi alice")').count(), 0);
    assert.match(await alice.locator('#log .msg:has-text("hi alice") time').textContent(), /\d\d.\d\d/);

    // The node both pages are on dies; while it is down the room goes on through node b, and
    // alice types a message that waits in her outbox.
    await a.stop("SIGKILL");
    await alice.waitForSelector('#status[data-state="reconnecting"]');
    await bob.waitForSelector('#status[data-state="reconnecting"]');
    await b.post("lobby", "carol", "while you were away 1");
    await b.post("lobby", "carol", "while you were away 2");
    await say(alice, "sent while offline");
    await alice.waitForSelector('#log .msg.pending:has-text("sent while offline")');
    await a.start();

    const expected = ["hello bob", "hi alice", "while you were away 1", "while you were away 2", "sent while offline"];
    for (const page of [alice, bob]) {
      await page.waitForSelector('#status[data-state="open"]');
      await page.waitForFunction(
        (n) => document.querySelectorAll("#log .msg:not(.pending)").length >= n,
        expected.length,
      );
      assert.deepEqual(await bodies(page), expected, "every message once, in order");
    }
    assert.equal(await alice.locator("#log .msg.pending").count(), 0, "the offline send was acknowledged");
    assert.deepEqual(await members(alice), ["alice", "bob"]);
    await alice.screenshot({ path: join(ARTIFACTS, "chat-alice.png") });
    await bob.screenshot({ path: join(ARTIFACTS, "chat-bob.png") });
    assert.deepEqual([...alice.errors, ...bob.errors], [], "no script errors");
  });

  test("older messages load on scroll-up", async () => {
    for (let i = 0; i < 80; i++) await b.post("scroll", "dave", `old ${i}`);
    const erin = await login("erin", "scroll");
    await erin.waitForFunction(() => document.querySelectorAll("#log .msg").length === 50);
    assert.equal((await bodies(erin)).at(-1), "old 79");
    await erin.$eval("#log", (log) => { log.scrollTop = 0; });
    await erin.waitForFunction(() => document.querySelectorAll("#log .msg").length === 80);
    assert.deepEqual(await bodies(erin), [...Array(80).keys()].map((i) => `old ${i}`));
  });
});
