"""A publisher written only with Python's `gripcontrol`, as its users write them: the tests run it
against sidestream's publish API to show `GripPubControl` works unchanged.

    publisher.py CONTROL_URI CHANNEL

publishes to CHANNEL, in order, a text message, a binary one and a close with code 4000 and
reason `bye`, each with an id, through `GripPubControl({"control_uri": ...})`. It prints
`published N` after each and exits 0, or prints the library's error and exits 1.
"""

import sys

from gripcontrol import GripPubControl, WebSocketMessageFormat
from pubcontrol import Item


def main():
    control_uri, channel = sys.argv[1], sys.argv[2]
    pub = GripPubControl({"control_uri": control_uri})
    formats = [
        WebSocketMessageFormat('{"type":"room","from":"gripcontrol","text":"hello"}'),
        WebSocketMessageFormat(b"\x00\x01\xfe\xff", binary=True),
        WebSocketMessageFormat(action="close", code=4000, reason="bye"),
    ]
    for n, fmt in enumerate(formats, 1):
        try:
            pub.publish(channel, Item(fmt, id="grip-%d" % n), blocking=True)
        except ValueError as error:
            print(error, flush=True)
            sys.exit(1)
        print("published %d" % n, flush=True)


if __name__ == "__main__":
    main()
