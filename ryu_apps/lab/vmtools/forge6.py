"""IPv6 frames a VM may or may not send: echo, neighbour discovery, router advertisements.

Run inside a VM (a Mininet host) by the IPv6 guard's integration tests::

    python -m ryu_apps.lab.vmtools.forge6 IFACE --kind echo|ns|na|ra|redirect|udp
        --src IPV6 [--dst IPV6] [--dst-mac MAC] [--target IPV6] [--lladdr MAC]
        [--count N] [--rate PPS]

Frames leave from the interface's own MAC with source address ``--src`` (the
VM's own, or one it does not own); ``--target`` and ``--lladdr`` fill an NS or
NA's target and its link-layer option (default: none). Every frame carries
:data:`MARKER` after its ICMPv6 body, so a capture can tell them from the
kernel's own; ``--kind udp`` sends a UDP datagram from ``--sport`` to
``--dport`` instead. Prints ``sent N``.
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys
from typing import Iterator

from ryu_apps.lab.vmtools.announce import interface_addresses
from ryu_apps.lab.vmtools.forge import mac_bytes, send_paced
from ryu_apps.lab.vmtools.prober import checksum

MARKER = b"dynprov-ipv6"
ETH_P_IPV6, ICMPV6, UDP = 0x86DD, 58, 17
KINDS = {"echo": 128, "rs": 133, "ra": 134, "ns": 135, "na": 136, "redirect": 137}
ALL_NODES_MAC = "33:33:00:00:00:01"


def icmpv6_packet(src: str, dst: str, kind: int, body: bytes) -> bytes:
    """An IPv6 header (hop limit 255, as ND needs) and a checksummed ICMPv6 message."""
    src_raw, dst_raw = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    message = struct.pack("!BBH", kind, 0, 0) + body
    pseudo = src_raw + dst_raw + struct.pack("!I3xB", len(message), ICMPV6)
    message = message[:2] + struct.pack("!H", checksum(pseudo + message)) + message[4:]
    return struct.pack("!IHBB", 6 << 28, len(message), ICMPV6, 255) + src_raw + dst_raw \
        + message


def icmpv6_body(kind: str, sequence: int, target: str | None, lladdr: str | None) -> bytes:
    """The ICMPv6 message after type, code and checksum, with :data:`MARKER` last."""
    if kind == "echo":
        return struct.pack("!HH", 0xD96, sequence & 0xFFFF) + MARKER
    if kind in ("rs", "ra"):
        fixed = bytes(4) if kind == "rs" else struct.pack("!BBHII", 64, 0, 1800, 0, 0)
        return fixed + _option(1, lladdr) + MARKER
    flags = struct.pack("!I", 0x20000000 if kind == "na" else 0)   # NA: override
    body = flags + ipaddress.IPv6Address(target or "::").packed
    if kind == "redirect":
        body += ipaddress.IPv6Address(target or "::").packed
    return body + _option(2 if kind == "na" else 1, lladdr) + MARKER


def _option(kind: int, lladdr: str | None) -> bytes:
    return b"" if lladdr is None else bytes([kind, 1]) + mac_bytes(lladdr)


def udp6_packet(src: str, dst: str, ports: tuple[int, int], sequence: int) -> bytes:
    """An IPv6 header and a UDP datagram from and to ``ports`` carrying :data:`MARKER`."""
    src_raw, dst_raw = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    body = MARKER + struct.pack("!Q", sequence)
    datagram = struct.pack("!HHHH", ports[0], ports[1], 8 + len(body), 0) + body
    pseudo = src_raw + dst_raw + struct.pack("!I3xB", len(datagram), UDP)
    datagram = datagram[:6] + struct.pack("!H", checksum(pseudo + datagram) or 0xFFFF) \
        + datagram[8:]
    return struct.pack("!IHBB", 6 << 28, len(datagram), UDP, 64) + src_raw + dst_raw \
        + datagram


def frame(src_mac: bytes, dst_mac: str, packet: bytes) -> bytes:
    """``packet`` in an Ethernet frame."""
    return mac_bytes(dst_mac) + src_mac + struct.pack("!H", ETH_P_IPV6) + packet


def _frames(args: argparse.Namespace) -> Iterator[bytes]:
    own_mac, _ = interface_addresses(args.interface)
    for i in range(args.count):
        if args.kind == "udp":
            yield frame(own_mac, args.dst_mac, udp6_packet(args.src, args.dst,
                                                           (args.sport, args.dport), i))
            continue
        body = icmpv6_body(args.kind, i, args.target, args.lladdr)
        yield frame(own_mac, args.dst_mac, icmpv6_packet(args.src, args.dst,
                                                         KINDS[args.kind], body))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface")
    parser.add_argument("--kind", choices=tuple(KINDS) + ("udp",), required=True)
    parser.add_argument("--src", required=True, help="IPv6 source address")
    parser.add_argument("--dst", default="ff02::1", help="IPv6 destination (all nodes)")
    parser.add_argument("--dst-mac", default=ALL_NODES_MAC)
    parser.add_argument("--target", help="NS/NA/redirect target address")
    parser.add_argument("--lladdr", help="the link-layer option's MAC (default: none)")
    parser.add_argument("--sport", type=int, default=40000, help="udp source port")
    parser.add_argument("--dport", type=int, default=9, help="udp destination port")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    sent = send_paced(args.interface, _frames(args), args.rate)
    print(f"sent {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
