"""Hypervisor-style VM moves between two standalone OVS bridges (NORMAL forwarding).

Also the baseline: the outage a live migration costs on plain MAC-learning
bridges, probed every millisecond, which the controller is compared with.
"""

import os
import statistics
import subprocess
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.migration import (QEMU_ANNOUNCE_MS, MigrationError, live_migrate,
                                    move_port, standalone_network)

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

#: Probed migrations per announce mode in the baseline (more for the docs).
TRIALS = int(os.environ.get("DYNPROV_BASELINE_TRIALS", "3"))


def _prefix(letter: str) -> str:
    return "%s%03d" % (letter, os.getpid() % 1000)


@pytest.fixture(scope="module")
def lab_net():
    """Bridges b1 - b2; the VM starts on b1, its peer sits on b2."""
    prefix = _prefix("v")
    net = standalone_network(prefix, 2, [(prefix + "vm", 1, "10.78.0.1/24"),
                                         (prefix + "peer", 2, "10.78.0.2/24")])
    vm, peer = net.hosts
    assert _ping(vm, peer)
    yield net, vm, peer
    lab.stop_network(net)


def _ping(src, dst, count: int = 2) -> bool:
    return f" {count} received" in src.cmd(f"ping -c{count} -i 0.2 -W1 {dst.IP()}")


def _bridge_of(vm):
    link = vm.defaultIntf().link
    return link.intf2.node if link.intf1.node is vm else link.intf1.node


def _other_bridge(net, vm):
    return next(s for s in net.switches if s is not _bridge_of(vm))


def _ports(bridge) -> list:
    return subprocess.run(["ovs-vsctl", "list-ports", bridge.name], capture_output=True,
                          text=True, check=True).stdout.split()


def _external_id(interface: str, key: str) -> str:
    return subprocess.run(["ovs-vsctl", "get", "Interface", interface,
                           f"external_ids:{key}"], capture_output=True, text=True,
                          check=True).stdout.strip().strip('"')


@pytest.mark.parametrize("announce", ["qemu", "garp", "none"])
def test_live_migration_keeps_the_vm_and_its_connectivity(lab_net, announce):
    net, vm, peer = lab_net
    source, destination = _bridge_of(vm), _other_bridge(net, vm)
    old_port = vm.defaultIntf().link.intf2.name
    mac, ip, ifname = vm.MAC(), vm.IP(), vm.defaultIntf().name
    seen = {}

    def before_switchover():
        seen["destination ports"] = _ports(destination)
        seen["source ports"] = _ports(source)

    times = live_migrate(net, vm, destination, announce=announce,
                         before_switchover=before_switchover)
    print(f"\n{times.summary()}")
    port = times.destination
    # The destination port existed, with the VM's MAC, before the switchover.
    assert port.interface in seen["destination ports"] and old_port in seen["source ports"]
    assert _external_id(port.interface, "attached-mac") == mac
    assert _external_id(port.interface, "vm-id") == vm.name
    assert len(port.interface) <= 15 and port.bridge == destination.name
    # The VM kept its interface name, MAC and IP; the source lost its port.
    assert vm.cmd(f"cat /sys/class/net/{ifname}/address").strip() == mac
    assert f"inet {ip}/24" in vm.cmd(f"ip -4 addr show dev {ifname}")
    assert "tx-checksumming: off" in vm.cmd(f"ethtool -k {ifname}")
    assert old_port not in _ports(source) and old_port not in os.listdir("/sys/class/net")
    assert _ping(vm, peer)
    # Timings in order; the announcements as asked.
    assert times.port_created_ns <= times.switchover_ns < times.resumed_ns
    assert times.resumed_ns <= times.old_deleted_ns <= times.source_port_removed_ns
    expected = {"qemu": len(QEMU_ANNOUNCE_MS), "garp": 1, "none": 0}[announce]
    assert len(times.announcements_ns) == expected
    if expected:
        offsets = [(t - times.announcements_ns[0]) / 1e6 for t in times.announcements_ns]
        wanted = [d - QEMU_ANNOUNCE_MS[0] for d in QEMU_ANNOUNCE_MS[:expected]]
        assert all(abs(got - want) < 20 for got, want in zip(offsets, wanted)), offsets
        assert times.announcements_ns[0] - times.switchover_ns < 100_000_000
    # Mininet's records follow.
    assert _bridge_of(vm) is destination and vm.defaultIntf().link in net.links
    assert destination.ports[destination.nameToIntf[port.interface]] == port.ofport


