// What the Room panel knows about the component's /room app, without a DOM or a socket: which URL
// to (re)join with, and what each frame means for the log (page/tests/room.test.mjs).
//
// `ws://HOST/room?room=R&name=N&last=ID`: every text sent is said to the room; the room sends a
// welcome, then every message with its position `id` (`N.EPOCH`). Coming back with `last=` the
// newest id seen, the gateway first replays, in order and once each, what was said after it, then
// live messages; or a gap message when its history no longer reaches back that far.
//
// Which messages were missed, exactly: the welcome carries the server's clock when the client joined
// (`at`), and every message the clock when it was said. On a connection that came back with `last=`,
// a message said before the welcome is one the client was not there for: "recovered", whether it came
// from the history or was still on its way. Anything else is live. The position also drops what was
// shown already (the gateway delivers each once; this is the safety net): a message at or before the
// newest position seen is never shown twice.

/** @import { RoomFrame } from "./protocol.js" */
import { socketUrl } from "./endpoint.js";
import { isGap, isRoomError, isRoomMessage, isWelcome, parseJson } from "./protocol.js";

/** The room a page joins without `?room=`: the component's own default. */
export const DEFAULT_ROOM = "lobby";
/** The component's limits (component/src/apps/room.rs): longer names are refused, longer texts not taken. */
export const MAX_NAME = 32;
export const MAX_TEXT = 1000;

/**
 * A message's position in its room's history, from its id `N.EPOCH` (`N.EPOCH.TAG` on Redis).
 * @typedef {object} Position
 * @property {number} n
 * @property {string} epoch
 * @property {string | null} tag the publication's own on Redis (else null): another tag at the
 *   same position is another publication, not a repeat
 */

/**
 * What a frame from /room means to the panel.
 * @typedef {{ kind: "welcome", room: string, name: string, resumedFrom: string | null }
 *   | { kind: "message", message: RoomFrame, recovered: boolean }
 *   | { kind: "duplicate", message: RoomFrame }
 *   | { kind: "gap", room: string, since: string | null }
 *   | { kind: "error", text: string }
 *   | { kind: "other", text: string }} RoomReading
 */

/**
 * @param {string} id
 * @returns {Position | null}
 */
export function parsePosition(id) {
  const m = /^(\d+)\.([A-Za-z0-9]{1,16})(?:\.([A-Za-z0-9]{1,16}))?$/.exec(id);
  return m ? { n: Number(m[1]), epoch: m[2], tag: m[3] ?? null } : null;
}

/**
 * A room name as the component takes it (1 to 32 letters, digits, `-`, `_`), or null.
 * @param {string | null} value
 */
export function validRoom(value) {
  return value !== null && /^[A-Za-z0-9_-]{1,32}$/.test(value) ? value : null;
}

/**
 * A sender's name as the component takes it: trimmed, 1 to 32 characters, no control characters;
 * "" for none (the room then names the client `guest-…`), null when it would be refused.
 * @param {string | null} value
 */
export function validName(value) {
  const name = (value ?? "").trim();
  if (name === "") return "";
  // eslint-disable-next-line no-control-regex
  return [...name].length <= MAX_NAME && !/[\u0000-\u001f\u007f-\u009f]/.test(name) ? name : null;
}

/**
 * The room and name a page at `pageHref` joins with (`?room=`, `?name=`); what it could not take.
 * @param {string} pageHref
 */
export function roomFromPage(pageHref) {
  const params = new URL(pageHref).searchParams;
  const room = validRoom(params.get("room"));
  const name = validName(params.get("name"));
  return {
    room: room ?? DEFAULT_ROOM,
    name: name ?? "",
    ignoredRoom: params.has("room") && room === null,
    ignoredName: params.has("name") && name === null,
  };
}

/**
 * The page's URL with `?name=` set to `name` ("" removes it), everything else kept.
 * @param {string} name
 * @param {string} pageHref
 */
export function hrefForName(name, pageHref) {
  const u = new URL(pageHref);
  if (name === "") u.searchParams.delete("name");
  else u.searchParams.set("name", name);
  return u.href;
}

