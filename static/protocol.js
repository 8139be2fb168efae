// The frames the page and the gateway's /ws exchange, typed once for every module that reads or
// writes them (tsc checks the page against these in `make test-page`), and the checks that let a
// frame off the wire be trusted to have that shape.

/**
 * What the gateway pushes at random times.
 * @typedef {object} PushFrame
 * @property {"push"} type
 * @property {number} seq numbers the pushes of one connection, from 1
 * @property {string} ts the gateway's clock when it sent the push, RFC 3339
 * @property {number} value in [0, 1)
 */

/**
 * A message the page sends. The gateway echoes it unchanged, so the echo carries `id` back and the
 * round-trip time is measured on the page's own clock.
 * @typedef {object} ChatFrame
 * @property {"chat"} type
 * @property {number} id numbers the messages of one page load, from 1
 * @property {string} text what the user typed
 * @property {number} sent when it was handed to the socket, epoch ms (for a person reading the frames)
 */

/** @typedef {PushFrame | ChatFrame} Frame */

/**
 * @param {unknown} v
 * @returns {v is Record<string, unknown>}
 */
function isRecord(v) {
  return typeof v === "object" && v !== null;
}

/**
 * @param {unknown} v
 * @returns {v is PushFrame}
 */
export function isPush(v) {
  return isRecord(v) && v.type === "push" && typeof v.seq === "number" && typeof v.ts === "string"
    && typeof v.value === "number";
}

/**
 * @param {unknown} v
 * @returns {v is ChatFrame}
 */
export function isChat(v) {
  return isRecord(v) && v.type === "chat" && typeof v.id === "number" && typeof v.text === "string"
    && typeof v.sent === "number";
}

/**
 * A text frame's JSON, or undefined when it is not JSON (an echo of something sent raw).
 * @param {string} text
 * @returns {unknown}
 */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
