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
deciding rule and ``ovs-ofctl dump-flows`` of both servers. Between the first
phase and the reload, ``sweep_moves`` live-migrates VMs in the seed's detection
mode and move shape, checks each move converged with nothing left behind, the
TCP connections ``sweep_held`` opened before the moves must still carry data
(phase 3), and the pairs of the moved VMs are probed again (phase 2). IPv6
seeds (``sweep_ipv6``) probe over IPv6 too; sources seeds (``sweep_sources``) send UDP
from allowed and from spoofed addresses too, judged by what arrives (over IPv6 too, with
``bind_ipv6`` guards, in sources6 seeds: ``sweep_sources6``); bandwidth seeds
(``sweep_bandwidth``) check a limited VM's rate after the first phase.

Run as root from the checkout (it starts Mininet and a controller)::

    .venv/bin/python -m ryu_apps.lab.sweep --seeds 1-40 [--pairs 24] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.sweep_bandwidth import RateCheck
from ryu_apps.lab.sweep_bandwidth import check as check_rates
from ryu_apps.lab.sweep_held import HeldConnections
from ryu_apps.lab.sweep_ipv6 import ipv6_off, ipv6_on
from ryu_apps.lab.sweep_library import SweepCase, VmPlan, generate, id_of, ip6_of, redraw
from ryu_apps.lab.sweep_moves import (MovePlan, MoveReport, Mover, controller_options,
                                      move_targets, moved, plan_moves)
from ryu_apps.lab.sweep_oracle import Endpoint, Oracle
from ryu_apps.lab.sweep_schemes import StrayCheck
from ryu_apps.lab.sweep_schemes import check as check_strays
from ryu_apps.lab.sweep_sources6 import bind_first_seen, still_bound
from ryu_apps.lab.sweep_probes import (PROBE_TIMEOUT, Outcome, Target, add_source_addresses,
                                       confirm, listened_ports, plan_probes, plan_targets,
                                       run_probes, start_listeners, udp_arrivals)

@dataclass
class SeedResult:
    """Every outcome of one seed, its mismatches and where their evidence is."""

    seed: int
    summary: str
    outcomes: List[Outcome] = field(default_factory=list)
    evidence: Optional[Path] = None
    plan: Optional[MovePlan] = None
    moves: List[MoveReport] = field(default_factory=list)
    rates: List[RateCheck] = field(default_factory=list)
    strays: List[StrayCheck] = field(default_factory=list)

    @property
    def mismatches(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.mismatch]

    @property
    def move_problems(self) -> List[str]:
        """Moves that did not converge, or left state behind (each a line)."""
        return [problem for report in self.moves for problem in report.problems]

    @property
    def failed(self) -> bool:
        return bool(self.mismatches or self.move_problems
                    or any(not check.ok for check in self.rates + self.strays))


def endpoints(case: SweepCase) -> List[Endpoint]:
    return [Endpoint(vm.name, vm.template_id, vm.ip, vm.server_key,
                     ip6_of(vm.ip) if case.ipv6 else None) for vm in case.vms]


def write_library(case: SweepCase, directory: Path, split: Optional[bool] = None) -> None:
    """The seed's library in ``directory``: one file, or (``split``, by default every
    other seed) one file per template and a ``defaults`` file."""
    header = f"# conformance sweep, seed {case.seed}\n"
    if not (case.seed % 2 == 0 if split is None else split):
        (directory / "sweep.yaml").write_text(
            header + yaml.safe_dump(case.library, sort_keys=False))
        return
    (directory / "00-defaults.yml").write_text(
        header + yaml.safe_dump({"defaults": {"idle_timeout": 3600}, "templates": []}))
    for index, template in enumerate(case.library["templates"]):
        (directory / f"{index + 1:02d}-{template['name']}.yaml").write_text(
            header + yaml.safe_dump({"templates": [template]}, sort_keys=False))


