"""Provisioning latency on real OVS bridges: a new VM's first frame to its flows confirmed.

A real controller (``ryu-manager ryu_apps.provisioner``, no --verbose) manages a
Mininet fabric of real OVS bridges (one access switch, several server bridges).
Each VM is an OVS internal port (a tap device) on a server bridge; the benchmark
writes the VM's first frame, a gratuitous ARP, into that tap with a raw socket
and notes the monotonic clock just before. The controller records when the
packet-in reached it and when every switch answered the barrier after the VM's
flow-mods and meter-mods (``GET /dynprov/provisioning-times``; the same
system-wide monotonic clock). Latency = confirmation - send, split into the
switch-to-controller leg and the controller's share. At the end every VM's
flows are counted on its server bridge and on the access bridge.

    python -m benchmarks.provisioning_latency [--vms 1000] [--interval-ms 10] [--quick] [--tls]
        [--ovsdb] [--trace DIR] [--scrape]

``--ovsdb``: the controller watches the servers' OVSDB, and each VM is announced
as a hypervisor does, by its port's ``external_ids:attached-mac`` (``ovs-vsctl
--no-wait set``; the clock is read when it returns: the row is committed), not by
a frame: row written -> flows confirmed, before the VM sends anything.
``--tls``: OpenFlow over mutual TLS (results saved under provisioning_latency-tls).
``--trace DIR``: capture the OpenFlow connections with tcpdump while the VMs arrive and
split each VM's latency into legs (:mod:`benchmarks.latency_trace`); the capture and
the per-VM times stay in DIR.
``--scrape``: scrape the controller's Prometheus metrics every second while the VMs
arrive (a scrape must not slow provisioning; the scrapes' own times are reported).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks import latency_trace
from benchmarks.common import (PLOTS_DIR, format_table, print_machine, publish, pyplot,
                               replot, save_figure, summary)
from ryu_apps.lab import testbed as lab
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.lab.vmtools.announce import gratuitous_arp

NAME = "provisioning_latency"
OVSDB_REMOTE = "unix:/var/run/openvswitch/db.sock"
#: Templates of the default library the VMs cycle through: web, database, management.
TEMPLATE_IDS = (0x00FA, 0x00FC, 0x00FE)


def vm_mac(index: int, run_tag: int) -> str:
    """A MAC selecting one of TEMPLATE_IDS (prefix/16), unique in this run."""
    template = TEMPLATE_IDS[index % len(TEMPLATE_IDS)]
    low = (run_tag << 20) | index
    octets = [template >> 8, template & 0xFF] + [(low >> s) & 0xFF for s in (24, 16, 8, 0)]
    return ":".join(f"{o:02x}" for o in octets)


def vm_ip(index: int) -> str:
    return f"10.{64 + (index >> 16)}.{(index >> 8) & 0xFF}.{index & 0xFF or 1}"


class VmPorts:
    """OVS internal ports used as VM interfaces, created and written to from here."""

    def __init__(self, bridges: List[str], per_bridge: int, tag: str) -> None:
        self.names: List[str] = []
        for b, bridge in enumerate(bridges):
            args: List[str] = []
            for p in range(per_bridge):
                name = f"{tag}b{b}p{p}"
                self.names.append(name)
                args += ["--", "add-port", bridge, name,
                         "--", "set", "interface", name, "type=internal"]
            subprocess.run(["ovs-vsctl", "--timeout=60", *args], check=True)
        for name in self.names:   # no IPv6: the kernel would send its own frames
            Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
        batch = "".join(f"link set {name} up\n" for name in self.names)
        subprocess.run(["ip", "-batch", "-"], input=batch, text=True, check=True)
        self.sockets: Dict[str, socket.socket] = {}
        for name in self.names:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.bind((name, 0))
            self.sockets[name] = sock

    def attach(self, name: str, mac: str) -> int:
        """Write the VM's MAC into its port's OVSDB row (as a hypervisor does); the
        monotonic time when the row is committed (``ovs-vsctl --no-wait`` returned)."""
        subprocess.run(["ovs-vsctl", "--no-wait", "--timeout=10", "set", "Interface", name,
                        f'external_ids:attached-mac="{mac}"'], check=True)
        return time.monotonic_ns()

    def send(self, name: str, frame: bytes) -> int:
        """Write ``frame`` into the VM's port; the monotonic time just before."""
        sock = self.sockets[name]
        sent_ns = time.monotonic_ns()
        sock.send(frame)
        return sent_ns

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def rest(controller: lab.ControllerProcess, path: str):
    status, answer = controller.rest("GET", path, role="reader", timeout=30)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {answer}")
    return answer


