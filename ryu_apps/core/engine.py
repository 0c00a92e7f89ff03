"""The network devices' control logic: events in, plans out (pure).

The Ryu app feeds it what the switches report (a switch connected with the
flows it holds, a link seen by LLDP, a packet from a VM, a port gone, a flow
that idled out, a VM listed in OVSDB) and what the external management entity
says (see :mod:`ryu_apps.core.lifecycle`), and sends the
:class:`~ryu_apps.core.flow_plan.Plan` it returns. It never sends, reads a
clock or touches a socket: time comes in as ``now``, a required keyword.

:class:`ProvisioningEngine` is a facade: its state is an
:class:`~ryu_apps.core.engine_state.EngineState` of typed parts, each event is
handled by a function of a topic module (switches and links, VMs, identity,
lifecycle, shared fabric), and the derived owners the handler marked dirty are
recomputed once, before the plan is returned (:func:`ryu_apps.core.derived.flush`).
Its read side (the state's tables and parts, and the queries over them) is
:class:`~ryu_apps.core.engine_views.EngineViews`, which it extends.

Each access switch is a network device: a VM belongs to the device its server
hangs off, has a :class:`~ryu_apps.core.binding.VmState` there, and devices
talk to each other only through :mod:`ryu_apps.core.device_messages`, which a
plan carries out and the app delivers.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from ryu_apps.core import (
    binding_ops,
    conntrack,
    datapath_support,
    derived,
    dhcp_snooping,
    ipv6_binding,
    lifecycle,
    shared_fabric,
    topology_events,
    vm_events,
)
from ryu_apps.core.domains import DomainMap
from ryu_apps.core.engine_state import EngineState
from ryu_apps.core.engine_views import EngineViews
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.identifiers import IdentifierError, IdentifierScheme, Mac, normalise_mac
from ryu_apps.core.identity import MOVE_HOLD_SECONDS, IdentityPolicy
from ryu_apps.core.lifecycle import Acknowledgement, Notice
from ryu_apps.core.mac_address import is_canonical_mac
from ryu_apps.core.quarantine import (  # noqa: F401 (re-exported for callers)
    QUARANTINE_MACS_PER_PORT,
    QUARANTINE_SECONDS,
    Refusal,
)
from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.core.verdict import PacketVerdict

__all__ = ["ProvisioningEngine", "PacketVerdict", "QUARANTINE_MACS_PER_PORT",
           "QUARANTINE_SECONDS", "Refusal"]


class ProvisioningEngine(EngineViews):
    """Bindings, fabric and desired flows of one controller (pure state machine); what
    it holds is read through :class:`~ryu_apps.core.engine_views.EngineViews`."""

    def __init__(self, library: TemplateLibrary, scheme: IdentifierScheme,
                 domains: DomainMap | None = None,
                 domain_libraries: Dict[str, TemplateLibrary] | None = None,
                 identity: IdentityPolicy = IdentityPolicy.AUTO,
                 move_hold: float = MOVE_HOLD_SECONDS) -> None:
        self.state = EngineState(library, scheme, domains, domain_libraries, identity,
                                 move_hold)

    def reset(self) -> None:
        """Forget every switch, link and VM; keep the libraries and settings. The app
        then relearns everything from the switches, as after a restart."""
        old = self.state
        self.state = EngineState(old.libraries.main, old.scheme, old.libraries.domains,
                                 old.libraries.of_domain, old.identity_default,
                                 old.move_hold, old.datapaths)

    def _done(self, plan: Plan) -> Plan:
        """Recompute the derived owners the event touched, into its plan."""
        derived.flush(self.state, plan)
        return plan

    def recompute_all(self) -> Plan:
        """Rebuild every owner's desired flows from the state from scratch; the plan
        that brings the previous desired flows to them (empty when the incremental
        state was right)."""
        return derived.recompute_all(self.state)

    # -- switches and links ------------------------------------------------------------
    def switch_up(self, dpid: int, role: Role, name: str, observed: Iterable, *,
                  now: float) -> Plan:
        """A switch connected and reported the dynprov flows and meters it holds."""
        observed = list(observed)
        plan = Plan()
        topology_events.switch_up(self.state, dpid, role, name, observed, now, plan)
        self._done(plan)
        plan.changes.pop(dpid, None)
        self.state.desired.reconcile(dpid, observed, plan)
        return plan

    def switch_down(self, dpid: int) -> Plan:
        """A switch disconnected: its flows stay desired so it keeps forwarding."""
        self.state.topo.links.switch_disconnected(dpid)
        return Plan()

    def link_seen(self, a: PortRef, b: PortRef, *, now: float) -> Plan:
        """A verified probe sent out of port ``a`` arrived at port ``b``."""
        plan = Plan()
        topology_events.link_seen(self.state, a, b, now, plan)
        return self._done(plan)

    def probe_round(self, now: float) -> Plan:
        """The app starts a probe round: links not proven for several rounds, and
        shared uplinks whose beacons stopped, are removed."""
        plan = Plan()
        topology_events.probe_round(self.state, now, plan)
        return self._done(plan)

    def probe_refused(self, dpid: int, port: int, now: float) -> Plan:
        """A port sent an unsigned or forged probe: drop its LLDP for a while."""
        topology_events.probe_refused(self.state, dpid, port, now)
        return self._done(Plan())

    def port_down(self, dpid: int, port: int, deleted: bool = True, *, now: float) -> Plan:
        """A port went away (or its link went down): drop its link and the VM behind it."""
        plan = Plan()
        vm_events.port_down(self.state, dpid, port, deleted, now, plan)
        return self._done(plan)

    def port_up(self, dpid: int, port: int, *, now: float | None = None) -> Plan:
        """A port was added or its link came up (at ``now``): a VM pre-provisioned there
        is activated; a VM a notice expects on this server may be pre-provisioned
        there; searches for lost VMs probe it."""
        plan = Plan()
        shared_fabric.port_up(self.state, dpid, port, plan)
        vm_events.port_up(self.state, dpid, port, now, plan)
        return self._done(plan)

    def ports_seen(self, dpid: int, ports: Iterable[int]) -> None:
        """The ports a switch reported when it connected."""
        for port in ports:
            vm_events.port_up(self.state, dpid, port, None, Plan())

    # -- VMs ---------------------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, eth_src: str, data: bytes = b"", *,
                  now: float, sender_ip: str | None = None,
                  tagged: bool = False, eth_dst: str | None = None) -> PacketVerdict:
        """A packet reached the controller from a VM port.

        A VLAN-tagged frame never comes from a VM (VMs send untagged; the
        pipeline drops them): one that still arrives is fabric traffic seen
        before its link was discovered, and is ignored. A frame to PROBE_MAC
        from a bound VM is its answer to the liveness probe.
        """
        if tagged:
            return PacketVerdict()
        verdict = PacketVerdict()
        mac = Mac(eth_src) if is_canonical_mac(eth_src) else _mac(
            eth_src, f"packet-in on {dpid:016x} port {in_port}: eth_src", verdict.plan)
        if mac is None:
            return verdict
        verdict = vm_events.packet_in(self.state, dpid, in_port, mac, data, now,
                                      sender_ip, eth_dst)
        self._done(verdict.plan)
        return verdict

    def dhcp_seen(self, dpid: int, in_port: int, data: bytes, *, now: float) -> Plan:
        """A DHCP message the pipeline copied for snooping came in at ``in_port``
        (core/dhcp_snooping.py): an allowed DHCPACK binds its VM's address."""
        plan = Plan()
        if not ipv6_binding.snooped(self.state, dpid, in_port, data, now, plan):   # DHCPv6
            dhcp_snooping.snooped(self.state, dpid, in_port, data, now, plan)
        return self._done(plan)

    def vm_attached(self, dpid: int, port: int, mac: str, *, now: float,
                    iface_id: str | None = None) -> PacketVerdict:
        """The server's OVSDB says VM ``mac`` is attached to ``port`` (it may be silent).

        A VM still running elsewhere is being migrated here by its hypervisor:
        its new port is pre-provisioned, and activated when the VM speaks there
        or its old port goes away. Where the identity policy believes the
        hypervisor, a VM bound to this port by its packets with another MAC
        is deprovisioned: the hypervisor says whose port it is.
        """
        verdict = PacketVerdict()
        checked = _mac(mac, f"OVSDB row for {dpid:016x} port {port}: attached-mac", verdict.plan)
        if checked is None:
            return verdict
        verdict = vm_events.vm_attached(self.state, dpid, port, checked, now, iface_id)
        self._done(verdict.plan)
        return verdict

    def vm_detached(self, dpid: int, port: int, mac: str | None = None, *,
                    now: float) -> Plan:
        """The server's OVSDB no longer lists VM ``mac`` (or any VM) on ``port``."""
        plan = Plan()
        checked = None if mac is None else \
            _mac(mac, f"OVSDB row for {dpid:016x} port {port}: attached-mac", plan)
        if mac is not None and checked is None:
            return plan
        vm_events.vm_detached(self.state, dpid, port, checked, now, plan)
        return self._done(plan)

    def flow_removed(self, dpid: int, cookie: int, idle_timeout: bool) -> Plan:
        """A flow with the send-flow-removed flag left a switch on its own."""
        plan = Plan()
        vm_events.flow_removed(self.state, dpid, cookie, idle_timeout, plan)
        return self._done(plan)

    def confirm(self, macs: Iterable[str]) -> None:
        """The switches applied the plans that provisioned these VMs."""
        vm_events.confirm(self.state, macs)

    def cede(self, mac: str) -> Plan:
        """Another process owns VM ``mac`` now (its claim in the shared store won):
        deprovision it here, a pre-provisioned port of it too."""
        plan = Plan()
        checked = _mac(mac, "cede", plan)
        if checked is None:
            return plan
        binding = self.bindings.get(checked)
        if binding is not None:
            binding_ops.unbind(self.state, binding, plan, "another process owns it now")
        binding_ops.drop_incoming(self.state, checked, plan)
        return self._done(plan)

    def set_library(self, library: TemplateLibrary, domain: str | None = None) -> Plan:
        """Put a new (validated) library in force; re-provision affected VMs in place."""
        plan = Plan()
        vm_events.set_library(self.state, library, domain, plan)
        plan.warnings += conntrack.library_warnings(library)
        return self._done(plan)

    def conntrack_found(self, dpid: int, supported: bool, detail: str = "") -> bool:
        """A switch's probe answered whether its datapath has connection tracking
        (core/datapath_support.py); whether that changed what was known."""
        return self.state.datapaths.found(dpid, supported, detail)

    def conntrack_missing(self, dpid: int) -> Optional[str]:
        """Why a switch has no connection tracking; None: it has, or was not probed."""
        return self.state.datapaths.missing(dpid)

    def reload_conflicts(self, library: TemplateLibrary, domain: str | None = None
                         ) -> List[str]:
        """Located errors that refuse ``library``: it would make a template stateful on
        a bridge without connection tracking that hosts its VMs."""
        return datapath_support.reload_conflicts(self.state, library, domain)

    def tick(self, now: float) -> Plan:
        """Time passed: lift old quarantines; accept moves whose old location stayed
        silent to the liveness probe."""
        plan = Plan()
        vm_events.tick(self.state, now, plan)
        return self._done(plan)

    # -- lifecycle and other devices -------------------------------------------------------
    def notify(self, notice: Notice, mac: str, server: Optional[str] = None,
               template_id: Optional[int] = None, *, now: float) -> Acknowledgement:
        """Handle one notification; raise NotificationError when it cannot apply."""
        plan = Plan()
        message = lifecycle.notify(self.state, notice, mac, server, template_id, now, plan)
        return Acknowledgement(self._done(plan), message)

    def receive(self, message: object, *, now: float) -> Plan:
        """A message from another network device."""
        plan = Plan()
        lifecycle.receive(self.state, message, now, plan)
        return self._done(plan)

    def handing_over(self, mac: str) -> Plan:
        """Another process takes VM ``mac`` over (a hand-off recorded in the store, or its
        claim seen there) while its port here is still there: deliver its frames at
        that port and toward the shared fabric until the port goes away."""
        plan = Plan()
        checked = _mac(mac, "hand-over", plan)
        if checked is not None:
            shared_fabric.handing_over(self.state, checked, plan)
        return self._done(plan)

    def stop_handing_over(self, mac: str) -> Plan:
        """The process VM ``mac`` was being handed to gave it up: its frames go to its
        port here only again."""
        plan = Plan()
        checked = _mac(mac, "hand-over withdrawn", plan)
        if checked is not None:
            shared_fabric.stop_handing_over(self.state, checked, plan)
        return self._done(plan)

    def shared_uplink_seen(self, end: PortRef, origin: str = "", *, now: float) -> Plan:
        """A verified beacon of another process's switch reached ``end``."""
        plan = Plan()
        shared_fabric.shared_uplink_seen(self.state, end, origin, now, plan)
        return self._done(plan)

    def expect_ip(self, mac: str, ip: str | None, ipv6: tuple[str, ...] = (),
                  ip_source: str | None = None, *, lease_end: float | None = None,
                  lease6_ends: Iterable[tuple[str, float]] = ()) -> Plan:
        """A VM handed over to this process is bound to ``ip`` (as ``ip_source`` says;
        None: pinned) and the global IPv6 addresses ``ipv6`` (the store's row says so);
        a DHCP lease of ``ip`` ends at ``lease_end``, DHCPv6 ones as ``lease6_ends``
        says (wall-clock seconds, as ``now``), and then they expire here."""
        plan = Plan()
        checked = _mac(mac, "expected address", plan)
        if checked is not None:
            shared_fabric.expect_ip(self.state, checked, ip, plan, ipv6, ip_source,
                                    lease_end, tuple(lease6_ends))
        return self._done(plan)

    def ipv6_source(self, dpid: int, port: int, eth_src: str,
                    data: bytes) -> ipv6_binding.SourceVerdict | None:
        """IPv6 a ``bind_ipv6: first_seen`` VM sent from a global source before one was
        bound (None: not such a packet, the IPv6 guard's log takes it)."""
        plan = Plan()
        mac = _mac(eth_src, f"packet-in on {dpid:016x} port {port}: eth_src", plan)
        if mac is None:
            return None
        verdict = ipv6_binding.learn(self.state, dpid, port, mac, data)
        if verdict is not None:
            self._done(verdict.plan)
        return verdict

    def dhcpv6_snooped(self, dpid: int, port: int, data: bytes, *,
                       now: float) -> Plan | None:
        """A DHCPv6 message copied to the controller at (dpid, port): a trusted server's
        Reply binds a ``bind_ipv6: dhcpv6`` VM's leased addresses, the VM's Release
        unbinds them (None: the frame is no DHCPv6 message)."""
        plan = Plan()
        if not ipv6_binding.snooped(self.state, dpid, port, data, now, plan):
            return None
        return self._done(plan)

    def arrival(self, dpid: int, port: int) -> Plan:
        """A frame, or link-up, on a pre-provisioned VM's port: announce it at once."""
        plan = Plan()
        shared_fabric.arrival(self.state, dpid, port, plan)
        return self._done(plan)

    def announce_rounds(self) -> Plan | None:
        """An announcement round passed (every ``ANNOUNCE_ROUND_SECONDS``): announce
        again to the shared fabric the VMs that arrived lately; None when none is due."""
        if not self.state.ports.announcing:
            return None
        plan = Plan()
        shared_fabric.announce_rounds(self.state, plan)
        return self._done(plan) if plan.packet_outs else None


def _mac(text: str, where: str, plan: Plan) -> Optional[Mac]:
    """``text`` as a MAC, the one normalisation every MAC entering the engine gets;
    None, with a warning saying where it came from, when it is none."""
    try:
        return normalise_mac(text, where)
    except IdentifierError as error:
        plan.warnings.append(f"ignored: {error}")
        return None
