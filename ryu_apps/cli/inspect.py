"""``dynprov bindings`` and ``dynprov flows BRIDGE``: what the controller provisioned.

``bindings`` asks a running controller's REST API (docs/rest-api.md) with a
reader token (or an admin one); ``flows`` reads a bridge's flow table with
``ovs-ofctl`` and labels every flow with its decoded cookie, plus the VM and
template names when the controller answers. Controller, token and CA:
``ryu_apps.cli.rest_client``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence

from ryu_apps.cli import flow_listing
from ryu_apps.cli import rest_client
from ryu_apps.cli.rest_client import (
    DEFAULT_CONTROLLER,
    READER,
    ControllerError,
    RestTarget,
    controller_url,
    fetch_json,
)
from ryu_apps.cli.flow_listing import FlowListingError, OwnerNames
from ryu_apps.core.rule_origin import origin_index

__all__ = ["ControllerError", "controller_url", "fetch_json", "register"]
#: Seconds to wait for the controller (a listing asks every server bridge first).
HTTP_TIMEOUT = 15.0
#: Seconds to try the default controller when ``flows`` was not given one.
PROBE_TIMEOUT = 2.0
BINDING_COLUMNS = ("MAC", "TEMPLATE", "VLAN", "SERVER:PORT", "ACCESS:PORT", "STATE",
                   "SINCE (UTC)", "SENT PKTS/BYTES", "RECEIVED PKTS/BYTES", "ADDRESSES")


def register(subparsers) -> None:
    """Add ``bindings`` and ``flows`` to the ``dynprov`` parser."""
    bindings = subparsers.add_parser(
        "bindings", help="the VMs a running controller provisioned",
        description="List the VM bindings of a running dynprov controller (REST API).")
    rest_client.add_arguments(bindings, None)
    bindings.add_argument("--json", action="store_true",
                          help="print the controller's JSON instead of a table")
    bindings.set_defaults(func=_bindings)

    flows = subparsers.add_parser(
        "flows", help="a bridge's flow table, each flow labelled by owner",
        description="Print a bridge's OpenFlow 1.3 flow table (ovs-ofctl), each flow "
                    "labelled with its decoded cookie; VM MACs and template names come "
                    f"from the controller (default {DEFAULT_CONTROLLER}, if it answers).")
    flows.add_argument("bridge", metavar="BRIDGE", help="an Open vSwitch bridge name")
    rest_client.add_arguments(flows, None)
    flows.add_argument("--counters", action="store_true",
                       help="keep duration, n_packets and n_bytes")
    flows.set_defaults(func=_flows)


# -- dynprov bindings -----------------------------------------------------------------
def _bindings(args: argparse.Namespace) -> int:
    try:
        bindings = fetch_json(rest_client.target_from_args(args, READER), "/dynprov/bindings",
                              HTTP_TIMEOUT)
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
            _count(counters.get("received")), _addresses(binding))


def _addresses(binding: dict) -> str:
    """Its bound IPv4 address and bound global IPv6 addresses, or "-"."""
    bound = ([binding["ip"]] if binding.get("ip") else []) + list(binding.get("ipv6_bound")
                                                                   or [])
    return ",".join(bound) or "-"


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
    try:
        target = rest_client.target_from_args(args, READER)
    except ControllerError as error:
        print(f"warning: {error}; flows are labelled from their cookies only",
              file=sys.stderr)
        target = None
    explicit = args.controller is not None
    names = _owner_names(target, explicit, args.bridge) if target else None
    annotated = flow_listing.annotate(lines, args.counters, names)
    others = sum(1 for line in annotated if line.endswith(f"# {flow_listing.NOT_OURS}"))
    for line in annotated:
        print(line)
    print(f"{args.bridge}: {len(lines)} flows, {len(lines) - others} of them dynprov's")
    return 0


def _owner_names(target: RestTarget, explicit: bool, bridge: str) -> Optional[OwnerNames]:
    """VM MACs and template names from the controller that manages ``bridge``.

    None when no controller answers (a warning if one was given) or when the
    controller that answers does not manage this bridge (its binding ids would
    name other VMs).
    """
    base = target.url
    timeout = HTTP_TIMEOUT if explicit else PROBE_TIMEOUT
    try:
        switches = fetch_json(target, "/dynprov/switches", timeout)
        bindings = fetch_json(target, "/dynprov/bindings?counters=false", timeout)
        templates = fetch_json(target, "/dynprov/templates", timeout)
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
    try:   # a controller without rule origins still names VMs and templates
        rules = origin_index(fetch_json(target, "/dynprov/rule-origins", timeout)["origins"])
    except (ControllerError, KeyError, TypeError) as error:
        print(f"warning: no template rules from the controller ({error}); ACL flows are "
              "labelled without their rule", file=sys.stderr)
        rules = {}
    return OwnerNames(vms={b["binding_id"]: b["mac"] for b in bindings},
                      templates={t["template_id"]: t["name"] for t in templates}, rules=rules,
                      dpid=dpid)
