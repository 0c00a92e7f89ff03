"""Admission: whether a MAC seen on a VM port is provisioned there, and with what (pure).

A MAC is decoded into a template id, the template is looked up in the library
of the server's mobility domain, the identity policy and the move guard are
asked; a refusal quarantines the MAC at its port.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Optional, Tuple

from ryu_apps.core import address_guard, binding_ops, datapath_support, shared_fabric, \
    vm_identity
from ryu_apps.core.binding import IP_FIRST_SEEN, IP_PINNED, Binding, Detection, VmState
from ryu_apps.core.flow_plan import PacketOut
from ryu_apps.core.identifiers import IdentifierError
from ryu_apps.core.ipv6_binding import HELD_ADDRESS
from ryu_apps.core.quarantine import Refusal
from ryu_apps.core.template_model import Template
from ryu_apps.core.verdict import PacketVerdict

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


def admit(st: "EngineState", dpid: int, port: int, eth_src: str, now: float,
          detected_by: Detection, data: bytes, sender_ip: Optional[str] = None,
          trusted_move: bool = False, moved_ipv6: Tuple[str, ...] = ()) -> PacketVerdict:
    """Provision MAC ``eth_src`` on this port if its identity and template allow
    (``moved_ipv6``: the bound global IPv6 addresses of a VM whose old binding ended
    before this move; they move with it).

    A MAC bound elsewhere moves here only if the move is believed
    (:func:`~ryu_apps.core.vm_identity.move_believed`; ``trusted_move``: it was already).
    """
    verdict = PacketVerdict()
    if not st.topo.hosts_vms(dpid) or st.topo.fabric.is_link_port(dpid, port):
        return verdict
    mac = eth_src   # normalised by the engine's facade
    holder = st.table.at_port(dpid, port)
    if holder is not None:
        refuse(st, verdict, mac, None, dpid, port, now,
               f"port already bound to VM {holder.mac}: spoofed source MAC")
        return verdict
    refusal = vm_identity.identity_refusal(st, dpid, port, mac, detected_by, now)
    if refusal is not None:
        # a VM bound elsewhere may be believed here once its OVSDB row is read: its frame waits
        refuse(st, verdict, mac, None, dpid, port, now, refusal,
               held=data if mac in st.table.bindings else b"")
        return verdict
    existing = st.table.bindings.get(mac)
    if existing is not None and existing.state is VmState.RESTARTING:
        verdict.provisioned = binding_ops.come_back(st, existing, dpid, port, data,
                                                    verdict.plan)
        return verdict
    if existing is not None and not trusted_move and detected_by is Detection.PACKET \
            and not vm_identity.move_believed(st, existing, dpid, port, now, verdict,
                                           data):
        return verdict
    template = select(st, mac, eth_src, dpid, port, now, verdict)
    if template is not None:
        verdict.provisioned = _provision(st, template, mac, existing, dpid, port, now,
                                         detected_by, data, sender_ip, verdict, moved_ipv6)
    return verdict


def _provision(st: "EngineState", template: Template, mac: str, existing: Optional[Binding],
               dpid: int, port: int, now: float, detected_by: Detection, data: bytes,
               sender_ip: Optional[str], verdict: PacketVerdict,
               moved_ipv6: Tuple[str, ...] = ()) -> Binding:
    """Bind VM ``mac`` here with ``template`` (its binding elsewhere, if any, ends).

    A template that binds the VM's IP takes it from the first frame when that frame
    carries one (ARP sender or IPv4 source, never 0.0.0.0): one plan provisions the
    VM and its address, as the frame's second trip through the controller would."""
    ip = existing.ip if existing else st.ports.expected_ips.pop(mac, None)
    ipv6 = existing.ipv6 if existing else \
        (moved_ipv6 or st.ports.expected_ipv6.pop(mac, ()))
    if moved_ipv6:
        st.ports.expected_ipv6.pop(mac, None)   # the move's own addresses win
    source = existing.ip_source if existing else _expected_source(st, mac, ip)
    if ip is None and sender_ip is not None and learns_from(template, sender_ip):
        verdict.address_refused = held_elsewhere(st, template, mac, sender_ip)
        if verdict.address_refused is None:   # no note: the provisioning line is logged
            ip, source = sender_ip, IP_FIRST_SEEN
    binding = Binding(st.table.allocate_id(), mac, template.template_id,
                      template.name, template.vlan, dpid, port, since=now,
                      ip=ip, ip_source=source, detected_by=detected_by,
                      device=st.topo.device_of(dpid),
                      seen_ip=sender_ip or (existing.seen_ip if existing else None),
                      ipv6=ipv6)
    plan = verdict.plan
    if existing is not None:
        binding_ops.unbind(st, existing, plan, f"moved to port {port} of {st.name(dpid)}")
    binding_ops.drop_incoming(st, mac, plan)
    binding_ops.bind(st, binding, plan)
    if data and verdict.address_refused is None:
        plan.packet_outs.append(PacketOut(dpid, port, data))
    return binding


def _expected_source(st: "EngineState", mac: str, ip: Optional[str]) -> Optional[str]:
    """How a VM's address given from outside its packets was bound (a hand-off's row
    says; pinned otherwise); None without an address."""
    if ip is None:
        return None
    return st.ports.expected_ip_sources.pop(mac, IP_PINNED)


