"""The fuzzer's emulated switches, and the drop flows the controller sends them.

:class:`FuzzSwitch` is :mod:`benchmarks.ofload`'s emulated switch, paced to
the controller by echo markers; :class:`DropFlows` keeps the quarantine flows
(cookie kind 4) the controller installed and removed, as the switches saw them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Dict, Tuple

from benchmarks.ofload import wire
from benchmarks.ofload.switch import EmulatedSwitch
from benchmarks.ofload.topology import SwitchPlan
from ryu_apps.core.cookies import CookieKind

_QUARANTINE_HEAD = (0xD9 << 4) | int(CookieKind.QUARANTINE)
_FLOW_ADD, _FLOW_DELETE, _FLOW_DELETE_STRICT = 0, 3, 4
_OFPTT_ALL = 0xFF


class DropFlows:
    """Quarantine flows (cookie kind 4) the controller installed and removed, per switch."""

    def __init__(self) -> None:
        self.adds = self.deletes = 0
        self.installed: Dict[Tuple[int, int, int, bytes], int] = {}
        self.peak = 0
        self.peak_per_port = 0

    def flow_mod(self, dpid: int, data: bytes, offset: int, length: int) -> None:
        cookie = int.from_bytes(data[offset + 8:offset + 16], "big")
        table, command = data[offset + 24], data[offset + 25]
        priority = int.from_bytes(data[offset + 30:offset + 32], "big")
        match_length = int.from_bytes(data[offset + 50:offset + 52], "big")
        match = bytes(data[offset + 48:offset + 48 + match_length])
        if command == _FLOW_ADD:
            if cookie >> 52 == _QUARANTINE_HEAD:
                self.adds += 1
                self.installed[(dpid, table, priority, match)] = cookie
                self.peak = max(self.peak, len(self.installed))
                self.peak_per_port = max(self.peak_per_port, self._on_port(dpid, cookie))
        elif command == _FLOW_DELETE_STRICT:
            if self.installed.pop((dpid, table, priority, match), None) is not None:
                self.deletes += 1
        elif command == _FLOW_DELETE:
            mask = int.from_bytes(data[offset + 16:offset + 24], "big")
            for key, installed_cookie in list(self.installed.items()):
                if key[0] == dpid and (table == _OFPTT_ALL or key[1] == table) and \
                        installed_cookie & mask == cookie & mask:
                    del self.installed[key]
                    self.deletes += 1

    def _on_port(self, dpid: int, cookie: int) -> int:
        return sum(1 for key, c in self.installed.items() if key[0] == dpid and c == cookie)

    def per_port(self) -> Dict[str, int]:
        """Drop flows installed now, per 'dpid:port' (the quarantine owner is the port)."""
        counts: Counter = Counter()
        for (dpid, *_), cookie in self.installed.items():
            counts[f"{dpid:016x}:{cookie & ((1 << 36) - 1)}"] += 1
        return dict(counts)


class FuzzSwitch(EmulatedSwitch):
    """An emulated switch that paces its hostile messages to the controller.

    Each batch ends with an ECHO_REQUEST. Ryu answers it from the connection's
    receive loop, after that loop has handed every message before it to the apps
    (it blocks while dynprov's event queue is full), so an answered echo marks
    what the controller has taken in. At most ``window`` batches are outstanding:
    the controller works through hostile messages in order, within about a
    second, instead of the kernel's socket buffers holding minutes of them.
    """

    def __init__(self, plan: SwitchPlan, observer, deliver) -> None:
        super().__init__(plan, observer, deliver)
        self._handlers[wire.ECHO_REPLY] = self._echo_answered
        self.writable = asyncio.Event()
        self.writable.set()
        self.markers_sent = self.markers_answered = 0
        self._answered = asyncio.Event()

    def connection_made(self, transport) -> None:
        transport.set_write_buffer_limits(high=256 * 1024)
        super().connection_made(transport)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc) -> None:
        self.writable.set()
        self._answered.set()
        super().connection_lost(exc)

    def _echo_answered(self, msg: bytes, xid: int) -> None:
        self.markers_answered += 1
        self._answered.set()

    async def send_paced(self, data: bytes, window: int) -> None:
        """Write ``data`` and a marker once fewer than ``window`` markers are unanswered
        (``window`` 0: no pacing, only TCP's flow control)."""
        while window > 0 and self.markers_sent - self.markers_answered >= window \
                and not self.closed.done():
            self._answered.clear()
            await self._answered.wait()
        if not self.writable.is_set():
            await self.writable.wait()
        if self.closed.done():
            raise RuntimeError(f"the controller closed emulated switch {self.plan.name}'s "
                               "connection")
        if window <= 0:
            self.send(data)
            return
        self.markers_sent += 1
        self.send(data + wire.message(wire.ECHO_REQUEST, self.next_xid()))
