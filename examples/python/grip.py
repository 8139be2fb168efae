"""The little of GRIP this app needs: the WebSocket-over-HTTP events format, the connection's meta,
and the check of the gateway's Grip-Sig (a JWT signed HS256, as Pushpin signs).

Why not PyPI's `gripcontrol`: it does not import inside componentize-py. Its HTTP side (pubcontrol,
requests, urllib3) needs `_ssl` and `zlib`, which the WASI build of CPython does not have; its
WebSocket-event part is pure Python and behaves as this module does (same names: `WebSocketEvent`,
`decode_websocket_events`, `encode_websocket_events`, `validate_sig`).
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Optional

CONTENT_TYPE = "application/websocket-events"


@dataclass
class WebSocketEvent:
    type: str
    content: Optional[bytes] = None


class DecodeError(ValueError):
    pass


def decode_websocket_events(body: bytes) -> list:
    """The events of a request body: `NAME <hex length>\\r\\n<content>\\r\\n` or `NAME\\r\\n`."""
    events, at = [], 0
    while at < len(body):
        end = body.find(b"\r\n", at)
        if end < 0:
            raise DecodeError("an event line without CRLF")
        line = body[at:end].decode("ascii", "replace")
        at = end + 2
        name, _, length = line.partition(" ")
        if not name.isalpha():
            raise DecodeError("an event name that is not letters")
        if not length:
            events.append(WebSocketEvent(name))
            continue
        try:
            size = int(length, 16)
        except ValueError:
            raise DecodeError("an event length that is not hexadecimal") from None
        content = body[at : at + size]
        if len(content) < size or body[at + size : at + size + 2] != b"\r\n":
            raise DecodeError("event content not followed by CRLF")
        events.append(WebSocketEvent(name, content))
        at += size + 2
    return events


def encode_websocket_events(events: list) -> bytes:
    out = bytearray()
    for event in events:
        if event.content is None:
            out += event.type.encode() + b"\r\n"
        else:
            out += b"%s %x\r\n%s\r\n" % (event.type.encode(), len(event.content), event.content)
    return bytes(out)


def close_event(code: int, reason: str = "") -> WebSocketEvent:
    return WebSocketEvent("CLOSE", code.to_bytes(2, "big") + reason.encode())


def meta_of(headers: dict) -> dict:
    """The meta values among a request's headers (`Meta-<name>`), names lower-cased."""
    return {k.lower()[5:]: v for k, v in headers.items() if k.lower().startswith("meta-") and len(k) > 5}


def meta_headers(sent: dict, meta: dict) -> dict:
    """`Set-Meta-<name>` for each value changed since the request (empty removes one)."""
    changed = {f"set-meta-{k}": v for k, v in meta.items() if sent.get(k) != v}
    changed.update({f"set-meta-{k}": "" for k in sent if k not in meta})
    return changed


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def validate_sig(token: str, key: str, now: float) -> bool:
    """Whether `token` is a JWT signed HS256 with `key` (its raw UTF-8 bytes) and not expired."""
    try:
        head, claims, signature = token.split(".")
        if json.loads(_b64url(head)).get("alg") != "HS256":
            return False
        expected = hmac.new(key.encode(), f"{head}.{claims}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _b64url(signature)):
            return False
        payload = json.loads(_b64url(claims))
    except (ValueError, UnicodeError, AttributeError):
        return False
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if exp is not None and (not isinstance(exp, (int, float)) or exp <= now):
        return False
    return nbf is None or (isinstance(nbf, (int, float)) and nbf <= now)
