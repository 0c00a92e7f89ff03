"""The conformance sweep's move phase: what each seed moves, how, and where it ends up.

``plan_moves`` draws from the seed (``random.Random``, nothing else random) a
detection mode (``ovsdb``: the controller watches the servers' OVSDB and the
destination port carries ``attached-mac``; ``notice``: no OVSDB, a
``migrating --server S`` notice over REST as the destination port appears;
``packets``: neither), a move shape (``qemu``: hypervisor-style RARPs, ``garp``:
one gratuitous ARP, ``none``) and 1-3 moves of distinct VMs, alternating
between another server behind the same access switch and one behind another
access switch where the topology has them; in some seeds with room for a third
move, the first VM moves back where it started. ``Mover.run`` moves the VMs one at a
time with ``migration.live_migrate`` (destination port first, interface
swapped, then the announcements) and waits for each move to converge
(``converged``): the binding in ``GET /dynprov/bindings/{mac}`` active at the
new server and port, and no flow whose cookie names the VM's binding (old or
new; kind BINDING or MIGRATION) on the switches that left the VM's path (the
source server and, across access switches, the source's access switch: the
root fabric switch stays on every path, docs/architecture.md "Transit").

Every move is expected to converge by itself: with packets only and no
announcement, the old port going away starts the controller's search, which asks
for the VM's address (docs/migration.md, "Detection modes"), and every VM of the
sweep has sent its address in its first frame (its gratuitous ARP).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Set, Tuple

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.migration import live_migrate
from ryu_apps.lab.sweep_library import SweepCase, VmPlan
from ryu_apps.lab.sweep_oracle import Endpoint, Oracle
from ryu_apps.lab.sweep_probes import Target

MODES = ("ovsdb", "notice", "packets")
SHAPES = ("qemu", "garp", "none")
LOCAL_OVSDB = "unix:/var/run/openvswitch/db.sock"
#: Destination port created (and noticed) to switchover, as benchmarks/migration.py.
PRECOPY_S = 0.2
#: How long after the switchover a move may take to converge: 20 x the worst of 177
#: moves measured (0.17 s; median 0.06 s, about the first check's own delay:
#: seeds 1-40 at 23:27-23:34 UTC and 1-60 at 23:48-23:59 UTC on 2026-12-04, load
#: 0.8-2.9, the sweep alone in the shared lock). The factor covers OVS revalidation
#: rounds of up to 0.5 s after a barrier on this machine (docs/migration.md,
#: "Notifications") and a controller slowed by a busy CPU.
SETTLE_BOUND_S = 3.5
#: Kinds of cookie whose owner id is the VM's binding (docs/architecture.md).
BINDING_KINDS = (CookieKind.BINDING, CookieKind.MIGRATION)


@dataclass(frozen=True)
class Move:
    """One VM to another server: its name, the destination (access, server)."""

    vm: str
    access: int
    server: int
    cross: bool                        # behind another access switch


@dataclass(frozen=True)
class MovePlan:
    """A seed's detection mode, move shape and moves (none: a one-server topology)."""

    mode: str
    shape: str
    moves: Tuple[Move, ...]

    def describe(self, case: SweepCase) -> str:
        where = {vm.name: vm.server_key for vm in case.vms}
        parts = []
        for m in self.moves:
            parts.append(f"{m.vm} s{where[m.vm][0]}{where[m.vm][1]}->s{m.access}{m.server}"
                         + (" (other access)" if m.cross else ""))
            where[m.vm] = (m.access, m.server)
        return f"moves {self.mode}/{self.shape}: {', '.join(parts) or 'none (one server)'}"


