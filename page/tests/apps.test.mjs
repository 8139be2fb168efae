// Which app and socket a link opens (static/apps.js): `?app=` picks the app, `?ws=` still overrides
// the socket for it (same origin only), and the URL the switch leaves behind opens the same app again.

import assert from "node:assert/strict";
import { test } from "node:test";
import { APPS, appFromParam, hrefForApp, startingPoint } from "../../static/apps.js";

const HOST = "http://127.0.0.1:8080";

test("without ?app= the page opens the built-in /ws; ?app=echo the component's /echo", () => {
  assert.deepEqual(startingPoint(`${HOST}/`), {
    app: APPS.ws, url: "ws://127.0.0.1:8080/ws", ignoredApp: false, ignoredWs: false,
  });
  assert.deepEqual(startingPoint(`${HOST}/?app=echo`), {
    app: APPS.echo, url: "ws://127.0.0.1:8080/echo", ignoredApp: false, ignoredWs: false,
  });
  assert.equal(startingPoint(`${HOST}/?app=ws`).url, "ws://127.0.0.1:8080/ws");
  assert.equal(startingPoint("https://stream.example/?app=echo").url, "wss://stream.example/echo");
  // The test knobs ride along untouched.
  assert.equal(startingPoint(`${HOST}/?backoff=200&app=echo&drainwindow=300`).url, "ws://127.0.0.1:8080/echo");
});

test("an ?app= that names no app is reported and the built-in /ws opens", () => {
  for (const value of ["Echo", "component", "/echo", "ws,echo"]) {
    assert.deepEqual(appFromParam(value), { app: APPS.ws, ignored: true }, value);
  }
  assert.deepEqual(appFromParam(""), { app: APPS.ws, ignored: false });
  assert.deepEqual(appFromParam(null), { app: APPS.ws, ignored: false });
  const start = startingPoint(`${HOST}/?app=nope`);
  assert.equal(start.url, "ws://127.0.0.1:8080/ws");
  assert.equal(start.ignoredApp, true);
});

test("?ws= overrides the socket of whichever app ?app= chose; refused, it falls back to that app's path", () => {
  assert.equal(startingPoint(`${HOST}/?ws=${encodeURIComponent("/ws?push=off")}`).url, "ws://127.0.0.1:8080/ws?push=off");
  assert.equal(
    startingPoint(`${HOST}/?app=echo&ws=${encodeURIComponent("/echo?x=1")}`).url,
    "ws://127.0.0.1:8080/echo?x=1",
  );
  const refused = startingPoint(`${HOST}/?app=echo&ws=${encodeURIComponent("ws://evil.example/echo")}`);
  assert.deepEqual(refused, { app: APPS.echo, url: "ws://127.0.0.1:8080/echo", ignoredApp: false, ignoredWs: true });
});

test("the switch leaves a URL that opens the same app, without the other app's ?ws=", () => {
  assert.equal(hrefForApp(APPS.echo, `${HOST}/`), `${HOST}/?app=echo`);
  assert.equal(hrefForApp(APPS.ws, `${HOST}/?app=echo`), `${HOST}/`, "the default app keeps the plain link");
  assert.equal(
    hrefForApp(APPS.echo, `${HOST}/?backoff=200&ws=%2Fws%3Fpush%3Doff&drainwindow=300#log`),
    `${HOST}/?backoff=200&drainwindow=300&app=echo#log`,
  );
  // Round trip: what the switch wrote is what the next load reads.
  for (const app of Object.values(APPS)) {
    assert.equal(startingPoint(hrefForApp(app, `${HOST}/?app=nope&ws=/elsewhere`)).app, app);
  }
});