def binding_flow_counts(bridge: str) -> Counter:
    """Flows per binding id on one bridge (binding-kind cookies only)."""
    counts: Counter = Counter()
    for line in lab.dump_flows(bridge).splitlines():
        if "cookie=" not in line:
            continue
        cookie = int(line.split("cookie=", 1)[1].split(",", 1)[0], 16)
        owner = decode_cookie(cookie)
        if owner is not None and owner.kind is CookieKind.BINDING:
            counts[owner.owner_id] += 1
    return counts


def meter_count(bridge: str) -> int:
    out = lab.run_ofctl("dump-meters", bridge)
    return sum(1 for line in out.splitlines() if "meter=" in line)


class Capture:
    """tcpdump of the controller's OpenFlow port on the loopback, nanosecond stamps."""

    def __init__(self, directory: Path, of_port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "openflow.pcap"
        self.process = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-s", "0", "-U", "-B", "16384",
             "--time-stamp-precision=nano", "-w", str(self.path), f"tcp port {of_port}"],
            stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        self.process.stderr.readline()          # "listening on lo ...": capturing
        #: Wall clock minus monotonic clock: the capture's stamps on the benchmark's clock.
        self.offset_ns = time.time_ns() - time.monotonic_ns()

    def stop(self) -> Path:
        time.sleep(1.0)     # tcpdump reads behind (the last 12 of 60 VMs were lost without)
        self.process.terminate()
        self.process.wait(timeout=10)
        return self.path


