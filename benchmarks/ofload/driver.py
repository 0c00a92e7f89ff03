"""The load: fresh VMs appear on emulated servers; what counts as provisioned.

A *VM* is a fresh MAC (template id in the top 16 bits, a unique serial in the
lower 32) sending its first frame from a fresh port of a server switch, which
the switch reports as a table-miss PACKET_IN. At most ``window`` VMs are
outstanding (cbench's throughput mode with a bounded window); each completed
VM immediately makes room for the next.

When a VM is complete depends on the controller:

- ``dynprov`` mode: *provisioned*. Every flow-mod and meter-mod of its binding
  (cookie: app 0xD9, kind BINDING, owner = binding id; meters: id =
  BINDING_METER_BASE + binding id) has reached both its server switch and that
  server's access switch, at least ``expected`` of them on each, and a
  BARRIER_REQUEST sent after them on each of the two switches was answered.
- ``answer`` mode (a learning switch such as ``simple_switch_13``): *answered*.
  A PACKET_OUT carrying the VM's frame came back on its server switch.

A VM not complete after ``vm_timeout`` seconds counts as lost and frees its slot.

Figures: ``binding_mods`` counts VMs by (binding mods on the server, on the
access switch) confirmed by the *first* barrier on each, i.e. the plan that
provisioned the VM; later plans may re-send some of its flows (a template
merge behind an access port) and are not counted there.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from benchmarks.ofload import frames, wire
from benchmarks.ofload.switch import EmulatedSwitch
from benchmarks.ofload.topology import FIRST_VM_PORT, UPLINK_PORT, Topology, datacenter
from ryu_apps.core.pipeline import BINDING_METER_BASE, MOVED_PORT_METER_OFFSET

#: Cookie bits 63..52 of a dynprov binding's flows (app 0xD9, kind 1).
BINDING_COOKIE_HEAD = 0xD91
OWNER_MASK = (1 << 36) - 1
MODES = ("dynprov", "answer")
#: Default library: web, database, management.
DEFAULT_TEMPLATES = (0x00FA, 0x00FC, 0x00FE)


@dataclass
class LoadConfig:
    """One generator's load."""

    host: str = "127.0.0.1"
    port: int = 6653
    mode: str = "dynprov"
    access: int = 2
    servers: int = 4
    templates: Tuple[int, ...] = DEFAULT_TEMPLATES
    frame: str = "ipv4"
    window: int = 32
    duration: float = 5.0
    #: VMs pre-encoded before the run; the run stops early when they are used up.
    pool: int = 20000
    vm_timeout: float = 5.0
    #: Per template: (binding mods on the server, on the access switch) a VM needs.
    expected: Dict[int, Tuple[int, int]] = field(default_factory=dict)
    dpid_base: int = 0x0A000000
    serial_base: int = 0
    name_prefix: str = "ol"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"load mode {self.mode!r}: expected one of {MODES}")
        if self.window < 1:
            raise ValueError(f"window {self.window}: expected at least 1")


class Vm:
    """One fresh VM and what happened to it."""

    __slots__ = ("mac", "serial", "template_id", "server", "access", "port", "message",
                 "sent", "done", "binding_id", "confirmed", "first_batch", "released")

    def __init__(self, mac: int, serial: int, template_id: int, server: int, access: int,
                 port: int, message: bytes) -> None:
        self.mac, self.serial, self.template_id = mac, serial, template_id
        self.server, self.access, self.port, self.message = server, access, port, message
        self.sent = self.done = 0.0
        self.binding_id: Optional[int] = None
        self.confirmed: Dict[int, int] = {}     # dpid -> binding mods confirmed
        self.first_batch: Dict[int, int] = {}   # dpid -> those of its first barrier
        self.released = False


