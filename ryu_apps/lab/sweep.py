"""The conformance sweep: generated libraries and topologies on real OVS, probed.

For each seed: a library and VMs from ``sweep_library.generate``, a controller
that loads that library from a temporary directory, a ``datacenter`` topology of
the seed's size with no default VMs, the VMs plugged in and announced, then a
sample of ordered VM pairs probed (ICMP echo; an ARP request, broadcast, and its
reply; TCP and UDP to ports the pair's rules name and to one they do not, each
from its own source port) and every outcome compared with ``sweep_oracle``.
Static neighbour entries keep the kernels' ARP out of the IPv4 probes (the ARP
probe sends its own request). A probe that disagrees with
the oracle is probed again alone, with a longer timeout, before it counts as a
mismatch; each mismatch is written with the seed, the pair, the oracle's
deciding rule and ``ovs-ofctl dump-flows`` of both servers.

Run as root from the checkout (it starts Mininet and a controller)::

    .venv/bin/python -m ryu_apps.lab.sweep --seeds 1-20 [--pairs 24] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.sweep_library import SERVICE_PORTS, SweepCase, VmPlan, generate, id_of
from ryu_apps.lab.sweep_oracle import Endpoint, Oracle, Probe, Verdict, port_range

#: Ports no generated rule names as a single port (ranges may still cover them).
SPARE_PORTS = (7, 1999, 2999, 31337, 61000)
PROBE_TIMEOUT = 2.0
CONFIRM_TIMEOUT = 4.0


@dataclass(frozen=True)
class Outcome:
    """One probe: what the oracle expects and what the network did."""

    src: str
    dst: str
    probe: Probe
    verdict: Verdict
    observed: bool
    arrived: Optional[bool] = None          # UDP: the request reached the listener

    @property
    def mismatch(self) -> bool:
        if self.observed != self.verdict.passes:
            return True
        return self.arrived is not None and self.arrived != self.verdict.forward

    def describe(self) -> str:
        seen = "works" if self.observed else "blocked"
        wanted = "works" if self.verdict.passes else "blocked"
        extra = "" if self.arrived is None else (
            f"; request arrived: {self.arrived} (expected {self.verdict.forward})")
        return (f"{self.src} -> {self.dst} {self.probe}: {seen}, expected {wanted} "
                f"({self.verdict.reason}){extra}")


@dataclass
class SeedResult:
    """Every outcome of one seed, its mismatches and where their evidence is."""

    seed: int
    summary: str
    outcomes: List[Outcome] = field(default_factory=list)
    evidence: Optional[Path] = None

    @property
    def mismatches(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.mismatch]


def endpoints(case: SweepCase) -> List[Endpoint]:
    return [Endpoint(vm.name, vm.template_id, vm.ip, vm.server_key) for vm in case.vms]


def rule_ports(template: dict, protocol: str) -> List[int]:
    """One port per single port or range the template's ``protocol`` rules name."""
    ports: List[int] = []
    for side in ("virtual_switch", "access_port"):
        for rule in template[side].get("acl") or ():
            if rule.get("protocol") != protocol or "dst_port" not in rule:
                continue
            low, high = port_range(rule["dst_port"])
            ports.append(low if low == high else min(low + 1, high))
    return sorted(set(ports))


