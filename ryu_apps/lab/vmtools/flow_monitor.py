"""Timestamped flow-table events: ``ovs-ofctl -O OpenFlow13 monitor BRIDGE watch:``.

Each line the monitor prints (``event=ADDED table=4 cookie=... priority=...``)
is stamped with ``time.monotonic_ns()`` by a reader thread the moment it is
read, the clock the prober and the migration lab use. Polling ``dump-flows``
instead would cost about 10 ms a call.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import List, Optional

EVENT = re.compile(r"event=(ADDED|DELETED|MODIFIED)\b")


@dataclass(frozen=True)
class FlowEvent:
    """One flow-table change seen on a bridge."""

    bridge: str
    at_ns: int
    kind: str       # ADDED, DELETED or MODIFIED
    text: str


class FlowMonitor:
    """A background ``ovs-ofctl monitor`` on one bridge, events timestamped on arrival."""

    def __init__(self, bridge: str, initial: bool = True) -> None:
        """``initial``: report the flows the bridge holds now too (as ADDED events)."""
        self.bridge = bridge
        self.events: List[FlowEvent] = []
        self.process = subprocess.Popen(
            ["ovs-ofctl", "-O", "OpenFlow13", "monitor", bridge,
             "watch:" if initial else "watch:!initial"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        """Stamp each event when its bytes arrive.

        ovs-ofctl ends an event's line only when it prints the next message,
        so events are cut out of raw chunks, not read as lines.
        """
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            now = time.monotonic_ns()
            text = chunk.decode("utf-8", "replace")
            for found in EVENT.finditer(text):
                end = text.find("\n", found.end())
                body = text[found.start():end if end >= 0 else len(text)]
                self.events.append(FlowEvent(self.bridge, now, found.group(1), body.strip()))

    def stop(self) -> List[FlowEvent]:
        """Stop the monitor (by PID); the events seen."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._thread.join(timeout=2)
        return list(self.events)


def watch(bridges, settle_s: float = 0.2, initial: bool = True) -> List[FlowMonitor]:
    """Monitors on several bridges, given a moment to connect."""
    monitors = [FlowMonitor(b, initial) for b in bridges]
    time.sleep(settle_s)
    return monitors


def stop_all(monitors: List[FlowMonitor]) -> List[FlowEvent]:
    """Stop monitors; every event, in time order."""
    events: List[FlowEvent] = []
    for monitor in monitors:
        events += monitor.stop()
    return sorted(events, key=lambda e: e.at_ns)


def last_event_ns(events: List[FlowEvent], since_ns: int,
                  match: Optional[str] = None) -> Optional[int]:
    """Time of the last event at or after ``since_ns`` (whose text contains ``match``)."""
    times = [e.at_ns for e in events if e.at_ns >= since_ns and (match is None or match in e.text)]
    return max(times, default=None)
