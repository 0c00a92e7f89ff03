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
"""

from __future__ import annotations

import itertools
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from mininet.link import Link

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Offsets of QEMU's self-announcements after the guest resumes (its defaults:
#: initial 50 ms, +100 ms each round, 5 rounds).
QEMU_ANNOUNCE_MS = (0, 50, 200, 450, 800)
ANNOUNCE_MODES = ("qemu", "garp", "none")
IFNAME_MAX = 15
_names = itertools.count(1)


@dataclass(frozen=True)
class DestinationPort:
    """The VM's new port: bridge, bridge-side interface, OpenFlow port, VM MAC."""

    bridge: str
    interface: str
    ofport: int
    mac: str


@dataclass(frozen=True)
class MigrationTimes:
    """When each step of a move happened (monotonic ns)."""

    vm: str
    source: str
    destination: DestinationPort
    announce: str
    port_created_ns: int         # destination port in OVSDB, numbered
    switchover_ns: int           # the old interface is about to be deleted
    resumed_ns: int              # the new interface is up in the VM
    old_deleted_ns: int          # the old interface (and source port device) is gone
    source_port_removed_ns: int  # the source's OVSDB row is gone
    announcements_ns: tuple = ()
    #: Inside the VM (bash's clock, converted to monotonic): the old interface
    #: goes down, the new one is up. None when the shell could not tell.
    guest_down_ns: Optional[int] = None
    guest_up_ns: Optional[int] = None

    @property
    def downtime_ns(self) -> int:
        """How long the VM had no interface (the switchover itself).

        Measured inside the VM when it could be, else around the command.
        """
        if self.guest_down_ns is not None and self.guest_up_ns is not None:
            return self.guest_up_ns - self.guest_down_ns
        return self.resumed_ns - self.switchover_ns

    @property
    def up_ns(self) -> int:
        """When the VM's new interface came up (inside the VM if known)."""
        return self.guest_up_ns if self.guest_up_ns is not None else self.resumed_ns

    def summary(self) -> str:
        """One line: every step relative to the switchover, in ms."""
        def rel(value: int) -> str:
            return f"{(value - self.switchover_ns) / 1e6:+.1f}"
        announced = ",".join(rel(t) for t in self.announcements_ns) or "-"
        return (f"{self.vm}: {self.source} -> {self.destination.bridge} port "
                f"{self.destination.ofport} ({self.destination.interface}); port created "
                f"{rel(self.port_created_ns)} ms, up {rel(self.resumed_ns)} ms, old "
                f"interface deleted {rel(self.old_deleted_ns)} ms, source port removed "
                f"{rel(self.source_port_removed_ns)} ms, {self.announce} "
                f"announcements at {announced} ms")


class MigrationError(RuntimeError):
    """A step of a move failed; the message names the VM, bridge and interface."""


class _AdoptedLink(Link):
    """A Mininet link over an existing veth pair (Link() would create one)."""

    def __init__(self, intf1, intf2) -> None:  # pylint: disable=super-init-not-called
        self.intf1, self.intf2, self.fast = intf1, intf2, False
        intf1.link = intf2.link = self


def _node(net, node_or_name):
    return net.get(node_or_name) if isinstance(node_or_name, str) else node_or_name


def _run(what: str, *command: str) -> str:
    """Run a root-namespace command; MigrationError naming ``what`` if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise MigrationError(f"{what}: {' '.join(command)}: "
                             f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def _vm_port(vm):
    """(VM interface, bridge-side interface) of the VM's link to its bridge."""
    intf = vm.defaultIntf()
    link = intf.link if intf is not None else None
    if link is None:
        raise MigrationError(f"{vm.name}: no interface linked to a bridge")
    peer = link.intf2 if link.intf1 is intf else link.intf1
    if not hasattr(peer.node, "vsctl"):
        raise MigrationError(f"{vm.name}: {intf.name} is linked to {peer.node.name}, "
                             "not to an OVS bridge")
    return intf, peer


def _check_destination(vm, source, destination) -> None:
    if not hasattr(destination, "vsctl"):
        raise MigrationError(f"{vm.name}: destination {destination.name} is not an OVS bridge")
    if destination is source:
        raise MigrationError(f"{vm.name} is already on {destination.name}")


