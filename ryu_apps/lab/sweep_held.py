"""The move phase's held connections: TCP connections open across the moves.

docs/templates.md: "a VM that live-migrates keeps its connections: the
destination's conntrack picks a mid-stream TCP connection up with its next packet
in an allowed direction". Before the moves, ``HeldConnections.start`` opens up to
``MOST`` IPv4 TCP connections of the first phase's targets that involve a moved VM
and that the oracle lets through both where the VMs start and where the moves
leave them (``vmtools.sweep_probe hold``: the greeting and one echo); after the
moves converged, ``finish`` has each client send again and expects the echo. A
connection that no longer carries data is an outcome of phase 3 that should have
worked. IPv6 connections are not held: a moving VM's IPv6 is off during its move
(``sweep_ipv6``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.sweep_library import SweepCase
from ryu_apps.lab.sweep_moves import MovePlan
from ryu_apps.lab.sweep_oracle import Endpoint, Oracle, Probe
from ryu_apps.lab.sweep_probes import Outcome, Target, target

MOST = 4
HELD_PHASE = 3
#: How long the client waits for the greeting, an echo or a connection (s).
TIMEOUT_S = 5.0


def _oracle(case: SweepCase) -> Oracle:
    return Oracle(case.library, [Endpoint(vm.name, vm.template_id, vm.ip, vm.server_key)
                                 for vm in case.vms])


class HeldConnections:
    """Connections opened before a seed's moves and used again after them."""

    def __init__(self, case: SweepCase, after: SweepCase, plan: MovePlan,
                 hosts: Dict[str, object], first: List[Target], avoid: Dict[str, set],
                 workdir: Path) -> None:
        self.case, self.hosts, self.go = case, hosts, workdir / "held-go"
        movers = {m.vm for m in plan.moves}
        then, now = _oracle(case), _oracle(after)
        rng = random.Random(case.seed * 92821 + 17)
        candidates = [t for t in first if t[2] == "tcp" and {t[0], t[1]} & movers]
        rng.shuffle(candidates)
        self.held: List[Tuple[str, str, Probe]] = []
        for src, dst, _, port in candidates:
            if len(self.held) == MOST:
                break
            taken = avoid.setdefault(src, set())
            source = 59500
            while source in taken:
                source += 1
            probe = Probe("tcp", port, source)
            if then.verdict(src, dst, probe).passes and now.verdict(src, dst, probe).passes:
                taken.add(source)
                self.held.append((src, dst, probe))
        self.verdicts = [now.verdict(src, dst, probe) for src, dst, probe in self.held]
        self.opened: Dict[Tuple[str, str], bool] = {}    # (source VM, target): opened
        self.clients: List[Tuple[str, List[str], subprocess.Popen]] = []

    def start(self) -> None:
        """Open every held connection (one client process per source VM)."""
        by_source: Dict[str, List[str]] = {}
        for src, dst, probe in self.held:
            by_source.setdefault(src, []).append(target(self.case, dst, probe))
        for src, targets in by_source.items():
            argv = [sys.executable, "-m", "ryu_apps.lab.vmtools.sweep_probe", "hold",
                    "--go", str(self.go), "--timeout", str(TIMEOUT_S), *targets]
            process = self.hosts[src].popen(   # type: ignore[attr-defined]
                argv, env=dict(os.environ, PYTHONPATH=str(lab.REPO_ROOT)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.clients.append((src, targets, process))
            for line in self._lines(process, len(targets) + 1):
                if line.startswith("{"):
                    answer = json.loads(line)
                    self.opened[(src, answer["target"])] = bool(answer["open"])

    def finish(self) -> List[Outcome]:
        """Use every held connection again; an outcome per connection."""
        self.go.touch()
        kept: Dict[Tuple[str, str], bool] = {}
        for src, targets, process in self.clients:
            out, err = process.communicate(timeout=TIMEOUT_S * (len(targets) + 2) + 30)
            for line in out.splitlines():
                if line.startswith("{"):
                    answer = json.loads(line)
                    kept[(src, answer["target"])] = bool(answer["kept"])
            if not {(src, t) for t in targets} <= set(kept):
                raise RuntimeError(f"sweep: held connections' client on {src} failed: "
                                   f"{out + err}")
        outcomes = []
        for (src, dst, probe), verdict in zip(self.held, self.verdicts):
            key = (src, target(self.case, dst, probe))
            outcomes.append(Outcome(src, dst, probe, verdict,
                                    self.opened.get(key, False) and kept[key],
                                    phase=HELD_PHASE))
        return outcomes

    @staticmethod
    def _lines(process: subprocess.Popen, count: int) -> List[str]:
        """The client's first ``count`` lines (its opens and ``held``). Blocking reads: the
        client bounds each open by ``TIMEOUT_S`` and prints, or ends (end of file)."""
        lines: List[str] = []
        stdout = process.stdout
        assert stdout is not None
        while len(lines) < count:
            line = stdout.readline()
            if not line:
                raise RuntimeError("sweep: held connections' client stopped: "
                                   + (process.stderr.read() if process.stderr else ""))
            lines.append(line.strip())
        return lines
