"""``dynprov trace SRC DST PROTO [--family 6]``: would a VM reach another, and which rule
decides (over IPv4 or IPv6; a VM named by MAC, IP address or OVSDB iface-id).

Asks the controller (``GET /dynprov/trace``: the pure core's table model over
the compiled desired flows), prints the verdict, path, tables and deciding
rule, then cross-checks each switch on the path that is a local bridge with
``ovs-appctl ofproto/trace``: where the switch matches other flows or sends
the packet elsewhere than the desired flows say, that is reported as drift.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.parse
from typing import Dict, List, Optional, Tuple

from ryu_apps.cli import rest_client
from ryu_apps.cli.flow_listing import Runner, _run
from ryu_apps.cli.rest_client import ControllerError, RestTarget, call, refusal
from ryu_apps.core.trace import SRC_PORT, link_local

READER = "reader"
HTTP_TIMEOUT = 15.0
_STEP = re.compile(r"^\s*(\d+)\. (?:No match\.|.*, priority (\d+), cookie (0x[0-9a-f]+))")
#: An output to a port, or the port an output from a field (the OUTPUT table's) chose.
_OUTPUT = re.compile(r"^\s+(?:output:|-> output port is )(\d+)\s*$")


def register(subparsers) -> None:
    """Add ``trace`` to the ``dynprov`` parser."""
    parser = subparsers.add_parser(
        "trace", help="would VM A reach VM B (tcp/443, udp/53, icmp, icmpv6; IPv4 or IPv6), "
                      "and why",
        description="Trace a packet from one VM to another through the flows dynprov "
                    "compiled (the controller's REST API), naming each table passed and "
                    "the template rule that decided; local bridges on the path are "
                    "cross-checked with ovs-appctl ofproto/trace (drift is reported). "
                    "A VM is named by its MAC, IPv4, IPv6 link-local address or its "
                    "OVSDB external_ids:iface-id.")
    name = "MAC, IPv4, IPv6 or OVSDB iface-id"
    parser.add_argument("src", metavar="SRC", help=f"the sending VM: {name}")
    parser.add_argument("dst", metavar="DST", help=f"the receiving VM: {name}")
    parser.add_argument("proto", metavar="PROTO",
                        help="tcp/PORT, udp/PORT, icmp (IPv4) or icmpv6 (IPv6)")
    parser.add_argument("--family", "-f", type=int, choices=(4, 6),
                        help="trace over IPv4 or IPv6 (default: 6 for icmpv6 or an IPv6 "
                             "address given, else 4); over IPv6 a VM sends from its "
                             "link-local address unless --src-ip/--dst-ip say otherwise")
    parser.add_argument("--src-ip", help="the sender's IPv4 (if its template does not bind "
                                         "it) or IPv6 address")
    parser.add_argument("--dst-ip", help="the receiver's IPv4 (if its template does not bind "
                                         "it) or IPv6 address")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the cross-check with ovs-appctl ofproto/trace")
    parser.add_argument("--json", action="store_true", help="print the JSON answer")
    rest_client.add_arguments(parser, None)
    parser.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    try:
        target = rest_client.target_from_args(args, READER)
    except ControllerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return show_trace(target, args.src, args.dst, args.proto, args.src_ip, args.dst_ip,
                      check=not args.no_check, as_json=args.json, family=args.family)


def show_trace(target: RestTarget, src: str, dst: str, proto: str,
               src_ip: Optional[str] = None, dst_ip: Optional[str] = None,
               check: bool = True, as_json: bool = False,
               family: Optional[int] = None) -> int:
    """Ask the controller for a trace, cross-check it, print it; the exit status (2: bad
    input, 1: no answer)."""
    query = {"src": src, "dst": dst, "proto": proto}
    query.update({k: str(v) for k, v in (("src_ip", src_ip), ("dst_ip", dst_ip),
                                         ("family", family)) if v})
    path = "/dynprov/trace?" + urllib.parse.urlencode(query)
    try:
        status, answer = call(target, "GET", path, timeout=HTTP_TIMEOUT)
    except ControllerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if status != 200:
        said = answer.get("error") if isinstance(answer, dict) and status == 400 else None
        print(f"error: {said or refusal(target, status, path, answer)}", file=sys.stderr)
        return 2 if status == 400 else 1
    if check:
        answer["drift"] = cross_check(answer)
    print(json.dumps(answer, indent=2) if as_json else render(answer))
    return 0


def render(answer: Dict) -> str:
    """The JSON answer for a terminal."""
    src, dst, six = answer["src"], answer["dst"], _family(answer) == 6
    lines = [f"trace {src['mac']} ({_address(src, six)}, '{src['template']}') -> "
             f"{dst['mac']} ({_address(dst, six)}, '{dst['template']}') "
             f"{answer['probe']}{' over IPv6' if six else ''}: {answer['verdict'].upper()}"]
    rule = answer.get("decided_by")
    lines.append(f"  decided by: {_rule(rule) if rule else 'no template rule'}")
    for hop in answer["path"]:
        vlan = f" vlan {hop['vlan']}" if hop.get("vlan") else ""
        lines.append(f"  {hop['switch']['name']} in_port {hop['in_port']}{vlan}:")
        for step in hop["tables"]:
            lines.append(f"    {step['table']:<17} {step['flow']}")
            if step.get("rule"):
                lines.append(f"    {'':<17} rule: {_rule(step['rule'])}")
        lines.append(f"    sent out of: {', '.join(map(str, hop['outputs'])) or 'nothing'}")
    reply = answer.get("reply")
    if reply:
        decided = _rule(reply["decided_by"]) if reply.get("decided_by") else "no template rule"
        lines.append(f"  reply {reply['probe']}: {reply['verdict'].upper()}, decided by "
                     f"{decided}")
    drift = answer.get("drift")
    if drift is not None:
        lines.append("  switches: " + ("agree with the desired flows" if not drift
                                       else "DRIFT: " + "; ".join(drift)))
    return "\n".join(lines)


def _family(answer: Dict) -> int:
    """The trace's address family (an older controller's answer: from its protocol)."""
    return answer.get("family") or (6 if answer["probe"].startswith("icmpv6") else 4)


def _address(end: Dict, six: bool) -> str:
    if six:
        return end.get("ipv6") or link_local(end["mac"])
    return end["ipv4"] or "no IPv4"


def _rule(rule: Dict) -> str:
    index = f"acl[{rule['index']}]" if rule["index"] is not None else "default"
    where = f"{rule['file']}:{rule['line']}" if rule.get("line") else rule["file"]
    return (f"'{rule['template']}' {rule['side']} {index} ({rule['direction']}) {where}: "
            f"{rule['rule']}")


def local_bridges(runner: Runner = _run) -> Dict[str, str]:
    """Local OVS bridges by datapath id (16 hex digits); empty if OVS is not reachable."""
    try:
        code, out, _ = runner(["ovs-vsctl", "--timeout=5", "--format=csv", "--no-headings",
                               "--columns=datapath_id,name", "list", "bridge"])
    except Exception:   # no ovs-vsctl here: nothing to cross-check
        return {}
    found = {}
    for row in out.splitlines() if code == 0 else ():
        dpid, _, name = row.partition(",")
        found[dpid.strip('"')] = name.strip('"')
    return found


def ofproto_flow(answer: Dict, hop: Dict) -> str:
    """The ``ofproto/trace`` flow of the packet as it entered a hop."""
    src, dst = answer["src"], answer["dst"]
    proto, _, port = answer["probe"].partition("/")
    parts = [f"in_port={hop['in_port']}", f"dl_src={src['mac']}", f"dl_dst={dst['mac']}"]
    if hop.get("vlan"):
        parts.append(f"dl_vlan={hop['vlan']}")
    if _family(answer) == 6:
        parts += [f"ipv6_src={_address(src, True)}", f"ipv6_dst={_address(dst, True)}"]
        if proto == "icmpv6":
            return ",".join(["icmp6"] + parts + ["icmp_type=128", "icmp_code=0"])
        # ovs-vswitchd parses tp_src only for IPv4 flows; tcp_src/udp_src for both
        return ",".join([f"{proto}6"] + parts + [f"{proto}_src={SRC_PORT}",
                                                  f"{proto}_dst={port}"])
    parts += [f"nw_src={src['ipv4']}", f"nw_dst={dst['ipv4']}"]
    if proto == "icmp":
        return ",".join(["icmp"] + parts + ["icmp_type=8", "icmp_code=0"])
    return ",".join([proto] + parts + [f"tp_src={SRC_PORT}", f"tp_dst={port}"])


def parse_ofproto_trace(text: str) -> Tuple[List[Tuple[int, Optional[int], Optional[str]]],
                                            List[int]]:
    """(table, priority, cookie) of each step (None: no match), and the output ports."""
    steps: List[Tuple[int, Optional[int], Optional[str]]] = []
    outputs: List[int] = []
    for line in text.splitlines():
        step, output = _STEP.match(line), _OUTPUT.match(line)
        if step:
            priority = int(step.group(2)) if step.group(2) else None
            steps.append((int(step.group(1)), priority, step.group(3)))
        elif output:
            outputs.append(int(output.group(1)))
    return steps, outputs


def cross_check(answer: Dict, runner: Runner = _run) -> Optional[List[str]]:
    """Drift between the trace and ``ofproto/trace`` on each local bridge of the path;
    None when no bridge of the path is local."""
    bridges = local_bridges(runner)
    drift: List[str] = []
    checked = False
    for hop in answer["path"]:
        bridge = bridges.get(hop["switch"]["dpid"])
        if bridge is None:
            continue
        code, out, err = runner(["ovs-appctl", "ofproto/trace", bridge,
                                 ofproto_flow(answer, hop)])
        if code != 0:
            drift.append(f"{bridge}: ofproto/trace failed: {err.strip() or out.strip()}")
            continue
        checked = True
        drift.extend(_compare(bridge, hop, *parse_ofproto_trace(out)))
    return drift if checked or drift else None


def _compare(bridge: str, hop: Dict, steps, outputs) -> List[str]:
    table_ids = {name: i for i, name in enumerate(
        ("CLASSIFY", "ANTI_SPOOF", "FROM_VM_ACL", "FROM_VM_PORT_ACL", "FORWARD",
         "TO_VM_ACL", "TO_VM_PORT_ACL", "OUTPUT", "FLOOD"))}
    desired = [(table_ids.get(s["table"], -1), s["priority"], s["cookie"])
               for s in hop["tables"]]
    found = []
    if desired != steps:
        found.append(f"{bridge}: the switch matched {_steps(steps)}, the desired flows "
                     f"{_steps(desired)}")
    wanted = sorted(p for p in hop["outputs"] if p < 0xFFFFFF00)
    if sorted(outputs) != wanted:
        found.append(f"{bridge}: the switch sends out of {sorted(outputs) or 'nothing'}, "
                     f"the desired flows out of {wanted or 'nothing'}")
    return found


def _steps(steps) -> str:
    return " ".join(f"t{t}:{p if p is not None else 'miss'}" for t, p, _ in steps) or "nothing"
