"""Binding a VM's global IPv6 addresses (pure): first-seen, and from DHCPv6 replies.

``bind_ipv6: first_seen``: while a VM has no global address bound, the IPv6 it
sends from a global source reaches the controller
(:data:`~ryu_apps.core.pipeline.Priority.IPV6_LEARN`); :func:`learn` binds that
source, unless another VM holds it, or the packet claims what is not the VM's
(a neighbour solicitation with another MAC, an advertisement for another target,
a router advertisement or redirect from a VM that is no router): then nothing is
bound and the guard's refusal is returned for the app's once-per-VM log. An
address in the template's ``allowed_addresses`` is the template's, never bound:
such a packet is passed on. Binding recompiles the VM's flows: its learn bit
clears, its address is allowed like its link-local (:mod:`~ryu_apps.core.ipv6_guard`).

``bind_ipv6: dhcpv6``: :func:`bind_leased` and :func:`release` apply what the
DHCPv6 snooping decided (:mod:`~ryu_apps.core.dhcpv6`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable, Optional, Tuple

from ryu_apps.core import address_guard, binding_ops, dhcpv6, ipv6_guard
from ryu_apps.core.binding import Binding
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.ipv6_frames import Ipv6Info, parse_ipv6

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState

#: The kind of refusal logged when a VM sends from an address another VM holds.
HELD_ADDRESS = "address bound to another VM"


@dataclass
class SourceVerdict:
    """What became of an IPv6 packet a first_seen VM sent from a global source."""

    plan: Plan = field(default_factory=Plan)
    #: (kind, detail) when the packet was refused: the app logs it once per VM and kind.
    refused: Optional[tuple[str, str]] = None


def holder(st: "EngineState", address: str, mac: Optional[str] = None) -> Optional[Binding]:
    """The VM the global IPv6 ``address`` is bound to, if any (this process's bindings;
    another VM than ``mac``): a look-up in the binding table's index, no scan."""
    return st.table.ipv6_holder(address, mac)


def learn(st: "EngineState", dpid: int, port: int, mac: str,
          data: bytes) -> Optional[SourceVerdict]:
    """A packet from VM ``mac`` punted from ANTI_SPOOF: its first global IPv6 source.

    None when the packet is no such thing (the VM is not learning, the source is
    not global, or the rogue-DHCPv6-server guard dropped it): the guard's log
    takes it."""
    binding = st.table.at_port(dpid, port)
    if binding is None or binding.mac != mac or binding.ipv6:
        return None
    template = st.template_of(binding)
    info = parse_ipv6(data)
    if template is None or info is None or not ipv6_guard.learns(template.virtual_switch) \
            or not ipv6_guard.is_global(info.src):
        return None
    side = template.virtual_switch
    if not side.dhcp_server and address_guard.refusal(data) is not None:
        return None
    verdict = SourceVerdict()
    if not _claims_own(info, mac, side.router):
        verdict.refused = ipv6_guard.refusal(data)
        return verdict
    if not address_guard.allowed_by_template(side, info.src):
        other = holder(st, info.src, mac)
        if other is not None:
            verdict.refused = (HELD_ADDRESS, f"source {info.src} is bound to VM {other.mac}")
            return verdict
        bind_addresses(st, binding, (info.src,), verdict.plan, "the first it sent from")
    verdict.plan.packet_outs.append(PacketOut(dpid, port, data))
    return verdict


def _claims_own(info: Ipv6Info, mac: str, router: bool) -> bool:
    """Whether a packet from the VM's (would-be) address claims only what is its own."""
    kind = info.icmp_type
    if kind in (ipv6_guard.ICMPV6_RA, ipv6_guard.ICMPV6_REDIRECT):
        return router
    if kind == ipv6_guard.ICMPV6_NS:
        return info.nd_lladdr in (None, mac)
    if kind == ipv6_guard.ICMPV6_NA:
        return info.nd_target == info.src and info.nd_lladdr in (None, mac)
    return True


def bind_addresses(st: "EngineState", binding: Binding, addresses: Iterable[str],
                   plan: Plan, why: str) -> Binding:
    """Bind ``addresses`` to the VM as well (sorted, no repeats); its flows recompiled."""
    bound = tuple(sorted(set(binding.ipv6) | set(addresses)))
    if bound == binding.ipv6:
        return binding
    changed = replace(binding, ipv6=bound)
    binding_ops.store(st, changed)
    added = ", ".join(a for a in bound if a not in binding.ipv6)
    plan.notes.append(f"VM {binding.mac} bound to IPv6 {added} ({why})")
    return changed


def release(st: "EngineState", binding: Binding, addresses: Iterable[str],
            plan: Plan, why: str) -> Binding:
    """Unbind ``addresses`` from the VM (those it holds); its flows recompiled."""
    addresses = set(addresses)
    st.ports.time_leases6(binding.mac, dict.fromkeys(addresses))
    gone = addresses & set(binding.ipv6)
    if not gone:
        return binding
    changed = replace(binding, ipv6=tuple(a for a in binding.ipv6 if a not in gone))
    binding_ops.store(st, changed)
    plan.notes.append(f"VM {binding.mac} released IPv6 {', '.join(sorted(gone))} ({why})")
    return changed


