"""``dynprov audit [BRIDGE]``: check switches against what dynprov wants, now.

Asks a running controller (``GET /dynprov/audit``, a reader token) to read the
bridge (every connected managed switch without one) back and compare it with
the desired flows and meters; prints each entry that is missing, extra or
changed, by VM and template. Exit status: 0 clean, 1 drift found, 2 the
bridge is not managed or the controller could not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import List

from ryu_apps.cli import rest_client
from ryu_apps.cli.rest_client import READER, ControllerError, call, refusal

#: Seconds to wait (the controller waits up to 10 s for the switches' read-backs).
HTTP_TIMEOUT = 20.0
CLEAN, DRIFT, FAILED = 0, 1, 2


def register(subparsers) -> None:
    """Add ``audit`` to the ``dynprov`` parser."""
    parser = subparsers.add_parser(
        "audit", help="check switches against the desired flows and meters now",
        description="Read a bridge (default: every connected managed switch) back and "
                    "compare it with what the templates compile to; exit 1 on drift, "
                    "2 when the bridge is not managed or the controller cannot answer.")
    parser.add_argument("bridge", metavar="BRIDGE", nargs="?", help="an OVS bridge name")
    rest_client.add_arguments(parser, None)
    parser.add_argument("--json", action="store_true", help="print the controller's JSON")
    parser.set_defaults(func=_audit)


def _audit(args: argparse.Namespace) -> int:
    path = "/dynprov/audit"
    if args.bridge:
        path += "?" + urllib.parse.urlencode({"bridge": args.bridge})
    try:
        target = rest_client.target_from_args(args, READER)
        status, answer = call(target, "GET", path, timeout=HTTP_TIMEOUT)
    except ControllerError as error:
        print(f"error: {error}", file=sys.stderr)
        return FAILED
    if status != 200:
        print(f"error: {refusal(target, status, path, answer)}", file=sys.stderr)
        return FAILED
    print(json.dumps(answer, indent=2) if args.json else "\n".join(report_lines(answer)))
    return DRIFT if answer.get("drift") else CLEAN


def report_lines(answer: dict) -> List[str]:
    """The audit's answer as text: one block per switch, one line per drift."""
    lines = [f"audit ({answer.get('mode')}, every switch each {answer.get('period'):g} s)"]
    for switch in answer.get("switches", []):
        counts = switch["counts"]
        state = "clean" if switch["clean"] else (
            ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
            + ("; repaired" if switch["repaired"] else "; not repaired"))
        lines.append(f"{switch['name']} ({switch['dpid']}): {switch['desired']} desired, "
                     f"{switch['observed']} found: {state}")
        lines += ["  " + drift_line(drift) for drift in switch["drifts"]]
    return lines


def drift_line(drift: dict) -> str:
    """``missing  VM 00:fa:.. template 250  table 2 priority 100 match ... -> ...``."""
    owner = drift.get("owner") or {}
    who = f"VM {drift['vm']} " if drift.get("vm") else ""
    who += f"{owner.get('description') or owner.get('kind', '?')}"
    entry = drift["entry"]
    if entry["type"] == "meter":
        what = f"meter {entry['meter_id']} {entry['rate']} burst {entry['burst']}"
    else:
        match = ",".join(f"{k}={v}" for k, v in entry["match"].items()) or "*"
        what = (f"table {entry['table']} priority {entry['priority']} {match} -> "
                f"{' '.join(entry['instructions']) or 'drop'}")
    line = f"{drift['kind']:<8} {who}: {what}"
    found = drift.get("found")
    if found is not None and found["type"] == "flow":
        line += f"  (found: {' '.join(found['instructions']) or 'drop'}, cookie {found['cookie']})"
    elif found is not None:
        line += f"  (found: {found['rate']} burst {found['burst']})"
    return line
