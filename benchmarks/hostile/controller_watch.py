"""What a controller under attack did: its memory, its log, its links, its CPU.

Read from outside the controller only: ``/proc/PID`` (RSS, CPU), the log file
it writes, and its REST API (a reader token).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

from ryu_apps.lab import testbed as lab

TRACEBACK = "Traceback (most recent call last)"
#: What dynprov's guarded handlers log when one raised (then it resynchronises).
HANDLER_RAISED = re.compile(r"dynprov: .+ raised")
RYU_PARSER = "Encountered an error while parsing OpenFlow packet"
RYU_UNCAUGHT = "hub: uncaught exception"

#: One link as ((dpid hex, port), (dpid hex, port)) in sorted order; a shared uplink
#: has ("shared-fabric", 0) as its far end.
Link = Tuple[Tuple[str, int], Tuple[str, int]]


def rss_kb(pid: int) -> int:
    """Resident set size of a live process, in KB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all CPUs (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]   # idle, iowait
    total = sum(fields[:8])        # without guest time, already counted in user
    return (total - idle) / 100.0, total / 100.0


def ovs_vswitchd_pid() -> Optional[int]:
    """The running ovs-vswitchd's PID, from its pidfile (None if not found)."""
    try:
        return int(Path("/var/run/openvswitch/ovs-vswitchd.pid").read_text().strip())
    except (OSError, ValueError):
        return None


class CpuShares:
    """CPU used between :meth:`start` and :meth:`stop` by some processes and the machine,
    as a share of one CPU (1.0 = one CPU busy the whole time)."""

    def __init__(self, pids: Dict[str, Optional[int]]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self._before: Dict[str, float] = {}
        self._machine = (0.0, 0.0)
        self._started = 0.0

    def _sample(self) -> Dict[str, float]:
        values = {}
        for name, pid in self.pids.items():
            try:
                values[name] = cpu_seconds(pid)
            except (OSError, IndexError):
                values[name] = float("nan")
        return values

    def start(self) -> "CpuShares":
        self._before, self._machine = self._sample(), machine_cpu_seconds()
        self._started = time.monotonic()
        return self

    def stop(self) -> Dict[str, float]:
        """Share of one CPU per process, and the machine's busy share of all its CPUs
        (``machine_busy``, 0..1)."""
        after, (busy, total) = self._sample(), machine_cpu_seconds()
        elapsed = max(time.monotonic() - self._started, 1e-9)
        shares = {name: round((after[name] - self._before[name]) / elapsed, 3)
                  for name in self.pids}
        shares["machine_busy"] = round((busy - self._machine[0]) / max(
            total - self._machine[1], 1e-9), 3)
        return shares


def wait_until_idle(pid: int, window: float = 1.0, busy_fraction: float = 0.05,
                    timeout: float = 300.0) -> float:
    """Wait until ``pid`` used under ``busy_fraction`` of a CPU for ``window`` s; seconds waited."""
    started = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before < busy_fraction * window:
            return time.monotonic() - started
        before = now
    raise RuntimeError(f"controller {pid} still busy after {timeout:g} s")


class RssSampler:
    """Samples a process's RSS every ``interval`` s in a thread: (seconds, KB) pairs."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.samples: List[Tuple[float, int]] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RssSampler":
        self.sample()
        self._thread.start()
        return self

    def sample(self) -> int:
        """Take one sample now; its KB."""
        kb = rss_kb(self.pid)
        self.samples.append((round(time.monotonic() - self.started, 3), kb))
        return kb

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except (OSError, RuntimeError):
                return   # the process ended

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak_kb(self) -> int:
        return max(kb for _, kb in self.samples)

    def at(self, seconds: float) -> int:
        """The last sample taken at or before ``seconds`` after the start."""
        before = [kb for t, kb in self.samples if t <= seconds]
        return before[-1] if before else self.samples[0][1]

    def series(self, points: int = 400) -> List[Tuple[float, int]]:
        """At most ``points`` samples, evenly spread (for plots)."""
        step = max(1, len(self.samples) // points)
        return self.samples[::step]


def scan_log(text: str) -> Dict[str, int]:
    """Tracebacks and handler failures in a controller log, by who logged them.

    A traceback is attributed to the line just before it: Ryu's OpenFlow parser
    (a message it could not parse and dropped), a Ryu greenthread that died
    (a connection closed on a message Ryu could not frame), or a dynprov handler.
    A traceback chained to the one before it ("During handling of the above
    exception") is part of that one.
    """
    lines = text.splitlines()
    counts: Counter = Counter({key: 0 for key in (
        "handler_exceptions", "ryu_parser_errors", "ryu_connection_errors", "resyncs",
        "tracebacks", "tracebacks_ryu_parser", "tracebacks_ryu_connection",
        "tracebacks_dynprov_handler", "tracebacks_other")})
    previous = ""
    for line in lines:
        if HANDLER_RAISED.search(line):
            counts["handler_exceptions"] += 1
        if RYU_PARSER in line:
            counts["ryu_parser_errors"] += 1
        if RYU_UNCAUGHT in line:
            counts["ryu_connection_errors"] += 1
        if "resynchronising every switch" in line:
            counts["resyncs"] += 1
        if TRACEBACK in line and not previous.startswith(_CHAINED):
            counts["tracebacks"] += 1
            context = line + previous
            if RYU_PARSER in context:
                counts["tracebacks_ryu_parser"] += 1
            elif RYU_UNCAUGHT in context:
                counts["tracebacks_ryu_connection"] += 1
            elif HANDLER_RAISED.search(context):
                counts["tracebacks_dynprov_handler"] += 1
            else:
                counts["tracebacks_other"] += 1
        if line.strip():
            previous = line
    return dict(counts)


_CHAINED = ("During handling of the above exception", "The above exception was the direct")


class LogTail:
    """New text of a growing log file, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def read_new(self) -> str:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return ""
        self.offset += len(data)
        return data.decode(errors="replace")


def _end(ref: Optional[dict]) -> Tuple[str, int]:
    if ref is None:
        return ("shared-fabric", 0)
    return (str(ref["dpid"]).lower(), int(ref["port"]))


def normalise_links(answer: Iterable[dict]) -> FrozenSet[Link]:
    """GET /dynprov/links as a set of sorted end pairs."""
    links = set()
    for link in answer:
        a, b = _end(link.get("a")), _end(link.get("b"))
        links.add((a, b) if a <= b else (b, a))
    return frozenset(links)


def rest_get(controller: lab.ControllerProcess, path: str, timeout: float = 30.0):
    """A GET with the reader token; raises on anything but 200."""
    status, answer = controller.rest("GET", path, role="reader", timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status}: {answer}")
    return answer


def links(controller: lab.ControllerProcess) -> FrozenSet[Link]:
    """The controller's links now."""
    return normalise_links(rest_get(controller, "/dynprov/links"))


def show_link(link: Link) -> str:
    (a, ap), (b, bp) = link
    return f"{a}:{ap} <-> {b}:{bp}"