class Load:
    """Emulated switches of one topology driving one controller."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.topology: Topology = datacenter(config.access, config.servers, config.dpid_base,
                                             config.name_prefix)
        self.switches: Dict[int, EmulatedSwitch] = {}
        self.outstanding: Dict[int, Vm] = {}          # by MAC
        self.launched: Dict[int, Vm] = {}             # by MAC, every VM sent
        self.by_binding: Dict[int, Vm] = {}
        self._unbarriered: Dict[int, Counter] = {}    # dpid -> binding id -> mods
        self._orphans: Dict[int, Counter] = {}        # binding id -> dpid -> confirmed mods
        self.completed: List[Vm] = []
        self.lost: List[Vm] = []
        self._pool: List[Vm] = []
        self._running = False
        self._dynprov = config.mode == "dynprov"
        self.encode_seconds = 0.0

    # -- set-up -------------------------------------------------------------
    async def connect(self, timeout: float = 20.0) -> None:
        """Connect every switch and wait until the controller configured each."""
        loop = asyncio.get_running_loop()
        for plan in self.topology.switches:
            _transport, switch = await loop.create_connection(
                lambda plan=plan: EmulatedSwitch(plan, self, self._deliver),
                self.config.host, self.config.port)
            self.switches[plan.dpid] = switch
            self._unbarriered[plan.dpid] = Counter()
        waits = [s.in_main for s in self.switches.values()]
        if self._dynprov:
            waits += [s.synced for s in self.switches.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except asyncio.TimeoutError:
            late = [s.plan.name for s in self.switches.values()
                    if not s.in_main.done() or (self._dynprov and not s.synced.done())]
            raise RuntimeError(f"controller at {self.config.host}:{self.config.port} did not "
                               f"configure switches {late} within {timeout}s") from None

    def pre_encode(self) -> None:
        """Build every VM's PACKET_IN before the run (so the run only writes bytes)."""
        started = time.perf_counter()
        config = self.config
        servers = self.topology.servers
        template = None
        next_port = {s.dpid: FIRST_VM_PORT for s in servers}
        for n in range(config.pool):
            server = servers[n % len(servers)]
            serial = config.serial_base + n
            template_id = config.templates[n % len(config.templates)]
            mac = frames.vm_mac(template_id, serial)
            frame = frames.first_frame(config.frame, mac, serial)
            if template is None:
                template = wire.PacketInTemplate(len(frame))
            port = next_port[server.dpid]
            next_port[server.dpid] += 1
            message = template.encode(n + 1, port, frame)
            self._pool.append(Vm(mac, serial, template_id, server.dpid,
                                 self.topology.access_of[server.dpid], port, message))
        self._pool.reverse()   # pop() from the end in creation order
        self.encode_seconds = time.perf_counter() - started

    def announce_gateway(self) -> None:
        """The gateway speaks once on every server uplink (a learning switch learns it)."""
        frame = frames.gateway_frame()
        for plan in self.topology.servers:
            self.switches[plan.dpid].packet_in(UPLINK_PORT, frame)

    def close(self) -> None:
        """Close every connection."""
        for switch in self.switches.values():
            switch.close()

    # -- the run ------------------------------------------------------------
    async def run(self, duration: float, drain: float = 2.0) -> dict:
        """Keep ``window`` VMs outstanding for ``duration`` s; the figures."""
        config = self.config
        if not self._pool:
            self.pre_encode()
        before = {d: s.counters.as_dict() for d, s in self.switches.items()}
        self._running = True
        cpu_start, started = time.process_time(), time.perf_counter()
        self.started = started
        for _ in range(config.window):
            self._launch()
        deadline = started + duration
        while self._running and time.perf_counter() < deadline and (
                self._pool or self.outstanding):
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.perf_counter())))
            self._expire(time.perf_counter())
        self._running = False
        ended = time.perf_counter()
        cpu = time.process_time() - cpu_start
        in_window = sum(1 for vm in self.completed if vm.done <= ended)
        drain_until = time.perf_counter() + drain
        while (self.outstanding or self._unreleased()) and time.perf_counter() < drain_until:
            await asyncio.sleep(0.05)
        after = {d: s.counters.as_dict() for d, s in self.switches.items()}
        return self._figures(before, after, in_window, ended - started, cpu)

    def _unreleased(self) -> bool:
        """A completed VM whose frame the controller has not sent back yet: dynprov
        releases it after the barrier replies, which the generator answers first."""
        return self._dynprov and any(not vm.released for vm in self.completed)

    def _launch(self) -> None:
        if not self._running or not self._pool:
            return
        vm = self._pool.pop()
        self.outstanding[vm.mac] = vm
        self.launched[vm.mac] = vm
        switch = self.switches[vm.server]
        switch.counters.packet_ins += 1
        vm.sent = time.perf_counter()
        switch.send(vm.message)

    def _expire(self, now: float) -> None:
        timeout = self.config.vm_timeout
        for vm in [v for v in self.outstanding.values() if now - v.sent > timeout]:
            del self.outstanding[vm.mac]
            self.lost.append(vm)
            self._launch()

    def _complete(self, vm: Vm) -> None:
        if vm.done or self.outstanding.pop(vm.mac, None) is None:
            return
        vm.done = time.perf_counter()
        self.completed.append(vm)
        self._launch()

    # -- the switches' observer ---------------------------------------------
    def flow_mod(self, switch: EmulatedSwitch, data: bytes, offset: int, length: int) -> None:
        if not self._dynprov:
            return
        cookie = int.from_bytes(data[offset + 8:offset + 16], "big")
        if cookie >> 52 != BINDING_COOKIE_HEAD or data[offset + 25] != 0:   # binding ADDs
            return
        binding_id = cookie & OWNER_MASK
        self._unbarriered[switch.dpid][binding_id] += 1
        if binding_id not in self.by_binding:
            fields = wire.match_fields(data[offset + 48:offset + length])
            mac = fields.get(wire.OXM_ETH_SRC) or fields.get(wire.OXM_ETH_DST)
            vm = self.outstanding.get(int.from_bytes(mac, "big")) if mac and len(mac) == 6 \
                else None
            if vm is not None:
                self._map(binding_id, vm)

    def meter_mod(self, switch: EmulatedSwitch, msg: bytes) -> None:
        if not self._dynprov:
            return
        command, meter_id = wire.read_meter_mod(msg)
        if command == 0 and BINDING_METER_BASE < meter_id < MOVED_PORT_METER_OFFSET:
            self._unbarriered[switch.dpid][meter_id - BINDING_METER_BASE] += 1

    def barrier(self, switch: EmulatedSwitch) -> None:
        mods = self._unbarriered[switch.dpid]
        if not mods:
            return
        dpid = switch.dpid
        for binding_id, count in mods.items():
            vm = self.by_binding.get(binding_id)
            if vm is None:
                self._orphans.setdefault(binding_id, Counter())[dpid] += count
            else:
                self._confirm(vm, dpid, count)
        mods.clear()

    def packet_out(self, switch: EmulatedSwitch, msg: bytes) -> None:
        actions_len = int.from_bytes(msg[16:18], "big")
        src = msg[24 + actions_len + 6:24 + actions_len + 12]
        vm = self.launched.get(int.from_bytes(src, "big"))
        if vm is None or vm.server != switch.dpid:
            return
        vm.released = True
        if not self._dynprov:
            self._complete(vm)

    def _map(self, binding_id: int, vm: Vm) -> None:
        vm.binding_id = binding_id
        self.by_binding[binding_id] = vm
        orphan = self._orphans.pop(binding_id, None)
        if orphan:
            for dpid, count in orphan.items():
                self._confirm(vm, dpid, count)

    def _confirm(self, vm: Vm, dpid: int, count: int) -> None:
        vm.confirmed[dpid] = vm.confirmed.get(dpid, 0) + count
        vm.first_batch.setdefault(dpid, count)
        self._check(vm)

    def _check(self, vm: Vm) -> None:
        need_server, need_access = self.config.expected.get(vm.template_id, (1, 1))
        if (vm.confirmed.get(vm.server, 0) >= need_server
                and vm.confirmed.get(vm.access, 0) >= need_access):
            self._complete(vm)

    def _deliver(self, dpid: int, port: int, frame: bytes) -> None:
        peer = self.topology.peers.get((dpid, port))
        if peer is not None and peer[0] in self.switches:   # a peer not connected yet
            switch = self.switches[peer[0]]                 # misses this probe, not the next
            switch.counters.probes_delivered += 1
            switch.packet_in(peer[1], frame)

    # -- figures ------------------------------------------------------------
    def _figures(self, before: dict, after: dict, in_window: int, seconds: float,
                 cpu: float) -> dict:
        totals = Counter()
        for dpid, counts in after.items():
            for name, value in counts.items():
                totals[name] += value - before[dpid][name]
        mods = Counter((vm.first_batch.get(vm.server, 0), vm.first_batch.get(vm.access, 0))
                       for vm in self.completed) if self._dynprov else Counter()
        return {
            "mode": self.config.mode,
            "window": self.config.window,
            "switches": len(self.switches),
            "servers": len(self.topology.servers),
            "seconds": seconds,
            "sent": len(self.completed) + len(self.lost) + len(self.outstanding),
            "completed_in_window": in_window,
            "completed": len(self.completed),
            "released": sum(1 for vm in self.completed if vm.released),
            "lost": len(self.lost),
            "still_outstanding": len(self.outstanding),
            "pool_exhausted": not self._pool,
            "vms_per_second": in_window / seconds if seconds > 0 else 0.0,
            "latencies_ms": [round((vm.done - vm.sent) * 1000.0, 3) for vm in self.completed
                             if vm.done <= self.started + seconds],
            "messages": dict(totals),
            "binding_mods": {f"{s}/{a}": n for (s, a), n in sorted(mods.items())},
            "generator_cpu_seconds": cpu,
            "encode_seconds": self.encode_seconds,
            "provisioned_macs": [vm.mac for vm in self.completed],
        }


async def run_load(config: LoadConfig, ready=None, settle: float = 0.3) -> dict:
    """Connect, wait for ``ready()`` (an awaitable factory, optional), run, close."""
    load = Load(config)
    try:
        await load.connect()
        load.pre_encode()
        if ready is not None:
            await ready()
        load.announce_gateway()
        await asyncio.sleep(settle)
        return await load.run(config.duration)
    finally:
        load.close()
