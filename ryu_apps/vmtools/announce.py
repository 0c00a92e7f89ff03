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


def announce(ifname: str, rarp: bool = False, count: int = 1, gap_ms: float = 0) -> None:
    """Send ``count`` announcements out of ``ifname``, ``gap_ms`` apart."""
    mac, ip = interface_addresses(ifname)
    frame = rarp_announcement(mac) if rarp else gratuitous_arp(mac, ip)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        for index in range(count):
            if index:
                time.sleep(gap_ms / 1000.0)
            sock.send(frame)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface")
    parser.add_argument("--rarp", action="store_true", help="RARP instead of gratuitous ARP")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    announce(args.interface, args.rarp, args.count, args.gap_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
