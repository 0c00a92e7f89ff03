"""The binding table's indexes by bound address (core/binding_table.py) against a scan of
its current bindings, after random sequences of what the engine does to a binding: bind,
re-address (a lease, a release), move, pre-provision, activate, unbind, release the
migration source. The IPv6 one answers ``ipv6_binding.holder`` without a scan."""

from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Set

from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.binding_table import BindingTable
from tests.support.index_check import check_address_indexes

MACS = [f"00:fa:00:00:00:{i:02x}" for i in range(1, 6)]
IPV6 = ("2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4")
IPV4 = (None, "10.0.0.1", "10.0.0.2")
OPS = ("bind", "readdress", "move", "pre_provision", "activate", "unbind", "release")

operations = st.lists(st.tuples(
    st.sampled_from(OPS), st.sampled_from(MACS),
    st.lists(st.sampled_from(IPV6), max_size=3, unique=True).map(lambda a: tuple(sorted(a))),
    st.sampled_from(IPV4), st.integers(min_value=1, max_value=4)), max_size=40)


def _binding(table: BindingTable, mac: str, port: int, ipv6, ip,
             state: VmState = VmState.ACTIVE) -> Binding:
    return Binding(table.allocate_id(), mac, 250, "web", 100, 0x11 + port % 2, port, ip=ip,
                   ipv6=ipv6, state=state)


def _apply(table: BindingTable, op: str, mac: str, ipv6, ip, port: int) -> None:
    """One of the engine's operations on a binding, through the table's mutators."""
    current, incoming = table.bindings.get(mac), table.incoming.get(mac)
    if op == "bind":
        if current is not None:
            table.remove(current)
        table.add(_binding(table, mac, port, ipv6, ip))
    elif op == "readdress" and current is not None:
        table.add(replace(current, ipv6=ipv6, ip=ip))
    elif op == "move" and current is not None:
        table.replace(current, replace(current, port=port, dpid=current.dpid ^ 1))
    elif op == "pre_provision" and incoming is None:
        table.add(_binding(table, mac, port, ipv6, ip, VmState.PRE_PROVISIONED))
    elif op == "activate" and incoming is not None:   # binding_ops.activate's steps
        table.remove(incoming)
        if current is not None:
            table.hand_out(current)
        table.add(replace(incoming, state=VmState.PROVISIONING))
    elif op == "unbind" and current is not None:
        table.remove(current, VmState.DEPROVISIONED)
    elif op == "release":
        table.release(mac)


def _scan6(table: BindingTable, address: str) -> Set[str]:
    return {b.mac for b in table.bindings.values() if address in b.ipv6}


def _scan_holder(table: BindingTable, address: str, mac: Optional[str]) -> Optional[str]:
    return min((m for m in _scan6(table, address) if m != mac), default=None)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_the_address_indexes_equal_a_scan_after_any_operations(steps: List[tuple]):
    table = BindingTable(lambda binding, delta: None)
    for op, mac, ipv6, ip, port in steps:
        _apply(table, op, mac, ipv6, ip, port)
        check_address_indexes(table)
        for address in IPV6:
            for asker in [None, *MACS]:
                found = table.ipv6_holder(address, asker)
                assert (found.mac if found else None) == _scan_holder(table, address, asker)
        for address in IPV4[1:]:
            for asker in MACS:
                found = table.ip_holder(address, asker)
                holders = {b.mac for b in table.bindings.values() if b.ip == address} - {asker}
                assert (found.mac in holders) if found else not holders


def test_an_incoming_copy_holds_no_address_until_it_is_activated():
    table = BindingTable(lambda binding, delta: None)
    _apply(table, "pre_provision", MACS[0], (IPV6[0],), None, 1)
    assert table.ipv6_holder(IPV6[0]) is None          # as the scan of bindings says
    _apply(table, "activate", MACS[0], (), None, 1)
    assert table.ipv6_holder(IPV6[0]).mac == MACS[0]
    assert table.ipv6_holder(IPV6[0], MACS[0]) is None  # its own: no other holder
