"""The fuzzer's load: emulated switches send hostile PACKET_INs to a real controller.

The switches are :mod:`benchmarks.ofload`'s (OpenFlow 1.3 over TCP, one per
switch of an emulated data center whose access switches also have free ports).
They answer the controller like fresh switches, deliver its signed LLDP probes
across the emulated links (so it discovers the real topology), and meanwhile
send, from VM ports of the servers, free ports of the access switches and now
and then a link port, a mix of hostile messages (:data:`CATEGORY_WEIGHTS`).

There is no data plane: a drop flow the controller installs stops nothing, so
every hostile frame reaches the controller (harsher than a real switch). The
fuzzer counts what the controller sends back: drop flows (cookie kind 4,
quarantine) installed and removed, and the signed probes, which it captures and
replays later from the wrong port, twice, too late, or back to their own switch.

Messages Ryu's own parser would die on (:mod:`.packet_ins`, ``fatal``) go only to
a stranger's connection that connects, is configured, and is cut by them, again
and again; they never reach a switch of the topology.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional, Tuple

from benchmarks.hostile import frames, packet_ins
from benchmarks.hostile.fuzz_switches import DropFlows, FuzzSwitch
from benchmarks.ofload import wire
from benchmarks.ofload.topology import SwitchPlan, Topology, datacenter
from ryu_apps.core.cookies import CookieKind
from ryu_apps.core.probe_auth import ProbeSigner

#: Share of each kind of hostile message (normalised).
CATEGORY_WEIGHTS: Dict[str, float] = {
    "random_bytes": 5, "truncated": 5, "group_or_zero_src": 7, "unknown_template": 9,
    "random_vm_mac": 14, "vlan_tagged": 6, "qinq": 6, "lldp_unsigned": 7,
    "lldp_garbage_signature": 7, "lldp_mangled": 6, "lldp_replay": 7, "beacon": 5,
    "openflow_malformed": 16,
}
FIRST_VM_PORT = 1000
SENTINEL_PORT = 999
SENTINEL_SERIAL = 0xF0000000
OTHER_PROCESS = "pod-b:6653"
#: Seconds between capturing a probe and replaying it (an attacker's relay; the
#: paced controller has handled the original long before), and the margin kept
#: from the controller's probe_max_age (at most a quarter of it).
REPLAY_DELAY = 2.0
_BINDING_HEAD = (0xD9 << 4) | int(CookieKind.BINDING)
_FLOW_ADD = 0


@dataclass
class FuzzConfig:
    """One fuzzing run."""

    host: str = "127.0.0.1"
    port: int = 6653
    count: int = 1_000_000
    seed: int = 11
    access: int = 2
    servers: int = 2
    free_ports: int = 4
    #: VM ports per server that hostile frames come from.
    vm_ports: int = 64
    #: Stranger connections cut by messages Ryu cannot frame (at most).
    rogue_limit: int = 50
    #: Messages Ryu's parser rejects with a traceback (at most; they fill the log).
    rejected_limit: int = 2000
    probe_max_age: float = 10.0
    #: Batches (of about 256 messages over all switches) a switch may have unanswered;
    #: 0: no pacing (the kernel's socket buffers then hold minutes of messages).
    window: int = 4
    #: Messages of each malformation sent first.
    sweep_each: int = 8
    secret: bytes = b""
    process_name: str = ""
    dpid_base: int = 0x0B000000
    weights: Dict[str, float] = field(default_factory=lambda: dict(CATEGORY_WEIGHTS))
    #: Where a dump of the last messages goes when a handler raised.
    suspects_file: Optional[Path] = None


@dataclass
class CapturedProbe:
    """A probe the controller sent out of (dpid, port), as the emulated switch saw it."""

    seen: float
    dpid: int
    port: int
    frame: bytes
    peer: Optional[Tuple[int, int]]   # where the emulated link delivered it


class Fuzzer:
    """Emulated switches, the hostile messages they send, and what came back."""

    def __init__(self, config: FuzzConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.topology: Topology = datacenter(config.access, config.servers, config.dpid_base,
                                             "fz", free_ports=config.free_ports)
        self.switches: Dict[int, FuzzSwitch] = {}
        self.servers = [s.dpid for s in self.topology.servers]
        self.accesses = [s.dpid for s in self.topology.switches if s.role == "access"]
        self.free_ports = {s.dpid: [p for p in s.ports if (s.dpid, p) not in self.topology.peers]
                           for s in self.topology.switches if s.role == "access"}
        self.vm_ports = list(range(FIRST_VM_PORT, FIRST_VM_PORT + config.vm_ports))
        self.link_ends = sorted(self.topology.peers)
        self.named_ports = [(s.dpid, p) for s in self.topology.switches for p in s.ports]
        names, weights = zip(*sorted(config.weights.items()))
        self._categories, self._weights = list(names), list(weights)
        self.sent: Counter = Counter()
        self.drop_flows = DropFlows()
        self.captured: List[CapturedProbe] = []
        self._captured_at: List[float] = []
        self.signers = {"other": ProbeSigner(config.secret, OTHER_PROCESS),
                        "own": ProbeSigner(config.secret, config.process_name)}
        self._xid = 0
        self.recent: Deque[Tuple[int, float, int, str, bytes]] = deque(maxlen=20000)
        self.rogue_queue: Deque[Tuple[str, bytes]] = deque()
        self.rogue = Counter()
        self.rejected_sent = 0
        self.sentinels: Dict[int, Tuple[int, int]] = {}     # mac -> (server, access)
        self.sentinel_seen: Dict[int, set] = {}
        self.sentinel_done = asyncio.Event()

    # -- connections ----------------------------------------------------------------------
    async def connect(self, timeout: float = 30.0) -> None:
        """Connect every switch of the topology; wait until the controller synced each."""
        loop = asyncio.get_running_loop()
        for plan in self.topology.switches:
            _transport, switch = await loop.create_connection(
                lambda plan=plan: FuzzSwitch(plan, self, self._deliver),
                self.config.host, self.config.port)
            self.switches[plan.dpid] = switch
        waits = [s.synced for s in self.switches.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError("the controller did not configure every emulated switch "
                               f"within {timeout}s") from None

    def close(self) -> None:
        for switch in self.switches.values():
            switch.close()

    def expected_links(self) -> set:
        """The emulated topology's links, as :func:`controller_watch.normalise_links` has them."""
        links = set()
        for (a, ap), (b, bp) in self.topology.peers.items():
            ends = sorted([(f"{a:016x}", ap), (f"{b:016x}", bp)])
            links.add(tuple(ends))
        return links

    # -- the observer the switches report to ------------------------------------------------
    def flow_mod(self, switch, data: bytes, offset: int, length: int) -> None:
        self.drop_flows.flow_mod(switch.dpid, data, offset, length)
        if self.sentinels and data[offset + 25] == _FLOW_ADD and \
                int.from_bytes(data[offset + 8:offset + 16], "big") >> 52 == _BINDING_HEAD:
            fields = wire.match_fields(bytes(data[offset + 48:offset + length]))
            for value in (fields.get(wire.OXM_ETH_SRC), fields.get(wire.OXM_ETH_DST)):
                if value and len(value) == 6 and int.from_bytes(value, "big") in self.sentinels:
                    self._sentinel_flow(int.from_bytes(value, "big"), switch.dpid)

    def meter_mod(self, switch, msg: bytes) -> None:
        pass

    def packet_out(self, switch, msg: bytes) -> None:
        pass

    def barrier(self, switch) -> None:
        pass

    def _deliver(self, dpid: int, port: int, frame: bytes) -> None:
        """A probe the controller sent out of (dpid, port): captured, then delivered
        across the emulated link, if there is one."""
        peer = self.topology.peers.get((dpid, port))
        now = time.monotonic()
        self.captured.append(CapturedProbe(now, dpid, port, frame, peer))
        self._captured_at.append(now)
        if len(self.captured) > 50000:
            del self.captured[:10000], self._captured_at[:10000]
        if peer is not None:
            self.switches[peer[0]].packet_in(peer[1], frame)

    # -- sentinels: fresh VMs after the fuzz, proof everything before was handled ----------
    def _sentinel_flow(self, mac: int, dpid: int) -> None:
        seen = self.sentinel_seen.setdefault(mac, set())
        seen.add(dpid)
        if all(set(where) <= self.sentinel_seen.get(m, set())
               for m, where in self.sentinels.items()):
            self.sentinel_done.set()

    async def send_sentinels(self, timeout: float) -> float:
        """One fresh VM on every server; seconds until each one's binding flows reached
        its server and access switch."""
        started = time.monotonic()
        for index, server in enumerate(self.servers):
            mac = frames.VM_TEMPLATES[0] << 32 | (SENTINEL_SERIAL + index)
            self.sentinels[mac] = (server, self.topology.access_of[server])
        for index, server in enumerate(self.servers):
            mac = frames.VM_TEMPLATES[0] << 32 | (SENTINEL_SERIAL + index)
            frame = frames.first_frame(self.rng, mac.to_bytes(6, "big"))
            await self.switches[server].send_paced(
                packet_ins.well_formed(self._next_xid(), SENTINEL_PORT, frame), self.config.window)
        await asyncio.wait_for(self.sentinel_done.wait(), timeout)
        return time.monotonic() - started

    def sentinel_macs(self) -> List[str]:
        return [":".join(f"{b:02x}" for b in mac.to_bytes(6, "big")) for mac in self.sentinels]

    # -- the fuzz -------------------------------------------------------------------------
    async def run(self, on_progress: Optional[Callable[[int], None]] = None,
                  batch: int = 256) -> float:
        """Send ``count`` hostile messages; seconds it took to hand them to TCP (the
        stranger's connections go on: :meth:`finish_strangers`)."""
        started = time.monotonic()
        self._rogue = asyncio.ensure_future(self._rogue_loop())
        pending: Dict[int, List[bytes]] = {dpid: [] for dpid in self.switches}
        generated = 0
        report_every = max(batch, self.config.count // 16 // batch * batch)
        sweep = self.sweep()
        while generated < self.config.count:
            made = sweep.pop() if sweep else self._message(time.monotonic())
            if made is None:
                continue
            dpid, label, message = made
            generated += 1
            self.sent[label] += 1
            if dpid < 0:
                self.rogue_queue.append((label, message))
            else:
                pending[dpid].append(message)
                self.recent.append((generated, time.monotonic(), dpid, label, message))
            if generated % batch == 0:
                await self._flush(pending)
                if on_progress is not None and generated % report_every == 0:
                    on_progress(generated)
        await self._flush(pending)
        return time.monotonic() - started

    async def finish_strangers(self) -> None:
        """Wait until the stranger sent each message Ryu cannot frame."""
        self.rogue_queue.append(("", b""))   # the end
        await asyncio.wait_for(self._rogue, timeout=60 + 30 * self.config.rogue_limit)

    async def _flush(self, pending: Dict[int, List[bytes]]) -> None:
        for dpid, messages in pending.items():
            if messages:
                await self.switches[dpid].send_paced(b"".join(messages), self.config.window)
                messages.clear()
        await asyncio.sleep(0)

    def _next_xid(self) -> int:
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def _message(self, now: float) -> Optional[Tuple[int, str, bytes]]:
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
        return dpid, label, packet_ins.well_formed(self._next_xid(), port, frame)

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
            variant_name, message = packet_ins.malformed(self.rng, self._next_xid(), port,
                                                         frame, variant)
            verdict = packet_ins.ryu_verdict(message)
            label = f"openflow_{verdict}_{variant_name}"
            if verdict == packet_ins.PARSED:
                return dpid, label, message
            if verdict == packet_ins.REJECTED and self.rejected_sent < self.config.rejected_limit:
                self.rejected_sent += 1
                return dpid, label, message
            if verdict == packet_ins.FATAL and \
                    len(self.rogue_queue) + self.rogue["sent"] < self.config.rogue_limit:
                return -1, label, message
        return None

    def sweep(self) -> List[Tuple[int, str, bytes]]:
        """A few of every malformation first, so that even a short run tries each."""
        made = [self._openflow_malformed(0.0, variant) for variant in sorted(packet_ins.VARIANTS)
                for _ in range(self.config.sweep_each)]
        return [m for m in made if m is not None]

    # -- a stranger that connects and sends what Ryu cannot frame ----------------------------
    async def _rogue_loop(self) -> None:
        loop = asyncio.get_running_loop()
        plan = SwitchPlan(self.config.dpid_base + 0xF00, "server", "fzrogue", (1,))
        while True:
            while not self.rogue_queue:
                await asyncio.sleep(0.05)
            label, message = self.rogue_queue.popleft()
            if not message:
                return
            try:
                _transport, switch = await loop.create_connection(
                    lambda: FuzzSwitch(plan, self, lambda *_: None),
                    self.config.host, self.config.port)
            except OSError:
                self.rogue["connect_failed"] += 1
                continue
            try:
                await asyncio.wait_for(switch.synced, 15)
            except asyncio.TimeoutError:
                self.rogue["not_configured_in_15s"] += 1
            switch.send(message)
            self.rogue["sent"] += 1
            try:
                await asyncio.wait_for(asyncio.shield(switch.closed), 10)
                self.rogue["cut_by_controller"] += 1
            except asyncio.TimeoutError:
                self.rogue["still_open_after_10s"] += 1
                switch.close()

    # -- a reproducer when something raised ----------------------------------------------------
    def dump_recent(self, path: Path, why: str) -> Path:
        """Write the last messages sent (oldest first) for a reproducer."""
        path.write_text(json.dumps({
            "why": why, "seed": self.config.seed,
            "messages": [{"seq": seq, "monotonic": t, "dpid": f"{dpid:016x}", "label": label,
                          "hex": message.hex()} for seq, t, dpid, label, message in self.recent],
        }, indent=1))
        return path


def summarise_sent(sent: Counter) -> Dict[str, int]:
    """Messages sent by kind: malformed OpenFlow grouped by Ryu's verdict, the rest
    by label."""
    groups: Counter = Counter()
    for label, n in sent.items():
        groups["_".join(label.split("_")[:2]) if label.startswith("openflow_") else label] += n
    return dict(sorted(groups.items()))