def select(st: "EngineState", mac: str, raw_mac: str, dpid: int, port: int, now: float,
           verdict: PacketVerdict) -> Optional[Template]:
    """Decode the MAC and select its template; quarantine the MAC on failure."""
    try:
        template_id = st.scheme.decode(raw_mac)
    except IdentifierError as error:
        refuse(st, verdict, mac, None, dpid, port, now, str(error))
        return None
    domain = st.domain_of_server(dpid)
    library = st.library_of_domain(domain)
    if domain is None or library is None:
        refuse(st, verdict, mac, template_id, dpid, port, now,
               f"server {st.name(dpid)} is in no mobility domain "
               f"(its access switch is unknown or listed in no domain)")
        return None
    template = library.get(template_id)
    if template is None:
        where = ("the library" if not st.libraries.domains.explicit
                 else f"the library of mobility domain '{domain.name}'")
        refuse(st, verdict, mac, template_id, dpid, port, now,
               f"template {template_id} (0x{template_id:04X}) is not in {where}")
        return None
    unsupported = datapath_support.stateful_refusal(template, st.name(dpid),
                                                    st.datapaths.missing(dpid))
    if unsupported is not None:
        refuse(st, verdict, mac, template_id, dpid, port, now, unsupported)
        return None
    return template


def refuse(st: "EngineState", verdict: PacketVerdict, mac: str, template_id: Optional[int],
           dpid: int, port: int, now: float, reason: str, while_bound: bool = False,
           held: bytes = b"") -> None:
    """Refuse MAC ``mac`` on this port: quarantine it there, say why (``while_bound``:
    only because it is bound elsewhere; lifted when that binding ends; ``held``: the
    frame, re-sent if the MAC is believed here soon, see :mod:`~ryu_apps.core.quarantine`)."""
    refusal, first, note = st.quarantine.refuse(
        Refusal(mac, template_id, reason, dpid, port, since=now, while_bound=while_bound,
                held=held))
    verdict.refusal, verdict.first_refusal = refusal, first
    if note:
        verdict.plan.notes.append(note)
    if first:
        binding_ops.quarantine_changed(st, dpid, port)


def expect(st: "EngineState", dpid: int, port: int, mac: str, now: float) -> PacketVerdict:
    """A VM unknown here is attached to a port whose link is down: it is not
    running on it yet (a hypervisor creates the port before the VM resumes there,
    maybe coming from another process's server). Pre-provision the port, its
    frames delivered both there and toward the shared fabric; the link coming up
    or the VM's first frame activates it."""
    verdict = PacketVerdict()
    if not st.topo.hosts_vms(dpid) or st.topo.fabric.is_link_port(dpid, port) \
            or st.table.at_port(dpid, port) is not None or mac in st.table.incoming:
        return verdict
    template = select(st, mac, mac, dpid, port, now, verdict)
    if template is None:
        return verdict
    expected_ip = st.ports.expected_ips.pop(mac, None)
    incoming = Binding(st.table.allocate_id(), mac, template.template_id,
                       template.name, template.vlan, dpid, port, since=now,
                       ip=expected_ip, ip_source=_expected_source(st, mac, expected_ip),
                       ipv6=st.ports.expected_ipv6.pop(mac, ()),
                       detected_by=Detection.OVSDB, device=st.topo.device_of(dpid),
                       state=VmState.PRE_PROVISIONED)
    plan = verdict.plan
    binding_ops.store(st, incoming)
    shared_fabric.toward_shared_fabric_too(st, incoming, plan, expected=True)
    binding_ops.lift_quarantine(st, incoming, plan)
    plan.notes.append(f"pre-provisioned VM {mac} on {st.name(dpid)} port {port} "
                      f"(binding {incoming.binding_id}): attached to a port whose link "
                      "is down; activated when it comes up or the VM speaks")
    return verdict


def known_vm_spoke(st: "EngineState", binding: Binding, sender_ip: Optional[str],
                   data: bytes) -> PacketVerdict:
    """A packet from a VM on its own port reached the controller."""
    verdict = PacketVerdict()
    if binding.state is VmState.PRE_PROVISIONED:
        binding_ops.activate(st, binding, verdict.plan, "announced itself")
        verdict.provisioned = st.table.bindings.get(binding.mac)
        return verdict   # the pipeline already forwarded the packet
    if binding.state is VmState.RESTARTING:
        verdict.provisioned = binding_ops.come_back(st, binding, binding.dpid, binding.port,
                                                    data, verdict.plan)
        return verdict
    template = st.template_of(binding)
    if (sender_ip is None or binding.ip is not None or template is None
            or not learns_from(template, sender_ip)):
        return verdict
    verdict.address_refused = held_elsewhere(st, template, binding.mac, sender_ip)
    if verdict.address_refused is not None:
        return verdict   # dropped: the VM stays unbound
    binding_ops.store(st, replace(binding, ip=sender_ip, ip_source=IP_FIRST_SEEN))
    verdict.plan.notes.append(f"VM {binding.mac} bound to IP {sender_ip}")
    if data:
        verdict.plan.packet_outs.append(PacketOut(binding.dpid, binding.port, data))
    return verdict


def held_elsewhere(st: "EngineState", template: Template, mac: str,
                   sender_ip: str) -> Optional[Tuple[str, str]]:
    """(kind, detail) when another VM holds the IPv4 address VM ``mac`` first sent from
    (it is then not bound, as DHCP snooping and IPv6 binding refuse a held address)."""
    other = st.table.ip_holder(sender_ip, mac)
    if other is None:
        return None
    return (HELD_ADDRESS, f"source {sender_ip} is bound to VM {other.mac} (binding "
                          f"{other.binding_id}); VM {mac} of template '{template.name}' "
                          f"({template.template_id}, bind_ip: first_seen) stays unbound")


def learns_from(template: Template, sender_ip: str) -> bool:
    """Whether a VM of ``template`` is bound to the address it first sent from: its
    template binds first-seen (not from DHCP), and the address is not one of its
    allowed addresses."""
    side = template.virtual_switch
    return side.binds_first_seen and not address_guard.allowed_by_template(side, sender_ip)
