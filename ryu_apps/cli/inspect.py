"""``dynprov bindings`` and ``dynprov flows BRIDGE``: what the controller provisioned.

``bindings`` asks a running controller's REST API (docs/rest-api.md);
``flows`` reads a bridge's flow table with ``ovs-ofctl`` and labels every flow
with its decoded cookie, plus the VM and template names when the controller
answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, List, Optional, Sequence

from ryu_apps import flow_listing
from ryu_apps.flow_listing import FlowListingError, OwnerNames

DEFAULT_CONTROLLER = "http://127.0.0.1:8080"
#: Seconds to wait for the controller (a listing asks every server bridge first).
HTTP_TIMEOUT = 15.0
#: Seconds to try the default controller when ``flows`` was not given one.
PROBE_TIMEOUT = 2.0
BINDING_COLUMNS = ("MAC", "TEMPLATE", "VLAN", "SERVER:PORT", "ACCESS:PORT", "STATE",
                   "SINCE (UTC)", "SENT PKTS/BYTES", "RECEIVED PKTS/BYTES")


class ControllerError(Exception):
    """The controller could not be reached or did not answer usefully."""


def register(subparsers) -> None:
    """Add ``bindings`` and ``flows`` to the ``dynprov`` parser."""
    bindings = subparsers.add_parser(
        "bindings", help="the VMs a running controller provisioned",
        description="List the VM bindings of a running dynprov controller (REST API).")
    _controller_option(bindings, DEFAULT_CONTROLLER)
    bindings.add_argument("--json", action="store_true",
                          help="print the controller's JSON instead of a table")
    bindings.set_defaults(func=_bindings)

    flows = subparsers.add_parser(
        "flows", help="a bridge's flow table, each flow labelled by owner",
        description="Print a bridge's OpenFlow 1.3 flow table (ovs-ofctl), each flow "
                    "labelled with its decoded cookie; VM MACs and template names come "
                    f"from the controller (default {DEFAULT_CONTROLLER}, if it answers).")
    flows.add_argument("bridge", metavar="BRIDGE", help="an Open vSwitch bridge name")
    _controller_option(flows, None)
    flows.add_argument("--counters", action="store_true",
                       help="keep duration, n_packets and n_bytes")
    flows.set_defaults(func=_flows)


def _controller_option(parser: argparse.ArgumentParser, default: Optional[str]) -> None:
    parser.add_argument("--controller", metavar="URL", type=controller_url, default=default,
                        help=f"the controller's REST API (default {DEFAULT_CONTROLLER})")


def controller_url(text: str) -> str:
    """argparse type: an http(s) URL without a trailing slash."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a controller URL: expected http://HOST:PORT, "
            f"like {DEFAULT_CONTROLLER}")
    return text.rstrip("/")


# -- talking to the controller ----------------------------------------------------
def fetch_json(base: str, path: str, timeout: float = HTTP_TIMEOUT) -> Any:
    """GET ``base + path`` and decode its JSON; ControllerError on any failure."""
    url = base + path
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise ControllerError(f"the dynprov controller at {base} answered {error.code} "
                              f"for {path}: {_error_text(error)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ControllerError(f"cannot reach the dynprov controller at {base}: "
                              f"{reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ControllerError(f"{url} did not answer JSON: is {base} a dynprov "
                              "controller's REST API (ryu-manager --wsapi-port)?") from None


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return error.reason or "no details"


# -- dynprov bindings -----------------------------------------------------------------
def _bindings(args: argparse.Namespace) -> int:
    try:
        bindings = fetch_json(args.controller, "/dynprov/bindings")
    except ControllerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(bindings, indent=2))
        return 0
    print("\n".join(binding_table(bindings)))
    for binding in bindings:
        if binding.get("counters_error"):
            print(f"note: {binding['mac']}: no counters: {binding['counters_error']}",
                  file=sys.stderr)
    return 0


def binding_table(bindings: Sequence[dict]) -> List[str]:
    """The bindings as aligned text rows under a header."""
    rows = [BINDING_COLUMNS] + [binding_row(b) for b in bindings]
    lines = _table(rows)
    return lines if bindings else lines + ["(no VM is provisioned)"]


def binding_row(binding: dict) -> Sequence[str]:
    """One table row for a binding from ``/dynprov/bindings``."""
    counters = binding.get("counters") or {}
    return (binding["mac"], f"{binding['template_id']} {binding['template_name']}",
            str(binding["vlan"]), _where(binding.get("server")),
            _where(binding.get("access")), binding.get("state", "?"),
            _since(binding.get("since")), _count(counters.get("sent")),
            _count(counters.get("received")))


def _where(ref: Optional[dict]) -> str:
    if not ref:
        return "-"
    return f"{ref.get('name') or ref.get('dpid')}:{ref.get('port')}"


def _since(iso: Optional[str]) -> str:
    if not iso:
        return "-"
    return iso.replace("T", " ").rstrip("Z").split(".")[0]


def _count(pair: Optional[dict]) -> str:
    return "-" if not pair else f"{pair['packets']}/{pair['bytes']}"


def _table(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


# -- dynprov flows ------------------------------------------------------------------
def _flows(args: argparse.Namespace) -> int:
    try:
        lines = flow_listing.dump_flows(args.bridge)
    except FlowListingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    names = _owner_names(args.controller, args.bridge)
    annotated = flow_listing.annotate(lines, args.counters, names)
    others = sum(1 for line in annotated if line.endswith(f"# {flow_listing.NOT_OURS}"))
    for line in annotated:
        print(line)
    print(f"{args.bridge}: {len(lines)} flows, {len(lines) - others} of them dynprov's")
    return 0


def _owner_names(explicit: Optional[str], bridge: str) -> Optional[OwnerNames]:
    """VM MACs and template names from the controller that manages ``bridge``.

    None when no controller answers (a warning if one was given) or when the
    controller that answers does not manage this bridge (its binding ids would
    name other VMs).
    """
    base = explicit or DEFAULT_CONTROLLER
    timeout = HTTP_TIMEOUT if explicit else PROBE_TIMEOUT
    try:
        switches = fetch_json(base, "/dynprov/switches", timeout)
        bindings = fetch_json(base, "/dynprov/bindings?counters=false", timeout)
        templates = fetch_json(base, "/dynprov/templates", timeout)
    except ControllerError as error:
        if explicit:
            print(f"warning: {error}; flows are labelled from their cookies only",
                  file=sys.stderr)
        return None
    dpid = flow_listing.bridge_dpid(bridge)
    if dpid not in {s["dpid"] for s in switches}:
        print(f"warning: the dynprov controller at {base} does not manage bridge {bridge} "
              f"(datapath id {dpid or 'unknown'}); flows are labelled from their cookies only",
              file=sys.stderr)
        return None
    return OwnerNames(vms={b["binding_id"]: b["mac"] for b in bindings},
                      templates={t["template_id"]: t["name"] for t in templates})
