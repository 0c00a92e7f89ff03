"""Annotate a bridge's flow table with what dynprov's cookies say."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Tuple

from ryu_apps.core.cookies import CookieKind, Owner, decode_cookie
from ryu_apps.core.rule_origin import ACL_TABLES, RuleOrigin

_COOKIE = re.compile(r"cookie=(0x[0-9a-fA-F]+)")
_TABLE = re.compile(r"\btable=(\d+)")
_PRIORITY = re.compile(r"\bpriority=(\d+)")
NOT_OURS = "not dynprov's"


class FlowListingError(RuntimeError):
    """The flow table could not be read (no such bridge, no ovs-ofctl ...)."""


@dataclass(frozen=True)
class OwnerNames:
    """What the controller knows about owners: VMs by binding id, template names."""

    vms: Mapping[int, str] = field(default_factory=dict)        # binding id -> VM MAC
    templates: Mapping[int, str] = field(default_factory=dict)  # template id -> name
    #: ACL rules by ("template", id, table, priority) and ("port", dpid, port, vlan,
    #: table, priority) (core/rule_origin.py's ``origin_index``).
    rules: Mapping[tuple, RuleOrigin] = field(default_factory=dict)
    dpid: str | None = None     # the bridge's datapath id (16 hex digits)


def describe_owner(owner: Owner | None, names: OwnerNames | None = None) -> str:
    """``binding 7 template 250 'web' VM 00:fa:...``; names only when known."""
    if owner is None:
        return NOT_OURS
    label = owner.describe()
    if names is None or owner.kind is not CookieKind.BINDING:
        return label
    template = names.templates.get(owner.template_id)
    if template is not None:
        label += f" '{template}'"
    vm = names.vms.get(owner.owner_id)
    return label + (f" VM {vm}" if vm else " (no such binding on the controller)")


def annotate_line(line: str, names: OwnerNames | None = None) -> str:
    """One ``ovs-ofctl dump-flows`` line with its owner (and ACL rule) appended."""
    found = _COOKIE.search(line)
    if not found:
        return line
    owner = decode_cookie(int(found.group(1), 16))
    label = describe_owner(owner, names)
    rule = flow_rule(line, owner, names)
    if rule is not None:
        label += f"; rule {rule.label()}"
    return f"{line.rstrip()}  # {label}"


def flow_rule(line: str, owner: Owner | None,
              names: OwnerNames | None) -> RuleOrigin | None:
    """The template rule behind an ACL flow's dump-flows line, when the names know it."""
    if owner is None or names is None or not names.rules:
        return None
    table, priority = _TABLE.search(line), _PRIORITY.search(line)
    table_id = int(table.group(1)) if table else 0
    if table_id not in ACL_TABLES or priority is None:
        return None
    key: tuple
    if owner.kind is CookieKind.TEMPLATE:
        key = ("template", owner.template_id, table_id, int(priority.group(1)))
    elif owner.kind is CookieKind.PORT_GROUP:
        port, vlan = divmod(owner.owner_id, 1 << 12)
        key = ("port", names.dpid, port, vlan, table_id, int(priority.group(1)))
    else:
        return None
    return names.rules.get(key)


def strip_counters(line: str) -> str:
    """A dump-flows line without duration, n_packets and n_bytes."""
    return re.sub(r" (duration|n_packets|n_bytes|idle_age|hard_age)=[^,]+,", "", line)


Runner = Callable[[List[str]], Tuple[int, str, str]]


def _run(argv: List[str]) -> Tuple[int, str, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FlowListingError(f"{argv[0]} not found: install Open vSwitch "
                               "(scripts/setup.sh)") from None
    return done.returncode, done.stdout, done.stderr


def dump_flows(bridge: str, runner: Runner | None = None) -> List[str]:
    """The flow lines of ``ovs-ofctl -O OpenFlow13 dump-flows BRIDGE``."""
    code, out, err = (runner or _run)(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge])
    if code != 0:
        reason = err.strip().splitlines()[-1] if err.strip() else f"exit status {code}"
        raise FlowListingError(f"cannot read the flow table of bridge {bridge!r}: {reason}")
    return [line for line in out.splitlines() if "cookie=" in line]


def bridge_dpid(bridge: str, runner: Runner | None = None) -> str | None:
    """The bridge's datapath id (16 hex digits) from OVSDB, or None if unknown."""
    code, out, _ = (runner or _run)(["ovs-vsctl", "--timeout=5", "get", "bridge", bridge,
                                     "datapath-id"])
    dpid = out.strip().strip('"')
    return dpid if code == 0 and re.fullmatch(r"[0-9a-f]{16}", dpid) else None


def annotate(lines: List[str], counters: bool = False,
             names: OwnerNames | None = None) -> List[str]:
    """Flow lines labelled by owner; without counters unless ``counters``."""
    if not counters:
        lines = [strip_counters(ln) for ln in lines]
    return [annotate_line(ln, names) for ln in lines]


def annotated_flows(bridge: str, counters: bool = False, names: OwnerNames | None = None,
                    runner: Runner | None = None) -> str:
    """The bridge's OpenFlow 1.3 flow table, each flow labelled by owner."""
    return "\n".join(annotate(dump_flows(bridge, runner), counters, names))
