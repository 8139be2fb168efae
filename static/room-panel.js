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
import { Connection, closeText } from "./connection.js";
import { $, LOG_LIMIT } from "./dom.js";
import { Outbox, Room, hrefForName, roomFromPage, validName } from "./room.js";
import { StatusView } from "./status-view.js";

/**
 * Starts the panel: joins the room at once and keeps rejoining.
 * @param {{ baseMs: number, maxMs: number, drainWindowMs: number }} backoff the page's reconnect knobs
 * @returns {{ tick: () => void }} to be called four times a second, for the countdown
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
  // The welcome says under which name; until it comes the socket is open but not yet in the room.
  const status = new StatusView(
    { status: el.status, text: el.statusText, countdown: el.countdown },
    {
      first: "Joining…",
      connected: () => (room.joinedAs === null ? "Joining…" : `In the room as ${room.joinedAs}`),
      waiting: "rejoining",
      trying: "rejoining",
      unreachable: "",
    },
  );
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

  el.name.textContent = room.room;
  el.you.value = room.name;

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

  const send = (/** @type {string} */ text) => connection.send(text);

  /** The name the room welcomed this socket under, for the status line and the e2e tests. */
  function renderJoined() {
    if (room.joinedAs === null) delete el.status.dataset.joinedAs;
    else el.status.dataset.joinedAs = room.joinedAs;
  }

  function renderHint() {
    const n = outbox.waiting.length;
    el.hint.textContent = n === 0 ? "" : `Offline: ${n} waiting, said as soon as the room is back.`;
    if (n === 0) delete el.hint.dataset.tone;
    else el.hint.dataset.tone = "warn";
  }

  /** @param {string | ArrayBuffer} data */
  function onMessage(data) {
    if (typeof data !== "string") return; // the room sends text only
    const reading = room.read(data);
    switch (reading.kind) {
      case "welcome": {
        renderJoined();
        status.refresh();
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

  connection.on("state", (e) => status.render(e.detail));
  connection.on("message", (e) => onMessage(e.detail.data));
  connection.on("close", (e) => {
    const { code, reason, everOpened } = e.detail;
    room.left();
    renderJoined();
    // The next attempt joins from the newest position seen.
    connection.url = room.url(location.href);
    if (!everOpened) return;
    logNotice(`Disconnected (${closeText({ code, reason })}); rejoining…`, "warn", "closed");
  });

  el.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = el.say.value.trim();
    if (text === "") {
      el.hint.textContent = "Type something first.";
      el.say.focus();
      return;
    }
    // The input's maxlength keeps a text within the room's MAX_TEXT (it counts UTF-16 units, which
    // are never fewer than characters). Before the welcome the socket may be open but the room not
    // yet joined: wait for it.
    const joined = room.joinedAs !== null;
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
    // Not in the room until its welcome (switchTo tells of no close for the socket it replaces).
    room.left();
    renderJoined();
    connection.switchTo(room.url(location.href));
  });

  if (start.ignoredRoom) logNotice(`Ignored ?room=: a room name is 1 to 32 letters, digits, - or _; joined ${room.room}`, "warn", "ignored");
  if (start.ignoredName) logNotice("Ignored ?name=: a name is 1 to 32 characters, none of them control characters", "warn", "ignored");
  connection.start();
  return { tick: () => status.tick() };
}