def plan_moves(case: SweepCase, candidates: Optional[Set[str]] = None) -> MovePlan:
    """The seed's mode, shape and moves; moved VMs come from ``candidates`` (the VMs the
    first phase probes) when it names any."""
    rng = random.Random(case.seed * 6007 + 13)
    mode, shape = rng.choice(MODES), rng.choice(SHAPES)
    servers = [(a, s) for a in range(1, case.access + 1) for s in range(1, case.servers + 1)]
    names = [vm.name for vm in case.vms if not candidates or vm.name in candidates]
    rng.shuffle(names)
    kinds = [k for k, wanted in (("same", case.servers > 1), ("cross", case.access > 1))
             if wanted]
    rng.shuffle(kinds)
    moves: List[Move] = []
    by_name = {vm.name: vm for vm in case.vms}
    for index, name in enumerate(names[:rng.randint(1, 3)] if kinds else ()):
        vm, kind = by_name[name], kinds[index % len(kinds)]
        choices = [(a, s) for a, s in servers if (a == vm.access) == (kind == "same")
                   and (a, s) != vm.server_key]
        access, server = rng.choice(choices)
        moves.append(Move(name, access, server, access != vm.access))
    if 0 < len(moves) < 3 and rng.random() < 0.4:   # the first one back where it started
        home = by_name[moves[0].vm]
        moves.append(Move(home.name, home.access, home.server, moves[0].cross))
    return MovePlan(mode, shape, tuple(moves))


def moved(case: SweepCase, plan: MovePlan) -> SweepCase:
    """``case`` with its VMs where ``plan`` leaves them (a VM's last move counts)."""
    to = {m.vm: m for m in plan.moves}
    vms = tuple(replace(vm, access=to[vm.name].access, server=to[vm.name].server)
                if vm.name in to else vm for vm in case.vms)
    return replace(case, vms=vms)


def controller_options(plan: MovePlan) -> str:
    """The controller's extra options for the plan's detection mode."""
    return f"ovsdb = {LOCAL_OVSDB}\n" if plan.mode == "ovsdb" else ""


@dataclass
class MoveReport:
    """One move: how long it took to converge (None: it did not) and what went wrong."""

    move: Move
    settle_s: Optional[float] = None
    problems: List[str] = field(default_factory=list)
    left: List[str] = field(default_factory=list)      # switches that left its path
    owners: Set[int] = field(default_factory=set)      # its binding ids, old and new


