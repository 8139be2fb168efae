"""`/room`: a chat room, as component/src/apps/room.rs. Every connection joins the room's channel
(`room:NAME`, `?room=`, default lobby) from where it was (`?last=`); every message is published to
it through the gateway's publish API, so everyone in the room, on every gateway, gets it in one
order, with its position in the room's history as `id`. JSON is written with sorted keys and no
spaces, as the Rust app writes it, so both answer byte for byte the same."""

import json
import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote_to_bytes

from grip import WebSocketEvent, close_event

MAX_TEXT = 1000
MAX_NAME = 32
NOT_DELIVERED = "your message was not delivered; send it again"
# What Rust's str::trim takes away (Unicode White_Space); Python's strip() would take more.
WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
ROOM = re.compile(r"[A-Za-z0-9_-]{1,32}")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass
class Outcome:
    events: list = field(default_factory=list)
    refuse: Optional[str] = None
    publish: Optional[str] = None


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def text_event(text: str) -> WebSocketEvent:
    return WebSocketEvent("TEXT", text.encode())


def error(text: str) -> WebSocketEvent:
    return text_event(dumps({"type": "error", "text": text}))


def param(query: str, name: str) -> Optional[str]:
    """The first `name=value` of `query`, decoded as browsers encode forms; None when absent or
    when the bytes are not UTF-8 (a stray `%` is kept)."""
    for pair in query.split("&"):
        if pair.startswith(name + "="):
            try:
                return unquote_to_bytes(pair[len(name) + 1 :].replace("+", " ")).decode()
            except UnicodeDecodeError:
                return None
    return None


def guest(connection_id: str) -> str:
    """`guest-` and four hex digits of the connection id's FNV-1a hash: stable across requests."""
    h = 0x811C9DC5
    for byte in connection_id.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"guest-{h & 0xffff:04x}"


def valid_name(name: str) -> Optional[str]:
    name = name.strip(WHITE_SPACE)
    return name if 0 < len(name) <= MAX_NAME and not CONTROL.search(name) else None


def opened(query: str, connection_id: str, meta: dict, now_ms: int) -> Outcome:
    room = param(query, "room")
    room = "lobby" if room is None else room
    if not ROOM.fullmatch(room):
        return Outcome(refuse="a room name is 1 to 32 letters, digits, - or _\n")
    given = param(query, "name")
    name = guest(connection_id) if given is None else valid_name(given)
    if name is None:
        return Outcome(refuse="a name is 1 to 32 characters, none of them control characters\n")
    meta.update(room=room, name=name)
    subscribe = {"type": "subscribe", "channel": f"room:{room}", "gap": dumps({"type": "gap", "room": room})}
    last = param(query, "last")
    if last is not None:
        subscribe["since"] = last[:64]
    welcome = dumps({"type": "welcome", "room": room, "name": name, "at": now_ms})
    return Outcome([WebSocketEvent("OPEN"), text_event("c:" + dumps(subscribe)), text_event(welcome)])


def room(query: str, connection_id: str, meta: dict, events: list, now_ms: int) -> Outcome:
    """The answer to one request of a `/room` connection; `meta` is changed in place."""
    out, items = Outcome(), []
    for event in events:
        if event.type == "OPEN":
            first = opened(query, connection_id, meta, now_ms)
            if first.refuse:
                return first
            out.events += first.events
        elif event.type == "TEXT":
            try:
                text = (event.content or b"").decode().strip(WHITE_SPACE)
            except UnicodeDecodeError:
                out.events.append(close_event(1002, "malformed events"))
                break
            if not text:
                continue
            if len(text) > MAX_TEXT:
                out.events.append(error(f"a message holds at most {MAX_TEXT} characters"))
                continue
            if "room" not in meta or "name" not in meta:
                out.events.append(close_event(1011, "the connection was not opened by this room"))
                break
            try:
                sent = int(meta.get("sent", "0")) + 1
            except ValueError:
                sent = 1
            content = dumps({"type": "room", "from": meta["name"], "text": text, "at": now_ms})
            items.append({
                "channel": f"room:{meta['room']}",
                "id": f"{connection_id}:{sent}",
                "formats": {"ws-message": {"content": content, "id-key": "id"}},
            })
            meta["sent"] = str(sent)
        elif event.type == "BINARY":
            out.events.append(error("the room takes text messages"))
        elif event.type == "CLOSE":
            content = event.content or b""
            out.events.append(close_event(int.from_bytes(content[:2], "big") if len(content) >= 2 else 1000))
            break
    if items:
        out.publish = dumps({"items": items})
    return out