def run_seed(seed: int, prefix: str, max_pairs: int = 24,
             out_dir: Optional[Path] = None, log=print, reload: bool = True,
             moves: bool = True) -> SeedResult:
    """Generate, start, probe and compare one seed, then (``moves``) live-migrate the
    seed's VMs (``sweep_moves``) and probe their pairs again, then (``reload``) put a
    redrawn library in force with a REST reload and probe again; stops everything it
    started."""
    case = generate(seed)
    first = plan_targets(case, max_pairs, 0)
    plan = plan_moves(case, {t[0] for t in first} | {t[1] for t in first}) if moves else None
    after = moved(case, plan) if plan else case
    workdir = Path(tempfile.mkdtemp(prefix=f"dynprov-sweep-{seed}-"))
    library_dir = workdir / "library"
    library_dir.mkdir()
    write_library(case, library_dir)
    summary = (f"seed {seed}: {len(case.library['templates'])} templates, "
               f"{case.access}x{case.servers} servers, {len(case.vms)} VMs"
               + (f", {case.scheme} with {len(case.strays)} strays" if case.strays else "")
               + (f"; {plan.describe(case)}" if plan else ""))
    log(summary)
    dpid_base = ((os.getpid() + seed) % 4096) << 24
    controller = lab.ControllerProcess(
        templates=library_dir, scheme=case.scheme,
        extra_options=controller_options(plan) if plan else "").start()
    net = None
    probing: Optional[_Probing] = None
    result = SeedResult(seed, summary, plan=plan)
    try:
        net = lab.build_network(controller.of_port, prefix=prefix, access=case.access,
                                servers=case.servers, vms=0, edge=0, dpid_base=dpid_base)
        lab.wait_for_fabric(controller, net)
        hosts = _start_vms(case, net, controller, prefix)
        reloaded = redraw(after) if reload else None
        probing = _Probing(hosts, workdir, [
            first, plan_targets(reloaded, max_pairs, 1) if reloaded else [],
            move_targets(case, after, plan, first) if plan else []])
        result.outcomes += probing.phase(case, 0)
        result.rates = check_rates(case.library, endpoints(case), hosts, probing.avoid)
        result.strays = check_strays(case.strays, case.vms, hosts, controller, prefix)
        mover = _mover(case, after, plan, net, controller, prefix, hosts)
        if mover is not None and plan is not None:
            held = HeldConnections(case, after, plan, hosts, first, probing.avoid, workdir)
            held.start()
            result.moves = mover.run()
            result.outcomes += held.finish()
            result.outcomes += probing.phase(after, 2)
            mover.leftovers("after the move phase's probes")
        if reloaded is not None:
            _reload(controller, reloaded, library_dir)
            result.outcomes += probing.phase(reloaded, 1)
            if mover is not None:
                mover.leftovers("after the reload and its probes")
        if result.failed:
            result.evidence = _evidence(case, after, reloaded, net, prefix, result,
                                        out_dir or workdir)
        _record(result, out_dir or workdir)
        return result
    finally:
        if probing is not None:
            probing.stop()
        if net is not None:
            lab.stop_network(net)
        controller.stop()


def _mover(case: SweepCase, after: SweepCase, plan: Optional[MovePlan], net, controller,
           prefix: str, hosts: Dict[str, object]) -> Optional[Mover]:
    """The seed's mover, or None without moves; in an IPv6 seed a moving VM's IPv6 is off
    while it moves (``sweep_ipv6``), and a ``first_seen`` one's bound IPv6 address must
    still be bound once it converged (``sweep_sources6``)."""
    if plan is None or not plan.moves:
        return None
    mover = Mover(case, plan, net, controller, prefix, hosts)
    if case.ipv6:
        mover.before_move = lambda name: ipv6_off(hosts[name])
        def after_move(vm: VmPlan) -> Optional[str]:
            ipv6_on(hosts[vm.name], vm, after)
            return still_bound(after, vm, controller)

        mover.after_move = after_move
    return mover


