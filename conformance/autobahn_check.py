#!/usr/bin/env python3
"""Gate on an Autobahn|Testsuite fuzzing-client report: `wstest` exits 0 even when cases fail.

    python3 conformance/autobahn_check.py target/autobahn/reports/servers/index.json

A case passes when its behavior is OK, NON-STRICT or INFORMATIONAL and its closing behavior is OK or
INFORMATIONAL. Anything else (FAILED, WRONG CODE, UNCLEAN, FAILED BY CLIENT, NO_CLOSE, or a value this
script does not know) fails it. The permessage-deflate cases (12.*, 13.*) are expected to report
UNIMPLEMENTED, because the gateway does not offer the extension on purpose; they count as skipped, and
still fail if the gateway accepted the extension or did not close the connection cleanly. UNIMPLEMENTED
anywhere else fails.

Prints the count per behavior, every case that is not plainly OK with the report's own explanation,
and last, alone on a line, `N passed, N failed` (the skipped count is on the UNIMPLEMENTED line above
it). Exits 1 when any case failed or none ran.
"""

import argparse
import collections
import json
import os
import sys

PASS_BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL")
PASS_CLOSE = ("OK", "INFORMATIONAL")
# Cases that need permessage-deflate (RFC 7692), which the gateway declines in the handshake.
DEFLATE_PREFIXES = ("12.", "13.")
ORDER = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED")


def case_key(case_id):
    """Sorts `9.10.2` after `9.2.1`."""
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def one_line(text, limit=240):
    text = " ".join(str(text).replace("<br>", " ").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def judge(case_id, summary, detail):
    """Returns ("passed" | "failed" | "skipped", reason or None)."""
    behavior, close = summary.get("behavior"), summary.get("behaviorClose")
    if behavior == "UNIMPLEMENTED":
        if not case_id.startswith(DEFLATE_PREFIXES):
            return "failed", "UNIMPLEMENTED outside the permessage-deflate cases"
        response = (detail or {}).get("httpResponse", "")
        if "sec-websocket-extensions" in response.lower():
            return "failed", "the server accepted an extension it does not implement"
        if close != "OK":
            return "failed", "closing behavior %s after declining permessage-deflate" % close
        return "skipped", None
    if behavior not in PASS_BEHAVIORS:
        return "failed", "behavior %s" % behavior
    if close not in PASS_CLOSE:
        return "failed", "closing behavior %s" % close
    return "passed", None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", help="reports/servers/index.json written by wstest")
    parser.add_argument("--agent", help="the agent to check (default: the only one in the report)")
    args = parser.parse_args()

    with open(args.index, encoding="utf-8") as f:
        index = json.load(f)
    if args.agent:
        agent = args.agent
    elif len(index) == 1:
        agent = next(iter(index))
    else:
        sys.exit("autobahn: %d agents in %s, name one with --agent" % (len(index), args.index))
    cases = index.get(agent, {})
    outdir = os.path.dirname(os.path.abspath(args.index))

    counts = collections.Counter()
    verdicts = collections.Counter()
    notes = []  # (verdict, case id, summary, detail, reason)
    for case_id in sorted(cases, key=case_key):
        summary = cases[case_id]
        detail = None
        report = os.path.join(outdir, summary.get("reportfile", ""))
        if os.path.isfile(report):
            with open(report, encoding="utf-8") as f:
                detail = json.load(f)
        verdict, reason = judge(case_id, summary, detail)
        verdicts[verdict] += 1
        counts[summary.get("behavior")] += 1
        plain = summary.get("behavior") == "OK" and summary.get("behaviorClose") == "OK"
        if verdict == "failed" or (verdict == "passed" and not plain):
            notes.append((verdict, case_id, summary, detail or {}, reason))

    print("autobahn: %d cases against %s (report: %s)" % (len(cases), agent, os.path.join(outdir, "index.html")))
    for behavior in ORDER + tuple(sorted(set(counts) - set(ORDER), key=str)):
        extra = ""
        if behavior == "UNIMPLEMENTED" and verdicts["skipped"]:
            extra = "  (%d skipped: permessage-deflate 12.*, 13.*, declined on purpose)" % verdicts["skipped"]
        print("  %-14s %4d%s" % (behavior, counts[behavior], extra))
    for verdict, case_id, summary, detail, reason in notes:
        label = "FAIL" if verdict == "failed" else "note"
        print(
            "%s %s: behavior=%s close=%s remoteCloseCode=%s%s"
            % (
                label,
                case_id,
                summary.get("behavior"),
                summary.get("behaviorClose"),
                summary.get("remoteCloseCode"),
                " (%s)" % reason if reason else "",
            )
        )
        for field in ("description", "expectation", "result", "resultClose", "wasNotCleanReason"):
            if detail.get(field):
                print("    %s: %s" % (field, one_line(detail[field])))

    passed, failed = verdicts["passed"], verdicts["failed"]
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
