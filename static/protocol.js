// The frames the page exchanges with its two apps (the gateway's built-in /ws, the component's
// /echo), typed once for every module that reads or writes them (tsc checks the page against these in
// `make test-page`), the checks that let a frame off the wire be trusted to have that shape, and what
// a frame means to the page whichever app sent it (`readFrame`).

/**
 * What the gateway's /ws pushes at random times.
 * @typedef {object} PushFrame
 * @property {"push"} type
 * @property {number} seq numbers the pushes of one connection, from 1
 * @property {string} ts the gateway's clock when it sent the push, RFC 3339
 * @property {number} value in [0, 1)
 */

/**
 * A message the page sends. /ws echoes it unchanged, /echo inside an EchoFrame's `text`: either way
 * the echo carries `id` back and the round-trip time is measured on the page's own clock.
 * @typedef {object} ChatFrame
 * @property {"chat"} type
 * @property {number} id numbers the messages of one page load, from 1
 * @property {string} text what the user typed
 * @property {number} sent when it was handed to the socket, epoch ms (for a person reading the frames)
 */

/**
 * What the component's /echo app answers to every text message: the message itself, whole, as a
 * string (so a chat frame comes back as JSON inside `text`), numbered.
 * @typedef {object} EchoFrame
 * @property {"echo"} type
 * @property {number} n counts the text and binary messages of one connection, from 1
 * @property {string} text the message exactly as the page sent it
 */

/** @typedef {PushFrame | ChatFrame | EchoFrame} Frame */

/**
 * A push, whichever app sent it (only /ws pushes).
 * @typedef {object} PushReading
 * @property {"push"} kind
 * @property {PushFrame} push
 */

/**
 * Something the page sent, coming back.
 * @typedef {object} EchoReading
 * @property {"echo"} kind
 * @property {number | null} n /echo's count; null for a frame that came back unchanged (/ws)
 * @property {ChatFrame | null} chat the page's own chat frame it carries back, if it is one: its
 *   `id` finds the message waiting for this echo
 * @property {string} text what to show: the chat's text, or else the message as it came
 */

/** @typedef {PushReading | EchoReading} Reading */

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
 * @param {unknown} v
 * @returns {v is EchoFrame}
 */
export function isEcho(v) {
  return isRecord(v) && v.type === "echo" && typeof v.n === "number" && typeof v.text === "string";
}

/**
 * What a text frame means. The frames say which app sent them, so this needs no app: /ws returns a
 * chat frame unchanged, /echo wraps it, as a string, in an echo frame; anything else is an echo of
 * something sent raw and is shown as it came.
 * @param {string} data
 * @returns {Reading}
 */
export function readFrame(data) {
  const frame = parseJson(data);
  if (isPush(frame)) return { kind: "push", push: frame };
  if (isChat(frame)) return { kind: "echo", n: null, chat: frame, text: frame.text };
  if (isEcho(frame)) {
    const inner = parseJson(frame.text);
    const chat = isChat(inner) ? inner : null;
    return { kind: "echo", n: frame.n, chat, text: chat ? chat.text : frame.text };
  }
  return { kind: "echo", n: null, chat: null, text: data };
}

/**
 * The message an echo answers, among those on the wire waiting for theirs (by chat id).
 * @template T
 * @param {Reading} reading
 * @param {ReadonlyMap<number, T>} inflight
 * @returns {T | undefined}
 */
export function pendingFor(reading, inflight) {
  return reading.kind === "echo" && reading.chat !== null ? inflight.get(reading.chat.id) : undefined;
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

// ---------------------------------------------------------------- the component's /room

/**
 * What /room says to a client that joined.
 * @typedef {object} WelcomeFrame
 * @property {"welcome"} type
 * @property {string} room
 * @property {string} name the name the room knows this client by (a `guest-` one if it gave none)
 * @property {number} [at] the server's clock when the client joined, epoch ms: a message from before
 *   it, on a connection that came back with `last=`, is one the client missed
 */

/**
 * A message said in the room, to everyone in it (the sender too).
 * @typedef {object} RoomFrame
 * @property {"room"} type
 * @property {string} id its position in the room's history, `N.EPOCH` (`N.EPOCH.TAG` on Redis): what `last=` comes back with
 * @property {string} from who said it
 * @property {string} text what they said
 * @property {number} [at] when the sender's gateway took it, epoch ms (absent for the publish API's)
 */

/**
 * The room's history no longer reaches back to the `last=` the client came with: messages were lost.
 * @typedef {object} GapFrame
 * @property {"gap"} type
 * @property {string} room
 */

/**
 * To a sender whose message the room did not take.
 * @typedef {object} RoomErrorFrame
 * @property {"error"} type
 * @property {string} text
 */

/**
 * @param {unknown} v
 * @returns {v is WelcomeFrame}
 */
export function isWelcome(v) {
  return isRecord(v) && v.type === "welcome" && typeof v.room === "string" && typeof v.name === "string"
    && (v.at === undefined || typeof v.at === "number");
}

/**
 * @param {unknown} v
 * @returns {v is RoomFrame}
 */
export function isRoomMessage(v) {
  return isRecord(v) && v.type === "room" && typeof v.id === "string" && typeof v.from === "string"
    && typeof v.text === "string" && (v.at === undefined || typeof v.at === "number");
}

/**
 * @param {unknown} v
 * @returns {v is GapFrame}
 */
export function isGap(v) {
  return isRecord(v) && v.type === "gap" && typeof v.room === "string";
}

/**
 * @param {unknown} v
 * @returns {v is RoomErrorFrame}
 */
export function isRoomError(v) {
  return isRecord(v) && v.type === "error" && typeof v.text === "string";
}
