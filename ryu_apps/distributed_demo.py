"""The migration demo, distributed: a VM moves between two controller processes.

``dynprov store demo``: a 3-member Raft store, two controller processes (p1
manages access switch a1 and its servers, p2 manages a2 and its servers),
every VM provisioned by its own pod's process, then web1 live-migrates from
s11 (p1) to s21 (p2) without a notice and back to s12 (p1) with one
(``dynprov notify migrating`` sent to the process that holds it, which names
the destination process on the binding in the store). For each move it prints
the hand-off notice latency (source REST call to the destination process
receiving it through the store), when the destination claimed the binding,
when the source cleaned up, and the convergence seen by a prober at 1 ms from
a peer VM of the destination pod: the first answered probe after the VM's
switchover. The pods share no data path (each process's fabric is its pod),
so the peer reaches the VM only once it has arrived: what is measured is how
fast the destination process makes it reachable (static ARP entries between
the peer and the VM keep the kernel's retry timers for a previously
unreachable neighbour out of the figure).
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Dict, Optional

from ryu_apps import lab
from ryu_apps.cli.notify import send as send_notification
from ryu_apps.core.outage import probes_from_document
from ryu_apps.distributed_lab import DistributedLab
from ryu_apps.migration_lab import live_migrate

MIGRATING_VM = "web1"


def _wall(monotonic_ns: int) -> float:
    """A monotonic timestamp as wall-clock seconds (same machine)."""
    return time.time() - (time.monotonic_ns() - monotonic_ns) / 1e9


def migrate_across(setup: DistributedLab, destination: str, peer: str,
                   notify: bool) -> Dict[str, Optional[float]]:
    """Move web1 to ``destination`` (a server of another process), probed from ``peer``.

    Returns the figures of the move (ms; None when it did not happen).
    """
    prefix = setup.prefix
    vm = setup.net.get(prefix + MIGRATING_VM)
    mac = vm.MAC()
    target = setup.net.get(prefix + destination)
    source_name = vm.intf().link.intf2.node.name if vm.intf().link.intf1.node is vm \
        else vm.intf().link.intf1.node.name
    owners = {row["mac"]: row["owner"] for row in setup.bindings()}
    source_process = owners[mac]
    destination_process = f"p{setup.pod_of(prefix + destination)}"
    source_controller = setup.controllers[int(source_process[1:]) - 1]
    destination_controller = setup.controllers[int(destination_process[1:]) - 1]
    peer_host = setup.net.get(prefix + peer)
    # Before the move the peer had no path to the VM (the pods share none), so its ARP
    # entry failed; a static entry each way keeps ARP retry timers out of the figure.
    peer_host.cmd(f"ip neigh replace {vm.IP()} lladdr {mac} dev {peer_host.defaultIntf()}")
    vm.cmd(f"ip neigh replace {peer_host.IP()} lladdr {peer_host.MAC()} dev {vm.defaultIntf()}")
    prober = lab.ProberRun(peer_host, vm)
    time.sleep(0.3)
    notice = {"sent": None}
    handoffs_before = destination_controller.log().count(f"hand-off of VM {mac}")

    def tell() -> None:
        notice["sent"] = time.time()
        status, answer = send_notification(
            f"http://127.0.0.1:{source_controller.wsapi_port}",
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
    report = prober.stop()
    peer_host.cmd(f"ip neigh del {vm.IP()} dev {peer_host.defaultIntf()}")
    vm.cmd(f"ip neigh del {peer_host.IP()} dev {vm.defaultIntf()}")
    document = json.loads(prober.output.read_text())
    _, probes = probes_from_document(document)
    after = [p for p in probes if p.sent_ns >= times.switchover_ns]
    first = next((p for p in after if p.received_ns is not None), None)
    lost_after = sum(1 for p in after if first is not None and p.sent_ns < first.sent_ns)
    received = None
    if notify:
        received = _handoff_received(destination_controller, mac, handoffs_before)
    return {
        "notice": notify,
        "source": f"{source_process} {source_name}",
        "destination": f"{destination_process} {target.name}",
        "notice_ms": (received - notice["sent"]) * 1000
        if received and notice["sent"] else None,
        "vm_downtime_ms": times.downtime_ns / 1e6,
        "claimed_after_switchover_ms": (claimed - switchover) * 1000 if claimed else None,
        "source_cleaned_after_switchover_ms": (cleaned - switchover) * 1000
        if cleaned else None,
        "convergence_ms": (first.sent_ns - times.switchover_ns) / 1e6 if first else None,
        "probes_lost_after_switchover": lost_after if first else None,
        "probes_sent": report.sent,
    }


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


def print_move(figures: Dict[str, Optional[float]]) -> None:
    def ms(key: str) -> str:
        value = figures[key]
        return "-" if value is None else f"{value:.1f} ms"

    print(f"  {figures['source']} -> {figures['destination']}, "
          f"{'with' if figures['notice'] else 'without'} a notice")
    if figures["notice"]:
        print(f"    hand-off notice reached the destination process in {ms('notice_ms')}")
    claimed = figures["claimed_after_switchover_ms"]
    when = "-" if claimed is None else (f"{claimed:.1f} ms after" if claimed >= 0
                                        else f"{-claimed:.1f} ms before")
    print(f"    VM's own switchover {ms('vm_downtime_ms')}; binding claimed by the "
          f"destination {when} it; source cleaned up "
          f"{ms('source_cleaned_after_switchover_ms')} after it")
    lost = figures["probes_lost_after_switchover"]
    print(f"    destination-pod peer reached the VM {ms('convergence_ms')} after the "
          f"switchover ({'-' if lost is None else lost} probes lost at 1 ms)")


def run_distributed_demo() -> int:
    """Run the distributed demo; 0 when both moves converged."""
    if os.geteuid() != 0:
        print("the distributed demo needs root (Mininet and OVS bridges)")
        return 2
    setup = DistributedLab(prefix="dd%02d" % (os.getpid() % 100),
                           dpid_base=((os.getpid() + 13) % 4096) << 24, ovsdb=True)
    failures = 0
    try:
        print("=== starting a 3-member Raft store and two controller processes", flush=True)
        setup.start()
        print(f"store: {setup.store.remote}")
        for controller in setup.controllers:
            print("controller:", " ".join(controller.command()))
        setup.announce_all()
        print("=== every VM provisioned by its pod's process; bindings in the store:")
        for row in sorted(setup.bindings(), key=lambda r: r["mac"]):
            print(f"  {row['mac']}  owner {row['owner']}  {row['server']} port {row['port']}")
        for destination, peer, notify in (("s21", "web5", False), ("s12", "web3", True)):
            print(f"\n=== live migration of {MIGRATING_VM} to {destination}", flush=True)
            figures = migrate_across(setup, destination, peer, notify)
            print_move(figures)
            failures += figures["convergence_ms"] is None
    finally:
        setup.stop()
    print("\nOK: both moves converged" if not failures else f"\nFAILED: {failures} move(s)")
    return 1 if failures else 0
