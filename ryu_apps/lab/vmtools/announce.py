"""Announce a VM the way a booting or migrated VM does: gratuitous ARP or RARP.

Runs inside a Mininet host (a network namespace), standard library only::

    python3 -m ryu_apps.lab.vmtools.announce eth0 [--rarp] [--count N] [--gap-ms MS]
    python3 -m ryu_apps.lab.vmtools.announce eth0 --rarp --delays-ms 0,50,200,450,800 \
            [--wait-new SECONDS] [--timestamps]

A gratuitous ARP is an ARP request from the VM's MAC and IP for its own IP,
sent to the broadcast address; a RARP announcement (what QEMU sends after a
live migration) is a RARP request for the VM's own MAC.

``--delays-ms`` sends one frame at each offset from the start (QEMU announces
at 0, 50, 200, 450 and 800 ms after the VM resumes). ``--wait-new`` first
prints ``ready`` and waits until the interface is replaced (a new device under
that name, up with carrier, and with an IPv4 address for ARP): the start is
the moment the new interface is seen, as a migrated VM resumes on a new NIC.
``--timestamps`` prints ``sent <CLOCK_MONOTONIC ns>`` for every frame.
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
SIOCGIFFLAGS, SIOCGIFINDEX = 0x8913, 0x8933
IFF_UP, IFF_RUNNING = 0x1, 0x40
POLL_S = 0.001
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


def interface_state(ifname: str) -> tuple[int | None, int, bool]:
    """(ifindex or None when absent, flags, has an IPv4 address) of an interface."""
    request = struct.pack("256s", ifname.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            index = struct.unpack_from("i", fcntl.ioctl(sock.fileno(), SIOCGIFINDEX,
                                                        request), 16)[0]
            flags = struct.unpack_from("H", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS,
                                                        request), 16)[0]
        except OSError:
            return None, 0, False
        try:
            fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            has_ip = True
        except OSError:
            has_ip = False
    return index, flags, has_ip


def wait_for_new_interface(ifname: str, timeout_s: float, need_ip: bool) -> None:
    """Print ``ready``, then return once ``ifname`` is a new device, up and running.

    New means another ifindex than at the start, or present again after having
    been seen absent. Raises TimeoutError after ``timeout_s``.
    """
    old_index = interface_state(ifname)[0]
    print("ready", flush=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        index, flags, has_ip = interface_state(ifname)
        if index is None:
            old_index = None
        elif (index != old_index and flags & IFF_UP and flags & IFF_RUNNING
              and (has_ip or not need_ip)):
            return
        time.sleep(POLL_S)
    raise TimeoutError(f"{ifname} was not replaced by a new interface within {timeout_s} s")


def announce_at(ifname: str, offsets_ms: list[float], rarp: bool = False,
                timestamps: bool = False) -> list[int]:
    """Send one announcement at each offset (ms) from now; their send times (ns)."""
    mac, ip = interface_addresses(ifname)
    frame = rarp_announcement(mac) if rarp else gratuitous_arp(mac, ip)
    start, sent = time.monotonic_ns(), []
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        for offset in sorted(offsets_ms):
            delay = start + offset * 1e6 - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            sock.send(frame)
            sent.append(time.monotonic_ns())
            if timestamps:
                print(f"sent {sent[-1]}", flush=True)
    return sent


def _delays(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of milliseconds: {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"need one or more offsets >= 0: {text!r}")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface")
    parser.add_argument("--rarp", action="store_true", help="RARP instead of gratuitous ARP")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    parser.add_argument("--mac-prefix", help="send each frame from a new MAC with this "
                        "prefix (e.g. 00:0b) instead of the interface's own")
    parser.add_argument("--delays-ms", type=_delays, help="comma-separated offsets (ms) "
                        "from the start, one frame each (instead of --count/--gap-ms)")
    parser.add_argument("--wait-new", type=float, metavar="SECONDS", help="print 'ready', "
                        "then wait until the interface is replaced by a new one")
    parser.add_argument("--timestamps", action="store_true",
                        help="print 'sent <monotonic ns>' for every frame")
    args = parser.parse_args(argv)
    if (args.delays_ms or args.timestamps) and args.mac_prefix:
        parser.error("--mac-prefix does not combine with --delays-ms or --timestamps")
    if args.wait_new is not None:
        try:
            wait_for_new_interface(args.interface, args.wait_new, need_ip=not args.rarp)
        except TimeoutError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.delays_ms or args.timestamps:
        offsets = args.delays_ms or [i * args.gap_ms for i in range(args.count)]
        announce_at(args.interface, offsets, args.rarp, args.timestamps)
        return 0
    prefix = bytes.fromhex(args.mac_prefix.replace(":", "")) if args.mac_prefix else None
    announce(args.interface, args.rarp, args.count, args.gap_ms, prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
