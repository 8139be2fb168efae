// The Room panel: the component's /room app on a socket of its own, beside the stream (which keeps
// its own socket and app switch). Who said what, oldest first; a send box; the room's own connection
// status; after a reconnect the messages missed while away, marked "recovered" (see room.js).
//
//   ?room=NAME   the room to join (default lobby; 1 to 32 letters, digits, - or _)
//   ?name=NAME   the name to say things under (default: the room gives a guest-… name); the name
//                field changes it and keeps the URL in step
//
// Everything a message carries is put on the page as text (textContent), never as HTML: names and
// texts come from other people.

/** @import { RoomFrame } from "./protocol.js" */
/** @import { StateDetail } from "./connection.js" */
import { Connection, countdownText, describeClose } from "./connection.js";
import { MAX_TEXT, Outbox, Room, hrefForName, roomFromPage, validName } from "./room.js";

/** The panel keeps this many entries, like the stream's log. */
const LOG_LIMIT = 500;

/**
 * @template {Element} T
 * @param {string} id
 * @param {{ new (): T, prototype: T, name: string }} type
 * @returns {T}
 */
function $(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`#${id} is missing or not a ${type.name}`);
  return node;
}

/**
 * Starts the panel: joins the room at once and keeps rejoining.
 * @param {{ baseMs: number, maxMs: number, drainWindowMs: number }} backoff the page's reconnect knobs
 */
