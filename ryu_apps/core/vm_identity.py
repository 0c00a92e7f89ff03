"""Which MAC is which port's VM, and when a MAC may move (pure).

The policies and the move bookkeeping are in :mod:`ryu_apps.core.identity`;
this module applies them to the engine's bindings and the servers' OVSDB
attachments: it refuses what the hypervisor contradicts, turns a MAC seen on
a new port into a conflict, probes the old location for liveness, and accepts
the move on evidence (a notice, the old port's loss, silence to the probe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple

from ryu_apps.core import admission, binding_ops
from ryu_apps.core.binding import Binding, Detection
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.identity import IdentityPolicy, MoveCandidate, arp_probe
from ryu_apps.core.routes import end_probe, set_probe

if TYPE_CHECKING:
    from ryu_apps.core.verdict import PacketVerdict
    from ryu_apps.core.engine_state import EngineState

PortKey = Tuple[int, int]


# -- the hypervisor's word (OVSDB) ---------------------------------------------------
def iface_clash(st: "EngineState", dpid: int, port: int, mac: str) -> Optional[str]:
    """A warning when OVSDB's rows for this MAC carry different iface-ids (a
    hypervisor keeps a VM's iface-id across a migration)."""
    ports = st.ports
    mine = ports.iface_ids.get((dpid, port))
    if not mine:
        return None
    for where in sorted(ports.attached_at.get(mac, ())):
        other = ports.iface_ids.get(where)
        if where != (dpid, port) and other and other != mine:
            return (f"OVSDB rows with MAC {mac} carry different iface-ids: {other!r} "
                    f"on {st.name(where[0])} port {where[1]}, {mine!r} on port "
                    f"{port} of {st.name(dpid)}; taken for a migration of one VM "
                    "(two VMs sharing a MAC would be a clash: check the hypervisors)")
    return None


def anchors(st: "EngineState", mac: str) -> List[PortKey]:
    """Where OVSDB places VM ``mac`` on servers this controller manages."""
    attached = st.ports.attached_at.get(mac)
    if not attached:   # most MACs (asked for every new VM's first frame)
        return []
    return sorted(place for place in attached
                  if st.topo.hosts_vms(place[0]))


def identity_refusal(st: "EngineState", dpid: int, port: int, mac: str,
                     detected_by: Detection, now: float) -> Optional[str]:
    """Why the identity policy refuses MAC ``mac`` on this port, or None. A MAC the
    hypervisor places elsewhere waits here as a conflict: if that place goes
    away, the move is accepted."""
    if detected_by is not Detection.PACKET:
        return None
    policy = st.policy_of(dpid)
    if policy is IdentityPolicy.PACKETS:
        return None
    attached = st.ports.attachments.get((dpid, port))
    if attached is not None and attached != mac:
        return (f"the hypervisor (OVSDB attached-mac) names VM {attached} on port {port} "
                f"of {st.name(dpid)}: a frame from MAC {mac} there is a guest "
                "changing its MAC")
    if attached is None:
        places = anchors(st, mac)
        if places:
            st.moves.conflict(mac, dpid, port, now, probe_possible=False)
            where = ", ".join(f"{st.name(d)} port {p}" for d, p in places)
            return (f"the hypervisor (OVSDB attached-mac) places VM {mac} at {where}, "
                    f"not on port {port} of {st.name(dpid)}")
        if policy is IdentityPolicy.OVSDB:
            return (f"identity policy 'ovsdb': no OVSDB row names a VM on port {port} "
                    f"of {st.name(dpid)}")
    return None


# -- a MAC seen somewhere new -----------------------------------------------------------
def move_believed(st: "EngineState", existing: Binding, dpid: int, port: int, now: float,
                  verdict: "PacketVerdict", frame: bytes = b"") -> bool:
    """Whether bound VM ``existing`` may move to (dpid, port) now; if not, the frame
    is refused there and held for a while (and the old location probed)."""
    mac, moves = existing.mac, st.moves
    if st.ports.notified.get(mac) == dpid:
        moving(st, mac, now, verdict.plan)
        return True
    if moves.flapping(mac, now):
        # Refused on the VM's word (no liveness hold, no probe); its old port going
        # away is the network's word, which a spoofer cannot give: the move waits for it
        # (else the search that follows the old port's loss finds it here anyway).
        st.ports.down.discard((dpid, port))
        moves.conflict(mac, dpid, port, now, probe_possible=False)
        admission.refuse(st, verdict, mac, existing.template_id, dpid, port, now,
                         f"VM {mac} is flapping between ports: its moves are refused for "
                         f"{moves.flap_hold:g} s unless its port {existing.port} on "
                         f"{st.name(existing.dpid)} goes away", while_bound=True,
                         held=frame)
        return False
    # The frame came in at this port, so its link is up whatever the last port status
    # said (a busy switch reports a new port's link-up after the guest's first frames):
    # the move it waits for is accepted when the old port goes, not dropped as "down".
    st.ports.down.discard((dpid, port))
    target = existing.ip or existing.seen_ip
    candidate, new = moves.conflict(mac, dpid, port, now, probe_possible=target is not None)
    if candidate.deadline is not None:
        evidence = (f"or it stays silent at its port to a liveness probe of {target} "
                    f"for {moves.hold:g} s")
    else:
        evidence = "(no address known to probe it at its port)"
    admission.refuse(st, verdict, mac, existing.template_id, dpid, port, now,
                     f"VM {mac} is bound to {st.name(existing.dpid)} port {existing.port}:"
                     " a frame with its MAC here is a conflict, not a move; accepted when "
                     f"that port goes away, a migration notice names {st.name(dpid)}, "
                     + evidence, while_bound=True, held=frame)
    if new and target is not None:
        set_probe(st, existing, verdict.plan)
        verdict.plan.packet_outs.append(PacketOut(existing.dpid, 0,
                                                  arp_probe(target, existing.mac),
                                                  out_port=existing.port))
    return False


