"""The real-OVS bed of benchmarks/conntrack_cost.py: its two libraries (the same rules
stateful and stateless), one Mininet bed whose library in force is switched by SIGHUP,
and the traffic measured through it (iperf3, UDP probes, TCP connects).

``python -m benchmarks.conntrack_bed connects IP PORT N`` (inside a Mininet host) times
``N`` TCP connects and prints them as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import yaml

from benchmarks.common import summary

MODES = ("stateless", "stateful")
WEB, DB = 250, 252
IPERF_PORT, CONNECT_PORT, ECHO_PORT = 5201, 7000, 7007
SERVICES = (("tcp", IPERF_PORT), ("tcp", CONNECT_PORT), ("udp", ECHO_PORT))


def virtual_switch(stateful: bool) -> dict:
    """The rules both templates share; stateless, with the mirror rules of the replies."""
    acl = [{"action": "allow", "direction": d, "ethertype": "arp"} for d in ("to_vm", "from_vm")]
    for protocol, port in SERVICES:
        for direction in ("to_vm", "from_vm"):
            acl.append({"action": "allow", "direction": direction, "protocol": protocol,
                        "dst_port": port})
            if not stateful:
                acl.append({"action": "allow", "direction": direction, "protocol": protocol,
                            "src_port": port})
    return {"default_action": "deny", "bind_ip": True, "stateful": stateful, "acl": acl}


def library_document(stateful: bool) -> dict:
    """The library: web (250) and database (252), VLAN 100, the same rules."""
    return {"templates": [
        {"id": template_id, "name": name, "description": f"{name}, conntrack_cost",
         "vlan": 100, "virtual_switch": virtual_switch(stateful),
         "access_port": {"default_action": "allow"}}
        for template_id, name in ((WEB, "web"), (DB, "database"))]}


def uptime() -> str:
    """``uptime``'s line."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cpu_times() -> List[int]:
    """The machine's CPU times (/proc/stat's first line: user ... steal)."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def steal_since(before: List[int]) -> float:
    """The fraction of CPU time the hypervisor stole since ``before`` (cpu_times())."""
    delta = [a - b for a, b in zip(cpu_times(), before)]
    return delta[7] / sum(delta) if sum(delta) else 0.0


class Bed:
    """A controller and a Mininet bed (web1 on s11, db2 on s12), the library switchable."""

    def __init__(self) -> None:
        from ryu_apps.lab import testbed as lab
        self.lab = lab
        self.tag = "K%03d" % (os.getpid() % 1000)
        self.library = Path(tempfile.mkdtemp(prefix="dynprov-ctcost-"))
        self.reloads = 0
        self.mode = "stateful"
        self._write("stateful")
        # verbose: each VM's "provisioned VM" line is a DEBUG one (both modes pay the same)
        self.controller = lab.ControllerProcess(templates=self.library, verbose=True).start()
        self.net = None
        try:
            self.net = lab.build_network(self.controller.of_port, prefix=self.tag, access=1,
                                         servers=2, vms=1, edge=0,
                                         dpid_base=(os.getpid() % 4096) << 24)
            lab.wait_for_fabric(self.controller, self.net)
            for vm in self.net.hosts:
                lab.announce(vm)
            if not self.controller.wait_for_log("provisioned VM", timeout=15, count=2):
                raise RuntimeError("the two VMs were not provisioned: "
                                   + self.controller.log()[-2000:])
            self.web = self.net.get(self.tag + "web1")
            self.db = self.net.get(self.tag + "db2")
        except BaseException:
            self.stop()
            raise

    def _write(self, mode: str) -> None:
        (self.library / "templates.yaml").write_text(
            yaml.safe_dump(library_document(mode == "stateful"), sort_keys=False))

    def switch_to(self, mode: str, timeout: float = 20.0) -> None:
        """Put the library of ``mode`` in force; wait until s11's flows show it."""
        if mode == self.mode:
            return
        self._write(mode)
        self.reloads += 1
        assert self.controller.process is not None
        self.controller.process.send_signal(signal.SIGHUP)
        if not self.controller.wait_for_log("library reloaded", timeout=timeout,
                                            count=self.reloads):
            raise RuntimeError("reload not done: " + self.controller.log()[-2000:])
        deadline = time.monotonic() + timeout
        while ("ct(" in self.lab.dump_flows(self.tag + "s11")) != (mode == "stateful"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"s11's flows never showed the {mode} library")
            time.sleep(0.2)
        self.mode = mode

    def stop(self) -> None:
        if self.net is not None:
            self.lab.stop_network(self.net)
        self.controller.stop()


