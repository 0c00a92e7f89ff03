"""The cost of connection tracking: a stateful template against the same rules stateless.

Run: ``python -m benchmarks.conntrack_cost [--rounds 3] [--seconds 4] [--connects 300]
[--vms 20] [--new 100] [--engine-only] [--quick]``

Two templates, web (250) and database (252), VLAN 100, with the same virtual-switch
rules (ARP; TCP 5201 and 7000 and UDP 7007 in both directions), written twice:
``stateful: true``, and stateless with the mirror rules its replies need (source
port 5201, 7000, 7007). It prints:

- **per new VM** (pure engine on fake switches, benchmarks/flows_per_vm.py's bed): the
  flow-mods and OpenFlow bytes of the first web VM on a server (it brings the
  template's shared flows); then, with ``--vms`` web VMs on the server, the median
  engine µs of a new VM's two events (first frame, then its IPv4), the flow-mods and
  bytes of their plans (all switches), and the server bridge's flows;
- **per packet** (real OVS, userspace datapath, one Mininet bed: web1 on s11, db2 on
  s12 behind a1; the library in force switched by SIGHUP between rounds, alternated):
  iperf3 TCP throughput db2 -> web1 (hosts' ``tx`` offload off) with ovs-vswitchd's
  CPU time per MB carried (the userspace datapath's own cost), and the round-trip
  time of UDP probes at 1 ms (``ryu_apps.lab.vmtools.prober``, p50/p99, lost);
- **per connection**: the time of a TCP ``connect()`` (SYN to SYN-ACK: each
  connection's first packets, tracked as new and committed) against the UDP probes'
  round trip on an established flow; the difference of the two between the modes is
  what a connection's first packets cost beyond ``ct``'s per-packet cost;
- **provisioning latency** on the same bed (benchmarks/provisioning_latency.py's VM
  ports and measurement): ``--new`` / 2 web VMs per mode in two batches (stateless,
  stateful, stateful, stateless), first frame to flows confirmed, and the flows they
  added on the server bridges.

``uptime`` is printed with every round. ``--quick``: one round of 1 s, 20 connects,
4 new VMs (the smoke test's sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import yaml

from benchmarks.common import format_table, print_machine, publish, summary

NAME = "conntrack_cost"
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
    return {"templates": [
        {"id": template_id, "name": name, "description": f"{name}, conntrack_cost",
         "vlan": 100, "virtual_switch": virtual_switch(stateful),
         "access_port": {"default_action": "allow"}}
        for template_id, name in ((WEB, "web"), (DB, "database"))]}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cpu_times() -> List[int]:
    """The machine's CPU times (/proc/stat's first line: user ... steal)."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def steal_since(before: List[int]) -> float:
    """The fraction of CPU time the hypervisor stole since ``before`` (cpu_times())."""
    delta = [a - b for a, b in zip(cpu_times(), before)]
    return delta[7] / sum(delta) if sum(delta) else 0.0


# -- per new VM: the pure engine ---------------------------------------------------------
def engine_costs(vms: int, new: int) -> Dict[str, dict]:
    """Per mode: a new web VM's engine µs, flow-mods, bytes; the server's flows per VM."""
    from benchmarks.flows_per_vm import S1, S2, _mac, add_vm, bed
    from ryu_apps.app.openflow_bytes import encoded_messages
    from ryu_apps.core.template_validation import build_library

    out = {}
    for mode in MODES:
        library = build_library([("conntrack_cost.yaml", library_document(mode == "stateful"))])
        engine, switches = bed(library)
        add_vm(engine, switches, S2, 1, _mac(DB, 1), "10.1.0.1")
        opening = [c for plan in add_vm(engine, switches, S1, 1, _mac(WEB, 1), "10.0.0.1")
                 for c in plan.changes.values()]   # it brings the template's shared flows
        for index in range(2, vms + 1):
            add_vm(engine, switches, S1, index, _mac(WEB, index), f"10.0.0.{index}")
        flows_before = len(switches.flows(S1))
        micros, mods, size = [], [], []
        for index in range(vms + 1, vms + new + 1):
            mac, ip = _mac(WEB, index), f"10.0.{index // 250}.{index % 250 + 1}"
            start = time.perf_counter()
            first = engine.packet_in(S1, index, mac, b"x", now=0.0).plan
            second = engine.packet_in(S1, index, mac, b"x", now=0.0, sender_ip=ip).plan
            micros.append((time.perf_counter() - start) * 1e6)
            for plan in (first, second):
                switches.apply(plan)
            changes = [c for plan in (first, second) for c in plan.changes.values()]
            mods.append(sum(len(c.adds) + len(c.deletes) for c in changes))
            size.append(sum(len(m) for c in changes for m in encoded_messages(c)))
        total = len(switches.flows(S1))
        out[mode] = {"first_vm_flow_mods": sum(len(c.adds) + len(c.deletes)
                                                  for c in opening),
                     "first_vm_bytes": sum(len(m) for c in opening
                                           for m in encoded_messages(c)),
                     "engine_us_p50": statistics.median(micros),
                     "flow_mods": statistics.mean(mods), "bytes": statistics.mean(size),
                     "server_flows": total, "server_flows_per_vm": total / (vms + new),
                     "flows_per_new_vm": (total - flows_before) / new}
    return out


