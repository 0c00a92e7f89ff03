"""What the fuzzer sends, and from where: one hostile message at a time.

:class:`HostileMessages` draws a category by :data:`CATEGORY_WEIGHTS`, an origin
(a server's VM port, an access switch's free port, now and then a link port) and
the message itself: bad frames, forged or replayed LLDP (the controller's own
probes, captured by :meth:`HostileMessages.capture`), malformed OpenFlow routed by
how Ryu's parser takes it. Sending, pacing and counting stay in
:mod:`.fuzz_driver`.
"""

from __future__ import annotations

import bisect
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from benchmarks.hostile import frames, packet_ins
from benchmarks.ofload.topology import Topology
from ryu_apps.core.probe_auth import ProbeSigner

if TYPE_CHECKING:
    from benchmarks.hostile.fuzz_driver import FuzzConfig

#: Share of each kind of hostile message (normalised).
CATEGORY_WEIGHTS: Dict[str, float] = {
    "random_bytes": 5, "truncated": 5, "group_or_zero_src": 7, "unknown_template": 9,
    "random_vm_mac": 14, "vlan_tagged": 6, "qinq": 6, "lldp_unsigned": 7,
    "lldp_garbage_signature": 7, "lldp_mangled": 6, "lldp_replay": 7, "beacon": 5,
    "openflow_malformed": 16,
}
FIRST_VM_PORT = 1000
OTHER_PROCESS = "pod-b:6653"
#: Seconds between capturing a probe and replaying it (an attacker's relay; the
#: paced controller has handled the original long before), and the margin kept
#: from the controller's probe_max_age (at most a quarter of it).
REPLAY_DELAY = 2.0
#: Captured probes kept (the oldest are dropped in slices).
CAPTURE_LIMIT = 50000


@dataclass
class CapturedProbe:
    """A probe the controller sent out of (dpid, port), as the emulated switch saw it."""

    seen: float
    dpid: int
    port: int
    frame: bytes
    peer: Optional[Tuple[int, int]]   # where the emulated link delivered it