class Mover:
    """Carries out a plan on a running seed (its network, controller and VMs)."""

    def __init__(self, case: SweepCase, plan: MovePlan, net, controller, prefix: str,
                 hosts: Dict[str, object], bound_s: float = SETTLE_BOUND_S) -> None:
        self.case, self.plan, self.net, self.controller = case, plan, net, controller
        self.prefix, self.hosts, self.bound_s = prefix, hosts, bound_s
        self.where: Dict[str, VmPlan] = {vm.name: vm for vm in case.vms}
        self.reports: List[MoveReport] = []
        #: Called with the VM's name before its move, and with its new plan after the
        #: move converged or timed out (the sweep's IPv6 seeds: ``sweep_ipv6``).
        self.before_move: Callable[[str], None] = lambda name: None
        self.after_move: Callable[[VmPlan], Optional[str]] = lambda vm: None   # a problem

    def run(self) -> List[MoveReport]:
        self.reports = [self._one(move) for move in self.plan.moves]
        return self.reports

    def leftovers(self, when: str) -> None:
        """Check again, ``when`` (e.g. after the probes), that no flow of a converged
        move's binding came back on a switch that left its path; a problem per move."""
        for report in self.reports:
            if report.settle_s is None:
                continue
            stale = stale_flows(report.left, report.owners)
            if stale:
                report.problems.append(
                    f"{report.move.vm}: {when}, flows of binding {sorted(report.owners)} "
                    f"are back where it left: " + "; ".join(stale))

    def _bridge(self, access: int, server: int) -> str:
        return f"{self.prefix}s{access}{server}"

    def _one(self, move: Move) -> MoveReport:
        report = MoveReport(move)
        vm = self.where[move.vm]
        host = self.hosts[move.vm]
        mac = vm.mac
        source, target = self._bridge(vm.access, vm.server), self._bridge(move.access, move.server)
        what = f"{move.vm} ({mac}) {source} -> {target}, {self.plan.mode}/{self.plan.shape}"
        status, before = self.controller.rest("GET", f"/dynprov/bindings/{mac}", role="reader")
        if status != 200:
            report.problems.append(f"{what}: no binding before the move ({status}: {before})")
            return report
        left = report.left = [source] + ([f"{self.prefix}a{vm.access}"] if move.cross else [])
        owners = report.owners = {int(before["binding_id"])}

        def hook() -> None:
            if self.plan.mode == "notice":
                answer = self.controller.rest("POST", "/dynprov/notifications",
                                              {"event": "migrating", "mac": mac,
                                               "server": target})
                if answer[0] != 200:
                    report.problems.append(f"{what}: migrating notice refused: {answer}")
            time.sleep(PRECOPY_S)

        self.before_move(move.vm)
        times = live_migrate(self.net, host, self.net.get(target), announce=self.plan.shape,
                             before_switchover=hook, wait_announcements=False)
        self.where[move.vm] = replace(vm, access=move.access, server=move.server)
        port = times.destination.ofport
        seen = self._wait(mac, target, port, left, owners, times.switchover_ns)
        problem = self.after_move(self.where[move.vm])
        if problem:
            report.problems.append(f"{what}: {problem}")
        report.settle_s = seen[0]
        if seen[0] is None:
            expect = (f"binding active on {target} port {port}, no flow of binding "
                      f"{' or '.join(map(str, sorted(owners)))} on {', '.join(left)}")
            report.problems.append(f"{what}: did not converge within {self.bound_s:.1f} s "
                                   f"after the switchover: expected {expect}; saw {seen[1]}")
        return report

    def _wait(self, mac: str, bridge: str, port: int, left: List[str], owners: Set[int],
              since_ns: int) -> Tuple[Optional[float], str]:
        """(seconds from ``since_ns`` to convergence or None, the last state seen)."""
        deadline = since_ns / 1e9 + self.bound_s
        seen = ""
        while True:
            done, seen = self._converged(mac, bridge, port, left, owners)
            if done:
                return (time.monotonic_ns() - since_ns) / 1e9, seen
            if time.monotonic() > deadline:
                return None, seen
            time.sleep(0.05)

    def _converged(self, mac: str, bridge: str, port: int, left: List[str],
                   owners: Set[int]) -> Tuple[bool, str]:
        status, binding = self.controller.rest("GET", f"/dynprov/bindings/{mac}?counters=false",
                                               role="reader")
        if status != 200:
            return False, f"GET binding: {status} {binding}"
        server = binding.get("server") or {}
        owners.add(int(binding["binding_id"]))
        stale = stale_flows(left, owners)
        state = (f"binding {binding['binding_id']} {binding.get('state')} on "
                 f"{server.get('name')} port {server.get('port')}; stale flows: "
                 + ("; ".join(stale) or "none"))
        placed = (server.get("name"), server.get("port")) == (bridge, port)
        return placed and binding.get("state") == "active" and not stale, state


def stale_flows(bridges: List[str], owners: Set[int]) -> List[str]:
    """Flows on ``bridges`` whose cookie names one of the bindings ``owners``."""
    found = []
    for bridge in bridges:
        for line in lab.dump_flows(bridge).splitlines():
            if "cookie=" not in line:
                continue
            owner = decode_cookie(int(line.split("cookie=", 1)[1].split(",", 1)[0], 16))
            if owner is not None and owner.kind in BINDING_KINDS and owner.owner_id in owners:
                found.append(f"{bridge}: {line.strip()}")
    return found


def move_targets(before: SweepCase, after: SweepCase, plan: MovePlan,
                 targets: List[Target]) -> List[Target]:
    """The move phase's probes: every one of ``targets`` that involves a moved VM, or a pair
    whose access-port rules a move switched on or off (the template merge), both ways."""
    movers = {m.vm for m in plan.moves}
    then, now = (Oracle(c.library, [Endpoint(vm.name, vm.template_id, vm.ip, vm.server_key)
                                    for vm in c.vms]) for c in (before, after))
    chosen: List[Target] = []
    for src, dst, protocol, port in targets:
        merge = (then.port_rules_apply(then.vms[src], then.vms[dst])
                 != now.port_rules_apply(now.vms[src], now.vms[dst]))
        if src in movers or dst in movers or merge:
            for wanted in ((src, dst, protocol, port), (dst, src, protocol, port)):
                if wanted not in chosen:
                    chosen.append(wanted)
    return chosen