def test_move_port_recables_the_vm(lab_net):
    net, vm, peer = lab_net
    source, destination = _bridge_of(vm), _other_bridge(net, vm)
    times = move_port(net, vm, destination, attached_mac=True)
    print(f"\n{times.summary()}")
    interface = times.destination.interface
    assert interface in _ports(destination) and interface not in _ports(source)
    assert _external_id(interface, "attached-mac") == vm.MAC()
    assert _bridge_of(vm) is destination
    assert _ping(vm, peer)


def test_refusals_name_the_vm_and_bridge(lab_net):
    net, vm, peer = lab_net
    with pytest.raises(ValueError, match="announce"):
        live_migrate(net, vm, _other_bridge(net, vm), announce="loud")
    with pytest.raises(MigrationError, match=f"{vm.name} is already on"):
        live_migrate(net, vm, _bridge_of(vm))
    with pytest.raises(MigrationError, match=f"{peer.name} is not an OVS bridge"):
        move_port(net, vm, peer)


def _trial(net, vm, peer, destination, announce: str):
    """One migration to ``destination``, probed from the peer for about 1 s."""
    prober = lab.ProberRun(peer, vm)
    time.sleep(0.3)
    times = live_migrate(net, vm, destination, announce=announce)
    time.sleep(max(0.0, 1.0 - (time.monotonic_ns() - times.switchover_ns) / 1e9))
    report = prober.stop()
    vm.cmd(f"ping -c1 -W1 {peer.IP()}")  # the bridges learn it again if they had not
    assert _ping(peer, vm), f"{peer.name} no longer reaches {vm.name}"
    return report, times


def _print_figures(label: str, trials) -> None:
    outages = [report.outage_ns / 1e6 for report, _ in trials]
    swaps = [times.downtime_ns / 1e6 for _, times in trials]
    print(f"  {label}: outage ms min {min(outages):.1f} median "
          f"{statistics.median(outages):.1f} max {max(outages):.1f} "
          f"(VM interface swap {min(swaps):.1f}-{max(swaps):.1f} ms); lost "
          f"{[r.lost for r, _ in trials]}, recovered {[r.recovered for r, _ in trials]}")


def test_baseline_outage_of_a_live_migration_on_normal_bridges(lab_net):
    """The VM moves from b1 onto the peer's bridge b2, probed by the peer at 1 ms.

    Before each trial the VM is put back on b1 by ``move_port``. Then, for
    comparison, it moves away from the peer (b2 to b1). The figures are
    printed, not asserted: MAC learning on OVS's userspace datapath makes them
    vary from a few ms to over 500 ms (docs/migration-tools.md); what is
    asserted is that the peer reaches the VM again after every move.
    """
    net, vm, peer = lab_net
    b1, b2 = net.switches
    print(f"\nbaseline: standalone NORMAL bridges, {peer.name} probes {vm.name} every 1 ms")
    for announce in ("qemu", "garp", "none"):
        trials = []
        for _ in range(TRIALS):
            if _bridge_of(vm) is not b1:
                move_port(net, vm, b1)
                vm.cmd(f"ping -c1 -W1 {peer.IP()}")
            trials.append(_trial(net, vm, peer, b2, announce))
        _print_figures(f"{announce:4} onto the peer's bridge", trials)
    away = []
    for _ in range(TRIALS):
        if _bridge_of(vm) is not b2:
            live_migrate(net, vm, b2, announce="qemu")
        away.append(_trial(net, vm, peer, b1, "qemu"))
    _print_figures("qemu away from the peer's bridge", away)


def test_net_stop_cleans_up_after_moves():
    prefix = _prefix("w")
    net = standalone_network(prefix, 2, [(prefix + "vm", 1, "10.79.0.1/24")])
    try:
        vm = net.hosts[0]
        live_migrate(net, vm, net.switches[1], announce="none")
        move_port(net, vm, net.switches[0])
        live_migrate(net, vm, net.switches[1], announce="garp", wait_announcements=False)
    finally:
        net.stop()
    leftovers = [name for name in os.listdir("/sys/class/net") if name.startswith(prefix)]
    assert leftovers == [] and not {s.name for s in net.switches} & lab.ovs_bridges()