def _reload(controller, reloaded: SweepCase, library_dir: Path) -> None:
    """Put ``reloaded``'s library in force (split the other way) with a REST reload."""
    for old in library_dir.iterdir():
        old.unlink()
    write_library(reloaded, library_dir, split=not reloaded.seed % 2 == 0)
    status, answer = controller.rest("POST", "/dynprov/library/reload")
    if status != 200:
        raise RuntimeError(f"seed {reloaded.seed}: reload refused ({status}): {answer}")


class _Probing:
    """One seed's probe phases on running VMs: listeners kept, source ports never reused."""

    def __init__(self, hosts: Dict[str, object], workdir: Path,
                 targets: List[List[Target]]) -> None:
        self.hosts, self.workdir, self.targets = hosts, workdir, targets
        self.avoid: Dict[str, set] = listened_ports(*targets)
        self.served: Dict[str, set] = {}
        self.logs: List[Tuple[str, Path]] = []
        self.listeners: List[subprocess.Popen] = []

    def stop(self) -> None:
        """End every listener this seed started."""
        for process in self.listeners:
            process.kill()
            process.wait()

    def phase(self, case: SweepCase, number: int) -> List[Outcome]:
        _flush_conntrack(case)
        oracle = Oracle(case.library, endpoints(case))
        probes = plan_probes(case, self.targets[number], self.avoid, number)
        self.logs += start_listeners(case, self.hosts, probes, self.workdir, self.served,
                                     number, self.listeners).items()
        add_source_addresses(self.hosts, probes)
        lab.datapath_settled()
        observed = run_probes(case, self.hosts, probes, PROBE_TIMEOUT)
        arrivals = udp_arrivals(self.logs)
        by_name = {vm.name: vm for vm in case.vms}
        outcomes = []
        for (src, dst, probe), seen in zip(probes, observed):
            arrived = None
            if probe.protocol in ("udp", "udp6"):
                ip = ip6_of(by_name[src].ip) if probe.ipv6 else by_name[src].ip
                arrived = (dst, probe.source_ip or ip, probe.source_port, probe.port) in arrivals
                if probe.source_ip is not None:   # one way: no echo is judged
                    seen = arrived
            outcome = Outcome(src, dst, probe, oracle.verdict(src, dst, probe), seen, arrived,
                              number)
            if outcome.mismatch:
                outcome = confirm(case, self.hosts, outcome, self.avoid)
            outcomes.append(outcome)
        return outcomes


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
    if case.ipv6:   # after the first frames: each VM's first one is its IPv4 announcement
        for vm in case.vms:
            ipv6_on(hosts[vm.name], vm, case)
        bind_first_seen(case, hosts, controller)
    for stray in case.strays:   # refused: nothing to wait for
        server = net.get(f"{prefix}s{stray.access}{stray.server}")
        hosts[stray.name] = lab.add_vm(net, server, prefix + stray.name, stray.mac,
                                       f"{stray.ip}/16")
        lab.announce(hosts[stray.name])
    return hosts


def _flush_conntrack(case: SweepCase) -> None:
    """Forget earlier runs' connections in this seed's stateful templates' zones."""
    for template in case.library["templates"]:
        if template["virtual_switch"].get("stateful"):
            subprocess.run(["ovs-appctl", "dpctl/flush-conntrack", f"zone={id_of(template)}"],
                           capture_output=True, check=False)