def plan_probes(case: SweepCase, max_pairs: int) -> List[Tuple[str, str, Probe]]:
    """The seed's probes: (source VM, destination VM, probe).

    Source ports are unique per source VM and never a port that VM listens on.
    """
    rng = random.Random(case.seed * 7919 + 1)
    names = [vm.name for vm in case.vms]
    pairs = [(a, b) for a in names for b in names if a != b]
    if len(pairs) > max_pairs:
        pairs = sorted(rng.sample(pairs, max_pairs))
    by_name = {vm.name: vm for vm in case.vms}
    wanted: List[Tuple[str, str, str, Optional[int]]] = []
    for src, dst in pairs:
        wanted += [(src, dst, "icmp", None), (src, dst, "arp", None)]
        templates = [case.template(by_name[n].template_id) for n in (src, dst)]
        for protocol, count in (("tcp", 2), ("udp", 1)):
            named = sorted({p for t in templates for p in rule_ports(t, protocol)})
            chosen = rng.sample(named, min(count, len(named))) + [rng.choice(SPARE_PORTS)]
            wanted += [(src, dst, protocol, port) for port in sorted(set(chosen))]
    listened: Dict[str, set] = {n: set() for n in names}
    for _, dst, _, port in wanted:
        listened[dst].add(port)
    taken: Dict[str, set] = {n: set(listened[n]) for n in names}
    next_port = {n: rng.randint(33000, 58000) for n in names}

    def source_port(src: str) -> int:
        low = [p for p in SERVICE_PORTS if p not in taken[src]]
        if low and rng.random() < 0.2:
            port = rng.choice(low)
        else:
            while next_port[src] in taken[src]:
                next_port[src] += 1
            port = next_port[src]
        taken[src].add(port)
        return port

    return [(src, dst, Probe(protocol) if port is None
             else Probe(protocol, port, source_port(src)))
            for src, dst, protocol, port in wanted]


def _vmtool() -> str:
    return (f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} "
            "-m ryu_apps.lab.vmtools.sweep_probe")


def _target(case: SweepCase, dst: str, probe: Probe) -> str:
    ip = next(vm.ip for vm in case.vms if vm.name == dst)
    if probe.protocol in ("icmp", "arp"):
        return f"{probe.protocol}:{ip}"
    return f"{probe.protocol}:{ip}:{probe.port}:{probe.source_port}"


