"""The conformance sweep's probes: which to send, listeners for them, sending them.

``plan_probes`` picks, for a sample of ordered VM pairs, an ICMP echo, an ARP
request and TCP and UDP probes to ports the pair's rules name and to one they do
not, each from a source port of its own (in IPv6 seeds also an ICMPv6 echo, TCP
to one such port and UDP to one more over IPv6; in sources seeds UDP from other
addresses, ``sweep_sources``, and in sources6 seeds IPv6 UDP from other addresses,
``sweep_sources6``, judged by arrival alone); ``start_listeners`` serves those ports
in the destination VMs (``vmtools.sweep_probe listen``); ``run_probes`` sends
every source's probes at once, all sources in parallel; ``confirm`` probes a
disagreement with the oracle again, alone and slower, before it counts.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.sweep_library import SERVICE_PORTS, SweepCase, ip6_of
from ryu_apps.lab.sweep_oracle import Endpoint, Oracle, Probe, Verdict, port_range
from ryu_apps.lab.sweep_sources import source_address

#: Ports no generated rule names as a single port (ranges may still cover them).
SPARE_PORTS = (7, 1999, 2999, 31337, 61000)
PROBE_TIMEOUT = 2.0
CONFIRM_TIMEOUT = 4.0
#: How a phase's outcomes are named: 0 the first library, 1 after the reload, 2 after
#: the moves (which run between 0 and 1), 3 a connection held open across the moves.
PHASES = {0: "", 1: " after the reload", 2: " after the moves", 3: " held across the moves"}


@dataclass(frozen=True)
class Outcome:
    """One probe: what the oracle expects and what the network did."""

    src: str
    dst: str
    probe: Probe
    verdict: Verdict
    observed: bool
    arrived: Optional[bool] = None          # UDP: the request reached the listener
    phase: int = 0                          # a key of PHASES
    retried: bool = False                   # agreed only when probed again, slower

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
        when = PHASES.get(self.phase, f" in phase {self.phase}")
        return (f"{self.src} -> {self.dst} {self.probe}{when}: {seen}, expected {wanted} "
                f"({self.verdict.reason}){extra}")


def rule_ports(template: dict, protocol: str) -> List[int]:
    """The ports the template's ``protocol`` rules name: a single port, or both ends of a
    range (where an off-by-one would show)."""
    ports: List[int] = []
    for side in ("virtual_switch", "access_port"):
        for rule in template[side].get("acl") or ():
            if rule.get("protocol") != protocol or "dst_port" not in rule:
                continue
            ports.extend(port_range(rule["dst_port"]))
    return sorted(set(ports))


Target = Tuple[str, str, str, Optional[int]]   # source VM, destination VM, protocol, port


def plan_targets(case: SweepCase, max_pairs: int, phase: int = 0) -> List[Target]:
    """What a phase probes: for a sample of ordered VM pairs, ICMP, ARP, and TCP and UDP
    to ports the pair's rules name and to one they do not."""
    rng = random.Random(case.seed * 7919 + 1 + phase)
    names = [vm.name for vm in case.vms]
    pairs = [(a, b) for a in names for b in names if a != b]
    if len(pairs) > max_pairs:
        pairs = sorted(rng.sample(pairs, max_pairs))
    by_name = {vm.name: vm for vm in case.vms}
    wanted: List[Target] = []
    for src, dst in pairs:
        wanted += [(src, dst, "icmp", None), (src, dst, "arp", None)]
        templates = [case.template(by_name[n].template_id) for n in (src, dst)]
        for protocol, count in (("tcp", 2), ("udp", 1)):
            named = sorted({p for t in templates for p in rule_ports(t, protocol)})
            chosen = rng.sample(named, min(count, len(named))) + [rng.choice(SPARE_PORTS)]
            wanted += [(src, dst, protocol, port) for port in sorted(set(chosen))]
        if case.ipv6:
            wanted += _ipv6_targets(random.Random(f"{case.seed} {phase} {src} {dst}"),
                                    src, dst, templates)
        if case.sources and phase != 1:   # not after a reload: a new guard binds first
            wanted += _source_targets(random.Random(f"{case.seed} {phase} {src} {dst} from"),
                                      case, src, dst, templates)
        if case.sources6 and phase != 1:
            wanted += _source_targets(random.Random(f"{case.seed} {phase} {src} {dst} from6"),
                                      case, src, dst, templates, ipv6=True)
    return wanted


