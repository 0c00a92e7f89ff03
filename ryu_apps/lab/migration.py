"""Move a Mininet host between OVS bridges like a hypervisor moves a VM.

``live_migrate`` follows a live migration's steps:

1. **Destination port** (before the switchover): a new veth pair. Its bridge
   end is added to the destination bridge with ``external_ids:attached-mac``,
   ``iface-id`` (the same on every port of one VM interface, as libvirt keeps
   it across a migration), ``vm-id`` and ``iface-status=active`` (as libvirt
   writes them); its other end, already given the VM's MAC, MTU and ``tx off``, waits
   down under a temporary name in the VM's namespace (the destination
   hypervisor's NIC exists before the guest resumes on it).
2. **Switchover**, one ``ip -batch`` in the VM: the old interface goes down
   and out of the way (renamed), the waiting end takes its name
   (``web1-eth0``), gets the VM's IPv4 addresses, routes and ARP cache back (a
   migrated guest keeps its memory; its IPv6 setting was copied in step 1), and
   comes up: the VM runs again. Then the old interface is deleted with its
   veth peer, so the source bridge's port disappears, and, as libvirt does on
   the source, the port's OVSDB row is removed (``ovs-vsctl del-port``).
   Deleting a veth takes about 10 ms of kernel time; doing it after the new
   interface is up keeps it out of the VM's downtime, as a hypervisor tears
   the source down after the guest resumed.
3. **Announcements**, from inside the VM by ``ryu_apps.lab.vmtools.announce``,
   started before the switchover and waiting for the new interface:
   ``qemu`` = RARP at 0/50/200/450/800 ms after it is up, ``garp`` = one
   gratuitous ARP at 0 ms, ``none``.

``move_port`` is the simpler re-cabling: the bridge end of the VM's veth is
detached from its bridge, renamed and attached to the other one; the VM's
interface stays (its carrier flaps while the bridge end is renamed).

Mininet's records follow both: the old link leaves ``net.links``, a link over
the new pair replaces it, and the bridges' port tables are updated, so
``net.stop()`` (or ``lab.stop_network``) deletes the new interfaces too.
Times are ``time.monotonic_ns()``, the clock the prober and the announcer use.

The steps live in ``vm_ports`` (ports and Mininet's records), ``guest_switchover``
(inside the VM), ``announcer`` and ``migration_records`` (what a move returns).
"""


from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

from ryu_apps.lab.announcer import ANNOUNCE_MODES, QEMU_ANNOUNCE_MS, REPO_ROOT, Announcer
from ryu_apps.lab.guest_switchover import nic_state, roll_back, switch_over
from ryu_apps.lab.migration_records import DestinationPort, MigrationError, MigrationTimes
from ryu_apps.lab.vm_ports import (check_destination, create_destination_port, discard_port,
                                   node_of, relink, remove_source_port, run_checked,
                                   scratch_name, unused_name, vm_port)

__all__ = ["ANNOUNCE_MODES", "QEMU_ANNOUNCE_MS", "REPO_ROOT", "DestinationPort",
           "MigrationError", "MigrationTimes", "live_migrate", "move_port",
           "standalone_network"]


def live_migrate(net, vm, dst, announce: str = "qemu",
                 before_switchover: Optional[Callable[[], None]] = None,
                 wait_announcements: bool = True, attached_mac: bool = True) -> MigrationTimes:
    """Live-migrate Mininet host ``vm`` to OVS bridge ``dst`` (module docstring).

    ``vm`` and ``dst`` are nodes or names. ``before_switchover`` runs once the
    destination port exists (e.g. to notify the controller); it is the move's
    pre-copy, which this function does not add. With ``wait_announcements``
    (default) it returns after the last announcement (800 ms after the
    switchover for ``qemu``) with their send times; otherwise at once, with none
    recorded. ``attached_mac`` False: the destination port's OVSDB row names no
    VM (a hypervisor that writes it late or never).
    """
    if announce not in ANNOUNCE_MODES:
        raise ValueError(f"announce must be one of {ANNOUNCE_MODES}, not {announce!r}")
    vm, vm_intf, old_peer, destination = _endpoints(net, vm, dst)
    source = old_peer.node
    nic = nic_state(vm, vm_intf.name)
    port, waiting = create_destination_port(vm, destination, nic, attached_mac)
    created = time.monotonic_ns()
    announcer, retired, stamps = _resume_on_destination(
        vm, nic, waiting, port, destination, announce, before_switchover)
    deleted, removed = _retire_source(net, vm, vm_intf, old_peer, retired, port, destination)
    sent = _announcement_times(announcer, wait_announcements)
    switchover, resumed, guest_down, guest_up = stamps
    return MigrationTimes(vm.name, source.name, port, announce, created, switchover,
                          resumed, deleted, removed, sent, guest_down, guest_up)


def _endpoints(net, vm, dst) -> tuple:
    """(VM, its interface, the bridge-side peer, destination bridge), checked."""
    vm, destination = node_of(net, vm), node_of(net, dst)
    vm_intf, peer = vm_port(vm)
    check_destination(vm, peer.node, destination)
    return vm, vm_intf, peer, destination