def moving(st: "EngineState", mac: str, now: float, plan: Plan) -> None:
    """A move of ``mac`` is accepted: count it, raise the flapping alarm if due."""
    moves = st.moves
    moves.take(mac)
    st.ports.notified.pop(mac, None)
    plan.urgent = True
    if moves.moved(mac, now):
        plan.warnings.append(
            f"VM {mac} is flapping: {moves.flap_limit} moves within "
            f"{moves.flap_window:g} s; its further moves are refused for "
            f"{moves.flap_hold:g} s (a MAC shared by two guests, or a spoofer?)")


def alive(st: "EngineState", binding: Binding, plan: Plan) -> None:
    """The VM answered the liveness probe at its bound port: the conflict was a spoof."""
    end_probe(st, binding, plan)
    candidate = st.moves.refuted(binding.mac)
    if candidate is not None:
        plan.warnings.append(
            f"VM {binding.mac} answered the liveness probe on {st.name(binding.dpid)} "
            f"port {binding.port}: the frame with its MAC on "
            f"{st.name(candidate.dpid)} port {candidate.port} was spoofed; it stays "
            "refused there")


def accept_due_moves(st: "EngineState", now: float, plan: Plan) -> None:
    """Moves whose old location stayed silent to the liveness probe: accepted."""
    for candidate in st.moves.due(now):
        end_probe(st, st.table.bindings.get(candidate.mac), plan)
        accept(st, candidate, now, plan, f"silent for {st.moves.hold:g} s at "
                                         "its old port to the liveness probe")


def accept(st: "EngineState", candidate: MoveCandidate, now: float, plan: Plan,
           why: str, known_ip: Optional[str] = None, known_ipv6: Tuple[str, ...] = ()) -> None:
    """Provision the VM where the candidate saw it (its old binding, if any, ends;
    ``known_ip``, ``known_ipv6``: the address and bound global IPv6 ones it had there,
    when that binding already ended)."""
    st.moves.take(candidate.mac)
    key = (candidate.dpid, candidate.port)
    if st.table.at_port(*key) is not None or key in st.ports.down or \
            st.topo.fabric.role(candidate.dpid) is None:
        return   # the port is gone or taken meanwhile: nothing to accept
    released = st.quarantine.release_mac(candidate.mac, *key)
    if released is not None:
        binding_ops.quarantine_changed(st, *key)
    moving(st, candidate.mac, now, plan)
    held = released.held if released is not None else b""   # re-sent once provisioned
    verdict = admission.admit(st, candidate.dpid, candidate.port, candidate.mac, now,
                              Detection.PACKET, held, sender_ip=known_ip, trusted_move=True,
                              moved_ipv6=known_ipv6)
    plan.extend(verdict.plan)
    if verdict.provisioned is not None:
        plan.warnings.append(f"VM {candidate.mac} moved to {st.name(candidate.dpid)} "
                             f"port {candidate.port}: {why}")


def unbound(st: "EngineState", mac: str) -> None:
    """VM ``mac`` is bound nowhere any more: the frames refused only because it was
    bound elsewhere (conflicts, a flapping MAC's moves) are no longer dropped, so
    its next frame, or its answer to a search's probe, is judged afresh (a hypervisor
    deletes the old port after the VM announced itself at the new one)."""
    if mac in st.table.bindings:
        return
    for dpid, port in st.quarantine.release_unbound(mac):
        binding_ops.quarantine_changed(st, dpid, port)


def waiting_move(st: "EngineState", dpid: int, port: int) -> Optional[MoveCandidate]:
    """The conflict waiting elsewhere for the VM bound at (dpid, port), if any."""
    gone = st.table.at_port(dpid, port)
    return None if gone is None else st.moves.candidates.get(gone.mac)


def resume_waiting(st: "EngineState", waiting: Optional[MoveCandidate], now: float,
                   plan: Plan, why: str, gone: Optional[Binding] = None) -> None:
    """The VM's old place went away: the conflict that waited is its move, with the
    address its old binding ``gone`` knew (that binding ended before the move; the
    next move's liveness probe or search needs it)."""
    if waiting is not None and waiting.mac not in st.table.bindings:
        same = gone is not None and gone.mac == waiting.mac
        known = gone.ip or gone.seen_ip if gone is not None and same else None
        accept(st, waiting, now, plan, why, known, gone.ipv6 if gone is not None and same
               else ())


def notice_names(st: "EngineState", mac: str, server: int, now: float, plan: Plan) -> None:
    """A migration notice says VM ``mac`` moves to ``server``: believe its frames there
    (a conflict already waiting there is the move)."""
    st.ports.notified[mac] = server
    candidate = st.moves.candidates.get(mac)
    if candidate is not None and candidate.dpid == server:
        accept(st, candidate, now, plan, "a migration notice named this server")
