// What a frame off either app's socket means to the page (static/protocol.js): /ws returns the chat
// frame unchanged, /echo wraps it as text in a numbered echo frame; both find the message they answer.

import assert from "node:assert/strict";
import { test } from "node:test";
import { isEcho, pendingFor, readFrame } from "../../static/protocol.js";

const chat = { type: "chat", id: 5, text: "hi", sent: 1733100000000 };
const chatText = JSON.stringify(chat);

test("an echo frame from /echo is checked like the other frames", () => {
  assert.equal(isEcho({ type: "echo", n: 3, text: "x" }), true);
  for (const bad of [
    { type: "echo", n: "3", text: "x" },
    { type: "echo", n: 3, text: { type: "chat" } },
    { type: "echo", text: "x" },
    { type: "push", n: 3, text: "x" },
    null,
    "echo",
  ]) {
    assert.equal(isEcho(bad), false, JSON.stringify(bad));
  }
});

test("/echo's answer to a chat frame carries the chat back, with its count", () => {
  const data = JSON.stringify({ type: "echo", n: 3, text: chatText });
  assert.deepEqual(readFrame(data), { kind: "echo", n: 3, chat, text: "hi" });
});

test("/ws's unchanged echo carries the chat back, without a count", () => {
  assert.deepEqual(readFrame(chatText), { kind: "echo", n: null, chat, text: "hi" });
});

test("pushes are pushes; anything else is an echo shown as it came", () => {
  const push = { type: "push", seq: 2, ts: "2025-12-02T00:00:00Z", value: 0.25 };
  assert.deepEqual(readFrame(JSON.stringify(push)), { kind: "push", push });
  assert.deepEqual(readFrame("plain words"), { kind: "echo", n: null, chat: null, text: "plain words" });
  assert.deepEqual(readFrame('{"type":"chat","id":"5"}'), {
    kind: "echo", n: null, chat: null, text: '{"type":"chat","id":"5"}',
  });
  // /echo around something that is not a chat frame: its count, and the text as sent.
  assert.deepEqual(readFrame('{"type":"echo","n":7,"text":"plain words"}'), {
    kind: "echo", n: 7, chat: null, text: "plain words",
  });
  assert.deepEqual(readFrame('{"type":"echo","n":8,"text":"{\\"type\\":\\"chat\\"}"}'), {
    kind: "echo", n: 8, chat: null, text: '{"type":"chat"}',
  });
});

test("an echo finds the message waiting for it by id, from either app", () => {
  const waiting = new Map([[5, "message 5"], [6, "message 6"]]);
  assert.equal(pendingFor(readFrame(JSON.stringify({ type: "echo", n: 1, text: chatText })), waiting), "message 5");
  assert.equal(pendingFor(readFrame(chatText), waiting), "message 5");
  const other = JSON.stringify({ ...chat, id: 6 });
  assert.equal(pendingFor(readFrame(JSON.stringify({ type: "echo", n: 2, text: other })), waiting), "message 6");
  // Nothing waits for id 9, nor for a push or a raw echo.
  const unknown = JSON.stringify({ type: "echo", n: 3, text: JSON.stringify({ ...chat, id: 9 }) });
  assert.equal(pendingFor(readFrame(unknown), waiting), undefined);
  assert.equal(pendingFor(readFrame('{"type":"push","seq":1,"ts":"","value":0}'), waiting), undefined);
  assert.equal(pendingFor(readFrame("5"), waiting), undefined);
});
