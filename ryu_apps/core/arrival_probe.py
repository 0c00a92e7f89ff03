"""Finding a VM that moved with no announcement and no OVSDB: the controller's probe (pure).

When a bound VM's port goes down or away, its binding ends; if the VM had an
IPv4 address and a mobility domain, a search for it begins
(:mod:`~ryu_apps.core.probe_search` keeps it and bounds it). Its candidates
are the free VM ports of servers in the same domain that came up shortly
before (a hypervisor creates the destination port before it removes the
source's; one added with its link down is probed too, and again when its
link-up is reported, which a busy switch does after the guest's first frames),
the free ports of the server a migration notice named, and any port that comes
up on a server of the domain while the search lasts. Each gets an
ARP request for the VM's address, addressed to the VM's MAC from
:data:`~ryu_apps.core.identity.PROBE_MAC` with sender address 0.0.0.0, sent by
the controller out of that port. The reply (from the VM's MAC, to PROBE_MAC,
at a candidate port, carrying the VM's address) provisions the VM there with
the address it had. A reply from another MAC, with another address, or at a
port that is not a candidate activates nothing. A frame the VM sends itself at
such a port before the probe goes or is answered (a hypervisor's RARP, often
ahead of the port's link-up report) provisions it there with that address too.

A port is free when it is a VM port of a server, no binding holds it, its link
is up, it holds no quarantine, and OVSDB names no other VM on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ryu_apps.core import admission
from ryu_apps.core.binding import Binding, Detection
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.identity import arp_probe
from ryu_apps.core.probe_search import RECENT_PORT_SECONDS, SEARCH_SECONDS, Search
from ryu_apps.core.verdict import PacketVerdict

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


def free_port(st: "EngineState", dpid: int, port: int, mac: str,
              down_too: bool = False) -> bool:
    """Whether VM ``mac`` could take (dpid, port): see the module's docstring
    (``down_too``: a port whose link is down counts)."""
    key = (dpid, port)
    if not st.topo.hosts_vms(dpid) or st.topo.fabric.is_link_port(dpid, port):
        return False
    if st.table.at_port(dpid, port) is not None or (key in st.ports.down and not down_too):
        return False
    attached = st.ports.attachments.get(key)
    return not st.quarantine.touches(dpid, port) and attached in (None, mac)


def _domain(st: "EngineState", dpid: int) -> Optional[str]:
    domain = st.domain_of_server(dpid)
    return domain.name if domain is not None else None


def lost(st: "EngineState", gone: Binding, notified: Optional[int], now: float,
         plan: Plan) -> None:
    """VM ``gone`` lost its port and its binding: look for it."""
    ip, domain = gone.ip or gone.seen_ip, _domain(st, gone.dpid)
    if ip is None or domain is None or gone.mac in st.table.bindings:
        return
    search = Search(gone.mac, ip, domain, now + SEARCH_SECONDS, ipv6=gone.ipv6)
    recent = sorted(key for key, since in st.ports.up_since.items()
                    if 0.0 <= now - since <= RECENT_PORT_SECONDS)   # sort the few, not all
    for dpid, port in recent:   # a recent port still reported down is probed too
        if (dpid, port) != (gone.dpid, gone.port) and _domain(st, dpid) == domain and \
                free_port(st, dpid, port, gone.mac, down_too=True):
            search.add((dpid, port), now, blind=(dpid, port) in st.ports.down)
    if notified is not None and _domain(st, notified) == domain:
        for port in sorted(st.ports.present.get(notified, ())):
            if free_port(st, notified, port, gone.mac):
                search.add((notified, port), now)
    st.ports.searches.by_mac[gone.mac] = search
    plan.notes.append(f"VM {gone.mac} lost its port {gone.port} on {st.name(gone.dpid)}: "
                      f"probing for {ip} at {len(search.candidates)} port(s) of domain "
                      f"'{domain}' and at ports coming up for {SEARCH_SECONDS:g} s")
    send_due(st, now, plan)


def port_came_up(st: "EngineState", dpid: int, port: int, now: float, plan: Plan) -> None:
    """A port came up: a candidate of every search of its server's domain."""
    searches = st.ports.searches.by_mac
    if not searches:
        return
    domain = _domain(st, dpid)
    for search in searches.values():
        if search.domain == domain and free_port(st, dpid, port, search.mac):
            search.add((dpid, port), now)
    send_due(st, now, plan)


