"""Links reported by verified LLDP probes: recorded, refused, damped, aged (pure).

Mixed into :class:`~ryu_apps.core.engine.ProvisioningEngine`. The app
believes a probe only after :class:`~ryu_apps.core.probe_auth.ProbeVerifier`
checked its signature; :class:`~ryu_apps.core.link_guard.LinkGuard` then says
whether the link may change the fabric. A port that sent a probe nobody
signed has its LLDP dropped for a while (quarantine).
"""

from __future__ import annotations

from ryu_apps.core.fabric import SHARED_FABRIC, PortRef
from ryu_apps.core.flow_plan import Plan


class TopologyEvents:
    """Link events; expects the engine's state and helpers."""

    def link_seen(self, a: PortRef, b: PortRef, now: float = 0.0) -> Plan:
        """A verified probe sent out of port ``a`` arrived at port ``b``."""
        plan = Plan()
        if a.dpid not in self.fabric.switches or b.dpid not in self.fabric.switches:
            return plan
        if self.fabric.peer(a) == b:
            self.links.seen(a, b)
            return plan
        refusal = self.links.judge(self.fabric, a, b, now)
        if refusal is not None:
            if self.links.first_report(refusal):
                plan.warnings.append(f"link {self._end(a)} <-> {self._end(b)} refused: "
                                     f"{refusal.reason}")
            return plan
        for end in (a, b):
            if self.fabric.is_shared_uplink(end):
                self._remove_link_at(end, now, plan)
        self.fabric.add_link(a, b)
        self.links.seen(a, b)
        self._link_changed((a, b), now, plan)
        plan.notes.append(f"link {a.dpid:016x}:{a.port} <-> {b.dpid:016x}:{b.port}")
        self._fabric_changed(plan, {a.dpid, b.dpid})
        return plan

    def probe_round(self, now: float) -> Plan:
        """The app starts a probe round: links not proven for several rounds, and
        shared uplinks whose beacons stopped, are removed."""
        plan = Plan()
        for end in self.links.next_round(self.fabric, now):
            peer = self.fabric.peer(end)
            if peer is None:
                continue
            what = ("beacons from the shared fabric" if peer.dpid == SHARED_FABRIC
                    else f"probes for {self.links.max_missed_rounds} rounds")
            plan.warnings.append(f"link {self._end(end)} <-> {self._end(peer)} removed: "
                                 f"no {what}")
            self._remove_link_at(end, now, plan)
        return plan

    def probe_refused(self, dpid: int, port: int, now: float) -> Plan:
        """A port sent an unsigned or forged probe: drop its LLDP for a while."""
        plan = Plan()
        if dpid in self.fabric.switches and self.quarantine.refuse_probe(dpid, port, now):
            self._apply_quarantine(dpid, port, plan)
        return plan

    def _remove_link_at(self, end: PortRef, now: float, plan: Plan) -> None:
        peer = self.fabric.peer(end)
        if peer is None or not self.fabric.remove_link(end):
            return
        self.links.forget(end)
        self.links.forget(peer)
        self._link_changed((end, peer), now, plan)
        self._fabric_changed(plan, {end.dpid, peer.dpid})

    def _link_changed(self, ends, now: float, plan: Plan) -> None:
        for end in self.links.changed(ends, now):
            plan.warnings.append(
                f"port {self._end(end)} held down for {self.links.hold_down:g} s: its link "
                f"changed {self.links.max_changes} times within {self.links.window:g} s")

    def _end(self, end: PortRef) -> str:
        if end.dpid == SHARED_FABRIC:
            return "shared fabric"
        return f"{self._name(end.dpid)}:{end.port}"