def report_engine(figures: Dict[str, dict], vms: int) -> None:
    print(f"\nper new VM (pure engine, {vms} web VMs already on the server):")
    print(format_table(["mode", "first VM: flow-mods", "bytes", "next: engine us p50",
                        "flow-mods", "bytes", "flows per new VM", "server flows",
                        "flows/VM"],
                       [[m, f["first_vm_flow_mods"], f["first_vm_bytes"],
                         round(f["engine_us_p50"]), f["flow_mods"], round(f["bytes"]),
                         f["flows_per_new_vm"], f["server_flows"],
                         round(f["server_flows_per_vm"], 2)] for m, f in figures.items()]))


# -- real OVS ------------------------------------------------------------------------------
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
        self.controller = lab.ControllerProcess(templates=self.library, verbose=False).start()
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
    out = bed.db.cmd(f"{_tool('benchmarks.conntrack_cost')} connects {bed.web.IP()} "
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


def packet_rounds(bed: Bed, rounds: int, seconds: float, count: int, workdir: Path
                  ) -> List[dict]:
    """Alternated rounds: each mode once per round, the order swapped every round."""
    results = []
    for number in range(rounds):
        order = MODES if number % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            bed.switch_to(mode)
            before = cpu_times()
            record = {"round": number + 1, "mode": mode, "uptime": uptime(),
                      **throughput(bed, seconds),
                      "rtt_ms": probe_rtt(bed, min(seconds, 2.0), workdir),
                      "connect_ms": connect_times(bed, count)}
            record["steal"] = steal_since(before)
            print(f"round {number + 1} {mode:<9}: steal {record['steal']:.0%}, "
                  f"{record['mbit_s']:8.0f} Mbit/s ({record['vswitchd_us_per_mb']:.0f} us "
                  f"vswitchd CPU/MB), "
                  f"RTT p50 {record['rtt_ms']['p50']:.3f} p99 {record['rtt_ms']['p99']:.3f} "
                  f"ms (lost {record['rtt_ms']['lost']}), connect p50 "
                  f"{record['connect_ms']['p50']:.3f} p99 {record['connect_ms']['p99']:.3f} "
                  f"ms ({record['connect_ms']['failed']} failed); {record['uptime']}",
                  flush=True)
            results.append(record)
    return results


def provisioning(bed: Bed, new: int) -> Dict[str, dict]:
    """Per mode: ``new`` web VMs on s11 and s12 (OVS internal ports written to with a
    raw socket, as benchmarks/provisioning_latency.py does), first frame -> flows
    confirmed; the flows they added on the server bridges."""
    from benchmarks import provisioning_latency as pl
    from benchmarks.flows_per_vm import _mac
    from ryu_apps.lab.vmtools.announce import gratuitous_arp

    assert bed.controller.process is not None
    pid = bed.controller.process.pid
    servers = [bed.tag + "s11", bed.tag + "s12"]
    out: Dict[str, dict] = {}
    batch = max(1, new // 2)
    for number, mode in enumerate(MODES + tuple(reversed(MODES))):   # alternated
        bed.switch_to(mode)
        before = sum(_flow_count(b) for b in servers)
        ports = pl.VmPorts(servers, -(-batch // 2), bed.tag + "wxyz"[number])
        try:
            pl.wait_until_idle(pid)
            sent = {}
            for index, name in enumerate(ports.names[:batch]):
                mac = _mac(WEB, ((number + 1) << 16) | (index + 1))
                frame = gratuitous_arp(bytes.fromhex(mac.replace(":", "")),
                                       socket.inet_aton(f"10.0.{150 + number}.{index + 1}"))
                sent[mac] = ports.send(name, frame)
                time.sleep(0.02)
            times = pl.wait_for_confirmations(bed.controller, set(sent), timeout=30 + new)
            figures = pl.measure(bed.controller, sent, times, servers, bed.tag + "a1")
            figures["server_flows_added"] = sum(_flow_count(b) for b in servers) - before
            figures["uptime"] = uptime()
            print(f"new VMs, {mode}: {figures['confirmed']}/{batch} confirmed, p50 "
                  f"{figures['latency_ms'].get('p50')} ms; {figures['uptime']}", flush=True)
            out[mode] = _merge(out.get(mode), figures)
        finally:
            ports.close()
            subprocess.run(["ovs-vsctl", "--timeout=60"] + [
                arg for name in ports.names for arg in ("--", "--if-exists", "del-port", name)],
                check=False)
        pl.wait_until_idle(pid)
    return out


def _merge(earlier: dict | None, batch: dict) -> dict:
    """One mode's provisioning figures over its batches."""
    samples = (earlier or {}).get("samples_ms", []) + batch["samples_ms"]
    merged = {key: (earlier or {}).get(key, 0) + batch[key]
              for key in ("vms", "confirmed", "bound", "server_flows_added")}
    merged.update(samples_ms=samples, latency_ms=summary(samples),
                  server_flows_per_new_vm=merged["server_flows_added"] / merged["vms"],
                  binding_flows_per_vm_server=batch["binding_flows_per_vm_server"],
                  uptimes=(earlier or {}).get("uptimes", []) + [batch["uptime"]])
    return merged


def _flow_count(bridge: str) -> int:
    from ryu_apps.lab import testbed as lab
    return sum(1 for line in lab.dump_flows(bridge).splitlines() if "cookie=" in line)


def summarise(rounds: List[dict]) -> Dict[str, dict]:
    """Per mode, the median over rounds of each figure."""
    out = {}
    for mode in MODES:
        mine = [r for r in rounds if r["mode"] == mode]
        out[mode] = {
            "mbit_s": statistics.median(r["mbit_s"] for r in mine),
            "vswitchd_us_per_mb": statistics.median(r["vswitchd_us_per_mb"] for r in mine),
            "rtt_p50_ms": statistics.median(r["rtt_ms"]["p50"] for r in mine),
            "rtt_p99_ms": statistics.median(r["rtt_ms"]["p99"] for r in mine),
            "connect_p50_ms": statistics.median(r["connect_ms"]["p50"] for r in mine),
            "connect_p99_ms": statistics.median(r["connect_ms"]["p99"] for r in mine),
            "lost": sum(r["rtt_ms"]["lost"] for r in mine),
            "failed_connects": sum(r["connect_ms"]["failed"] for r in mine)}
    pairs = [(next(r for r in rounds if r["round"] == n and r["mode"] == "stateful"),
              next(r for r in rounds if r["round"] == n and r["mode"] == "stateless"))
             for n in sorted({r["round"] for r in rounds})]
    out["ct"] = {   # each round's two modes ran back to back: their pairs, medians
        "throughput_ratio": statistics.median(
            on["mbit_s"] / off["mbit_s"] for on, off in pairs),
        "vswitchd_cpu_ratio": statistics.median(
            on["vswitchd_us_per_mb"] / off["vswitchd_us_per_mb"] for on, off in pairs),
        "rtt_p50_added_ms": statistics.median(
            on["rtt_ms"]["p50"] - off["rtt_ms"]["p50"] for on, off in pairs),
        "connect_beyond_rtt_added_ms": statistics.median(
            (on["connect_ms"]["p50"] - on["rtt_ms"]["p50"])
            - (off["connect_ms"]["p50"] - off["rtt_ms"]["p50"]) for on, off in pairs),
        "connect_p50_added_ms": statistics.median(
            on["connect_ms"]["p50"] - off["connect_ms"]["p50"] for on, off in pairs)}
    return out


def report_packets(summed: Dict[str, dict]) -> None:
    print("\nper packet and per connection (median over rounds):")
    print(format_table(["mode", "Mbit/s", "vswitchd us/MB", "RTT p50 ms", "RTT p99 ms",
                        "connect p50 ms", "connect p99 ms", "lost", "failed"],
                       [[m, round(f["mbit_s"]), round(f["vswitchd_us_per_mb"]),
                         round(f["rtt_p50_ms"], 3),
                         round(f["rtt_p99_ms"], 3), round(f["connect_p50_ms"], 3),
                         round(f["connect_p99_ms"], 3), f["lost"], f["failed_connects"]]
                        for m, f in summed.items() if m in MODES]))
    ct = summed["ct"]
    print(f"ct, median of each round's pair: throughput x{ct['throughput_ratio']:.2f}, "
          f"vswitchd CPU per MB x{ct['vswitchd_cpu_ratio']:.2f}, "
          f"RTT p50 {ct['rtt_p50_added_ms'] * 1000:+.0f} us, connect p50 "
          f"{ct['connect_p50_added_ms'] * 1000:+.0f} us, of which beyond the RTT's "
          f"{ct['connect_beyond_rtt_added_ms'] * 1000:+.0f} us")


def report_provisioning(figures: Dict[str, dict]) -> None:
    print("\nprovisioning latency on real OVS (first frame -> flows confirmed):")
    print(format_table(["mode", "VMs", "confirmed", "p50 ms", "p90 ms", "max ms",
                        "binding flows/VM", "server flows per new VM"],
                       [[m, f["vms"], f["confirmed"], f["latency_ms"].get("p50"),
                         f["latency_ms"].get("p90"), f["latency_ms"].get("max"),
                         f["binding_flows_per_vm_server"].get("p50"),
                         f["server_flows_per_new_vm"]] for m, f in figures.items()]))


def run_ovs(args) -> dict:
    bed = Bed()
    workdir = Path(tempfile.mkdtemp(prefix="dynprov-ctcost-run-"))
    try:
        start_servers(bed, workdir)
        rounds = packet_rounds(bed, args.rounds, args.seconds, args.connects, workdir)
        summed = summarise(rounds)
        report_packets(summed)
        figures = {"rounds": rounds, "packets": summed}
        if args.new:
            figures["provisioning"] = provisioning(bed, args.new)
            report_provisioning(figures["provisioning"])
        return figures
    finally:
        stop_servers(workdir)
        bed.stop()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["connects"]:   # inside a Mininet host (connect_times)
        connects(argv[1], int(argv[2]), int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per mode")
    parser.add_argument("--seconds", type=float, default=4.0, help="iperf3 seconds per round")
    parser.add_argument("--connects", type=int, default=300, help="TCP connects per round")
    parser.add_argument("--vms", type=int, default=20, help="(engine) VMs already there")
    parser.add_argument("--new", type=int, default=100,
                        help="new VMs measured (engine; real OVS: --new / 2 per mode)")
    parser.add_argument("--engine-only", action="store_true", help="no OVS part")
    parser.add_argument("--quick", action="store_true", help="the smoke test's sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.connects, args.vms, args.new = 1, 1.0, 20, 2, 4
    print_machine()
    print(uptime(), flush=True)
    figures: dict = {"engine": engine_costs(args.vms, args.new)}
    report_engine(figures["engine"], args.vms)
    if not args.engine_only:
        args.new = args.new if args.quick else args.new // 2
        figures.update(run_ovs(args))
    figures["parameters"] = vars(args)
    figures["uptime_end"] = uptime()
    publish(NAME + ("-engine" if args.engine_only else "") + ("-quick" if args.quick else ""),
            figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