export function startRoomPanel(backoff) {
  const el = {
    name: $("room-name", HTMLElement),
    status: $("room-status", HTMLElement),
    statusText: $("room-status-text", HTMLElement),
    countdown: $("room-countdown", HTMLElement),
    join: $("room-join", HTMLFormElement),
    you: $("room-you", HTMLInputElement),
    log: $("room-log", HTMLOListElement),
    empty: $("room-empty", HTMLElement),
    form: $("room-form", HTMLFormElement),
    say: $("room-say", HTMLInputElement),
    hint: $("room-hint", HTMLElement),
  };
  const start = roomFromPage(location.href);
  const room = new Room({ room: start.room, name: start.name });
  const outbox = new Outbox();
  const connection = new Connection(room.url(location.href), backoff);
  let reconnectUntil = 0;
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

  el.name.textContent = room.room;
  el.you.value = room.name;

  /** Where the next attempt joins from: always the newest position seen. */
  function keepUrl() {
    connection.url = room.url(location.href);
  }

  /** Keeps the newest entry in view, unless the person scrolled up to read. */
  function append(/** @type {HTMLLIElement} */ li) {
    const atBottom = el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 40;
    el.log.append(li);
    while (el.log.childElementCount > LOG_LIMIT) el.log.firstElementChild?.remove();
    el.empty.hidden = true;
    if (atBottom) el.log.scrollTop = el.log.scrollHeight;
  }

  /**
   * @param {RoomFrame} message
   * @param {boolean} recovered
   */
  function logMessage(message, recovered) {
    const li = document.createElement("li");
    li.className = "room-entry room-message";
    li.dataset.id = message.id;
    li.dataset.recovered = String(recovered);
    if (message.from === room.joinedAs) li.classList.add("mine");
    const head = document.createElement("span");
    head.className = "room-meta";
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = message.from;
    head.append(from);
    if (message.at !== undefined) {
      const at = new Date(message.at);
      const stamp = document.createElement("time");
      stamp.dateTime = at.toISOString();
      stamp.textContent = timeFormat.format(at);
      head.append(stamp);
    }
    if (recovered) {
      const mark = document.createElement("span");
      mark.className = "recovered";
      mark.textContent = "recovered";
      mark.title = "Said while you were disconnected; replayed when you came back";
      head.append(mark);
    }
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    li.append(head, text);
    append(li);
  }

  /**
   * @param {string} text
   * @param {"info" | "ok" | "warn" | "error"} tone
   * @param {string} what a data-what for tests and styles: joined, closed, gap, error
   */
  function logNotice(text, tone, what) {
    const li = document.createElement("li");
    li.className = "room-entry room-notice";
    li.dataset.tone = tone;
    li.dataset.what = what;
    li.textContent = text;
    append(li);
  }

  /** @param {string} text */
  function send(text) {
    return connection.send(text);
  }

  function renderHint() {
    const n = outbox.waiting.length;
    el.hint.textContent = n === 0 ? "" : `Offline: ${n} waiting, said as soon as the room is back.`;
    if (n === 0) delete el.hint.dataset.tone;
    else el.hint.dataset.tone = "warn";
  }

  /** @param {StateDetail} detail */
  function renderStatus({ state, attempt, lastClose, delayMs = 0 }) {
    el.status.dataset.state = state;
    const why = lastClose ? `Closed: ${lastClose.code} ${lastClose.reason || describeClose(lastClose.code)} · ` : "";
    if (state === "connected") {
      // The welcome says under which name; until it comes the socket is open but not yet in the room.
      const joinedAs = el.status.dataset.joinedAs;
      el.statusText.textContent = joinedAs === undefined ? "Joining…" : `In the room as ${joinedAs}`;
    } else if (state === "reconnecting") {
      reconnectUntil = performance.now() + delayMs;
      el.statusText.textContent = `${why}rejoining`;
    } else {
      el.statusText.textContent = attempt > 0 ? `${why}rejoining (attempt ${attempt + 1})…` : "Joining…";
    }
    renderCountdown();
  }

  function renderCountdown() {
    const text = countdownText(connection.state, reconnectUntil, performance.now());
    if (el.countdown.textContent !== text) el.countdown.textContent = text;
  }

  /** @param {string | ArrayBuffer} data */
  function onMessage(data) {
    if (typeof data !== "string") return; // the room sends text only
    const reading = room.read(data);
    switch (reading.kind) {
      case "welcome": {
        el.status.dataset.joinedAs = reading.name;
        el.statusText.textContent = `In the room as ${reading.name}`;
        if (el.you.value.trim() === "") el.you.placeholder = reading.name;
        logNotice(
          reading.resumedFrom === null
            ? `Joined ${reading.room} as ${reading.name}`
            : `Rejoined ${reading.room} as ${reading.name}; what was said meanwhile follows, marked recovered`,
          "ok",
          "joined",
        );
        outbox.flush(send);
        renderHint();
        break;
      }
      case "message":
        logMessage(reading.message, reading.recovered);
        keepUrl();
        break;
      case "duplicate":
        break; // shown already
      case "gap":
        logNotice(
          "Some messages were lost: the room's history no longer reaches back to where you were. What is said from now on shows up here.",
          "warn",
          "gap",
        );
        break;
      case "error":
        logNotice(`Not said: ${reading.text}`, "error", "error");
        break;
      case "other":
        logNotice(`The room sent something this page does not know: ${reading.text.slice(0, 200)}`, "warn", "other");
        break;
    }
  }

  connection.on("state", (e) => renderStatus(e.detail));
  connection.on("message", (e) => onMessage(e.detail.data));
  connection.on("close", (e) => {
    const { code, reason, everOpened } = e.detail;
    delete el.status.dataset.joinedAs;
    if (!everOpened) return;
    logNotice(`Disconnected (${code} ${reason || describeClose(code)}); rejoining…`, "warn", "closed");
  });

  el.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = el.say.value.trim();
    if (text === "") {
      el.hint.textContent = "Type something first.";
      el.say.focus();
      return;
    }
    if ([...text].length > MAX_TEXT) {
      el.hint.textContent = `The room takes at most ${MAX_TEXT} characters.`;
      return;
    }
    // Before the welcome the socket may be open but the room not yet joined: wait for it.
    const joined = el.status.dataset.joinedAs !== undefined;
    const result = outbox.add(text, (t) => joined && send(t));
    if (result === "full") {
      el.hint.textContent = `${outbox.waiting.length} messages are already waiting; try again once the room is back.`;
      el.hint.dataset.tone = "warn";
      return;
    }
    el.say.value = "";
    renderHint();
  });

  el.join.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = validName(el.you.value);
    if (name === null) {
      el.hint.textContent = "A name is 1 to 32 characters, none of them control characters.";
      el.you.focus();
      return;
    }
    if (name === room.name && connection.state === "connected") return;
    room.name = name;
    history.replaceState(history.state, "", hrefForName(name, location.href));
    // A new socket under the new name, from where this one was: nothing said meanwhile is missed.
    connection.switchTo(room.url(location.href));
  });

  if (start.ignoredRoom) logNotice(`Ignored ?room=: a room name is 1 to 32 letters, digits, - or _; joined ${room.room}`, "warn", "ignored");
  if (start.ignoredName) logNotice("Ignored ?name=: a name is 1 to 32 characters, none of them control characters", "warn", "ignored");
  setInterval(renderCountdown, 250);
  connection.start();
  return { connection, room };
}