def send_due(st: "EngineState", now: float, plan: Plan) -> None:
    """The probes due now, within the budget, as packet-outs."""
    for search, (dpid, port) in st.ports.searches.due(now):
        plan.packet_outs.append(PacketOut(dpid, 0, arp_probe(search.ip, search.mac),
                                          out_port=port, at_once=True))


def tick(st: "EngineState", now: float, plan: Plan) -> None:
    """Time passed: searches past their deadline end; the probes due go."""
    for search in st.ports.searches.expire(now):
        plan.notes.append(f"VM {search.mac} not found at "
                          f"{len(search.candidates)} probed port(s): search over")
    send_due(st, now, plan)


def spoke(st: "EngineState", dpid: int, port: int, mac: str, data: bytes,
          sender_ip: Optional[str], now: float) -> Optional[PacketVerdict]:
    """VM ``mac``, searched for, sent a frame at (dpid, port): provisioned there with
    the address its search probes for, or None (judged as any frame) unless the port
    is a candidate or a free port of the search's domain that appeared or came up in
    the last RECENT_PORT_SECONDS (its link-up may not be reported yet), and the frame
    names no other address. The address follows the MAC as a probe answer's does."""
    search = st.ports.searches.by_mac.get(mac)
    if search is None or mac in st.table.bindings or sender_ip not in (None, search.ip):
        return None
    since = st.ports.up_since.get((dpid, port))
    recent = (dpid, port) in search.candidates or (
        since is not None and 0.0 <= now - since <= RECENT_PORT_SECONDS)
    if not recent or _domain(st, dpid) != search.domain or \
            not free_port(st, dpid, port, mac, down_too=True):
        return None
    verdict = _admit_searched(st, dpid, port, mac, search, now, data, sender_ip=sender_ip)
    if verdict.provisioned is not None:
        verdict.plan.notes.append(f"VM {mac}, searched for, spoke on {st.name(dpid)} port "
                                  f"{port}: provisioned there with {search.ip}")
    return verdict


def answered(st: "EngineState", dpid: int, port: int, mac: str, sender_ip: Optional[str],
             now: float) -> Optional[PacketVerdict]:
    """An answer to the probe at (dpid, port): the VM provisioned there, or an empty
    verdict (a wrong address); None when no search probes this MAC at this port."""
    search = st.ports.searches.by_mac.get(mac)
    if search is None or (dpid, port) not in search.candidates:
        return None
    verdict = PacketVerdict()
    if sender_ip != search.ip:
        verdict.plan.warnings.append(
            f"answer to the probe for VM {mac} on {st.name(dpid)} port {port} carries "
            f"address {sender_ip}, not {search.ip}: ignored")
        return verdict
    del st.ports.searches.by_mac[mac]
    verdict = _admit_searched(st, dpid, port, mac, search, now, b"", trusted_move=True)
    if verdict.provisioned is not None:
        verdict.plan.warnings.append(f"VM {mac} found by the probe on {st.name(dpid)} "
                                     f"port {port}: provisioned there with {search.ip}")
    return verdict


def _admit_searched(st: "EngineState", dpid: int, port: int, mac: str, search: Search,
                    now: float, data: bytes, sender_ip: Optional[str] = None,
                    trusted_move: bool = False) -> PacketVerdict:
    """Admit a searched-for VM at (dpid, port) by its packet, keeping the addresses the
    search knows for it (its IPv4 and its bound global IPv6 ones)."""
    st.ports.expected_ips[mac] = search.ip
    try:
        verdict = admission.admit(st, dpid, port, mac, now, Detection.PACKET, data,
                                  sender_ip=sender_ip, trusted_move=trusted_move,
                                  moved_ipv6=search.ipv6)
    finally:
        st.ports.expected_ips.pop(mac, None)
    verdict.plan.urgent = verdict.provisioned is not None   # a lost VM's traffic waits
    return verdict
