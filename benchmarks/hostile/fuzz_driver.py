"""The fuzzer's load: emulated switches send hostile PACKET_INs to a real controller.

The switches are :mod:`benchmarks.ofload`'s (OpenFlow 1.3 over TCP, one per
switch of an emulated data center whose access switches also have free ports).
They answer the controller like fresh switches, deliver its signed LLDP probes
across the emulated links (so it discovers the real topology), and meanwhile
send, from VM ports of the servers, free ports of the access switches and now
and then a link port, a mix of hostile messages (:mod:`.fuzz_messages`).

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
import json
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional, Tuple

from benchmarks.hostile import frames, packet_ins
from benchmarks.hostile.fuzz_messages import CATEGORY_WEIGHTS, HostileMessages
from benchmarks.hostile.fuzz_switches import DropFlows, FuzzSwitch
from benchmarks.ofload import wire
from benchmarks.ofload.topology import SwitchPlan, Topology, datacenter
from ryu_apps.core.cookies import CookieKind

SENTINEL_PORT = 999
SENTINEL_SERIAL = 0xF0000000
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


class Fuzzer:
    """Emulated switches, the hostile messages they send, and what came back."""

    def __init__(self, config: FuzzConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.topology: Topology = datacenter(config.access, config.servers, config.dpid_base,
                                             "fz", free_ports=config.free_ports)
        self.switches: Dict[int, FuzzSwitch] = {}
        self.servers = [s.dpid for s in self.topology.servers]
        self.messages = HostileMessages(config, self.topology, self.rng)
        self.sent: Counter = Counter()
        self.drop_flows = DropFlows()
        self.recent: Deque[Tuple[int, float, int, str, bytes]] = deque(maxlen=20000)
        self.rogue_queue: Deque[Tuple[str, bytes]] = deque()
        self.rogue = Counter()
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
        self.messages.capture(dpid, port, frame, peer)
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
            message = packet_ins.well_formed(self.messages.next_xid(), SENTINEL_PORT, frame)
            await self.switches[server].send_paced(message, self.config.window)
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
        sweep = self.messages.sweep()
        while generated < self.config.count:
            made = sweep.pop() if sweep else self.messages.message(time.monotonic())
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
