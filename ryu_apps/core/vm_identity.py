"""Which MAC is which port's VM, and when a MAC may move (pure).

Mixed into :class:`~ryu_apps.core.engine.ProvisioningEngine`. The policies
and the move bookkeeping are in :mod:`ryu_apps.core.identity`; this part
applies them to the engine's bindings and the servers' OVSDB attachments:
it refuses what the hypervisor contradicts, turns a MAC seen on a new port
into a conflict, probes the old location for liveness, and accepts the move
on evidence (a notice, the old port's loss, silence to the probe).
"""

from __future__ import annotations

from typing import Dict, Optional, Set, Tuple

from ryu_apps.core.binding import Binding, Detection
from ryu_apps.core.cookies import liveness_owner
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER, Output, flow, make_match
from ryu_apps.core.identity import (
    PROBE_MAC,
    IdentityPolicy,
    MoveCandidate,
    arp_probe,
)
from ryu_apps.core.pipeline import LIVENESS_METER, Priority, Table
from ryu_apps.core.switch_flows import PACKET_IN_BYTES

PortKey = Tuple[int, int]


class VmIdentity:
    """Identity policy and guarded moves; expects the engine's state and helpers."""

    attachments: Dict[PortKey, str]
    _attached_at: Dict[str, Set[PortKey]]
    _iface_ids: Dict[PortKey, str]
    _notified: Dict[str, int]

    # -- the hypervisor's word (OVSDB) -----------------------------------------
    def policy_of(self, server: int) -> IdentityPolicy:
        """The identity policy of the mobility domain the server is in."""
        domain = self.domain_of_server(server)
        if domain is not None and domain.identity is not None:
            return domain.identity
        return self.identity_default

    def _attach(self, dpid: int, port: int, mac: str, iface_id: Optional[str]) -> None:
        self._detach(dpid, port)
        self.attachments[(dpid, port)] = mac
        self._attached_at.setdefault(mac, set()).add((dpid, port))
        if iface_id:
            self._iface_ids[(dpid, port)] = iface_id

    def _detach(self, dpid: int, port: int) -> None:
        mac = self.attachments.pop((dpid, port), None)
        self._iface_ids.pop((dpid, port), None)
        places = self._attached_at.get(mac) if mac is not None else None
        if places is not None:
            places.discard((dpid, port))
            if not places:
                del self._attached_at[mac]

    def _iface_clash(self, dpid: int, port: int, mac: str) -> Optional[str]:
        """A warning when OVSDB's rows for this MAC carry different iface-ids (a
        hypervisor keeps a VM's iface-id across a migration)."""
        mine = self._iface_ids.get((dpid, port))
        if not mine:
            return None
        for where in sorted(self._attached_at.get(mac, ())):
            other = self._iface_ids.get(where)
            if where != (dpid, port) and other and other != mine:
                return (f"OVSDB rows with MAC {mac} carry different iface-ids: {other!r} "
                        f"on {self._name(where[0])} port {where[1]}, {mine!r} on port "
                        f"{port} of {self._name(dpid)}; taken for a migration of one VM "
                        "(two VMs sharing a MAC would be a clash: check the hypervisors)")
        return None

    def _anchors(self, mac: str) -> list:
        """Where OVSDB places VM ``mac`` on servers this controller manages."""
        return sorted(place for place in self._attached_at.get(mac, ())
                      if self._hosts_vms(place[0]))

    def _identity_refusal(self, dpid: int, port: int, mac: str, detected_by: Detection,
                          now: float = 0.0) -> Optional[str]:
        """Why the identity policy refuses MAC ``mac`` on this port, or None. A MAC the
        hypervisor places elsewhere waits here as a conflict: if that place goes
        away, the move is accepted."""
        if detected_by is not Detection.PACKET:
            return None
        policy = self.policy_of(dpid)
        if policy is IdentityPolicy.PACKETS:
            return None
        attached = self.attachments.get((dpid, port))
        if attached is not None and attached != mac:
            return (f"the hypervisor (OVSDB attached-mac) names VM {attached} on port {port} "
                    f"of {self._name(dpid)}: a frame from MAC {mac} there is a guest "
                    "changing its MAC")
        if attached is None:
            places = self._anchors(mac)
            if places:
                self.moves.conflict(mac, dpid, port, now, probe_possible=False)
                where = ", ".join(f"{self._name(d)} port {p}" for d, p in places)
                return (f"the hypervisor (OVSDB attached-mac) places VM {mac} at {where}, "
                        f"not on port {port} of {self._name(dpid)}")
            if policy is IdentityPolicy.OVSDB:
                return (f"identity policy 'ovsdb': no OVSDB row names a VM on port {port} "
                        f"of {self._name(dpid)}")
        return None

    # -- a MAC seen somewhere new -------------------------------------------------
    def _move_believed(self, existing: Binding, dpid: int, port: int, now: float,
                       verdict) -> bool:
        """Whether bound VM ``existing`` may move to (dpid, port) now; if not, the frame
        is refused there (and the old location probed)."""
        mac = existing.mac
        if self._notified.get(mac) == dpid:
            self._moving(mac, now, verdict.plan)
            return True
        if self.moves.flapping(mac, now):
            self._refuse(verdict, mac, existing.template_id, dpid, port, now,
                         f"VM {mac} is flapping between ports: its moves are refused for "
                         f"{self.moves.flap_hold:g} s")
            return False
        target = existing.ip or existing.seen_ip
        candidate, new = self.moves.conflict(mac, dpid, port, now,
                                             probe_possible=target is not None)
        if candidate.deadline is not None:
            evidence = (f"or it stays silent at its port to a liveness probe of {target} "
                        f"for {self.moves.hold:g} s")
        else:
            evidence = "(no address known to probe it at its port)"
        self._refuse(verdict, mac, existing.template_id, dpid, port, now,
                     f"VM {mac} is bound to {self._name(existing.dpid)} port {existing.port}:"
                     " a frame with its MAC here is a conflict, not a move; accepted when "
                     f"that port goes away, a migration notice names {self._name(dpid)}, "
                     + evidence)
        if new and target is not None:
            self._probe_liveness(existing, target, verdict.plan)
        return False

    def _moving(self, mac: str, now: float, plan: Plan) -> None:
        """A move of ``mac`` is accepted: count it, raise the flapping alarm if due."""
        self.moves.take(mac)
        self._notified.pop(mac, None)
        if self.moves.moved(mac, now):
            plan.warnings.append(
                f"VM {mac} is flapping: {self.moves.flap_limit} moves within "
                f"{self.moves.flap_window:g} s; its further moves are refused for "
                f"{self.moves.flap_hold:g} s (a MAC shared by two guests, or a spoofer?)")

    def _probe_liveness(self, binding: Binding, ip: str, plan: Plan) -> None:
        """Ask the VM at its bound port whether it is there: an ARP request for its
        address from PROBE_MAC; its answer comes to the controller."""
        owner = liveness_owner(binding.binding_id, binding.template_id)
        answer = flow(binding.dpid, Table.CLASSIFY, Priority.LIVENESS_REPLY,
                      make_match(in_port=binding.port, eth_src=binding.mac, eth_dst=PROBE_MAC),
                      owner.cookie, meter=LIVENESS_METER,
                      actions=(Output(OFPP_CONTROLLER, PACKET_IN_BYTES),))
        self.desired.replace(owner, {answer}, plan)
        plan.packet_outs.append(PacketOut(binding.dpid, 0, arp_probe(ip, binding.mac),
                                          out_port=binding.port))

    def _end_liveness(self, binding: Optional[Binding], plan: Plan) -> None:
        if binding is not None:
            self.desired.replace(liveness_owner(binding.binding_id, binding.template_id),
                                 set(), plan)

    def _alive(self, binding: Binding) -> Plan:
        """The VM answered the liveness probe at its bound port: the conflict was a spoof."""
        plan = Plan()
        self._end_liveness(binding, plan)
        candidate = self.moves.refuted(binding.mac)
        if candidate is not None:
            plan.warnings.append(
                f"VM {binding.mac} answered the liveness probe on {self._name(binding.dpid)} "
                f"port {binding.port}: the frame with its MAC on "
                f"{self._name(candidate.dpid)} port {candidate.port} was spoofed; it stays "
                "refused there")
        return plan

    def _accept_due_moves(self, now: float, plan: Plan) -> None:
        """Moves whose old location stayed silent to the liveness probe: accepted."""
        for candidate in self.moves.due(now):
            existing = self.bindings.get(candidate.mac)
            self._end_liveness(existing, plan)
            self._accept(candidate, now, plan, f"silent for {self.moves.hold:g} s at "
                                               "its old port to the liveness probe")

    def _accept(self, candidate: MoveCandidate, now: float, plan: Plan, why: str) -> None:
        """Provision the VM where the candidate saw it (its old binding, if any, ends)."""
        self.moves.take(candidate.mac)
        key = (candidate.dpid, candidate.port)
        if key in self._by_port or key in self._ports_down or \
                self.fabric.role(candidate.dpid) is None:
            return   # the port is gone or taken meanwhile: nothing to accept
        if self.quarantine.release_mac(candidate.mac, *key):
            self._apply_quarantine(candidate.dpid, candidate.port, plan)
        self._moving(candidate.mac, now, plan)
        verdict = self._admit(candidate.dpid, candidate.port, candidate.mac, now,
                              Detection.PACKET, b"", trusted_move=True)
        plan.extend(verdict.plan)
        if verdict.provisioned is not None:
            plan.warnings.append(f"VM {candidate.mac} moved to {self._name(candidate.dpid)} "
                                 f"port {candidate.port}: {why}")

    def _waiting_move(self, dpid: int, port: int) -> Optional[MoveCandidate]:
        """The conflict waiting elsewhere for the VM bound at (dpid, port), if any."""
        gone = self._by_port.get((dpid, port))
        return None if gone is None else self.moves.candidates.get(gone.mac)

    def _resume_waiting(self, waiting: Optional[MoveCandidate], now: float, plan: Plan,
                        why: str) -> None:
        """The VM's old place went away: the conflict that waited is its move."""
        if waiting is not None and waiting.mac not in self.bindings:
            self._accept(waiting, now, plan, why)

    def _notice_names(self, mac: str, server: int, now: float, plan: Plan) -> None:
        """A migration notice says VM ``mac`` moves to ``server``: believe its frames there
        (a conflict already waiting there is the move)."""
        self._notified[mac] = server
        candidate = self.moves.candidates.get(mac)
        if candidate is not None and candidate.dpid == server:
            self._accept(candidate, now, plan, "a migration notice named this server")
