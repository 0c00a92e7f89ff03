"""Traffic from inside Mininet hosts: announcements, TCP probes, ping and prober streams."""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

from ryu_apps.lab.project import REPO_ROOT


def announce(host, rarp: bool = False, count: int = 1, gap_ms: float = 0,
             mac_prefix: str | None = None) -> None:
    """Make a Mininet host announce itself (gratuitous ARP, or RARP) like a VM.

    With ``mac_prefix``, each frame comes from a different MAC with that prefix.
    """
    options = f"{'--rarp ' if rarp else ''}--count {count} --gap-ms {gap_ms}"
    if mac_prefix:
        options += f" --mac-prefix {mac_prefix}"
    out = host.cmd(f"{_vmtool('announce')} {host.defaultIntf()} {options}; echo rc=$?")
    if "rc=0" not in out:
        raise RuntimeError(f"announce from {host.name} failed: {out}")


def _vmtool(module: str) -> str:
    return f"env PYTHONPATH={REPO_ROOT} {sys.executable} -m ryu_apps.lab.vmtools.{module}"


def start_listener(host, *ports: int, ipv6: bool = False) -> None:
    """Start TCP listeners on a Mininet host (killed when the host stops), on IPv4 or
    (``ipv6``) IPv6."""
    family = "--ipv6" if ipv6 else ""
    host.cmd(f"{_vmtool('tcp_probe')} listen {' '.join(map(str, ports))} {family} "
             f"> /tmp/dynprov-listen{family and '6'}-{host.name}.log 2>&1 &")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(f":{p} " in host.cmd(f"ss -ltn -{6 if ipv6 else 4}") for p in ports):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{host.name}: TCP listener on {ports} did not start")


def tcp_open(src, dst, port: int, timeout: float = 2.0, address: str | None = None,
             source_port: int = 0) -> bool:
    """True when ``src`` completes a TCP connection to ``dst``:``port`` (at ``address``,
    default its IPv4 address; from ``source_port``, default any)."""
    out = src.cmd(f"{_vmtool('tcp_probe')} connect {address or dst.IP()} {port} "
                  f"--timeout {timeout} --source-port {source_port}")
    return out.strip().endswith("open")


def probe_many(src, targets: list[str], timeout: float) -> list[dict]:
    """Probe every target from ``src`` at once (``icmp:IP``, ``tcp:IP:PORT``); one
    ``{"target", "open", "seconds"}`` per target, in order (vmtools.probe_many)."""
    out = src.cmd(f"{_vmtool('probe_many')} --timeout {timeout} {' '.join(targets)}")
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if [r["target"] for r in results] != list(targets):
        raise RuntimeError(f"probe_many from {src.name} failed: {out}")
    return results


class PingStream:
    """A background ``ping -i INTERVAL`` from one host to another, counted at the end.

    iputils ping slows to about one probe per 10 ms after a miss, so this
    counts loss, not outage duration (the migration benchmark has a prober).
    """

    def __init__(self, src, dst, interval: float = 0.01, count: int = 500) -> None:
        self.src = src
        self.output = Path(tempfile.mkstemp(prefix=f"dynprov-ping-{src.name}-")[1])
        src.cmd(f"ping -n -i {interval} -c {count} {dst.IP()} > {self.output} 2>&1 &")
        self.pid = src.cmd("echo $!").strip()

    def result(self, timeout: float = 30) -> tuple[int, int]:
        """Wait for the stream to end; (transmitted, received)."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(r"(\d+) packets transmitted, (\d+) received")
        while time.monotonic() < deadline:
            found = pattern.search(self.output.read_text())
            if found:
                self.output.unlink()
                return int(found.group(1)), int(found.group(2))
            time.sleep(0.1)
        self.src.cmd(f"kill {self.pid}")
        raise RuntimeError(f"ping stream from {self.src.name} did not finish")


class ProberRun:
    """ryu_apps.lab.vmtools.prober probing from one host to another, in the background."""

    def __init__(self, src, dst, interval_ms: float = 1.0) -> None:
        self.src = src
        workdir = Path(tempfile.mkdtemp(prefix=f"dynprov-probe-{src.name}-"))
        self.output, self.stop_file = workdir / "probes.json", workdir / "stop"
        out = src.cmd(f"{_vmtool('prober')} probe {dst.IP()} --output {self.output} "
                      f"--interval-ms {interval_ms} --stop-file {self.stop_file} "
                      f"> {workdir / 'prober.log'} 2>&1 & echo $!")
        self.pid = out.strip().split()[-1]
        self.log = workdir / "prober.log"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.log.exists() and "started" in self.log.read_text():
                return
            time.sleep(0.01)
        raise RuntimeError(f"prober on {src.name} did not start")

    def stop(self, timeout: float = 10):
        """Stop probing; the OutageReport of the run."""
        from ryu_apps.lab.outage import analyse, probes_from_document

        self.stop_file.touch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "done" in self.log.read_text() and self.output.exists():
                interval_ns, probes = probes_from_document(json.loads(self.output.read_text()))
                return analyse(probes, interval_ns)
            time.sleep(0.05)
        self.src.cmd(f"kill {self.pid}")
        raise RuntimeError(f"prober on {self.src.name} did not finish: {self.log.read_text()}")
