// Which `?ws=` overrides the page follows (static/endpoint.js): a path, or a URL on its own origin,
// and nothing else, so a link cannot send what the user types to somebody else's socket.

import assert from "node:assert/strict";
import { test } from "node:test";
import { socketUrl } from "../../static/endpoint.js";

const PAGE = "http://127.0.0.1:8080/?ws=whatever";
const TLS_PAGE = "https://stream.example/";

test("without an override the page connects to its own /ws, wss: under https:", () => {
  assert.deepEqual(socketUrl(null, PAGE), { url: "ws://127.0.0.1:8080/ws", ignored: false });
  assert.deepEqual(socketUrl("", PAGE), { url: "ws://127.0.0.1:8080/ws", ignored: false });
  assert.deepEqual(socketUrl(null, TLS_PAGE), { url: "wss://stream.example/ws", ignored: false });
});

test("a path, or a URL on the page's own origin, is followed", () => {
  const followed = {
    "/ws?push=off": "ws://127.0.0.1:8080/ws?push=off",
    "/other": "ws://127.0.0.1:8080/other",
    "ws://127.0.0.1:8080/ws?push=off": "ws://127.0.0.1:8080/ws?push=off",
    // http(s): names the same origin as the page's own scheme does.
    "http://127.0.0.1:8080/ws": "ws://127.0.0.1:8080/ws",
    // A fragment would make the WebSocket constructor throw.
    "/ws#here": "ws://127.0.0.1:8080/ws",
  };
  for (const [override, url] of Object.entries(followed)) {
    assert.deepEqual(socketUrl(override, PAGE), { url, ignored: false }, override);
  }
  assert.deepEqual(socketUrl("wss://stream.example:443/ws", TLS_PAGE), { url: "wss://stream.example/ws", ignored: false });
  assert.deepEqual(socketUrl("https://stream.example/ws", TLS_PAGE), { url: "wss://stream.example/ws", ignored: false });
});

test("anything on another origin is ignored: the page keeps its own /ws", () => {
  const refused = [
    "ws://127.0.0.2:8080/ws", // another host (loopback too)
    "ws://localhost:8080/ws", // the same machine, but another origin to the browser
    "ws://127.0.0.1:8081/ws", // another port
    "ws://127.0.0.1/ws", // the default port is another port
    "wss://127.0.0.1:8080/ws", // another scheme
    "https://127.0.0.1:8080/ws",
    "//evil.example/ws", // scheme-relative: another host
    "ws://evil.example/ws",
    "javascript:alert(1)",
    "data:text/plain,hi",
    "http://[::1", // not a URL at all
  ];
  for (const override of refused) {
    assert.deepEqual(socketUrl(override, PAGE), { url: "ws://127.0.0.1:8080/ws", ignored: true }, override);
  }
  // Under https: a plain ws: socket would be a downgrade (and mixed content).
  assert.deepEqual(socketUrl("ws://stream.example/ws", TLS_PAGE), { url: "wss://stream.example/ws", ignored: true });
});