def _resume_on_destination(vm, nic: dict, waiting: str, port: DestinationPort, destination,
                           announce: str,
                           before_switchover: Optional[Callable[[], None]]) -> tuple:
    """Steps 2 and 3: announcer started, hook run, switchover in the VM.

    Returns (announcer or None, the retired interface's name, (switchover,
    resumed, guest down, guest up) ns). On any failure the VM gets its old
    interface back and the destination port is discarded.
    """
    ifname = nic["name"]
    announcer, retired = None, None
    try:
        announcer = Announcer(vm, ifname, announce) if announce != "none" else None
        if before_switchover is not None:
            before_switchover()
        retired = scratch_name("dpr", vm)
        switchover = time.monotonic_ns()
        guest_down, guest_up = switch_over(vm, ifname, waiting, retired, nic)
        resumed = time.monotonic_ns()
    except BaseException:
        if announcer is not None:
            announcer.kill()
        roll_back(vm, ifname, waiting, retired, nic)
        discard_port(destination.name, port.interface)
        raise
    return announcer, retired, (switchover, resumed, guest_down, guest_up)


def _retire_source(net, vm, vm_intf, old_peer, retired: str, port: DestinationPort,
                   destination) -> tuple[int, int]:
    """The old interface and the source's port go, Mininet's records follow; their times."""
    vm.cmd(f"ip link del {retired}")
    deleted = time.monotonic_ns()
    removed = remove_source_port(old_peer.node, old_peer)
    new_peer = type(old_peer)(port.interface, node=destination, port=port.ofport)
    relink(net, vm_intf, old_peer, new_peer)
    return deleted, removed


def _announcement_times(announcer: Optional[Announcer], wait: bool) -> tuple:
    """The announcements' send times once the last went out (``wait``); else none."""
    if announcer is None:
        return ()
    if wait:
        return announcer.finish()
    threading.Thread(target=announcer.process.communicate, daemon=True).start()
    return ()


def move_port(net, vm, dst, attached_mac: bool = False) -> MigrationTimes:
    """Re-cable ``vm``: its veth's bridge end moves to ``dst`` (like mobility.py).

    The bridge end is detached, renamed to ``dst``'s next port name and attached
    with that port number (and ``attached-mac`` if asked). No announcement.
    """
    vm, vm_intf, peer, destination = _endpoints(net, vm, dst)
    source = peer.node
    port = destination.newPort()
    new_name = unused_name(f"{destination.name}-eth{port}", "dpb", set())
    extra = ([f'external_ids:attached-mac="{vm_intf.MAC()}"'] if attached_mac else [])
    what = f"{vm.name}: moving {peer.name} from {source.name} to {destination.name}"
    start = time.monotonic_ns()
    run_checked(what, "ovs-vsctl", "del-port", source.name, peer.name)
    removed = time.monotonic_ns()
    if new_name != peer.name:
        run_checked(what, "ip", "link", "set", peer.name, "down")
        run_checked(what, "ip", "link", "set", peer.name, "name", new_name)
    run_checked(what, "ip", "link", "set", new_name, "up")
    run_checked(what, "ovs-vsctl", "add-port", destination.name, new_name, "--", "set",
                "Interface", new_name, f"ofport_request={port}", *extra)
    done = time.monotonic_ns()
    ofport = int(run_checked(what, "ovs-vsctl", "get", "Interface", new_name, "ofport"))
    source.delIntf(peer)
    peer.name, peer.node = new_name, destination
    destination.addIntf(peer, port=ofport)
    return MigrationTimes(vm.name, source.name,
                          DestinationPort(destination.name, new_name, ofport, vm_intf.MAC()),
                          "none", done, start, done, removed, removed)


def standalone_network(prefix: str, bridges: int, hosts):
    """A started Mininet network of ``bridges`` standalone OVS bridges in a chain.

    Bridges are ``{prefix}b1``..., userspace datapath, ``fail_mode=standalone``
    and no controller (NORMAL forwarding: MAC learning and flooding), the
    baseline a controller is compared with. ``hosts`` are (name, bridge number
    from 1, "ip/len") tuples, VmHost (tx offload off, no IPv6). Stop it with
    ``lab.stop_network``.
    """
    from mininet.net import Mininet
    from mininet.node import OVSSwitch

    from ryu_apps.lab.project import load_topology_module

    vm_host = load_topology_module().VmHost
    net = Mininet(controller=None, build=False, autoSetMacs=False, waitConnected=False)
    base = 0xD9D90000 + (os.getpid() % 1000) * 16
    switches = [net.addSwitch(f"{prefix}b{i}", cls=OVSSwitch, datapath="user",
                              failMode="standalone", dpid=f"{base + i:016x}")
                for i in range(1, bridges + 1)]
    for left, right in zip(switches, switches[1:]):
        net.addLink(left, right)
    for name, bridge, ip in hosts:
        net.addLink(net.addHost(name, cls=vm_host, ip=ip), switches[bridge - 1])
    try:
        net.build()
        net.start()
    except BaseException:
        from ryu_apps.lab.network import stop_network
        stop_network(net)
        raise
    return net