def _unused_name(preferred: str, fallback_prefix: str, namespace_names: set) -> str:
    """``preferred`` if it is short enough and free, else a fresh short name."""
    taken = set(os.listdir("/sys/class/net")) | namespace_names
    if len(preferred) <= IFNAME_MAX and preferred not in taken:
        return preferred
    while True:
        name = f"{fallback_prefix}{os.getpid() % 100000}x{next(_names)}"[:IFNAME_MAX]
        if name not in taken:
            return name


def _vm_names(vm) -> set:
    return set(vm.cmd("ls /sys/class/net").split())


def _nic_state(vm, ifname: str) -> dict:
    """What the guest keeps across a migration: MAC, MTU, addresses, routes, ARP cache."""
    def read(command: str) -> str:
        return vm.cmd(command + " 2>/dev/null")
    mac = read(f"cat /sys/class/net/{ifname}/address").strip()
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
        raise MigrationError(f"{vm.name}: cannot read the MAC of {ifname}: {mac!r}")
    addresses = re.findall(r"\binet (\S+)", read(f"ip -o -4 addr show dev {ifname}"))
    routes = [line.strip() for line in read(f"ip -4 route show dev {ifname}").splitlines()
              if line.strip() and "proto kernel" not in line]
    neighbours = [(parts[0], parts[parts.index("lladdr") + 1])
                  for parts in map(str.split, read(f"ip -4 neigh show dev {ifname}")
                                   .splitlines()) if "lladdr" in parts]
    mtu = read(f"cat /sys/class/net/{ifname}/mtu").strip() or "1500"
    ipv6_off = read(f"cat /proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").strip()
    return {"mac": mac, "mtu": mtu, "addresses": addresses, "routes": routes,
            "neighbours": neighbours, "disable_ipv6": ipv6_off, "name": ifname}


def _create_destination_port(vm, destination, nic: dict):
    """Step 1: the new veth pair, its bridge end numbered on ``destination``."""
    port = destination.newPort()
    bridge_end = _unused_name(f"{destination.name}-eth{port}", "dpb", set())
    waiting = _unused_name(f"dpw{os.getpid() % 100000}x{next(_names)}", "dpw",
                           _vm_names(vm))
    what = f"{vm.name}: destination port on {destination.name}"
    _run(what, "ip", "link", "add", waiting, "mtu", nic["mtu"], "address", nic["mac"],
         "type", "veth", "peer", "name", bridge_end, "mtu", nic["mtu"])
    try:
        _run(what, "ethtool", "-K", waiting, "tx", "off")
        _run(what, "ip", "link", "set", waiting, "netns", str(vm.pid))
        _run(what, "ip", "link", "set", bridge_end, "up")
        _run(what, "ovs-vsctl", "add-port", destination.name, bridge_end, "--", "set",
             "Interface", bridge_end, f"ofport_request={port}",
             f'external_ids:attached-mac="{nic["mac"]}"',
             f'external_ids:iface-id="{vm.name}-{nic["name"]}"',
             f'external_ids:vm-id="{vm.name}"', "external_ids:iface-status=active")
        ofport = int(_run(what, "ovs-vsctl", "get", "Interface", bridge_end, "ofport"))
        if nic["disable_ipv6"] in ("0", "1"):
            vm.cmd(f"sysctl -qw net.ipv6.conf.{waiting}.disable_ipv6={nic['disable_ipv6']}")
    except (MigrationError, ValueError) as error:
        _discard_port(destination.name, bridge_end)
        raise MigrationError(f"{what}: {error}") from error
    if ofport <= 0:
        _discard_port(destination.name, bridge_end)
        raise MigrationError(f"{what}: {bridge_end} got no OpenFlow port ({ofport})")
    return DestinationPort(destination.name, bridge_end, ofport, nic["mac"]), waiting