class HostileMessages:
    """The mix of hostile messages, their origins, and the probes captured to replay."""

    def __init__(self, config: "FuzzConfig", topology: Topology, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.topology = topology
        self.servers = [s.dpid for s in topology.servers]
        self.accesses = [s.dpid for s in topology.switches if s.role == "access"]
        self.free_ports = {s.dpid: [p for p in s.ports if (s.dpid, p) not in topology.peers]
                           for s in topology.switches if s.role == "access"}
        self.vm_ports = list(range(FIRST_VM_PORT, FIRST_VM_PORT + config.vm_ports))
        self.link_ends = sorted(topology.peers)
        self.named_ports = [(s.dpid, p) for s in topology.switches for p in s.ports]
        names, weights = zip(*sorted(config.weights.items()))
        self._categories, self._weights = list(names), list(weights)
        self.captured: List[CapturedProbe] = []
        self._captured_at: List[float] = []
        self.signers = {"other": ProbeSigner(config.secret, OTHER_PROCESS),
                        "own": ProbeSigner(config.secret, config.process_name)}
        self._xid = 0
        self.rejected_sent = 0
        #: Messages Ryu cannot frame handed to a stranger's connection so far.
        self.strangers_planned = 0

    def capture(self, dpid: int, port: int, frame: bytes,
                peer: Optional[Tuple[int, int]]) -> None:
        """Keep a probe the controller sent out of (dpid, port) for a later replay."""
        now = time.monotonic()
        self.captured.append(CapturedProbe(now, dpid, port, frame, peer))
        self._captured_at.append(now)
        if len(self.captured) > CAPTURE_LIMIT:
            del self.captured[:10000], self._captured_at[:10000]

    def next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def message(self, now: float) -> Optional[Tuple[int, str, bytes]]:
        """(dpid, label, message) of one hostile message; dpid -1: a stranger's."""
        category = self.rng.choices(self._categories, self._weights)[0]
        return getattr(self, "_" + category)(now)

    # origins: where a hostile frame enters
    def _vm_port(self) -> Tuple[int, int]:
        return self.rng.choice(self.servers), self.rng.choice(self.vm_ports)

    def _free_port(self) -> Tuple[int, int]:
        access = self.rng.choice(self.accesses)
        return access, self.rng.choice(self.free_ports[access])

    def _origin(self, link_share: float = 0.05) -> Tuple[int, int]:
        roll = self.rng.random()
        if roll < link_share:
            return self.rng.choice(self.link_ends)
        return self._free_port() if roll < 0.25 else self._vm_port()

    def _lldp_origin(self) -> Tuple[int, int]:
        return self._free_port() if self.rng.random() < 0.3 else self._vm_port()

    def _frame(self, label: str, origin: Tuple[int, int], frame: bytes):
        dpid, port = origin
        return dpid, label, packet_ins.well_formed(self.next_xid(), port, frame)

    # frames
    def _random_bytes(self, now):
        return self._frame("random_bytes", self._origin(), frames.random_bytes(self.rng))

    def _truncated(self, now):
        return self._frame("truncated", self._origin(), frames.truncated(self.rng))

    def _group_or_zero_src(self, now):
        src = frames.group_or_zero_mac(self.rng)
        return self._frame("group_or_zero_src", self._origin(), frames.first_frame(self.rng, src))

    def _unknown_template(self, now):
        src = frames.unknown_template_mac(self.rng)
        return self._frame("unknown_template", self._origin(), frames.first_frame(self.rng, src))

    def _random_vm_mac(self, now):
        src = frames.vm_mac(self.rng)
        return self._frame("random_vm_mac", self._origin(), frames.first_frame(self.rng, src))

    def _vlan_tagged(self, now):
        src = frames.vm_mac(self.rng)
        return self._frame("vlan_tagged", self._origin(), frames.tagged(self.rng, src))

    def _qinq(self, now):
        src = frames.vm_mac(self.rng)
        return self._frame("qinq", self._origin(), frames.qinq(self.rng, src))

    # forged LLDP
    def _lldp_unsigned(self, now):
        dpid, port = self.rng.choice(self.named_ports)
        frame = frames.lldp_unsigned(self.rng, frames.vm_mac(self.rng), dpid, port)
        return self._frame("lldp_unsigned", self._lldp_origin(), frame)

    def _lldp_garbage_signature(self, now):
        dpid, port = self.rng.choice(self.named_ports)
        frame = frames.lldp_garbage_signature(self.rng, frames.vm_mac(self.rng), dpid, port,
                                              time.time())
        return self._frame("lldp_garbage_signature", self._lldp_origin(), frame)

    def _lldp_mangled(self, now):
        dpid, port = self.rng.choice(self.named_ports)
        frame = frames.lldp_mangled(self.rng, frames.vm_mac(self.rng), dpid, port)
        return self._frame("lldp_mangled", self._lldp_origin(), frame)

    def _beacon(self, now):
        dpid, port = self.rng.choice(self.named_ports)
        kind = self.rng.choice(("unsigned", "signed_other_process", "signed_own_process",
                                "probe_readdressed"))
        src = frames.vm_mac(self.rng)
        if kind == "unsigned":
            frame = frames.lldp_unsigned(self.rng, src, dpid, port, beacon=True)
        elif kind == "probe_readdressed" and self.captured:
            frame = frames.as_beacon(self.rng.choice(self.captured[-2000:]).frame)
        else:
            signer = self.signers["own" if kind == "signed_own_process" else "other"]
            kind = kind if kind != "probe_readdressed" else "signed_other_process"
            frame = signer.probe(dpid, port, src, time.time(), self.rng.randbytes(8),
                                 beacon=True)
        return self._frame(f"beacon_{kind}", self._lldp_origin(), frame)

    def _lldp_replay(self, now):
        """A captured probe of the controller's own, sent back where it proves nothing."""
        max_age = self.config.probe_max_age
        kinds = ["wrong_port", "twice", "too_late", "reflected"]
        self.rng.shuffle(kinds)
        for kind in kinds:
            margin = min(REPLAY_DELAY, max_age / 4)
            if kind == "too_late":
                probe = self._captured_between(now - 1e9, now - max_age - margin)
            else:
                probe = self._captured_between(now - max_age + margin, now - margin,
                                               delivered=kind != "reflected")
            if probe is None:
                continue
            if kind == "twice":
                origin = probe.peer
            elif kind == "too_late":
                origin = probe.peer or self._lldp_origin()
            elif kind == "reflected":
                origin = (probe.dpid, self.rng.choice(self.free_ports.get(probe.dpid)
                                                      or [probe.port]))
            else:
                origin = self._origin(link_share=0.3)
                while origin == probe.peer:
                    origin = self._origin(link_share=0.3)
            return self._frame(f"lldp_replay_{kind}", origin, probe.frame)
        return self._lldp_unsigned(now)

    def _captured_between(self, oldest: float, newest: float,
                          delivered: Optional[bool] = None) -> Optional[CapturedProbe]:
        low = bisect.bisect_left(self._captured_at, oldest)
        high = bisect.bisect_right(self._captured_at, newest)
        if high <= low:
            return None
        for _ in range(16):
            probe = self.captured[self.rng.randrange(low, high)]
            if delivered is None or (probe.peer is not None) == delivered:
                return probe
        return None

    # malformed OpenFlow
    def _openflow_malformed(self, now, variant: Optional[str] = None):
        """A malformed PACKET_IN (of ``variant``, else any) routed by how Ryu takes it."""
        for _ in range(50):
            dpid, port = self._origin()
            frame = frames.first_frame(self.rng, frames.vm_mac(self.rng))
            variant_name, message = packet_ins.malformed(self.rng, self.next_xid(), port,
                                                         frame, variant)
            verdict = packet_ins.ryu_verdict(message)
            label = f"openflow_{verdict}_{variant_name}"
            if verdict == packet_ins.PARSED:
                return dpid, label, message
            if verdict == packet_ins.REJECTED and self.rejected_sent < self.config.rejected_limit:
                self.rejected_sent += 1
                return dpid, label, message
            if verdict == packet_ins.FATAL and self.strangers_planned < self.config.rogue_limit:
                self.strangers_planned += 1
                return -1, label, message
        return None

    def sweep(self) -> List[Tuple[int, str, bytes]]:
        """A few of every malformation first, so that even a short run tries each."""
        made = [self._openflow_malformed(0.0, variant) for variant in sorted(packet_ins.VARIANTS)
                for _ in range(self.config.sweep_each)]
        return [m for m in made if m is not None]