def _evidence(case: SweepCase, after: SweepCase, reloaded: Optional[SweepCase], net,
              prefix: str, result: SeedResult, out_dir: Path) -> Path:
    """Write the mismatches and move problems, the libraries and the flows of the servers
    involved (where the VMs are now, and where moved ones were) and their access switches
    (now: after the last phase); the file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"sweep-seed-{case.seed}.txt"
    by_name: Dict[str, VmPlan] = {vm.name: vm for vm in after.vms}
    before: Dict[str, VmPlan] = {vm.name: vm for vm in case.vms}
    servers = {by_name[n].server_key for o in result.mismatches for n in (o.src, o.dst)}
    servers |= {vm.server_key for r in result.moves if r.problems
                for vm in (by_name[r.move.vm], before[r.move.vm])}
    parts = [result.summary, "", "mismatches:"]
    for outcome in result.mismatches:
        parts.append("  " + outcome.describe())
        parts += [f"    step: {step}" for step in outcome.verdict.steps]
    parts += ["", "moves that did not converge:"] + [f"  {p}" for p in result.move_problems]
    parts += ["", "bandwidth checks:"] + [f"  {rate.describe()}" for rate in result.rates]
    parts += ["", "strays:"] + [f"  {stray.describe()}" for stray in result.strays]
    parts += ["", "VMs (where they started):"] + [f"  {vm}" for vm in case.vms]
    if after is not case:
        parts += ["", "VMs after the moves:"] + [f"  {vm}" for vm in after.vms]
    for title, phase in (("library:", case), ("library after the reload:", reloaded)):
        if phase is not None:
            parts += ["", title, yaml.safe_dump(phase.library, sort_keys=False)]
    bridges = [f"{prefix}s{a}{s}" for a, s in sorted(servers)]   # the access ports' rules too
    bridges += sorted({f"{prefix}a{a}" for a, _ in servers})
    for name in bridges:
        parts += [f"ovs-ofctl -O OpenFlow13 dump-flows {name}:", lab.dump_flows(name)]
    path.write_text("\n".join(parts))
    return path


def _record(result: SeedResult, out_dir: Path) -> None:
    """Every probe of the seed and what it did, as JSON lines (for re-checking offline)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"src": o.src, "dst": o.dst, "protocol": o.probe.protocol,
                         "port": o.probe.port, "source_port": o.probe.source_port,
                         "source_ip": o.probe.source_ip,
                         "observed": o.observed, "arrived": o.arrived,
                         "expected": o.verdict.passes, "reason": o.verdict.reason,
                         "phase": o.phase, "retried": o.retried})
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
    parser.add_argument("--no-reload", action="store_true",
                        help="probe the first library only (no reload phase)")
    parser.add_argument("--no-moves", action="store_true",
                        help="no move phase (and no OVSDB watching)")
    args = parser.parse_args(argv)
    failed = 0
    started = time.monotonic()
    for seed in parse_seeds(args.seeds):
        begun = time.monotonic()
        try:
            result = run_seed(seed, args.prefix, args.pairs, args.out,
                              reload=not args.no_reload, moves=not args.no_moves)
        except Exception as error:   # noqa: BLE001 (one seed's failure ends only that seed)
            print(f"  ERROR seed {seed} did not run to its end: {error!r}", flush=True)
            failed += 1
            continue
        works = sum(1 for o in result.outcomes if o.verdict.passes)
        retried = sum(1 for o in result.outcomes if o.retried)
        settled = ", ".join(f"{r.move.vm} {r.settle_s:.2f} s" if r.settle_s is not None
                            else f"{r.move.vm} not settled"
                            for r in result.moves)
        print(f"  {len(result.outcomes)} probes ({works} expected to work, {retried} agreed "
              f"only when probed again), {len(result.mismatches)} mismatches, "
              f"{time.monotonic() - begun:.1f} s"
              + (f"; moves settled: {settled}" if settled else ""), flush=True)
        for check in result.rates + result.strays:
            print("  " + check.describe(), flush=True)
        for outcome in result.mismatches:
            print("  MISMATCH " + outcome.describe(), flush=True)
        for problem in result.move_problems:
            print("  MOVE " + problem, flush=True)
        if result.evidence:
            print(f"  evidence: {result.evidence}", flush=True)
            failed += 1
    print(f"{failed} of {len(parse_seeds(args.seeds))} seeds with mismatches or errors "
          f"({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