def _discard_port(bridge: str, interface: str) -> None:
    """Undo step 1 (deleting one end of a veth deletes both)."""
    subprocess.run(["ovs-vsctl", "--if-exists", "del-port", bridge, interface],
                   capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", interface], capture_output=True, check=False)


def _switchover_batch(ifname: str, waiting: str, retired: str, nic: dict) -> list:
    """``ip -batch`` lines: old interface out of the way, the waiting one in its place."""
    lines = [f"link set {ifname} down", f"link set {ifname} name {retired}",
             f"link set {waiting} name {ifname}"]
    lines += [f"addr add {address} brd + dev {ifname}" for address in nic["addresses"]]
    lines.append(f"link set {ifname} up")
    lines += [f"route replace {route} dev {ifname}" for route in nic["routes"]]
    lines += [f"neigh replace {ip} lladdr {mac} dev {ifname} nud stale"
              for ip, mac in nic["neighbours"]]
    return lines


def _switch_over(vm, ifname: str, waiting: str, retired: str, nic: dict) -> tuple:
    """Step 2 in the VM; (down, up) monotonic ns seen inside it (None if unknown).

    The shell stamps the switchover with bash's ``$EPOCHREALTIME`` (no fork),
    converted to the monotonic clock; MigrationError if any line failed.
    """
    with tempfile.NamedTemporaryFile("w", prefix=f"dynprov-switchover-{vm.name}-",
                                     suffix=".batch") as batch:
        batch.write("\n".join(_switchover_batch(ifname, waiting, retired, nic)) + "\n")
        batch.flush()
        offset = time.time_ns() - time.monotonic_ns()
        out = vm.cmd(f"echo down=$EPOCHREALTIME; ip -batch {batch.name}; "
                     "echo rc=$? up=$EPOCHREALTIME")
    if "rc=0" not in out:
        raise MigrationError(f"{vm.name}: switchover of {ifname} failed: {out.strip()}")
    stamps = dict(re.findall(r"\b(down|up)=(\d+[.,]\d+)", out))
    if len(stamps) != 2:
        return None, None
    return tuple(int(float(stamps[key].replace(",", ".")) * 1e9) - offset
                 for key in ("down", "up"))


def _roll_back(vm, ifname: str, waiting: str, retired: Optional[str], nic: dict) -> None:
    """Best effort after a failed switchover: the old interface back as it was."""
    names = _vm_names(vm)
    if retired in names and ifname not in names:
        vm.cmd(f"ip link set {retired} name {ifname}")
    if waiting in names:
        vm.cmd(f"ip link del {waiting}")
    vm.cmd(f"ip link set {ifname} up")
    for route in nic["routes"]:
        vm.cmd(f"ip route replace {route} dev {ifname}")


def _remove_source_port(source, intf) -> int:
    """The source's OVSDB row goes, as libvirt removes it; its time."""
    subprocess.run(["ovs-vsctl", "--if-exists", "del-port", source.name, intf.name],
                   capture_output=True, check=False)
    return time.monotonic_ns()


def _relink(net, vm_intf, old_peer, new_peer) -> None:
    """Mininet's records: the old link and port go, a link over the new pair comes."""
    old_link = vm_intf.link
    old_peer.node.delIntf(old_peer)
    old_peer.link = None
    new_link = _AdoptedLink(vm_intf, new_peer)
    if old_link in net.links:
        net.links[net.links.index(old_link)] = new_link
    else:
        net.links.append(new_link)


class _Announcer:
    """``announce --wait-new`` inside the VM, started before the switchover."""

    def __init__(self, vm, ifname: str, mode: str, timeout_s: float = 30.0) -> None:
        options = (["--rarp", "--delays-ms", ",".join(map(str, QEMU_ANNOUNCE_MS))]
                   if mode == "qemu" else ["--delays-ms", "0"])
        self.vm = vm
        self.process = vm.popen(
            [sys.executable, "-m", "ryu_apps.lab.vmtools.announce", ifname, *options,
             "--wait-new", str(timeout_s), "--timestamps"],
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), text=True)
        if not select.select([self.process.stdout], [], [], 10)[0] or \
                self.process.stdout.readline().strip() != "ready":
            self.kill()
            raise MigrationError(f"{vm.name}: announcer on {ifname} did not start: "
                                 f"{self.process.stderr.read().strip()}")

    def finish(self, timeout_s: float = 10.0) -> tuple:
        """Wait for the last announcement; the send times."""
        try:
            out, err = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise MigrationError(f"{self.vm.name}: announcer did not finish") from None
        if self.process.returncode:
            raise MigrationError(f"{self.vm.name}: announcer failed: {err.strip()}")
        return tuple(int(line.split()[1]) for line in out.splitlines()
                     if line.startswith("sent "))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def live_migrate(net, vm, dst, announce: str = "qemu",
                 before_switchover: Optional[Callable[[], None]] = None,
                 wait_announcements: bool = True) -> MigrationTimes:
    """Live-migrate Mininet host ``vm`` to OVS bridge ``dst`` (module docstring).

    ``vm`` and ``dst`` are nodes or names. ``before_switchover`` runs once the
    destination port exists (e.g. to notify the controller). With
    ``wait_announcements`` (default) it returns after the last announcement
    (800 ms after the switchover for ``qemu``) with their send times;
    otherwise at once, with none recorded.
    """
    if announce not in ANNOUNCE_MODES:
        raise ValueError(f"announce must be one of {ANNOUNCE_MODES}, not {announce!r}")
    vm, destination = _node(net, vm), _node(net, dst)
    vm_intf, old_peer = _vm_port(vm)
    source = old_peer.node
    _check_destination(vm, source, destination)
    nic = _nic_state(vm, vm_intf.name)
    port, waiting = _create_destination_port(vm, destination, nic)
    created = time.monotonic_ns()
    announcer, retired = None, None
    try:
        announcer = _Announcer(vm, vm_intf.name, announce) if announce != "none" else None
        if before_switchover is not None:
            before_switchover()
        retired = _unused_name(f"dpr{os.getpid() % 100000}x{next(_names)}", "dpr",
                               _vm_names(vm))
        switchover = time.monotonic_ns()
        guest_down, guest_up = _switch_over(vm, vm_intf.name, waiting, retired, nic)
        resumed = time.monotonic_ns()
    except BaseException:
        if announcer is not None:
            announcer.kill()
        _roll_back(vm, vm_intf.name, waiting, retired, nic)
        _discard_port(destination.name, port.interface)
        raise
    vm.cmd(f"ip link del {retired}")
    deleted = time.monotonic_ns()
    removed = _remove_source_port(source, old_peer)
    new_peer = type(old_peer)(port.interface, node=destination, port=port.ofport)
    _relink(net, vm_intf, old_peer, new_peer)
    sent = ()
    if announcer is not None and wait_announcements:
        sent = announcer.finish()
    elif announcer is not None:
        threading.Thread(target=announcer.process.communicate, daemon=True).start()
    return MigrationTimes(vm.name, source.name, port, announce, created, switchover,
                          resumed, deleted, removed, sent, guest_down, guest_up)


