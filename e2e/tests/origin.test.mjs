// The page talks to its own origin only: a link cannot aim it at a foreign socket that would then
// receive what the user types. Two guards, each tested on its own: the CSP (`connect-src 'self'`)
// blocks any other socket, and `?ws=` naming another origin is refused before anything is tried.
//
// The foreign origin is a second gateway on 127.0.0.2 (loopback too on Linux) that accepts every
// Origin, so a refusal below is the page's doing, not the foreign server's.

import assert from "node:assert/strict";
import { test } from "node:test";
import { setup } from "../lib/fixture.mjs";
import { chatEntry, typeAndSend, waitForCount, waitForStatus } from "../lib/page.mjs";

const TIMEOUT = { timeout: 60_000 };

/** A gateway on another origin that would take this page's sockets if the page let them through. */
function startForeign(startGateway) {
  return startGateway("127.0.0.2:0", ["--allowed-origin", "*"]);
}

/**
 * Opens a WebSocket from inside the current document and reports its first event: "open", "error",
 * "close <code>", or "threw <name>" (Chromium refuses a socket the CSP forbids with an error event and
 * no close). Any CSP violation it causes is kept in `window.cspViolations`.
 */
function tryOpen(page, target) {
  return page.evaluate(async (url) => {
    if (!window.cspViolations) {
      window.cspViolations = [];
      document.addEventListener("securitypolicyviolation", (e) =>
        window.cspViolations.push({ directive: e.effectiveDirective, blocked: e.blockedURI }));
    }
    try {
      const ws = new WebSocket(url);
      return await new Promise((done) => {
        ws.onopen = () => {
          ws.close();
          done("open");
        };
        ws.onerror = () => done("error");
        ws.onclose = (e) => done(`close ${e.code}`);
      });
    } catch (err) {
      return `threw ${err.name}`;
    }
  }, target);
}

test("the CSP lets the page connect to its own origin and blocks a socket to another", TIMEOUT, async (t) => {
  const { gateway, browser, page, startGateway } = await setup(t, { name: "csp" });
  const foreign = await startForeign(startGateway);
  const foreignWs = `ws://${foreign.addr}/ws`;

  // Control: from a document of the same origin without a CSP (/health is JSON), the foreign socket
  // opens, so the refusal further down can only come from the page's policy.
  await page.goto(gateway.url("/health"));
  assert.equal(await tryOpen(page, foreignWs), "open");
  // That document's own favicon 404 is no concern of the page's, and may be reported late.
  const problemsBefore = browser.problems.length;
  const healthFavicon = /\/favicon\.ico\)?$/;

  const response = await page.goto(gateway.url("/"));
  // 'self' covers the page's own ws: (CSP Level 3): the page still connects, over its own origin.
  await waitForStatus(page, "connected");
  assert.equal(await page.locator("#endpoint").innerText(), `ws://${gateway.addr}/ws`);
  await waitForCount(page, ".entry-push", 1);

  const outcome = await tryOpen(page, foreignWs);
  assert.notEqual(outcome, "open", "a socket to another origin must not open");
  await page.waitForFunction(() => window.cspViolations.length > 0);
  const violations = await page.evaluate(() => window.cspViolations);
  assert.equal(violations[0].directive, "connect-src");
  assert.match(violations[0].blocked, /^ws:\/\/127\.0\.0\.2:/);
  // Only the page's own socket and the control's ever reached the network.
  assert.deepEqual(browser.sockets, [foreignWs, `ws://${gateway.addr}/ws`]);
  // The page itself is unaffected by the refused attempt, and the refusal is all that went wrong.
  assert.equal(await page.locator("#status").getAttribute("data-state"), "connected");
  const refusal = /^console error: Connecting to 'ws:\/\/127\.0\.0\.2:\d+\/ws' violates .*connect-src 'self'/;
  const after = browser.problems.slice(problemsBefore).filter((p) => !refusal.test(p) && !healthFavicon.test(p));
  assert.deepEqual(after, []);
  const csp = response.headers()["content-security-policy"] ?? "";
  assert.match(csp, /(^|;)\s*connect-src 'self'\s*(;|$)/, csp);
});

test("?ws= naming another origin is ignored with a warning; the page connects to its own /ws", TIMEOUT, async (t) => {
  const { gateway, browser, page, startGateway } = await setup(t, { name: "ws-foreign" });
  const foreign = await startForeign(startGateway);
  const foreignWs = `ws://${foreign.addr}/ws`;

  await page.goto(gateway.url(`/?ws=${encodeURIComponent(foreignWs)}`));
  await waitForStatus(page, "connected");
  assert.equal(await page.locator("#endpoint").innerText(), `ws://${gateway.addr}/ws`);
  const warning = page.locator('.entry-system[data-tone="warn"]');
  assert.equal(
    await warning.locator(".body").innerText(),
    `Ignored ?ws=${foreignWs}: not a path or a URL on this page's origin (http://${gateway.addr})`,
  );

  // What the user types goes to the page's own gateway and comes back from it.
  await typeAndSend(page, "for my own server only");
  await chatEntry(page, "for my own server only").and(page.locator('[data-state="echoed"]')).waitFor();
  assert.deepEqual(browser.sockets, [`ws://${gateway.addr}/ws`]);
  // Nothing was even attempted towards the foreign host: no CSP refusal on the console either.
  assert.deepEqual(browser.problems, []);
});

test("?ws= with a path on the page's own origin is followed", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "ws-path" });

  await page.goto(gateway.url(`/?ws=${encodeURIComponent("/ws?push=off")}`));
  await waitForStatus(page, "connected");
  assert.equal(await page.locator("#endpoint").innerText(), `ws://${gateway.addr}/ws?push=off`);
  await typeAndSend(page, "over the overridden socket");
  await chatEntry(page, "over the overridden socket").and(page.locator('[data-state="echoed"]')).waitFor();
  assert.deepEqual(browser.sockets, [`ws://${gateway.addr}/ws?push=off`]);
  assert.equal(await page.locator('.entry-system[data-tone="warn"]').count(), 0, "no warning");
  assert.deepEqual(browser.problems, []);
});
