"""The migration demo, distributed: a VM moves between two controller processes.

``dynprov store demo``: a 3-member Raft store, two controller processes (p1
manages access switch a1 and its servers, p2 manages a2 and its servers), the
fabric between the pods a plain learning bridge, every VM provisioned by its
own pod's process, then web1 live-migrates from s11 (p1) to s21 (p2) without
a notice and back to s12 (p1) with one (``dynprov notify migrating`` sent to
the process that holds it, which names the destination process on the binding
in the store). Two peers stay put, one in each pod (web3 on p1's s12, web7 on
p2's s22), and probe web1 every millisecond throughout. For each move it
prints the hand-off notice latency (source REST call to the destination
process receiving it through the store), when the destination claimed the
binding, when the source cleaned up, and for each peer the probes lost and
the outage (longest run of lost probes).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, TypedDict

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send as send_notification
from ryu_apps.lab.distributed import DistributedLab
from ryu_apps.lab.migration import live_migrate

MIGRATING_VM = "web1"
#: Seconds between the destination port's creation and the switchover (the memory
#: copy of a live migration; the migration benchmark and the sweep use the same).
PRECOPY_S = 0.2


def _wall(monotonic_ns: int) -> float:
    """A monotonic timestamp as wall-clock seconds (same machine)."""
    return time.time() - (time.monotonic_ns() - monotonic_ns) / 1e9


#: Peers that stay put while web1 moves, one in each pod.
PEERS = ("web3", "web7")


class PeerFigures(TypedDict):
    """What one peer's prober saw during a move."""

    pod: str
    sent: int
    lost: int
    outage_ms: float
    recovered: bool


class MoveFigures(TypedDict):
    """The figures of one move (ms; None when it did not happen)."""

    notice: bool
    source: str
    destination: str
    notice_ms: Optional[float]
    vm_downtime_ms: float
    claimed_after_switchover_ms: Optional[float]
    source_cleaned_after_switchover_ms: Optional[float]
    peers: Dict[str, PeerFigures]


@dataclass(frozen=True)
class _Move:
    """Who takes part in one move of web1: hosts, bridges, processes, controllers."""

    vm: Any
    mac: str
    target: Any
    source_server: str
    source_process: str
    destination_process: str
    source_controller: Any
    destination_controller: Any


def migrate_across(setup: DistributedLab, destination: str, notify: bool) -> MoveFigures:
    """Move web1 to ``destination`` (a server of another process), probed from
    :data:`PEERS`. Returns the figures of the move (ms; None when it did not happen).
    """
    move = _plan_move(setup, destination)
    probers = _start_probers(setup, move.vm)
    notice: Dict[str, float] = {}   # "sent": when the notice went out
    handoffs_before = move.destination_controller.log().count(f"hand-off of VM {move.mac}")
    times = live_migrate(setup.net, move.vm, move.target, announce="qemu",
                         before_switchover=_pre_copy(move, notice, notify))
    switchover = _wall(times.switchover_ns)
    claimed = _claimed_at(setup, move)
    cleaned = _wait_flows_gone(move.source_server, move.mac)
    time.sleep(0.2)
    peers = _peer_figures(setup, probers)
    received = (_handoff_received(move.destination_controller, move.mac, handoffs_before)
                if notify else None)
    return {
        "notice": notify,
        "source": f"{move.source_process} {move.source_server}",
        "destination": f"{move.destination_process} {move.target.name}",
        "notice_ms": _elapsed_ms(received, notice.get("sent")),
        "vm_downtime_ms": times.downtime_ns / 1e6,
        "claimed_after_switchover_ms": _elapsed_ms(claimed, switchover),
        "source_cleaned_after_switchover_ms": _elapsed_ms(cleaned, switchover),
        "peers": peers,
    }


class MoveNotPlanned(RuntimeError):
    """A move cannot start: the store does not say where the VM is."""


def _plan_move(setup: DistributedLab, destination: str) -> _Move:
    """web1, its destination, and the source and destination processes (from the store)."""
    prefix = setup.prefix
    vm = setup.net.get(prefix + MIGRATING_VM)
    mac = vm.MAC()
    owners = {row["mac"]: row["owner"] for row in setup.bindings()}
    source_process = owners.get(mac)
    if source_process is None:
        raise MoveNotPlanned(f"VM {mac} has no binding in the store: no process owns it "
                             "(the previous move was never claimed)")
    destination_process = f"p{setup.pod_of(prefix + destination)}"
    return _Move(vm, mac, setup.net.get(prefix + destination), _server_of(vm),
                 source_process, destination_process,
                 setup.controllers[int(source_process[1:]) - 1],
                 setup.controllers[int(destination_process[1:]) - 1])


def _print_controller_tails(setup: DistributedLab, lines: int = 25) -> None:
    """What each controller process logged last (a move that did not converge)."""
    for number, controller in enumerate(setup.controllers, start=1):
        print(f"  --- the last {lines} lines of process p{number}'s log:")
        for line in controller.log().splitlines()[-lines:]:
            print(f"  p{number}| {line}")


def _start_probers(setup: DistributedLab, vm) -> Dict[str, lab.ProberRun]:
    """A prober from each of :data:`PEERS` to ``vm``, ARP settled first, then a pause."""
    probers = {}
    for peer in PEERS:
        peer_host = setup.net.get(setup.prefix + peer)
        peer_host.cmd(f"ping -c 1 -W 1 {vm.IP()}")   # ARP settled before probing
        probers[peer] = lab.ProberRun(peer_host, vm)
    time.sleep(0.3)
    return probers


