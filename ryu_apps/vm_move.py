"""Move a Mininet host between server bridges the way a hypervisor migrates a VM.

1. The destination port is created first: a new veth pair whose bridge end is
   added to the destination bridge with ``external_ids:attached-mac`` (as
   libvirt sets it) and whose other end waits in the root namespace, down.
2. Switchover: the VM's old interface is deleted (its source bridge port goes
   away) and the waiting end is moved into the VM's namespace, renamed to the
   old interface's name, given the same MAC and IP, and brought up.
3. Announcements: QEMU-like RARPs at 0/50/200/450/800 ms after the new
   interface is up, one gratuitous ARP, or none — sent from inside the VM by
   ``ryu_apps.vmtools.announce --wait-new``, started before the switchover so
   that the first frame leaves the instant the interface is up.
The VM keeps its MAC, IP and ARP cache (a migrated guest keeps its memory);
nothing in it changes.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ryu_apps.lab import _vmtool

QEMU_ANNOUNCE_MS = (0, 50, 200, 450, 800)
_counter = itertools.count(1)


@dataclass
class MoveTimes:
    """Monotonic seconds of the steps of one move."""

    port_created: float
    switchover: float
    interface_up: float


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


def create_destination_port(vm, destination) -> tuple[str, str]:
    """A veth pair: its bridge end on ``destination`` with the VM's attached-mac."""
    number = next(_counter)
    bridge_end = f"{destination.name[:8]}-m{number}"[:15]
    waiting_end = f"dpmv{number}"[:15]
    _run("ip", "link", "add", bridge_end, "type", "veth", "peer", "name", waiting_end)
    _run("ip", "link", "set", bridge_end, "up")
    _run("ethtool", "-K", bridge_end, "tx", "off")
    _run("ovs-vsctl", "add-port", destination.name, bridge_end, "--", "set", "Interface",
         bridge_end, f"external_ids:attached-mac={vm.MAC()}",
         f"external_ids:vm-id={vm.name}")
    return bridge_end, waiting_end


def _start_announcer(vm, mode: str) -> Optional[object]:
    if mode == "none":
        return None
    intf = vm.defaultIntf().name
    options = (f"--rarp --delays-ms {','.join(map(str, QEMU_ANNOUNCE_MS))}" if mode == "qemu"
               else "--delays-ms 0")
    log = f"/tmp/dynprov-announce-{vm.name}-{next(_counter)}.log"
    vm.cmd(f"{_vmtool('announce')} {intf} {options} --wait-new 20 > {log} 2>&1 &")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if "ready" in vm.cmd(f"cat {log}"):
            return log
        time.sleep(0.01)
    raise RuntimeError(f"{vm.name}: announcer did not start: {vm.cmd(f'cat {log}')}")


def _neighbour_restore(vm, ifname: str) -> list[str]:
    """``ip -batch`` lines that put the VM's ARP cache back on its new interface.

    A migrated guest keeps its whole memory, ARP cache included; deleting and
    re-creating the interface here would flush it, so it is carried over.
    """
    lines = []
    for entry in vm.cmd(f"ip neigh show dev {ifname}").splitlines():
        parts = entry.split()
        if "lladdr" in parts:
            mac = parts[parts.index("lladdr") + 1]
            lines.append(f"neigh replace {parts[0]} lladdr {mac} dev {ifname} nud stale")
    return lines


def live_migrate(net, vm, destination, announce: str = "qemu",
                 before_switchover: Optional[Callable[[], None]] = None) -> MoveTimes:
    """Migrate ``vm`` to server bridge ``destination`` (see the module docstring)."""
    if announce not in ("qemu", "garp", "none"):
        raise ValueError(f"announce: expected qemu, garp or none, got {announce!r}")
    intf = vm.defaultIntf()
    name, mac, ip = intf.name, vm.MAC(), vm.IP()
    prefix_len = intf.prefixLen
    source_port = intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1
    bridge_end, waiting_end = create_destination_port(vm, destination)
    created = time.monotonic()
    # Like a hypervisor's paused VM on the destination: its NIC exists, down.
    _run("ip", "link", "set", waiting_end, "netns", str(vm.pid))
    vm.cmd(f"ip link set {waiting_end} address {mac}; "
           f"ethtool -K {waiting_end} tx off >/dev/null 2>&1")
    announcer = _start_announcer(vm, announce)
    if before_switchover is not None:
        before_switchover()
    # The switchover itself: one `ip -batch`, so the VM is off the network only
    # for the few milliseconds a hypervisor's switchover takes.
    batch = [f"link del {name}", f"link set {waiting_end} name {name}",
             f"addr add {ip}/{prefix_len} dev {name}", f"link set {name} up"]
    batch += [f"route add {route} dev {name}" for route in vm.params.get("routes", ())]
    batch += _neighbour_restore(vm, name)
    switchover = time.monotonic()
    vm.cmd("ip -batch - <<'EOF'\n" + "\n".join(batch) + "\nEOF")
    up = time.monotonic()
    subprocess.run(["ovs-vsctl", "--if-exists", "del-port", source_port.node.name,
                    source_port.name], capture_output=True)
    del announcer  # it announces on its own once the new interface is up
    return MoveTimes(created, switchover, up)
