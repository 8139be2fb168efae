"""`/echo`: every message back to its sender as {"type":"echo","n":N,"text":...}, where N counts the
connection's messages. The count lives in the connection's meta (`Set-Meta-n`), so the component
keeps nothing between requests. A Close is answered with the same Close."""

import json

from grip import WebSocketEvent, close_event


def echo(meta: dict, events: list) -> list:
    """The events to answer with; `meta` is changed in place."""
    out = []
    try:
        n = int(meta.get("n", "0"))
    except ValueError:
        n = 0
    for event in events:
        if event.type == "OPEN":
            out.append(WebSocketEvent("OPEN"))
        elif event.type == "TEXT":
            try:
                text = (event.content or b"").decode()
            except UnicodeDecodeError:
                out.append(close_event(1002, "malformed events"))
                break
            n += 1
            answer = json.dumps({"type": "echo", "n": n, "text": text}, separators=(",", ":"), ensure_ascii=False)
            out.append(WebSocketEvent("TEXT", answer.encode()))
        elif event.type == "BINARY":
            n += 1
            out.append(WebSocketEvent("BINARY", event.content or b""))
        elif event.type == "CLOSE":
            content = event.content or b""
            out.append(WebSocketEvent("CLOSE", content) if len(content) >= 2 else close_event(1000))
            break
        elif event.type == "DISCONNECT":
            break
    if n > 0:
        meta["n"] = str(n)
    return out
