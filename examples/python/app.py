"""sidestream's WebSocket apps `/echo` and `/room` in a Python Spin component (spin-sdk 3.4.1,
componentize-py). The gateway holds each WebSocket and sends its events here as
WebSocket-over-HTTP requests; every one must carry the gateway's Grip-Sig. Settings are Spin
variables: grip_key, grip_key_previous, publish_url, publish_token."""

import sys
import time

from spin_sdk import http, variables
from spin_sdk.http import Request, Response

import grip
from echo import echo
from room import NOT_DELIVERED, error, room

APPS = ("/echo", "/room")


def plain(status: int, text: str) -> Response:
    return Response(status, {"content-type": "text/plain; charset=utf-8"}, text.encode())


def variable(name: str, default=None) -> str:
    try:
        return variables.get(name)
    except Exception as e:  # the host's error variant, raised as spin_sdk's Err
        if default is not None:
            return default
        raise RuntimeError(f"the Spin variable {name} cannot be read: {getattr(e, 'value', e)}") from None


def is_websocket_events(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return request.method == "POST" and media == grip.CONTENT_TYPE


def published(body: str) -> bool:
    """Posts a publish body to the gateway's publish API; whether it took it."""
    headers = {"content-type": "application/json"}
    token = variable("publish_token", "")
    if token:
        headers["authorization"] = f"Bearer {token}"
    url = variable("publish_url", "http://127.0.0.1:9090/publish/")
    try:
        response = http.send(Request("POST", url, headers, body.encode()))
    except Exception as e:
        print(f"cannot reach the gateway to publish: {e}", file=sys.stderr)
        return False
    if response.status != 200:
        print(f"the gateway did not take a publish: {response.status}", file=sys.stderr)
    return response.status == 200


def signed(request: Request):
    """None when the request carries a valid Grip-Sig, else the answer refusing it."""
    token = request.headers.get("grip-sig")
    if not token:
        return plain(401, "a Grip-Sig is required\n")
    keys = [variable("grip_key"), variable("grip_key_previous", "")]
    if any(key and grip.validate_sig(token, key, time.time()) for key in keys):
        return None
    return plain(403, "the Grip-Sig is not valid\n")


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        path, _, query = request.uri.partition("?")
        if path not in APPS:
            return plain(404, "not found\n")
        if not is_websocket_events(request):
            return plain(426, "a WebSocket app: connect with a WebSocket client\n")
        refused = signed(request)
        if refused:
            return refused
        sent_meta = grip.meta_of(request.headers)
        meta = dict(sent_meta)
        try:
            events = grip.decode_websocket_events(request.body or b"")
        except grip.DecodeError:
            events, bad = [], [grip.close_event(1002, "malformed events")]
        else:
            bad = []
        headers = {"content-type": grip.CONTENT_TYPE}
        if path == "/echo":
            out = echo(meta, events)
        else:
            connection_id = request.headers.get("connection-id", "")
            outcome = room(query, connection_id, meta, events, time.time_ns() // 1_000_000)
            if outcome.refuse:
                return plain(400, outcome.refuse)
            out = outcome.events
            if outcome.publish and not published(outcome.publish):
                out.append(error(NOT_DELIVERED))
        if any(e.type == "OPEN" for e in out):
            headers["sec-websocket-extensions"] = 'grip; message-prefix=""'
        headers.update(grip.meta_headers(sent_meta, meta))
        return Response(200, headers, grip.encode_websocket_events(out + bad))
