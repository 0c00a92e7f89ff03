"""Pods under other controller processes, reached through the shared fabric (pure).

A port where another process's beacon arrives is a shared uplink; the shared
fabric counts as a member of every VLAN with a VM here (so VLANs reach it, see
:meth:`~ryu_apps.core.topology_state.Topology.member` and
:func:`~ryu_apps.core.vlan_compiler.vlan_switch_flows`); a VM that starts
forwarding here is announced out of the uplink so the learning fabric follows
it, at once when it arrives on a pre-provisioned port, and again a few times
after (a frame the VM sent at its old place, still in flight through the other
pod, can teach the fabric the old way back; nothing else would correct it while
the VM talks only inside this pod); a handed-over VM's IP may be known before it
arrives.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, List, Optional

from ryu_apps.core import binding_ops, topology_events
from ryu_apps.core.binding import IP_DHCP, IP_PINNED, IP_SOURCES, Binding, VmState
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.lldp import build_announcement
from ryu_apps.core.pipeline import Priority, Table
from ryu_apps.core.routes import Route, Way, end_path, route_owner, set_path

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState

#: The edge calls :func:`announce_rounds` every this many seconds.
ANNOUNCE_ROUND_SECONDS = 0.05
#: Rounds after the first announcement at which a VM is announced again (about 50,
#: 150, 400 and 1,000 ms later, like QEMU's own announcement rounds).
REANNOUNCE_ROUNDS = (1, 3, 8, 20)


def shared_uplink_seen(st: "EngineState", end: PortRef, origin: str, now: float,
                       plan: Plan) -> None:
    """A verified beacon of another process's switch reached ``end``: it leads to the
    shared fabric (until its beacons stop).

    Ignored on a switch hosting VMs and on a port with a cable to a managed
    switch (a probe proved that link; it wins).
    """
    fabric, links = st.topo.fabric, st.topo.links
    role = fabric.role(end.dpid)
    if fabric.is_shared_uplink(end):
        links.beacon(end, now)
        return
    if role is None or role.hosts_vms or fabric.peer(end) is not None:
        return
    links.beacon(end, now)
    if fabric.add_shared_uplink(end):
        plan.notes.append(f"shared uplink {st.name(end.dpid)}:{end.port} reaches the "
                          f"shared fabric{' (beacon from ' + origin + ')' if origin else ''}")
        topology_events.fabric_changed(st, plan, {end.dpid})
        for binding in list(st.table.bindings.values()):
            if fabric.shared_uplink_from(binding.dpid) == end:
                announce(st, binding, plan, again=False)


def expect_ip(st: "EngineState", mac: str, ip: str | None, plan: Plan,
              ipv6: tuple[str, ...] = (), ip_source: str | None = None,
              lease_end: float | None = None,
              lease6_ends: tuple[tuple[str, float], ...] = ()) -> None:
    """A VM handed over to this process is bound to ``ip`` (as ``ip_source`` says, the
    source process's; pinned when unknown) and the global IPv6 addresses ``ipv6``
    (the store's row says so): its anti-spoofing here need not learn them from its
    packets again. A DHCP lease of ``ip`` ends at ``lease_end`` and DHCPv6 leases as
    ``lease6_ends`` says (wall-clock seconds, as the source process's ``now``): they
    expire here like leases snooped here, before the VM arrives too."""
    if (not ip and not ipv6) or mac in st.table.bindings:
        return
    source = ip_source if ip_source in IP_SOURCES else IP_PINNED
    incoming = st.table.incoming.get(mac)
    if incoming is None:
        if ip:
            st.ports.expected_ips[mac] = ip
            st.ports.expected_ip_sources[mac] = source
        if ipv6:
            st.ports.expected_ipv6[mac] = tuple(sorted(ipv6))
        held_ip, held6 = ip, tuple(ipv6)
    else:
        changed = incoming
        if ip and incoming.ip is None:
            changed = replace(changed, ip=ip, ip_source=source)
        if ipv6 and not incoming.ipv6:
            changed = replace(changed, ipv6=tuple(sorted(ipv6)))
        if changed is not incoming:
            binding_ops.store(st, changed)
        held_ip, held6 = changed.ip, changed.ipv6
    if ip and held_ip == ip and source == IP_DHCP:
        st.ports.time_lease(mac, ip, _moment(lease_end, f"VM {mac}'s DHCP lease", plan))
    ends6 = dict(lease6_ends)
    addresses = [a for a in ipv6 if a in held6]
    stray = sorted(set(ends6) - set(addresses))
    if stray:
        plan.warnings.append(f"hand-off of VM {mac}: DHCPv6 lease ends of "
                             f"{', '.join(stray)} ignored (not among its addresses)")
    if addresses:
        st.ports.time_leases6(mac, {a: _moment(ends6.get(a), f"VM {mac}'s DHCPv6 lease of "
                                               f"{a}", plan) for a in addresses})


def _moment(end: object, what: str, plan: Plan) -> Optional[float]:
    """A lease end a hand-off carried, if it is a time (None: no end, with a warning
    when the value was there but no finite number)."""
    if end is None:
        return None
    if isinstance(end, bool) or not isinstance(end, (int, float)) or not math.isfinite(end):
        plan.warnings.append(f"hand-off: {what} ends at {end!r}, no time: kept without "
                             "an end")
        return None
    return float(end)


def arrival(st: "EngineState", dpid: int, port: int, plan: Plan) -> None:
    """A frame, or link-up, on a pre-provisioned VM's port: the VM is here. Announce
    it to the shared fabric at once, before its activation is computed (the
    pre-provisioned port's entries already deliver its frames there)."""
    binding = st.table.at_port(dpid, port)
    if binding is not None and binding.state is VmState.PRE_PROVISIONED:
        st.ports.down.discard((dpid, port))   # it speaks, or its link came up
        announce(st, replace(binding, state=VmState.ACTIVE), plan, at_once=True)


def announce(st: "EngineState", binding: Binding, plan: Plan, at_once: bool = False,
             again: bool = True) -> None:
    """Tell the shared fabric (a learning bridge) that the VM is reached through here,
    once the plan's flows are in place (``at_once``: when entries already deliver
    its frames here): frames from other processes' VMs follow. On a port whose
    link is down (the VM is not there yet), when the link comes up. ``again``: in
    the next announcement rounds too (a VM that arrived; not every VM behind a
    new uplink)."""
    uplink = st.topo.fabric.shared_uplink_from(binding.dpid)
    if uplink is None or not binding.state.forwards or handed_over(st, binding):
        return
    if (binding.dpid, binding.port) in st.ports.down:
        st.ports.unannounced.add((binding.dpid, binding.port))
        return
    plan.packet_outs.append(PacketOut(uplink.dpid, 0, build_announcement(
        binding.mac, binding.vlan), out_port=uplink.port, at_once=at_once))
    plan.notes.append(f"VM {binding.mac} announced to the shared fabric by "
                      f"{st.name(uplink.dpid)}:{uplink.port}")
    if again:
        st.ports.announcing[binding.mac] = ((binding.dpid, binding.port), 0)
    else:
        st.ports.announcing.pop(binding.mac, None)


def announce_rounds(st: "EngineState", plan: Plan) -> None:
    """One announcement round passed: announce again the VMs due in this round
    (:data:`REANNOUNCE_ROUNDS`) that are still forwarding where they were announced."""
    announcing = st.ports.announcing
    for mac, (where, elapsed) in list(announcing.items()):
        elapsed += 1
        binding = st.table.bindings.get(mac)
        uplink = (st.topo.fabric.shared_uplink_from(binding.dpid)
                  if binding is not None else None)
        if (binding is None or (binding.dpid, binding.port) != where or uplink is None
                or not binding.state.forwards or where in st.ports.down
                or handed_over(st, binding)):
            del announcing[mac]   # gone, moved (announced there) or not forwarding
            continue
        if elapsed in REANNOUNCE_ROUNDS:
            plan.packet_outs.append(PacketOut(uplink.dpid, 0, build_announcement(
                mac, binding.vlan), out_port=uplink.port, at_once=True))
            plan.details.append(f"VM {mac} announced to the shared fabric again "
                                f"(round {elapsed})")
        if elapsed >= REANNOUNCE_ROUNDS[-1]:
            del announcing[mac]
        else:
            announcing[mac] = (where, elapsed)


def handed_over(st: "EngineState", binding: Binding) -> bool:
    """Whether another process is taking the VM over (its frames go toward the shared
    fabric too): announcing it here would pull the fabric back to its old pod."""
    route = st.routes.paths.get(route_owner(binding).cookie)
    return route is not None and route.way is Way.SHARED


def port_up(st: "EngineState", dpid: int, port: int, plan: Plan) -> None:
    """A port's link came up: a VM pre-provisioned there is here now (activated);
    one bound while the link was down is announced to the shared fabric."""
    st.ports.down.discard((dpid, port))
    pending = (dpid, port) in st.ports.unannounced
    st.ports.unannounced.discard((dpid, port))
    binding = st.table.at_port(dpid, port)
    if binding is None:
        return
    if binding.state is VmState.PRE_PROVISIONED:
        binding_ops.activate(st, binding, plan, f"the link of port {port} came up")
    elif pending and st.table.bindings.get(binding.mac) is binding:
        announce(st, binding, plan)


def toward_shared_fabric_too(st: "EngineState", binding: Binding, plan: Plan,
                             expected: bool = False) -> bool:
    """Deliver the VM's frames at its port and toward the shared fabric; whether any
    way leads there. ``expected``: the VM is not there yet, and its announcements
    on arrival go straight to the shared fabric too."""
    way = Way.SHARED_EXPECTED if expected else Way.SHARED
    return set_path(st, Route(route_owner(binding), way, binding), plan)


def handing_over(st: "EngineState", mac: str, plan: Plan) -> None:
    """Another process takes VM ``mac`` over while its port here is still there."""
    binding = st.table.bindings.get(mac)
    if binding is None or not binding.state.forwards:
        return
    before = plan.flow_count()
    if toward_shared_fabric_too(st, binding, plan) and plan.flow_count() > before:
        plan.notes.append(f"VM {binding.mac} moving to another process: its frames "
                          f"go to port {binding.port} of {st.name(binding.dpid)} and "
                          "to the shared fabric until that port goes away")


def stop_handing_over(st: "EngineState", mac: str, plan: Plan) -> None:
    """The hand-off of VM ``mac`` to another process was withdrawn."""
    binding = st.table.bindings.get(mac)
    if binding is None or not binding.state.forwards:
        return
    before = plan.flow_count()
    end_path(st, binding, plan)
    if plan.flow_count() > before:
        plan.notes.append(f"VM {binding.mac} stays here: the hand-off to another "
                          "process was withdrawn")


def restore_shared_uplinks(st: "EngineState", dpid: int, observed: List,
                           plan: Plan) -> None:
    """Uplinks to the shared fabric, from the switch's own flows (after a restart)."""
    restored = False
    fabric = st.topo.fabric
    for spec in observed:
        owner = decode_cookie(getattr(spec, "cookie", 0))
        if (not isinstance(spec, FlowSpec) or owner is None
                or owner.kind is not CookieKind.INFRA
                or spec.table_id != Table.CLASSIFY
                or spec.priority != Priority.SHARED_UPLINK):
            continue
        port = spec.match_dict().get("in_port")
        end = PortRef(dpid, port) if isinstance(port, int) else None
        if end is not None and fabric.peer(end) is None:
            restored = fabric.add_shared_uplink(end) or restored
            plan.notes.append(f"restored shared uplink {st.name(dpid)}:{port} "
                              f"from its flows")
    if restored:
        topology_events.fabric_changed(st, plan, {dpid})