def _run_probes(case: SweepCase, hosts: Dict[str, object],
                probes: Sequence[Tuple[str, str, Probe]], timeout: float) -> List[bool]:
    """Every probe, each source's at once and all sources in parallel; open or not."""
    by_source: Dict[str, List[int]] = {}
    for index, (src, _, _) in enumerate(probes):
        by_source.setdefault(src, []).append(index)
    running = []
    for src, indexes in by_source.items():
        targets = [_target(case, probes[i][1], probes[i][2]) for i in indexes]
        intf = hosts[src].defaultIntf()   # type: ignore[attr-defined]
        command = (f"{_vmtool()} probe --timeout {timeout} --interface {intf} "
                   f"{' '.join(targets)}")
        running.append((indexes, targets, hosts[src].popen(   # type: ignore[attr-defined]
            command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    results: List[bool] = [False] * len(probes)
    for indexes, targets, process in running:
        out, err = process.communicate(timeout=timeout * 4 + 30)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        errors = [line for line in lines if "error" in line]
        if [line.get("target") for line in lines] != targets or errors:
            raise RuntimeError(f"sweep probes failed: {errors or out + err}")
        for index, line in zip(indexes, lines):
            results[index] = bool(line["open"])
    return results


def _udp_arrivals(logs: Dict[str, Path]) -> set:
    arrived = set()
    for name, path in logs.items():
        if path.exists():
            for line in path.read_text().splitlines():
                _, ip, source, port = line.split()
                arrived.add((name, ip, int(source), int(port)))
    return arrived


def write_library(case: SweepCase, directory: Path) -> None:
    """The seed's library in ``directory``: one file, or (every other seed) one file per
    template and a ``defaults`` file."""
    header = f"# conformance sweep, seed {case.seed}\n"
    if case.seed % 2:
        (directory / "sweep.yaml").write_text(
            header + yaml.safe_dump(case.library, sort_keys=False))
        return
    (directory / "00-defaults.yml").write_text(
        header + yaml.safe_dump({"defaults": {"idle_timeout": 3600}, "templates": []}))
    for index, template in enumerate(case.library["templates"]):
        (directory / f"{index + 1:02d}-{template['name']}.yaml").write_text(
            header + yaml.safe_dump({"templates": [template]}, sort_keys=False))


def run_seed(seed: int, prefix: str, max_pairs: int = 24,
             out_dir: Optional[Path] = None, log=print) -> SeedResult:
    """Generate, start, probe and compare one seed; stops everything it started."""
    case = generate(seed)
    workdir = Path(tempfile.mkdtemp(prefix=f"dynprov-sweep-{seed}-"))
    library_dir = workdir / "library"
    library_dir.mkdir()
    write_library(case, library_dir)
    summary = (f"seed {seed}: {len(case.library['templates'])} templates, "
               f"{case.access}x{case.servers} servers, {len(case.vms)} VMs")
    log(summary)
    dpid_base = ((os.getpid() + seed) % 4096) << 24
    controller = lab.ControllerProcess(templates=library_dir).start()
    net = None
    try:
        net = lab.build_network(controller.of_port, prefix=prefix, access=case.access,
                                servers=case.servers, vms=0, edge=0, dpid_base=dpid_base)
        lab.wait_for_fabric(controller, net)
        hosts = _start_vms(case, net, controller, prefix)
        _flush_conntrack(case)
        oracle = Oracle(case.library, endpoints(case))
        probes = plan_probes(case, max_pairs)
        logs = _start_listeners(case, hosts, probes, workdir)
        lab.datapath_settled()
        observed = _run_probes(case, hosts, probes, PROBE_TIMEOUT)
        arrivals = _udp_arrivals(logs)
        result = SeedResult(seed, summary)
        by_name = {vm.name: vm for vm in case.vms}
        for (src, dst, probe), seen in zip(probes, observed):
            verdict = oracle.verdict(src, dst, probe)
            arrived = None
            if probe.protocol == "udp":
                arrived = (dst, by_name[src].ip, probe.source_port, probe.port) in arrivals
            outcome = Outcome(src, dst, probe, verdict, seen, arrived)
            if outcome.mismatch:
                outcome = _confirm(case, hosts, outcome)
            result.outcomes.append(outcome)
        if result.mismatches:
            result.evidence = _evidence(case, net, prefix, result, out_dir or workdir)
        _record(result, out_dir or workdir)
        return result
    finally:
        if net is not None:
            lab.stop_network(net)
        controller.stop()


def _start_vms(case: SweepCase, net, controller, prefix: str) -> Dict[str, object]:
    hosts: Dict[str, object] = {}
    for vm in case.vms:
        server = net.get(f"{prefix}s{vm.access}{vm.server}")
        hosts[vm.name] = lab.add_vm(net, server, prefix + vm.name, vm.mac, f"{vm.ip}/16")
    for vm in case.vms:
        host = hosts[vm.name]
        intf = host.defaultIntf()   # type: ignore[attr-defined]
        neighbours = "; ".join(
            f"ip neigh replace {other.ip} lladdr {other.mac} dev {intf} nud permanent"
            for other in case.vms if other is not vm)
        host.cmd(neighbours)   # type: ignore[attr-defined]
    for vm in case.vms:
        lab.announce(hosts[vm.name])
    if not controller.wait_for_log("provisioned VM", timeout=20, count=len(case.vms)):
        raise RuntimeError(f"seed {case.seed}: not every VM was provisioned:\n"
                           + controller.log()[-3000:])
    return hosts


def _flush_conntrack(case: SweepCase) -> None:
    """Forget earlier runs' connections in this seed's stateful templates' zones."""
    for template in case.library["templates"]:
        if template["virtual_switch"].get("stateful"):
            subprocess.run(["ovs-appctl", "dpctl/flush-conntrack", f"zone={id_of(template)}"],
                           capture_output=True, check=False)


def _start_listeners(case: SweepCase, hosts: Dict[str, object],
                     probes: Sequence[Tuple[str, str, Probe]], workdir: Path) -> Dict[str, Path]:
    ports: Dict[str, Dict[str, set]] = {vm.name: {"tcp": set(), "udp": set()} for vm in case.vms}
    for _, dst, probe in probes:
        if probe.port is not None:
            ports[dst][probe.protocol].add(probe.port)
    logs: Dict[str, Path] = {}
    for name, wanted in ports.items():
        if not wanted["tcp"] and not wanted["udp"]:
            continue
        logs[name] = workdir / f"udp-{name}.log"
        host = hosts[name]
        host.cmd(f"{_vmtool()} listen --tcp {' '.join(map(str, sorted(wanted['tcp'])))} "   # type: ignore[attr-defined]
                 f"--udp {' '.join(map(str, sorted(wanted['udp'])))} --log {logs[name]} "
                 f"> {workdir}/listen-{name}.out 2>&1 &")
    deadline = time.monotonic() + 10
    for name in logs:
        out = workdir / f"listen-{name}.out"
        while not (out.exists() and "listening" in out.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"seed {case.seed}: listener on {name} did not start: "
                                   + (out.read_text() if out.exists() else "no output"))
            time.sleep(0.05)
    return logs


def _confirm(case: SweepCase, hosts: Dict[str, object], outcome: Outcome) -> Outcome:
    """Probe a disagreeing outcome again, alone and slower, with a new source port."""
    probe = outcome.probe
    if probe.source_port is not None:
        probe = Probe(probe.protocol, probe.port, probe.source_port + 20000
                      if probe.source_port < 40000 else probe.source_port - 20000)
    seen = _run_probes(case, hosts, [(outcome.src, outcome.dst, probe)], CONFIRM_TIMEOUT)[0]
    if seen == outcome.verdict.passes and outcome.arrived in (None, outcome.verdict.forward):
        return Outcome(outcome.src, outcome.dst, outcome.probe, outcome.verdict,
                       outcome.verdict.passes, outcome.arrived)   # a slow first try
    return outcome


def _evidence(case: SweepCase, net, prefix: str, result: SeedResult, out_dir: Path) -> Path:
    """Write the mismatches, the library and both servers' flows; the file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"sweep-seed-{case.seed}.txt"
    by_name: Dict[str, VmPlan] = {vm.name: vm for vm in case.vms}
    servers = sorted({by_name[n].server_key for o in result.mismatches for n in (o.src, o.dst)})
    parts = [result.summary, "", "mismatches:"]
    for outcome in result.mismatches:
        parts.append("  " + outcome.describe())
        parts += [f"    step: {step}" for step in outcome.verdict.steps]
    parts += ["", "VMs:"] + [f"  {vm}" for vm in case.vms]
    parts += ["", "library:", yaml.safe_dump(case.library, sort_keys=False)]
    for access, server in servers:
        name = f"{prefix}s{access}{server}"
        parts += [f"ovs-ofctl -O OpenFlow13 dump-flows {name}:", lab.dump_flows(name)]
    path.write_text("\n".join(parts))
    return path


def _record(result: SeedResult, out_dir: Path) -> None:
    """Every probe of the seed and what it did, as JSON lines (for re-checking offline)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"src": o.src, "dst": o.dst, "protocol": o.probe.protocol,
                         "port": o.probe.port, "source_port": o.probe.source_port,
                         "observed": o.observed, "arrived": o.arrived,
                         "expected": o.verdict.passes, "reason": o.verdict.reason})
             for o in result.outcomes]
    (out_dir / f"sweep-seed-{result.seed}.jsonl").write_text("\n".join(lines) + "\n")