def _tool(module: str) -> str:
    root = Path(__file__).resolve().parent.parent
    return f"env PYTHONPATH={root} {sys.executable} -m {module}"


def start_servers(bed: Bed, workdir: Path) -> None:
    web = bed.web
    web.cmd(f"iperf3 -s -D -p {IPERF_PORT} --pidfile {workdir / 'iperf3.pid'}")
    web.cmd(f"{_tool('ryu_apps.lab.vmtools.prober')} echo --port {ECHO_PORT} "
            f"> /dev/null 2>&1 & echo $! > {workdir / 'echo.pid'}")
    web.cmd(f"{_tool('ryu_apps.lab.vmtools.tcp_probe')} listen {CONNECT_PORT} "
            f"> /dev/null 2>&1 & echo $! > {workdir / 'listen.pid'}")
    deadline = time.monotonic() + 10
    while not all(f":{p} " in web.cmd("ss -ltnu") for p in (IPERF_PORT, CONNECT_PORT, ECHO_PORT)):
        if time.monotonic() > deadline:
            raise RuntimeError("web1's servers did not start")
        time.sleep(0.1)


def stop_servers(workdir: Path) -> None:
    for name in ("iperf3.pid", "echo.pid", "listen.pid"):
        path = workdir / name
        if path.exists() and path.read_text().strip():
            try:
                os.kill(int(path.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


def vswitchd_cpu() -> float:
    """CPU seconds ovs-vswitchd used so far (all its threads: the userspace datapath)."""
    from benchmarks.provisioning_latency import cpu_seconds
    pid = int(Path("/var/run/openvswitch/ovs-vswitchd.pid").read_text())
    return cpu_seconds(pid)


def throughput(bed: Bed, seconds: float) -> Dict[str, float]:
    """iperf3 TCP db2 -> web1: Mbit/s received, and ovs-vswitchd's CPU µs per MB."""
    before = vswitchd_cpu()
    out = bed.db.cmd(f"iperf3 -c {bed.web.IP()} -p {IPERF_PORT} -t {seconds:g} -J")
    used = vswitchd_cpu() - before
    received = json.loads(out)["end"]["sum_received"]
    return {"mbit_s": received["bits_per_second"] / 1e6,
            "vswitchd_us_per_mb": used * 1e6 / (received["bytes"] / 1e6)}


def probe_rtt(bed: Bed, seconds: float, workdir: Path) -> dict:
    """UDP probes at 1 ms db2 -> web1's echo: round trips (ms) and losses."""
    output = workdir / "probes.json"
    bed.db.cmd(f"{_tool('ryu_apps.lab.vmtools.prober')} probe {bed.web.IP()} "
               f"--udp-port {ECHO_PORT} --interval-ms 1 --duration-s {seconds:g} "
               f"--output {output}")
    probes = json.loads(output.read_text())["probes"]
    rtts = [(p["received_ns"] - p["sent_ns"]) / 1e6 for p in probes
            if p["received_ns"] is not None]
    return {**summary(rtts), "lost": len(probes) - len(rtts)}


def connect_times(bed: Bed, count: int) -> dict:
    """``count`` TCP connects db2 -> web1:7000, one after another: connect() in ms."""
    out = bed.db.cmd(f"{_tool('benchmarks.conntrack_bed')} connects {bed.web.IP()} "
                     f"{CONNECT_PORT} {count}")
    times = json.loads(out.strip().splitlines()[-1])
    return {**summary(times["ms"]), "failed": times["failed"]}


def connects(ip: str, port: int, count: int) -> None:
    """(Inside a host) time ``count`` TCP connects; print {"ms": [...], "failed": n}."""
    times, failed = [], 0
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(2)
        start = time.perf_counter()
        try:
            sock.connect((ip, port))
            times.append((time.perf_counter() - start) * 1000)
        except OSError:
            failed += 1
        finally:
            sock.close()
    print(json.dumps({"ms": times, "failed": failed}))


if __name__ == "__main__":   # inside a Mininet host (connect_times)
    connects(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