class Scraper:
    """Scrape the controller's /metrics every ``period`` s in a thread; times in ms."""

    def __init__(self, port: int, period: float = 1.0) -> None:
        self.url, self.period = f"http://127.0.0.1:{port}/metrics", period
        self.times_ms: List[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as answer:
                    answer.read()
                self.times_ms.append((time.monotonic() - start) * 1000)
            except OSError:
                self.failures += 1
            if self._stop.wait(self.period):
                return

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        ordered = sorted(self.times_ms)
        return {"scrapes": len(ordered), "failures": self.failures,
                "median_ms": ordered[len(ordered) // 2] if ordered else None,
                "max_ms": ordered[-1] if ordered else None}


def run(vms: int, servers: int, interval_ms: float, tls: bool = False,
        trace: Optional[Path] = None, audit_interval: Optional[float] = None,
        scrape: bool = False, ovsdb: bool = False) -> dict:
    tag = "L%03d" % (os.getpid() % 1000)
    extra = "" if audit_interval is None else f"audit_interval = {audit_interval}\n"
    if ovsdb:
        extra += f"ovsdb = {OVSDB_REMOTE}\n"
    controller = lab.ControllerProcess(verbose=False, tls=tls, extra_options=extra).start()
    print(f"controller: pid {controller.process.pid}, log {controller.log_file}", flush=True)
    net = ports = None
    try:
        net = lab.build_network(controller.of_port, prefix=tag, access=1, servers=servers,
                                vms=0, edge=0, dpid_base=(os.getpid() % 4096) << 24, tls=tls)
        lab.wait_for_fabric(controller, net)
        server_bridges = sorted(s.name for s in net.switches if s.name.startswith(tag + "s"))
        access_bridge = tag + "a1"
        per_bridge = -(-vms // servers)
        ports = VmPorts(server_bridges, per_bridge, tag)
        wait_until_idle(controller.process.pid)   # the new ports' events digested
        capture = None if trace is None else Capture(trace, controller.of_port)
        scraper = Scraper(controller.metrics_port) if scrape else None
        sent: Dict[str, int] = {}
        order = [ports.names[(i % servers) * per_bridge + i // servers] for i in range(vms)]
        for index, port_name in enumerate(order):
            mac = vm_mac(index, os.getpid() % 4096)
            if ovsdb:
                sent[mac] = ports.attach(port_name, mac)
                time.sleep(interval_ms / 1000)
                continue
            frame = gratuitous_arp(bytes.fromhex(mac.replace(":", "")),
                                   socket.inet_aton(vm_ip(index)))
            sent[mac] = ports.send(port_name, frame)
            time.sleep(interval_ms / 1000)
        times = wait_for_confirmations(controller, set(sent), timeout=30 + vms * 0.05)
        figures = measure(controller, sent, times, server_bridges, access_bridge)
        if scraper is not None:
            figures["scrape"] = scraper.stop()
            print(f"scrapes during the run: {figures['scrape']}", flush=True)
        if capture is not None and trace is not None:
            figures["decomposition"] = decompose(trace, capture, controller.of_port,
                                                 sent, times)
        return figures
    finally:
        if ports is not None:
            ports.close()
        if net is not None:
            lab.stop_network(net)
        controller.stop()


def decompose(trace: Path, capture: Capture, of_port: int, sent: Dict[str, int],
              times: Dict[str, dict]) -> dict:
    """Stop the capture, save the per-VM times beside it and split them into legs."""
    pcap = capture.stop()
    record = {"of_port": of_port, "offset_ns": capture.offset_ns,
              "vms": [{"mac": mac, "sent_ns": sent_ns,
                       "detected_ns": times.get(mac, {}).get("detected_ns"),
                       "confirmed_ns": times.get(mac, {}).get("confirmed_ns")}
                      for mac, sent_ns in sent.items()]}
    (trace / "times.json").write_text(json.dumps(record))
    return latency_trace.decompose(record, pcap)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, window: float = 1.0, busy_fraction: float = 0.03,
                    timeout: float = 300.0) -> None:
    """Wait until process ``pid`` used under ``busy_fraction`` of a CPU for ``window`` s."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before < busy_fraction * window:
            return
        before = now
    raise RuntimeError(f"process {pid} still busy after {timeout:g} s")


def wait_for_confirmations(controller, macs: set, timeout: float) -> Dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        times = {e["mac"]: e for e in rest(controller, "/dynprov/provisioning-times")
                 if e["mac"] in macs}
        done = sum(1 for e in times.values() if e["confirmed_ns"] is not None)
        if done == len(macs) or time.monotonic() > deadline:
            return times
        time.sleep(0.5)


def measure(controller, sent: Dict[str, int], times: Dict[str, dict],
            server_bridges: List[str], access_bridge: str) -> dict:
    end_to_end, to_controller, in_controller = [], [], []
    for mac, sent_ns in sent.items():
        entry = times.get(mac)
        if entry is None or entry["confirmed_ns"] is None:
            continue
        end_to_end.append((entry["confirmed_ns"] - sent_ns) / 1e6)
        to_controller.append((entry["detected_ns"] - sent_ns) / 1e6)
        in_controller.append(entry["controller_ms"])
    bindings = {b["mac"]: b for b in rest(controller, "/dynprov/bindings?counters=false")}
    server_flows: Counter = Counter()
    for bridge in server_bridges:
        server_flows.update(binding_flow_counts(bridge))
    access_flows = binding_flow_counts(access_bridge)
    per_vm_server, per_vm_access, complete = [], [], 0
    for mac in sent:
        binding = bindings.get(mac)
        if binding is None:
            continue
        on_server = server_flows.get(binding["binding_id"], 0)
        on_access = access_flows.get(binding["binding_id"], 0)
        per_vm_server.append(on_server)
        per_vm_access.append(on_access)
        complete += bool(on_server and on_access)
    return {
        "vms": len(sent),
        "confirmed": len(end_to_end),
        "bound": sum(1 for mac in sent if mac in bindings),
        "flows_on_both_switches": complete,
        "binding_flows_per_vm_server": summary(per_vm_server),
        "binding_flows_per_vm_access": summary(per_vm_access),
        "meters_on_server_bridges": sum(meter_count(b) for b in server_bridges),
        "latency_ms": summary(end_to_end),
        "switch_to_controller_ms": summary(to_controller),
        "controller_to_confirmed_ms": summary(in_controller),
        "samples_ms": end_to_end,
    }


def report(figures: dict, ovsdb: bool = False) -> None:
    rows = []
    legs = (("latency_ms", "OVSDB row written -> confirmed on both switches"),
            ("switch_to_controller_ms", "OVSDB row written -> row handled"),
            ("controller_to_confirmed_ms", "row handled -> last barrier reply")) if ovsdb \
        else (("latency_ms", "first frame -> confirmed on both switches"),
              ("switch_to_controller_ms", "first frame -> packet-in handled"),
              ("controller_to_confirmed_ms", "packet-in -> last barrier reply"))
    for key, what in legs:
        s = figures[key]
        if s["n"]:
            rows.append([what, s["n"], s["p50"], s["p90"], s["p99"], s["max"]])
    print(format_table(["ms", "n", "p50", "p90", "p99", "max"], rows))
    print(f"VMs sent {figures['vms']}, confirmed {figures['confirmed']}, bound "
          f"{figures['bound']}, with flows on server and access switch "
          f"{figures['flows_on_both_switches']}; binding flows per VM: server "
          f"{figures['binding_flows_per_vm_server'].get('p50')}, access "
          f"{figures['binding_flows_per_vm_access'].get('p50')}; meters on the server "
          f"bridges {figures['meters_on_server_bridges']}")


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    """Latency distribution: histogram and CDF."""
    plt = pyplot()

    samples = sorted(record["figures"]["samples_ms"])
    if not samples:
        return []
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(10, 3.8))
    hist.hist(samples, bins=60, color="#3972b5")
    hist.set_xlabel("first frame -> flows confirmed on both switches (ms)")
    hist.set_ylabel("VMs")
    cdf.plot(samples, [(i + 1) / len(samples) for i in range(len(samples))], color="#3972b5")
    cdf.set_xscale("log")
    cdf.set_xlabel("latency (ms, log scale)")
    cdf.set_ylabel("fraction of VMs")
    cdf.grid(True, which="both", alpha=0.3)
    figures = record["figures"]
    fig.suptitle(f"Provisioning latency, {figures['vms']} VMs on real OVS bridges: "
                 f"p50 {figures['latency_ms']['p50']:.2f} ms, "
                 f"p99 {figures['latency_ms']['p99']:.2f} ms")
    path = save_figure(fig, outdir / "provisioning_latency.png")
    return [path]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=4, help="server bridges")
    parser.add_argument("--interval-ms", type=float, default=10.0,
                        help="gap between two new VMs (latency mode: one at a time)")
    parser.add_argument("--quick", action="store_true", help="60 VMs on 2 bridges")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--tls", action="store_true", help="OpenFlow over mutual TLS")
    parser.add_argument("--ovsdb", action="store_true",
                        help="announce each VM by its port's OVSDB row, not by a frame")
    parser.add_argument("--trace", type=Path, metavar="DIR",
                        help="capture the OpenFlow connections and split the latency")
    parser.add_argument("--audit-interval", type=float, metavar="S",
                        help="the controller's audit_interval (default: its own, 60 s)")
    parser.add_argument("--scrape", action="store_true",
                        help="scrape the Prometheus metrics every second meanwhile")
    args = parser.parse_args(argv)
    name = NAME + ("-tls" if args.tls else "") + ("-ovsdb" if args.ovsdb else "") \
        + ("-trace" if args.trace else "") \
        + (f"-audit{args.audit_interval:g}" if args.audit_interval is not None else "") \
        + ("-scrape" if args.scrape else "") + ("-quick" if args.quick else "")
    if args.plot_only:
        replot(name, plot)
        return 0
    if args.quick:
        args.vms, args.servers = 60, 2
    print_machine()
    figures = run(args.vms, args.servers, args.interval_ms, args.tls, args.trace,
                  args.audit_interval, args.scrape, args.ovsdb)
    figures["parameters"] = {"vms": args.vms, "servers": args.servers,
                             "interval_ms": args.interval_ms, "tls": args.tls,
                             "audit_interval": args.audit_interval, "scrape": args.scrape,
                             "ovsdb": args.ovsdb}
    report(figures, args.ovsdb)
    if "decomposition" in figures:
        latency_trace.report(figures["decomposition"])
    publish(name, figures, None if args.quick or args.tls or args.trace or args.scrape
            or args.ovsdb else plot)
    return 0 if figures["confirmed"] == figures["vms"] else 1


if __name__ == "__main__":
    sys.exit(main())
