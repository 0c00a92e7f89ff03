"""A DHCPv6 Reply sent from a Mininet host over a raw socket, for tests (and its builder).

Run inside a Mininet host::

    python -m tests.support.dhcpv6_peer IFACE --to-mac MAC --to IPV6 --address IPV6
        [--valid SECONDS]

Sends one Reply (msg-type 7) from the interface's MAC and link-local address ``--from``
(UDP 547 -> 546) to ``--to``/``--to-mac``, leasing ``--address`` in one IA_NA with a
valid lifetime of ``--valid`` seconds; prints ``sent reply``. It configures nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import struct
import sys

from ryu_apps.lab.vmtools.announce import interface_addresses
from ryu_apps.lab.vmtools.prober import checksum


def reply_frame(eth_src: bytes, eth_dst: str, src: str, dst: str, address: str,
                valid: int = 7200, xid: int = 0x5A5A5A) -> bytes:
    """An Ethernet frame carrying a DHCPv6 Reply that leases ``address``."""
    iaaddr = struct.pack("!HH", 5, 24) + ipaddress.IPv6Address(address).packed \
        + struct.pack("!II", valid // 2, valid)
    ia_na = struct.pack("!HHIII", 3, 12 + len(iaaddr), 1, valid // 4, valid // 2) + iaaddr
    server_id = struct.pack("!HH", 2, 10) + b"\x00\x03\x00\x01" + eth_src
    payload = bytes([7]) + xid.to_bytes(3, "big") + server_id + ia_na
    src_raw, dst_raw = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    udp = struct.pack("!HHHH", 547, 546, 8 + len(payload), 0) + payload
    pseudo = src_raw + dst_raw + struct.pack("!I3xB", len(udp), 17)
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    header = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + src_raw + dst_raw
    return bytes.fromhex(eth_dst.replace(":", "")) + eth_src + struct.pack("!H", 0x86DD) \
        + header + udp


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface")
    parser.add_argument("--from", dest="source", required=True, help="IPv6 source")
    parser.add_argument("--to", required=True, help="the client's IPv6 address")
    parser.add_argument("--to-mac", required=True, help="the client's MAC")
    parser.add_argument("--address", required=True, help="the IPv6 address leased")
    parser.add_argument("--valid", type=int, default=7200)
    args = parser.parse_args(argv)
    own_mac, _ = interface_addresses(args.interface)
    frame = reply_frame(own_mac, args.to_mac, args.source, args.to, args.address, args.valid)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((args.interface, 0))
        sock.send(frame)
    print("sent reply")
    return 0


if __name__ == "__main__":
    sys.exit(main())