def _source_targets(rng: random.Random, case: SweepCase, src: str, dst: str,
                    templates: List[dict], ipv6: bool = False) -> List[Target]:
    """A sources seed's UDP from other addresses, for some pairs: from ``outside`` every
    allowed prefix, and from ``inside`` the source's (``sweep_sources``; ``ipv6``: over
    IPv6, ``sweep_sources6``); to a port the rules let the pair's own addresses reach
    where there is one (then the source address decides), else, now and then, to any."""
    named = sorted({p for t in templates for p in rule_ports(t, "udp")} | set(SPARE_PORTS))
    library = case.library if not ipv6 else {"templates": [   # the rules alone
        dict(t, virtual_switch={k: v for k, v in t["virtual_switch"].items()
                                if k != "bind_ipv6"}) for t in case.library["templates"]]}
    oracle = Oracle(library, [Endpoint(vm.name, vm.template_id, vm.ip, vm.server_key,
                                       ip6_of(vm.ip)) for vm in case.vms])
    protocol = "udp6" if ipv6 else "udp"
    open_ports = [p for p in named
                  if oracle.verdict(src, dst, Probe(protocol, p, 40000)).forward]
    if open_ports:
        port = rng.choice(open_ports)
    elif rng.random() < 0.25:
        port = rng.choice(named)
    else:
        return []
    suffix = "6" if ipv6 else ""
    kinds = [f"outside{suffix}"] + ([f"inside{suffix}"]
                                    if source_address(case, src, f"inside{suffix}") else [])
    return [(src, dst, f"{protocol}@{kind}", port) for kind in kinds]


def _ipv6_targets(rng: random.Random, src: str, dst: str, templates: List[dict]) -> List[Target]:
    """An IPv6 seed's probes of one pair: ICMPv6 echo, TCP to a port the rules name or
    not, UDP likewise (a random draw of its own, so the IPv4 probes stay the same)."""
    wanted: List[Target] = [(src, dst, "icmp6", None)]
    for protocol in ("tcp", "udp"):
        named = sorted({p for t in templates for p in rule_ports(t, protocol)})
        port = rng.choice(named) if named and rng.random() < 0.7 else rng.choice(SPARE_PORTS)
        wanted.append((src, dst, protocol + "6", port))
    return wanted


def listened_ports(*phases: List[Target]) -> Dict[str, set]:
    """The ports each destination VM serves in any of ``phases``."""
    listened: Dict[str, set] = {}
    for targets in phases:
        for _, dst, _, port in targets:
            if port is not None:
                listened.setdefault(dst, set()).add(port)
    return listened


def plan_probes(case: SweepCase, targets: List[Target], avoid: Dict[str, set],
                phase: int = 0) -> List[Tuple[str, str, Probe]]:
    """``targets`` with a source port each: unique per source VM, never in ``avoid``
    (every port the VM serves in any phase, every source port it used; updated here:
    a port a client used may stay held, in LAST_ACK say, and refuse a listener)."""
    rng = random.Random(case.seed * 104729 + 3 + phase)
    next_port: Dict[str, int] = {}

    def source_port(src: str) -> int:
        taken = avoid.setdefault(src, set())
        low = [p for p in SERVICE_PORTS if p not in taken]
        if low and rng.random() < 0.2:
            port = rng.choice(low)
        else:
            port = next_port.get(src) or rng.randint(33000, 58000)
            while port in taken:
                port += 1
            next_port[src] = port + 1
        taken.add(port)
        return port

    probes = []
    for src, dst, protocol, port in targets:
        protocol, _, kind = protocol.partition("@")
        address = source_address(case, src, kind) if kind else None
        if kind and address is None:   # a move phase's reversed pair: nothing allowed
            continue
        probes.append((src, dst, Probe(protocol) if port is None
                       else Probe(protocol, port, source_port(src), address)))
    return probes


def add_source_addresses(hosts: Dict[str, object],
                         probes: Sequence[Tuple[str, str, Probe]]) -> None:
    """Give each source VM the other addresses its probes send from (``/32``s or, with
    no duplicate address detection, ``/128``s beside its own; again after a move, which
    may give it a new interface). An IPv6 one is deprecated (``preferred_lft 0``): Linux
    caps source selection's longest match at an address's prefix length, so a /128
    would tie with the VM's own /48 and could become the source of its other probes."""
    for src, _, probe in probes:
        if probe.source_ip is not None:
            host = hosts[src]
            intf = str(host.defaultIntf())   # type: ignore[attr-defined]
            if probe.ipv6:
                host.cmd("ip", "-6", "addr", "replace",   # type: ignore[attr-defined]
                         f"{probe.source_ip}/128", "dev", intf, "nodad", "preferred_lft", "0")
            else:
                host.cmd("ip", "addr", "replace", f"{probe.source_ip}/32",   # type: ignore[attr-defined]
                         "dev", intf)


def target(case: SweepCase, dst: str, probe: Probe) -> str:
    ip = next(vm.ip for vm in case.vms if vm.name == dst)
    if probe.ipv6:
        ip = ip6_of(ip)
    if probe.protocol in ("icmp", "arp", "icmp6"):
        return f"{probe.protocol}:{ip}"
    bind = f"@{probe.source_ip}" if probe.source_ip else ""
    return f"{probe.protocol}:{ip}:{probe.port}:{probe.source_port}{bind}"


