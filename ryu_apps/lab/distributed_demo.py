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
from typing import Dict, Optional, TypedDict

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send as send_notification
from ryu_apps.lab.distributed import DistributedLab
from ryu_apps.lab.migration import live_migrate

MIGRATING_VM = "web1"


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


def migrate_across(setup: DistributedLab, destination: str, notify: bool) -> MoveFigures:
    """Move web1 to ``destination`` (a server of another process), probed from
    :data:`PEERS`. Returns the figures of the move (ms; None when it did not happen).
    """
    prefix = setup.prefix
    vm = setup.net.get(prefix + MIGRATING_VM)
    mac = vm.MAC()
    target = setup.net.get(prefix + destination)
    source_name = _server_of(vm)
    owners = {row["mac"]: row["owner"] for row in setup.bindings()}
    source_process = owners[mac]
    destination_process = f"p{setup.pod_of(prefix + destination)}"
    source_controller = setup.controllers[int(source_process[1:]) - 1]
    destination_controller = setup.controllers[int(destination_process[1:]) - 1]
    probers = {}
    for peer in PEERS:
        peer_host = setup.net.get(prefix + peer)
        peer_host.cmd(f"ping -c 1 -W 1 {vm.IP()}")   # ARP settled before probing
        probers[peer] = lab.ProberRun(peer_host, vm)
    time.sleep(0.3)
    notice: Dict[str, float] = {}   # "sent": when the notice went out
    handoffs_before = destination_controller.log().count(f"hand-off of VM {mac}")

    def tell() -> None:
        notice["sent"] = time.time()
        status, answer = send_notification(
            source_controller.rest_target(),
            {"event": "migrating", "mac": mac, "server": target.name})
        print(f"  notify migrating -> {source_process}: {status}: "
              f"{answer.get('acknowledged', answer)}", flush=True)

    times = live_migrate(setup.net, vm, target, announce="qemu",
                         before_switchover=tell if notify else None)
    switchover = _wall(times.switchover_ns)
    rows = setup.wait_for_store(lambda rows: any(
        r["mac"] == mac and r["owner"] == destination_process for r in rows))
    claimed = next((r["since"] for r in rows if r["mac"] == mac
                    and r["owner"] == destination_process), None)
    cleaned = _wait_flows_gone(source_name, mac)
    time.sleep(0.2)
    peers: Dict[str, PeerFigures] = {}
    for peer, prober in probers.items():
        report = prober.stop()
        pod = setup.pod_of(_server_of(setup.net.get(prefix + peer)))
        peers[peer] = {"pod": f"p{pod}", "sent": report.sent, "lost": report.lost,
                       "outage_ms": report.outage_ns / 1e6, "recovered": report.recovered}
    received, sent = None, notice.get("sent")
    if notify:
        received = _handoff_received(destination_controller, mac, handoffs_before)
    return {
        "notice": notify,
        "source": f"{source_process} {source_name}",
        "destination": f"{destination_process} {target.name}",
        "notice_ms": (received - sent) * 1000 if received and sent else None,
        "vm_downtime_ms": times.downtime_ns / 1e6,
        "claimed_after_switchover_ms": (claimed - switchover) * 1000 if claimed else None,
        "source_cleaned_after_switchover_ms": (cleaned - switchover) * 1000
        if cleaned else None,
        "peers": peers,
    }


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
    """Whether every peer reached the VM again after the move."""
    return all(seen["recovered"] for seen in figures["peers"].values())


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
            figures = migrate_across(setup, destination, notify)
            print_move(figures)
            failures += not converged(figures)
    finally:
        setup.stop()
    print("\nOK: both moves converged" if not failures else f"\nFAILED: {failures} move(s)")
    return 1 if failures else 0