def _pre_copy(move: _Move, notice: Dict[str, float], notify: bool) -> Callable[[], None]:
    """The destination port exists: the notice (if any), then the memory copy, short
    here (:data:`PRECOPY_S`, as the migration benchmark's), seconds in a real move.
    Without it the switchover could come before the destination saw the port."""
    tell = _notifier(move, notice) if notify else None

    def pre_copy() -> None:
        if tell is not None:
            tell()
        time.sleep(PRECOPY_S)
    return pre_copy


def _notifier(move: _Move, notice: Dict[str, float]) -> Callable[[], None]:
    """The hook that tells the source process of the move; it stamps ``notice["sent"]``."""
    def tell() -> None:
        notice["sent"] = time.time()
        status, answer = send_notification(
            move.source_controller.rest_target(),
            {"event": "migrating", "mac": move.mac, "server": move.target.name})
        print(f"  notify migrating -> {move.source_process}: {status}: "
              f"{answer.get('acknowledged', answer)}", flush=True)
    return tell


def _claimed_at(setup: DistributedLab, move: _Move) -> Optional[float]:
    """When the destination process claimed the binding (the store's ``since``)."""
    rows = setup.wait_for_store(lambda rows: any(
        r["mac"] == move.mac and r["owner"] == move.destination_process for r in rows))
    return next((r["since"] for r in rows if r["mac"] == move.mac
                 and r["owner"] == move.destination_process), None)


def _peer_figures(setup: DistributedLab,
                  probers: Dict[str, lab.ProberRun]) -> Dict[str, PeerFigures]:
    """Stop each peer's prober; what it saw."""
    peers: Dict[str, PeerFigures] = {}
    for peer, prober in probers.items():
        report = prober.stop()
        pod = setup.pod_of(_server_of(setup.net.get(setup.prefix + peer)))
        peers[peer] = {"pod": f"p{pod}", "sent": report.sent, "lost": report.lost,
                       "outage_ms": report.outage_ns / 1e6, "recovered": report.recovered}
    return peers


def _elapsed_ms(later: Optional[float], earlier: Optional[float]) -> Optional[float]:
    """``later - earlier`` in ms, None when either did not happen."""
    return (later - earlier) * 1000 if later and earlier else None


def _server_of(host) -> str:
    """The bridge a Mininet host's interface is cabled to."""
    link = host.intf().link
    return (link.intf2 if link.intf1.node is host else link.intf1).node.name


def _wait_flows_gone(bridge: str, mac: str, timeout: float = 10.0) -> Optional[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mac not in lab.dump_flows(bridge):
            return time.time()
        time.sleep(0.01)
    return None


def _handoff_received(controller, mac: str, before: int,
                      timeout: float = 5.0) -> Optional[float]:
    pattern = re.compile(rf"hand-off of VM {re.escape(mac)} .*\(received at ([0-9.]+)\)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pattern.findall(controller.log())
        if len(found) > before:
            return float(found[-1])
        time.sleep(0.05)
    return None


def print_move(figures: MoveFigures) -> None:
    def ms(value: Optional[float]) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    print(f"  {figures['source']} -> {figures['destination']}, "
          f"{'with' if figures['notice'] else 'without'} a notice")
    if figures["notice"]:
        print(f"    hand-off notice reached the destination process in {ms(figures['notice_ms'])}")
    claimed = figures["claimed_after_switchover_ms"]
    when = "-" if claimed is None else (f"{claimed:.1f} ms after" if claimed >= 0
                                        else f"{-claimed:.1f} ms before")
    print(f"    VM's own switchover {ms(figures['vm_downtime_ms'])}; binding claimed by the "
          f"destination {when} it; source cleaned up "
          f"{ms(figures['source_cleaned_after_switchover_ms'])} after it")
    for peer, seen in figures["peers"].items():
        print(f"    peer {peer} ({seen['pod']}'s pod): {seen['lost']} of {seen['sent']} probes "
              f"lost at 1 ms, outage {seen['outage_ms']:.1f} ms"
              + ("" if seen["recovered"] else ", NOT recovered"))


def converged(figures: MoveFigures) -> bool:
    """Whether every peer reached the VM again after the move and the destination
    process claimed it in the store."""
    return (figures["claimed_after_switchover_ms"] is not None
            and all(seen["recovered"] for seen in figures["peers"].values()))


def run_distributed_demo() -> int:
    """Run the distributed demo; 0 when both moves converged."""
    if os.geteuid() != 0:
        print("the distributed demo needs root (Mininet and OVS bridges)")
        return 2
    setup = DistributedLab(prefix="dd%02d" % (os.getpid() % 100),
                           dpid_base=((os.getpid() + 13) % 4096) << 24, ovsdb=True, tls=True)
    failures = 0
    try:
        print("=== starting a 3-member Raft store and two controller processes", flush=True)
        setup.start()
        print(f"store: {setup.started_store.remote}")
        for controller in setup.controllers:
            print("controller:", " ".join(controller.command()))
        setup.announce_all()
        print("=== every VM provisioned by its pod's process; bindings in the store:")
        for row in sorted(setup.bindings(), key=lambda r: r["mac"]):
            print(f"  {row['mac']}  owner {row['owner']}  {row['server']} port {row['port']}")
        for destination, notify in (("s21", False), ("s12", True)):
            print(f"\n=== live migration of {MIGRATING_VM} to {destination}", flush=True)
            try:
                figures = migrate_across(setup, destination, notify)
            except MoveNotPlanned as error:
                print(f"  cannot move: {error}")
                failures += 1
                break
            print_move(figures)
            if not converged(figures):
                failures += 1
                _print_controller_tails(setup)
    finally:
        setup.stop()
    print("\nOK: both moves converged" if not failures else f"\nFAILED: {failures} move(s)")
    return 1 if failures else 0