def run_probes(case: SweepCase, hosts: Dict[str, object],
                probes: Sequence[Tuple[str, str, Probe]], timeout: float) -> List[bool]:
    """Every probe, each source's at once and all sources in parallel; open or not."""
    by_source: Dict[str, List[int]] = {}
    for index, (src, _, _) in enumerate(probes):
        by_source.setdefault(src, []).append(index)
    running = []
    for src, indexes in by_source.items():
        targets = [target(case, probes[i][1], probes[i][2]) for i in indexes]
        intf = hosts[src].defaultIntf()   # type: ignore[attr-defined]
        argv = [sys.executable, "-m", "ryu_apps.lab.vmtools.sweep_probe", "probe",
                "--timeout", str(timeout), "--interface", str(intf), *targets]
        running.append((indexes, targets, hosts[src].popen(   # type: ignore[attr-defined]
            argv, env=dict(os.environ, PYTHONPATH=str(lab.REPO_ROOT)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
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


def udp_arrivals(logs: Sequence[Tuple[str, Path]]) -> set:
    """(VM, source IP, source port, port) of every datagram the listeners logged."""
    arrived = set()
    for name, path in logs:
        if path.exists():
            for line in path.read_text().splitlines():
                _, ip, source, port = line.split()
                arrived.add((name, ip, int(source), int(port)))
    return arrived


def start_listeners(case: SweepCase, hosts: Dict[str, object],
                    probes: Sequence[Tuple[str, str, Probe]], workdir: Path,
                    served: Dict[str, set], phase: int = 0,
                    started: Optional[List[subprocess.Popen]] = None) -> Dict[str, Path]:
    """Listeners for the probes' ports that ``served`` ((protocol, port) per VM, updated)
    lacks; each new listener's UDP log by VM. Their processes go into ``started``: the
    caller ends them (a listener never ends by itself, nor with its VM)."""
    ports: Dict[str, Dict[str, set]] = {vm.name: {"tcp": set(), "udp": set()} for vm in case.vms}
    for _, dst, probe in probes:
        protocol = probe.protocol.rstrip("6")    # a listener serves both families
        if probe.port is not None and (protocol, probe.port) not in served.get(dst, ()):
            ports[dst][protocol].add(probe.port)
            served.setdefault(dst, set()).add((protocol, probe.port))
    logs: Dict[str, Path] = {}
    for name, wanted in ports.items():
        if not wanted["tcp"] and not wanted["udp"]:
            continue
        logs[name] = workdir / f"udp-{name}-{phase}.log"
        argv = [sys.executable, "-m", "ryu_apps.lab.vmtools.sweep_probe", "listen",
                "--tcp", *map(str, sorted(wanted["tcp"])),
                "--udp", *map(str, sorted(wanted["udp"])), "--log", str(logs[name]),
                *(["--ipv6"] if case.ipv6 else [])]
        with open(workdir / f"listen-{name}-{phase}.out", "w") as output:
            process = hosts[name].popen(   # type: ignore[attr-defined]
                argv, env=dict(os.environ, PYTHONPATH=str(lab.REPO_ROOT)), stdout=output,
                stderr=subprocess.STDOUT)
        if started is not None:
            started.append(process)
    deadline = time.monotonic() + 10
    for name in logs:
        out = workdir / f"listen-{name}-{phase}.out"
        while not (out.exists() and "listening" in out.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"seed {case.seed}: listener on {name} did not start: "
                                   + (out.read_text() if out.exists() else "no output"))
            time.sleep(0.05)
    return logs


def confirm(case: SweepCase, hosts: Dict[str, object], outcome: Outcome,
            avoid: Dict[str, set]) -> Outcome:
    """Probe a disagreeing outcome again, alone and slower, from a new source port (not
    in ``avoid``, updated). Only a probe that should have worked gets the second try:
    slowness blocks, it never opens, so traffic that passed where the oracle says it
    must not is a mismatch even if it stops."""
    if not outcome.verdict.passes or outcome.arrived not in (None, outcome.verdict.forward):
        return outcome
    if outcome.probe.source_ip is not None:   # one way: its sender tried for the whole timeout
        return outcome
    probe = outcome.probe
    if probe.source_port is not None:
        taken = avoid.setdefault(outcome.src, set())
        port = 59000
        while port in taken:
            port += 1
        taken.add(port)
        probe = Probe(probe.protocol, probe.port, port)
    seen = run_probes(case, hosts, [(outcome.src, outcome.dst, probe)], CONFIRM_TIMEOUT)[0]
    # a slow first try (a loaded machine): the probe agrees when given more time
    if seen == outcome.verdict.passes and outcome.arrived in (None, outcome.verdict.forward):
        return Outcome(outcome.src, outcome.dst, outcome.probe, outcome.verdict,
                       outcome.verdict.passes, outcome.arrived, outcome.phase, True)
    return outcome
