"""A WebSocket-over-HTTP backend written only with Python's `gripcontrol`, as its users write them:
the tests run it as sidestream's upstream to show the library works against sidestream unchanged.

It verifies every request's `Grip-Sig` with `gripcontrol.validate_sig` and the key in the
environment variable GRIP_KEY (as a GRIP backend behind Pushpin does), refusing a request without
one with 401 and a wrong or expired one with 403. It accepts every connection, subscribes it to
`test`, and answers each message with `echo N: <message>` through `WebSocketContext.send` (which
adds GRIP's `m:` prefix), where N counts the connection's messages in its meta. It prints
`listening PORT` once it serves.
"""

import os
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gripcontrol import (
    WebSocketContext,
    WebSocketEvent,
    decode_websocket_events,
    encode_websocket_events,
    validate_sig,
)

KEY = os.environ["GRIP_KEY"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        # The gateway's health check of its upstream.
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def refuse(self, status, text):
        out = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = self.headers.get("Grip-Sig")
        if sig is None:
            return self.refuse(401, "no Grip-Sig\n")
        if not validate_sig(sig, KEY):
            return self.refuse(403, "bad Grip-Sig\n")
        meta = {k[5:].lower(): v for k, v in self.headers.items() if k.lower().startswith("meta-")}
        ws = WebSocketContext(self.headers["Connection-Id"], meta, decode_websocket_events(body))
        if ws.is_opening():
            ws.accept()
            ws.subscribe("test")
        while ws.can_recv():
            message = ws.recv()
            if message is None:
                ws.close(ws.close_code)
                break
            count = int(ws.meta.get("count", "0")) + 1
            ws.meta["count"] = str(count)
            text = message if isinstance(message, str) else message.decode("latin1")
            ws.send("echo %d: %s" % (count, text))
        events = ([WebSocketEvent("OPEN")] if ws.accepted else []) + ws.out_events
        if ws.closed:
            events.append(WebSocketEvent("CLOSE", struct.pack(">H", ws.out_close_code or 1000)))
        out = encode_websocket_events(events)
        self.send_response(200)
        self.send_header("Content-Type", "application/websocket-events")
        if ws.accepted:
            self.send_header("Sec-WebSocket-Extensions", "grip")
        for name in set(ws.orig_meta) | set(ws.meta):
            if ws.meta.get(name) != ws.orig_meta.get(name):
                self.send_header("Set-Meta-" + name, ws.meta.get(name, ""))
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening %d" % server.server_address[1], flush=True)
server.serve_forever()
