"""A tiny DHCPv4 server and client over raw sockets, for tests (and its frame builder).

Run inside a Mininet host::

    python -m tests.support.dhcp_peer server IFACE --pool 10.0.50.100 --server-ip 10.0.50.1
    python -m tests.support.dhcp_peer client IFACE [--timeout 10]

The server answers each DISCOVER with an OFFER and each REQUEST with an ACK of the
next pool address for that client (the same one again for a client it knows), sent
to the client's MAC; it runs until killed. The client sends DISCOVER, then REQUEST
for the first OFFER, retrying each second, and prints ``bound <address> from
<server>`` on the ACK (or ``no lease`` at the timeout); ``--release`` sends a
DHCPRELEASE of that address afterwards. Neither configures the interface.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import struct
import sys
import time

from ryu_apps.lab.vmtools.prober import checksum

MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE = range(1, 8)


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def dhcp_frame(eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, *, sport: int,
               dport: int, op: int, chaddr: str, message_type: int | None,
               xid: int = 0x1234, yiaddr: str = "0.0.0.0", ciaddr: str = "0.0.0.0",
               lease: int | None = None, server_id: str | None = None,
               requested: str | None = None) -> bytes:
    """An Ethernet frame carrying one DHCP message (options in RFC 2132 order)."""
    options = b""
    if message_type is not None:
        options += bytes([53, 1, message_type])
    if requested is not None:
        options += bytes([50, 4]) + socket.inet_aton(requested)
    if lease is not None:
        options += bytes([51, 4]) + struct.pack("!I", lease)
    if server_id is not None:
        options += bytes([54, 4]) + socket.inet_aton(server_id)
    bootp = (bytes([op, 1, 6, 0]) + struct.pack("!IHH", xid, 0, 0)
             + socket.inet_aton(ciaddr) + socket.inet_aton(yiaddr) + bytes(4) + bytes(4)
             + _mac_bytes(chaddr) + bytes(10) + bytes(64) + bytes(128)
             + MAGIC + options + b"\xff")
    udp = struct.pack("!HHHH", sport, dport, 8 + len(bootp), 0) + bootp
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         socket.inet_aton(ip_src), socket.inet_aton(ip_dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return _mac_bytes(eth_dst) + _mac_bytes(eth_src) + b"\x08\x00" + header + udp


def dhcp_ack(mac: str, address: str, server_ip: str = "10.0.50.1",
             server_mac: str = "02:00:00:00:00:fe", lease: int | None = None) -> bytes:
    """A server's DHCPACK of ``address`` to the VM with ``mac``."""
    return dhcp_frame(server_mac, mac, server_ip, address, sport=67, dport=68, op=2,
                      chaddr=mac, message_type=ACK, yiaddr=address, lease=lease,
                      server_id=server_ip)


def _parse(frame: bytes):
    """(message type, xid, chaddr, yiaddr, server id) of a DHCP frame, or None."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    udp = 14 + (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack("!HH", frame[udp:udp + 4])
    bootp = frame[udp + 8:]
    if {sport, dport} != {67, 68} or bootp[236:240] != MAGIC:
        return None
    kind, server, index = None, None, 240
    while index + 1 < len(bootp) and bootp[index] != 255:
        code, length = bootp[index], bootp[index + 1]
        if code == 0:
            index += 1
            continue
        value = bootp[index + 2:index + 2 + length]
        if code == 53 and length == 1:
            kind = value[0]
        elif code == 54 and length == 4:
            server = socket.inet_ntoa(value)
        index += 2 + length
    return (kind, struct.unpack("!I", bootp[4:8])[0], bootp[28:34].hex(":"),
            socket.inet_ntoa(bootp[16:20]), server)


def _socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((interface, 0))
    sock.settimeout(0.2)
    return sock


def _own_mac(interface: str) -> str:
    with open(f"/sys/class/net/{interface}/address") as handle:
        return handle.read().strip()


def serve(interface: str, pool: str, server_ip: str, lease: int) -> None:
    """Answer DISCOVER with OFFER and REQUEST with ACK, forever."""
    sock, mine = _socket(interface), _own_mac(interface)
    given: dict = {}
    first = ipaddress.IPv4Address(pool)
    print(f"serving on {interface}", flush=True)
    while True:
        try:
            frame = sock.recv(2048)
        except socket.timeout:
            continue
        found = _parse(frame)
        if found is None or found[0] not in (DISCOVER, REQUEST):
            continue
        kind, xid, chaddr, _, _ = found
        address = given.setdefault(chaddr, str(first + len(given)))
        answer = OFFER if kind == DISCOVER else ACK
        sock.send(dhcp_frame(mine, chaddr, server_ip, address, sport=67, dport=68, op=2,
                             chaddr=chaddr, message_type=answer, xid=xid, yiaddr=address,
                             lease=lease, server_id=server_ip))


def _exchange(sock, mine: str, xid: int, kind: int, want: int, **options):
    """Send one client message, broadcast; the server's answer of type ``want``."""
    sock.send(dhcp_frame(mine, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", sport=68,
                         dport=67, op=1, chaddr=mine, message_type=kind, xid=xid, **options))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            found = _parse(sock.recv(2048))
        except socket.timeout:
            continue
        if found and found[0] == want and found[1] == xid and found[2] == mine:
            return found
    return None


def client(interface: str, timeout: float, release: bool) -> int:
    """DISCOVER, REQUEST the first offer; print what was bound."""
    sock, mine = _socket(interface), _own_mac(interface)
    deadline = time.monotonic() + timeout
    xid = int.from_bytes(os.urandom(4), "big")
    while time.monotonic() < deadline:
        offer = _exchange(sock, mine, xid, DISCOVER, OFFER)
        if offer is None:
            continue
        ack = _exchange(sock, mine, xid, REQUEST, ACK, requested=offer[3],
                        server_id=offer[4])
        if ack is None:
            continue
        print(f"bound {ack[3]} from {ack[4]}", flush=True)
        if release:
            sock.send(dhcp_frame(mine, "ff:ff:ff:ff:ff:ff", ack[3], ack[4], sport=68,
                                 dport=67, op=1, chaddr=mine, message_type=RELEASE,
                                 xid=xid, ciaddr=ack[3], server_id=ack[4]))
            print("released", flush=True)
        return 0
    print("no lease", flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("interface")
    parser.add_argument("--pool", default="10.0.50.100")
    parser.add_argument("--server-ip", default="10.0.50.1")
    parser.add_argument("--lease", type=int, default=3600)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--release", action="store_true")
    args = parser.parse_args(argv)
    if args.role == "server":
        serve(args.interface, args.pool, args.server_ip, args.lease)
        return 0
    return client(args.interface, args.timeout, args.release)


if __name__ == "__main__":
    sys.exit(main())
