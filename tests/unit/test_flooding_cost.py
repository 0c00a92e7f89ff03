"""What a new VM costs in flooding state, with 1, 10 and 100 VLAN members present.

A VLAN's flood entry on a switch hosting no VMs lists tree ports, so it changes
only when a member *switch* joins or leaves; on a server it lists the VM ports
of its members there, so it is rewritten when a VM lands on that server. In
OpenFlow 1.3 that rewrite carries the whole port list (a group's bucket list
is replaced whole by OFPGC_MODIFY too; Open vSwitch 3.1 inserts single buckets
only in OpenFlow 1.5), so the floor is: only the server where the VM lands,
one flow, a fixed number of bytes per member already on that server. Members
anywhere else cost the new VM nothing.
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


def _new_vm_cost(members_here: int, members_elsewhere: int) -> Dict[Tuple[int, str], int]:
    """Bytes of a new web VM's plan on s11, per (switch, owner kind), with that many
    web VMs (VLAN 100) on s11 and on s12 and s21 already."""
    engine = _engine()
    for n in range(members_here):
        _bind(engine, S11, 200 + n, f"00:fa:00:00:01:{n:02x}")
    for n in range(members_elsewhere):
        _bind(engine, (S12, S21)[n % 2], 1 + n, f"00:fa:00:00:02:{n:02x}")
    plan = _bind(engine, S11, 999, NEW_VM)
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


@pytest.mark.parametrize("present", [1, 10, 100])
def test_members_on_its_server_grow_only_that_servers_one_flood_entry(present):
    cost = _new_vm_cost(present, 10)
    assert _vlan_flows_changed(cost) == {S11: 1}, "only s11's flood entry is rewritten"
    assert {dpid for dpid, _ in cost} == {S11, A1, F1}, "a2 and the other servers: nothing"
    base = _new_vm_cost(1, 10)
    for dpid in (A1, F1):
        assert cost[(dpid, "bytes")] == base[(dpid, "bytes")]
    # set-metadata (16 bytes) and resubmit (16 bytes) per member port already there
    assert cost[(S11, "bytes")] - base[(S11, "bytes")] == 32 * (present - 1)
