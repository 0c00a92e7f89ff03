"""Announce a VM the way a booting or migrated VM does: gratuitous ARP or RARP.

Runs inside a Mininet host (a network namespace), standard library only::

    python3 -m ryu_apps.vmtools.announce eth0 [--rarp] [--count N] [--gap-ms MS]

A gratuitous ARP is an ARP request from the VM's MAC and IP for its own IP,
sent to the broadcast address; a RARP announcement (what QEMU sends after a
live migration) is a RARP request for the VM's own MAC.
"""

from __future__ import annotations

import argparse
import fcntl
import socket
import struct
import sys
import time

ETH_P_ARP, ETH_P_RARP = 0x0806, 0x8035
SIOCGIFADDR, SIOCGIFHWADDR = 0x8915, 0x8927
BROADCAST = b"\xff" * 6


def interface_addresses(ifname: str) -> tuple[bytes, bytes]:
    """(MAC, IPv4) of an interface; IPv4 is 0.0.0.0 when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("256s", ifname.encode()[:15])
        mac = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, request)[18:24]
        try:
            ip = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)[20:24]
        except OSError:
            ip = bytes(4)
    return mac, ip


def gratuitous_arp(mac: bytes, ip: bytes) -> bytes:
    """An Ethernet frame carrying a gratuitous ARP request."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, ip, BROADCAST, ip)
    return _padded(BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp)


def rarp_announcement(mac: bytes) -> bytes:
    """An Ethernet frame carrying a RARP request for the sender's own MAC (QEMU's)."""
    rarp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 3, mac, bytes(4), mac, bytes(4))
    return _padded(BROADCAST + mac + struct.pack("!H", ETH_P_RARP) + rarp)


def _padded(frame: bytes) -> bytes:
    """Pad to Ethernet's 60-byte minimum (the FCS is the NIC's business)."""
    return frame + bytes(max(0, 60 - len(frame)))


def announce(ifname: str, rarp: bool = False, count: int = 1, gap_ms: float = 0,
             mac_prefix: bytes | None = None) -> None:
    """Send ``count`` announcements out of ``ifname``, ``gap_ms`` apart.

    With ``mac_prefix`` every frame comes from a different MAC starting with it
    (a flood of would-be VMs, for testing quarantine and rate limiting).
    """
    mac, ip = interface_addresses(ifname)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        for index in range(count):
            if index:
                time.sleep(gap_ms / 1000.0)
            if mac_prefix is not None:
                mac = mac_prefix + index.to_bytes(6 - len(mac_prefix), "big")
            sock.send(rarp_announcement(mac) if rarp else gratuitous_arp(mac, ip))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface")
    parser.add_argument("--rarp", action="store_true", help="RARP instead of gratuitous ARP")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    parser.add_argument("--mac-prefix", help="send each frame from a new MAC with this "
                        "prefix (e.g. 00:0b) instead of the interface's own")
    args = parser.parse_args(argv)
    prefix = bytes.fromhex(args.mac_prefix.replace(":", "")) if args.mac_prefix else None
    announce(args.interface, args.rarp, args.count, args.gap_ms, prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