# -- DHCPv6 snooping -------------------------------------------------------------------------
def trusted_server(st: "EngineState", dpid: int, port: int) -> bool:
    """Whether DHCPv6 server messages arriving at (dpid, port) come from an allowed
    server: a VM whose template says ``dhcp_server: true``, or a port no VM sits on (a
    link or the shared uplink: a VM elsewhere that is no server had its answers dropped
    at its own port by the rogue-server guard)."""
    fabric = st.topo.fabric
    if fabric.is_link_port(dpid, port) or fabric.is_shared_uplink(PortRef(dpid, port)):
        return True
    sender = st.table.at_port(dpid, port)
    if sender is None:
        return False
    template = st.template_of(sender)
    return template is not None and template.virtual_switch.dhcp_server


def snooped(st: "EngineState", dpid: int, port: int, data: bytes, now: float,
            plan: Plan) -> bool:
    """A DHCPv6 message copied to the controller at (dpid, port): a Reply from an allowed
    server binds the IA_NA addresses it gives a ``bind_ipv6: dhcpv6`` VM (the frame's
    destination MAC, on this server) until their valid lifetime ends (:func:`expire`;
    a later Reply renews them); a Release from such a VM unbinds those it names.
    True when it was a DHCPv6 message (whatever became of it)."""
    found = dhcpv6.from_frame(data)
    if found is None:
        return False
    message = found.message
    if found.to_client and message.msg_type == dhcpv6.REPLY:
        vm = st.table.bindings.get(_mac_text(data[0:6]))
        if vm is None or vm.dpid != dpid or not _leases_from_dhcpv6(st, vm):
            return True
        if not trusted_server(st, dpid, port):
            plan.warnings.append(f"DHCPv6 reply to VM {vm.mac} from port {port} of "
                                 f"{st.name(dpid)}, not an allowed server: ignored")
            return True
        withdrawn = [lease.address for lease in message.leases if not lease.valid]
        vm = release(st, vm, withdrawn, plan, "its DHCPv6 lease withdrawn")
        free = [a for a in message.addresses if _free_for(st, a, vm.mac, plan)]
        bind_addresses(st, vm, free, plan, "leased by DHCPv6")
        st.ports.time_leases6(vm.mac, {a: end for a, end in message.ends(now).items()
                                  if a in free})
    elif found.to_server and message.msg_type in (dhcpv6.RELEASE, dhcpv6.DECLINE):
        vm = st.table.at_port(dpid, port)
        if vm is not None and vm.mac == _mac_text(data[6:12]) and _leases_from_dhcpv6(st, vm) \
                and found.ipv6.src == ipv6_guard.link_local(vm.mac):
            release(st, vm, [lease.address for lease in message.leases], plan,
                    "released by DHCPv6" if message.msg_type == dhcpv6.RELEASE
                    else "declined by DHCPv6")
    return True


def expire(st: "EngineState", now: float, plan: Plan) -> None:
    """Unbind the DHCPv6-leased addresses whose valid lifetime ended (the engine's tick):
    from the VM's binding, its pre-provisioned one, and the addresses a VM handed
    over by another process is expected with."""
    for mac, ends in list(st.ports.leases6.items()):
        ended = [address for address, end in ends.items() if end <= now]
        if not ended:
            continue
        st.ports.time_leases6(mac, dict.fromkeys(ended))
        for binding in (st.table.bindings.get(mac), st.table.incoming.get(mac)):
            if binding is not None:
                release(st, binding, ended, plan, "its DHCPv6 lease ended")
        expected = st.ports.expected_ipv6.get(mac, ())
        if set(ended) & set(expected):
            _unexpect_ipv6(st, mac, expected, ended, plan)


def _unexpect_ipv6(st: "EngineState", mac: str, expected: Tuple[str, ...],
                   ended: Iterable[str], plan: Plan) -> None:
    """A VM handed over but not here yet will not get its ended addresses here."""
    gone = sorted(set(ended) & set(expected))
    kept = tuple(a for a in expected if a not in gone)
    if kept:
        st.ports.expected_ipv6[mac] = kept
    else:
        del st.ports.expected_ipv6[mac]
    plan.notes.append(f"VM {mac}, handed over by another process, will not be bound to "
                      f"IPv6 {', '.join(gone)} here: its DHCPv6 lease ended before it "
                      "arrived")


def _leases_from_dhcpv6(st: "EngineState", vm: Binding) -> bool:
    template = st.template_of(vm)
    return template is not None and template.virtual_switch.bind_ipv6 == ipv6_guard.DHCPV6


def _free_for(st: "EngineState", address: str, mac: str, plan: Plan) -> bool:
    """Whether ``address`` may be bound to VM ``mac`` (global, held by no other VM)."""
    other = holder(st, address, mac)
    if other is not None:
        plan.warnings.append(f"DHCPv6 leased {address} to VM {mac}, but it is bound to VM "
                             f"{other.mac}: not bound")
        return False
    return ipv6_guard.is_global(address)


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