def parse_seeds(text: str) -> List[int]:
    """``1-20`` or ``3,7,9-11`` -> the seeds."""
    seeds: List[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-5", help="e.g. 1-20 or 3,7,9-11")
    parser.add_argument("--pairs", type=int, default=24, help="VM pairs probed per seed")
    parser.add_argument("--out", type=Path, default=Path("/tmp/dynprov-sweep"),
                        help="where each mismatching seed's evidence is written")
    parser.add_argument("--prefix", default=f"w{os.getpid() % 1000:03d}")
    args = parser.parse_args(argv)
    failed = 0
    started = time.monotonic()
    for seed in parse_seeds(args.seeds):
        begun = time.monotonic()
        result = run_seed(seed, args.prefix, args.pairs, args.out)
        works = sum(1 for o in result.outcomes if o.verdict.passes)
        print(f"  {len(result.outcomes)} probes ({works} expected to work), "
              f"{len(result.mismatches)} mismatches, "
              f"{time.monotonic() - begun:.1f} s", flush=True)
        for outcome in result.mismatches:
            print("  MISMATCH " + outcome.describe(), flush=True)
        if result.evidence:
            print(f"  evidence: {result.evidence}", flush=True)
            failed += 1
    print(f"{failed} of {len(parse_seeds(args.seeds))} seeds with mismatches "
          f"({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
