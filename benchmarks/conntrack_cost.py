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

The bed, its libraries and the traffic tools: benchmarks/conntrack_bed.py.
``uptime`` and the CPU time the hypervisor stole are printed with every round.
``--quick``: one round of 1 s, 20 connects, 4 new VMs (the smoke test's sizes).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from benchmarks.common import format_table, print_machine, publish, summary
from benchmarks.conntrack_bed import (DB, MODES, WEB, Bed, connect_times, cpu_times,
                                      library_document, probe_rtt, start_servers,
                                      steal_since, stop_servers, throughput, uptime)

NAME = "conntrack_cost"


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
