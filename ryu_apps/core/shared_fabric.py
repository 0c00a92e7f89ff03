"""Pods under other controller processes, reached through the shared fabric (pure).

Mixed into :class:`~ryu_apps.core.engine.ProvisioningEngine`. A port where
another process's beacon arrives is a shared uplink; the shared fabric counts
as a member of every VLAN with a VM here (so VLANs reach it, see
:func:`~ryu_apps.core.flow_compiler.vlan_switch_flows`); a VM that starts
forwarding here is announced out of the uplink so the learning fabric follows
it, at once when it arrives on a pre-provisioned port; a handed-over VM's IP
may be known before it arrives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Set

from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.fabric import SHARED_FABRIC, PortRef
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.identifiers import canonical_mac
from ryu_apps.core.lldp import build_announcement
from ryu_apps.core.pipeline import Priority, Table


class SharedFabric:
    """Uplinks, announcements and arrivals; expects the engine's state and helpers."""

    def shared_uplink_seen(self, end: PortRef, origin: str = "", now: float = 0.0) -> Plan:
        """A verified beacon of another process's switch reached ``end``: it leads to the
        shared fabric (until its beacons stop).

        Ignored on a switch hosting VMs and on a port with a cable to a managed
        switch (a probe proved that link; it wins).
        """
        plan = Plan()
        role = self.fabric.role(end.dpid)
        if self.fabric.is_shared_uplink(end):
            self.links.beacon(end, now)
            return plan
        if role is None or role.hosts_vms or self.fabric.peer(end) is not None:
            return plan
        self.links.beacon(end, now)
        if self.fabric.add_shared_uplink(end):
            plan.notes.append(f"shared uplink {self._name(end.dpid)}:{end.port} reaches the "
                              f"shared fabric{' (beacon from ' + origin + ')' if origin else ''}")
            self._fabric_changed(plan, {end.dpid})
            for binding in self.bindings.values():
                if self.fabric.shared_uplink_from(binding.dpid) == end:
                    self._announce(binding, plan)
        return plan

    def expect_ip(self, mac: str, ip: str | None) -> Plan:
        """A VM handed over to this process is bound to ``ip`` (the store's row says so):
        its anti-spoofing here need not learn it from its first packet again."""
        plan = Plan()
        mac = canonical_mac(mac)
        if not ip or mac in self.bindings:
            return plan
        incoming = self.incoming.get(mac)
        if incoming is None:
            self._expected_ips[mac] = ip
        elif incoming.ip is None:
            updated = replace(incoming, ip=ip)
            self._store(updated)
            self._apply_binding(updated, plan)
        return plan

    def arrival(self, dpid: int, port: int) -> Plan:
        """A frame, or link-up, on a pre-provisioned VM's port: the VM is here. Announce
        it to the shared fabric at once, before its activation is computed (the
        pre-provisioned port's entries already deliver its frames there)."""
        plan = Plan()
        binding = self._by_port.get((dpid, port))
        if binding is not None and binding.state is VmState.PRE_PROVISIONED:
            self._ports_down.discard((dpid, port))   # it speaks, or its link came up
            self._announce(replace(binding, state=VmState.ACTIVE), plan, at_once=True)
        return plan

    def _announce(self, binding: Binding, plan: Plan, at_once: bool = False) -> None:
        """Tell the shared fabric (a learning bridge) that the VM is reached through here,
        once the plan's flows are in place (``at_once``: when entries already deliver
        its frames here): frames from other processes' VMs follow. On a port whose
        link is down (the VM is not there yet), when the link comes up."""
        uplink = self.fabric.shared_uplink_from(binding.dpid)
        if uplink is None or not binding.state.forwards:
            return
        if (binding.dpid, binding.port) in self._ports_down:
            self._unannounced.add((binding.dpid, binding.port))
            return
        plan.packet_outs.append(PacketOut(uplink.dpid, 0, build_announcement(
            binding.mac, binding.vlan), out_port=uplink.port, at_once=at_once))
        plan.notes.append(f"VM {binding.mac} announced to the shared fabric by "
                          f"{self._name(uplink.dpid)}:{uplink.port}")

    def port_up(self, dpid: int, port: int) -> Plan:
        """A port's link came up: a VM pre-provisioned there is here now (activated);
        one bound while the link was down is announced to the shared fabric."""
        plan = Plan()
        self._ports_down.discard((dpid, port))
        pending = (dpid, port) in self._unannounced
        self._unannounced.discard((dpid, port))
        binding = self._by_port.get((dpid, port))
        if binding is None:
            return plan
        if binding.state is VmState.PRE_PROVISIONED:
            self._activate(binding, plan, f"the link of port {port} came up")
        elif pending and self.bindings.get(binding.mac) is binding:
            self._announce(binding, plan)
        return plan

    def _shared_fabric_member(self, vlan: int, dirty: Set[int]) -> None:
        """The shared fabric counts as a member of every VLAN with a forwarding VM here:
        other processes may have members, so the VLAN's floods and unknown
        destinations go out of the uplink, and the uplink admits the VLAN."""
        flooding = self._flooding
        joined = flooding.is_member(vlan, SHARED_FABRIC)
        local = flooding.switch_count(vlan) - joined
        if local and not joined:
            dirty |= flooding.join(vlan, SHARED_FABRIC)
        elif joined and not local:
            dirty |= flooding.leave(vlan, SHARED_FABRIC)

    def _restore_shared_uplinks(self, dpid: int, observed: List, plan: Plan) -> None:
        """Uplinks to the shared fabric, from the switch's own flows (after a restart)."""
        restored = False
        for spec in observed:
            owner = decode_cookie(getattr(spec, "cookie", 0))
            if (not isinstance(spec, FlowSpec) or owner is None
                    or owner.kind is not CookieKind.INFRA
                    or spec.table_id != Table.CLASSIFY
                    or spec.priority != Priority.SHARED_UPLINK):
                continue
            port = spec.match_dict().get("in_port")
            end = PortRef(dpid, port) if isinstance(port, int) else None
            if end is not None and self.fabric.peer(end) is None:
                restored = self.fabric.add_shared_uplink(end) or restored
                plan.notes.append(f"restored shared uplink {self._name(dpid)}:{port} "
                                  f"from its flows")
        if restored:
            self._fabric_changed(plan, {dpid})
