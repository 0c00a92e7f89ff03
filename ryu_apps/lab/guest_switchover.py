"""Inside the VM during a live migration: the NIC state it keeps, the switchover, the roll-back."""

from __future__ import annotations

import re
import tempfile
import time
from typing import Optional

from ryu_apps.lab.migration_records import MigrationError
from ryu_apps.lab.vm_ports import vm_interface_names


def nic_state(vm, ifname: str) -> dict:
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


def switchover_batch(ifname: str, waiting: str, retired: str, nic: dict) -> list:
    """``ip -batch`` lines: old interface out of the way, the waiting one in its place."""
    lines = [f"link set {ifname} down", f"link set {ifname} name {retired}",
             f"link set {waiting} name {ifname}"]
    lines += [f"addr add {address} brd + dev {ifname}" for address in nic["addresses"]]
    lines.append(f"link set {ifname} up")
    lines += [f"route replace {route} dev {ifname}" for route in nic["routes"]]
    lines += [f"neigh replace {ip} lladdr {mac} dev {ifname} nud stale"
              for ip, mac in nic["neighbours"]]
    return lines


def switch_over(vm, ifname: str, waiting: str, retired: str, nic: dict) -> tuple:
    """Step 2 in the VM; (down, up) monotonic ns seen inside it (None if unknown).

    The shell stamps the switchover with bash's ``$EPOCHREALTIME`` (no fork),
    converted to the monotonic clock; MigrationError if any line failed.
    """
    with tempfile.NamedTemporaryFile("w", prefix=f"dynprov-switchover-{vm.name}-",
                                     suffix=".batch") as batch:
        batch.write("\n".join(switchover_batch(ifname, waiting, retired, nic)) + "\n")
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


def roll_back(vm, ifname: str, waiting: str, retired: Optional[str], nic: dict) -> None:
    """Best effort after a failed switchover: the old interface back as it was."""
    names = vm_interface_names(vm)
    if retired in names and ifname not in names:
        vm.cmd(f"ip link set {retired} name {ifname}")
    if waiting in names:
        vm.cmd(f"ip link del {waiting}")
    vm.cmd(f"ip link set {ifname} up")
    for route in nic["routes"]:
        vm.cmd(f"ip route replace {route} dev {ifname}")
