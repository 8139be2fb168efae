#!/usr/bin/env python3
"""Replaces the gateway-help block of README.md with the binary's current `--help`."""
import subprocess
import sys

binary, readme = sys.argv[1], sys.argv[2]
help_text = subprocess.run([binary, "--help"], check=True, capture_output=True, text=True).stdout.strip()
text = open(readme, encoding="utf-8").read()
start, end = "<!-- gateway-help:start -->", "<!-- gateway-help:end -->"
before, rest = text.split(start, 1)
_, after = rest.split(end, 1)
open(readme, "w", encoding="utf-8").write(f"{before}{start}\n```text\n{help_text}\n```\n{end}{after}")
