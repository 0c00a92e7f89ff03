"""What a new VM costs in flooding state, with 1, 10 and 100 VLAN members present.

A VLAN's flood entry on a switch hosting no VMs lists tree ports, so it changes
only when a member *switch* joins or leaves. On a server the copies to its VMs
live in FLOOD chunk flows of at most six ports (ryu_apps.core.server_flood):
a VM landing there rewrites its chunk, plus its group when it opens the chunk,
plus the flood entry when it opens the group; what it costs does not depend on
how many members the server already has. Members anywhere else cost it nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import pytest

from ryu_apps.app.openflow_bytes import encoded_messages
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library

LIBRARY = load_library(Path(__file__).resolve().parents[2] / "templates")
F1, A1, A2, S11, S12, S21 = 0x100, 0x201, 0x202, 0x1101, 0x1102, 0x2101
UPLINK = 100
NEW_VM = "00:fa:00:00:ff:01"


def _engine() -> ProvisioningEngine:
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    for dpid, role, name in ((F1, Role.FABRIC, "f1"), (A1, Role.ACCESS, "a1"),
                             (A2, Role.ACCESS, "a2"), (S11, Role.SERVER, "s11"),
                             (S12, Role.SERVER, "s12"), (S21, Role.SERVER, "s21")):
        engine.switch_up(dpid, role, name, [], now=0.0)
    for a, b in (((A1, 1), (F1, 1)), ((A2, 1), (F1, 2)), ((S11, UPLINK), (A1, 2)),
                 ((S12, UPLINK), (A1, 3)), ((S21, UPLINK), (A2, 2))):
        engine.link_seen(PortRef(*a), PortRef(*b), now=0.0)
    return engine


def _bind(engine: ProvisioningEngine, dpid: int, port: int, mac: str):
    verdict = engine.packet_in(dpid, port, mac, b"frame", now=0.0)
    engine.confirm(verdict.plan.confirms)
    return verdict.plan


def _new_vm_cost(members_here: int, members_elsewhere: int,
                 port: int = 999) -> Dict[Tuple[int, str], int]:
    """Bytes of a new web VM's plan on s11 (at ``port``), per (switch, owner kind), with
    that many web VMs (VLAN 100) on s11 (the first on port 6, the others from port
    1000) and on s12 and s21 already."""
    engine = _engine()
    for n in range(members_here):
        _bind(engine, S11, 6 if n == 0 else 1000 + n, f"00:fa:00:00:{n >> 8:02x}:{n & 255:02x}")
    for n in range(members_elsewhere):
        _bind(engine, (S12, S21)[n % 2], 1 + n, f"00:fa:00:00:fe:{n:02x}")
    plan = _bind(engine, S11, port, NEW_VM)
    cost: Dict[Tuple[int, str], int] = {}
    for dpid, changes in plan.changes.items():
        for spec in changes.adds + changes.deletes:
            owner = decode_cookie(spec.cookie)
            key = (dpid, owner.kind.name if owner else "none")
            cost[key] = cost.get(key, 0) + 1
        cost[(dpid, "bytes")] = sum(map(len, encoded_messages(changes)))
    return cost


def _vlan_flows_changed(cost: Dict[Tuple[int, str], int]) -> Dict[int, int]:
    return {dpid: n for (dpid, kind), n in cost.items() if kind == CookieKind.VLAN.name}


@pytest.mark.parametrize("present", [1, 10, 100])
def test_members_on_other_servers_cost_a_new_vm_nothing(present):
    alone = _new_vm_cost(1, 1)
    crowded = _new_vm_cost(1, present)
    assert crowded == alone, f"{present} members elsewhere changed the new VM's cost"


@pytest.mark.parametrize("present", [10, 100])
@pytest.mark.parametrize("port, flows", [(7, 1), (12, 2)])
def test_members_on_its_server_do_not_change_what_a_new_vm_costs(present, port, flows):
    """Port 7 joins the chunk of port 6 (one chunk flow rewritten); port 12 opens a
    chunk in that chunk's group (the chunk added, the group rewritten)."""
    base = _new_vm_cost(1, 10, port)
    cost = _new_vm_cost(present, 10, port)
    assert _vlan_flows_changed(cost) == {S11: flows}
    assert {dpid for dpid, _ in cost} == {S11, A1, F1}, "a2 and the other servers: nothing"
    assert cost == base, f"{present} members on s11 changed the new VM's cost"


def test_a_vm_opening_a_group_rewrites_the_flood_entry_too():
    cost = _new_vm_cost(10, 10, port=36)
    assert _vlan_flows_changed(cost) == {S11: 3}, "its chunk, its group, the flood entry"