export class Room {
  /**
   * @param {{ room?: string, name?: string }} options
   */
  constructor({ room = DEFAULT_ROOM, name = "" } = {}) {
    this.room = room;
    /** What the user asked to be called ("" for a guest name); the room's answer is `joinedAs`. */
    this.name = name;
    /** @type {string | null} the name of the latest welcome */
    this.joinedAs = null;
    /** @type {string | null} the id of the newest message shown: what `last=` comes back with */
    this.last = null;
    /** @type {Position | null} */
    this.lastPosition = null;
    /** @type {string | null} `last` as the connection in use joined with: null on a first join */
    this.resumedFrom = null;
    /** @type {number | null} the welcome's clock, on a connection that came back with `last=` */
    this.resumedAt = null;
  }

  /** The socket is gone (or being replaced): not in the room until the next welcome. */
  left() {
    this.joinedAs = null;
  }

  /**
   * The socket URL to join with now: the room, the name if one was chosen, and where the page was.
   * @param {string} pageHref the page's own URL (the socket is on its origin)
   */
  url(pageHref) {
    const u = new URL(socketUrl(null, pageHref, "/room").url);
    u.searchParams.set("room", this.room);
    if (this.name !== "") u.searchParams.set("name", this.name);
    if (this.last !== null) u.searchParams.set("last", this.last);
    return u.href;
  }

  /**
   * What a text frame from /room means; keeps the position, the duplicate check and the recovered
   * marks up to date. The welcome opens every connection, so `last` at that moment is the one the
   * connection's URL carried.
   * @param {string} data
   * @returns {RoomReading}
   */
  read(data) {
    const frame = parseJson(data);
    if (isWelcome(frame)) {
      this.joinedAs = frame.name;
      this.resumedFrom = this.last;
      this.resumedAt = this.last !== null && frame.at !== undefined ? frame.at : null;
      return { kind: "welcome", room: frame.room, name: frame.name, resumedFrom: this.resumedFrom };
    }
    if (isRoomMessage(frame)) return this.#message(frame);
    if (isGap(frame)) {
      // What follows a gap may stand at or before the newest shown: the history was begun again
      // or diverged there (another publication at the same position), so it is not a repeat.
      this.lastPosition = null;
      return { kind: "gap", room: frame.room, since: this.resumedFrom };
    }
    if (isRoomError(frame)) return { kind: "error", text: frame.text };
    return { kind: "other", text: data };
  }

  /** @param {RoomFrame} message */
  #message(message) {
    const position = parsePosition(message.id);
    const last = this.lastPosition;
    const behind =
      position !== null &&
      last !== null &&
      position.epoch === last.epoch &&
      (position.n < last.n || (position.n === last.n && position.tag === last.tag));
    if (behind) return /** @type {RoomReading} */ ({ kind: "duplicate", message });
    if (position !== null) {
      this.last = message.id;
      this.lastPosition = position;
    }
    const recovered = this.resumedAt !== null && message.at !== undefined && message.at < this.resumedAt;
    return /** @type {RoomReading} */ ({ kind: "message", message, recovered });
  }
}

/**
 * Messages typed while the room's socket is down, oldest first, sent once it is back.
 */
export class Outbox {
  /** @param {number} limit past this, `add` refuses */
  constructor(limit = 100) {
    this.limit = limit;
    /** @type {string[]} */
    this.waiting = [];
  }

  /**
   * Sends `text` at once if `send` takes it, else keeps it.
   * @param {string} text
   * @param {(text: string) => boolean} send false when there is no open socket
   * @returns {"sent" | "queued" | "full"}
   */
  add(text, send) {
    if (this.waiting.length >= this.limit) return "full";
    // Behind the ones still waiting, never ahead of them: the room keeps the order they were typed in.
    this.waiting.push(text);
    this.flush(send);
    return this.waiting.length === 0 ? "sent" : "queued";
  }

  /**
   * Sends what waits, in order, until `send` refuses one; returns how many went.
   * @param {(text: string) => boolean} send
   */
  flush(send) {
    let sent = 0;
    while (this.waiting.length > 0 && send(this.waiting[0])) {
      this.waiting.shift();
      sent += 1;
    }
    return sent;
  }
}