def move_port(net, vm, dst, attached_mac: bool = False) -> MigrationTimes:
    """Re-cable ``vm``: its veth's bridge end moves to ``dst`` (like mobility.py).

    The bridge end is detached, renamed to ``dst``'s next port name and attached
    with that port number (and ``attached-mac`` if asked). No announcement.
    """
    vm, destination = _node(net, vm), _node(net, dst)
    vm_intf, peer = _vm_port(vm)
    source = peer.node
    _check_destination(vm, source, destination)
    port = destination.newPort()
    new_name = _unused_name(f"{destination.name}-eth{port}", "dpb", set())
    extra = ([f'external_ids:attached-mac="{vm_intf.MAC()}"'] if attached_mac else [])
    what = f"{vm.name}: moving {peer.name} from {source.name} to {destination.name}"
    start = time.monotonic_ns()
    _run(what, "ovs-vsctl", "del-port", source.name, peer.name)
    removed = time.monotonic_ns()
    if new_name != peer.name:
        _run(what, "ip", "link", "set", peer.name, "down")
        _run(what, "ip", "link", "set", peer.name, "name", new_name)
    _run(what, "ip", "link", "set", new_name, "up")
    _run(what, "ovs-vsctl", "add-port", destination.name, new_name, "--", "set",
         "Interface", new_name, f"ofport_request={port}", *extra)
    done = time.monotonic_ns()
    ofport = int(_run(what, "ovs-vsctl", "get", "Interface", new_name, "ofport"))
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

    from ryu_apps.lab.testbed import load_topology_module

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
        from ryu_apps.lab.testbed import stop_network
        stop_network(net)
        raise
    return net
