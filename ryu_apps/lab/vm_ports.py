"""A VM's ports on OVS bridges during a move: create, discard, rename, and Mininet's records."""

from __future__ import annotations

import itertools
import os
import subprocess
import time

from mininet.link import Link

from ryu_apps.lab.migration_records import DestinationPort, MigrationError

IFNAME_MAX = 15

_names = itertools.count(1)


class AdoptedLink(Link):
    """A Mininet link over an existing veth pair (Link() would create one)."""

    def __init__(self, intf1, intf2) -> None:  # pylint: disable=super-init-not-called
        self.intf1, self.intf2, self.fast = intf1, intf2, False
        intf1.link = intf2.link = self


def node_of(net, node_or_name):
    """A Mininet node, given as itself or by name."""
    return net.get(node_or_name) if isinstance(node_or_name, str) else node_or_name


def run_checked(what: str, *command: str) -> str:
    """Run a root-namespace command; MigrationError naming ``what`` if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise MigrationError(f"{what}: {' '.join(command)}: "
                             f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def vm_port(vm):
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


def check_destination(vm, source, destination) -> None:
    """MigrationError unless ``destination`` is an OVS bridge other than ``source``."""
    if not hasattr(destination, "vsctl"):
        raise MigrationError(f"{vm.name}: destination {destination.name} is not an OVS bridge")
    if destination is source:
        raise MigrationError(f"{vm.name} is already on {destination.name}")


def unused_name(preferred: str, fallback_prefix: str, namespace_names: set) -> str:
    """``preferred`` if it is short enough and free, else a fresh short name."""
    taken = set(os.listdir("/sys/class/net")) | namespace_names
    if len(preferred) <= IFNAME_MAX and preferred not in taken:
        return preferred
    while True:
        name = f"{fallback_prefix}{os.getpid() % 100000}x{next(_names)}"[:IFNAME_MAX]
        if name not in taken:
            return name


def vm_interface_names(vm) -> set:
    """Names of the network interfaces in the VM's namespace."""
    return set(vm.cmd("ls /sys/class/net").split())


def scratch_name(prefix: str, vm) -> str:
    """A fresh short interface name starting with ``prefix``, free in the VM and here."""
    return unused_name(f"{prefix}{os.getpid() % 100000}x{next(_names)}", prefix,
                       vm_interface_names(vm))


def create_destination_port(vm, destination, nic: dict, attached_mac: bool = True):
    """Step 1: the new veth pair, its bridge end numbered on ``destination``
    (``attached_mac`` False: its OVSDB row names no VM, as a hypervisor that writes
    it late or never)."""
    port = destination.newPort()
    bridge_end = unused_name(f"{destination.name}-eth{port}", "dpb", set())
    waiting = scratch_name("dpw", vm)
    what = f"{vm.name}: destination port on {destination.name}"
    run_checked(what, "ip", "link", "add", waiting, "mtu", nic["mtu"], "address", nic["mac"],
                "type", "veth", "peer", "name", bridge_end, "mtu", nic["mtu"])
    try:
        run_checked(what, "ethtool", "-K", waiting, "tx", "off")
        run_checked(what, "ip", "link", "set", waiting, "netns", str(vm.pid))
        run_checked(what, "ip", "link", "set", bridge_end, "up")
        row = [f'external_ids:attached-mac="{nic["mac"]}"',
               f'external_ids:iface-id="{vm.name}-{nic["name"]}"',
               f'external_ids:vm-id="{vm.name}"', "external_ids:iface-status=active"]
        run_checked(what, "ovs-vsctl", "add-port", destination.name, bridge_end, "--", "set",
                    "Interface", bridge_end, f"ofport_request={port}",
                    *(row if attached_mac else []))
        ofport = int(run_checked(what, "ovs-vsctl", "get", "Interface", bridge_end, "ofport"))
        if nic["disable_ipv6"] in ("0", "1"):
            vm.cmd(f"sysctl -qw net.ipv6.conf.{waiting}.disable_ipv6={nic['disable_ipv6']}")
    except (MigrationError, ValueError) as error:
        discard_port(destination.name, bridge_end)
        raise MigrationError(f"{what}: {error}") from error
    if ofport <= 0:
        discard_port(destination.name, bridge_end)
        raise MigrationError(f"{what}: {bridge_end} got no OpenFlow port ({ofport})")
    return DestinationPort(destination.name, bridge_end, ofport, nic["mac"]), waiting


def discard_port(bridge: str, interface: str) -> None:
    """Undo step 1 (deleting one end of a veth deletes both)."""
    subprocess.run(["ovs-vsctl", "--if-exists", "del-port", bridge, interface],
                   capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", interface], capture_output=True, check=False)


def remove_source_port(source, intf) -> int:
    """The source's OVSDB row goes, as libvirt removes it; its time."""
    subprocess.run(["ovs-vsctl", "--if-exists", "del-port", source.name, intf.name],
                   capture_output=True, check=False)
    return time.monotonic_ns()


def relink(net, vm_intf, old_peer, new_peer) -> None:
    """Mininet's records: the old link and port go, a link over the new pair comes."""
    old_link = vm_intf.link
    old_peer.node.delIntf(old_peer)
    old_peer.link = None
    new_link = AdoptedLink(vm_intf, new_peer)
    if old_link in net.links:
        net.links[net.links.index(old_link)] = new_link
    else:
        net.links.append(new_link)
