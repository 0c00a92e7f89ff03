"""Hostile frames from inside a VM: forged LLDP, replayed probes, tagged storms, spoofs.

Runs inside a Mininet host (a network namespace); standard library and the pure
core only (``PYTHONPATH`` = the checkout)::

    python3 -m ryu_apps.lab.vmtools.forge lldp IFACE --chassis DPID --port TEXT
            [--signature none|garbage] [--count N] [--rate PPS]
    python3 -m ryu_apps.lab.vmtools.forge replay IFACE --pcap FILE [--count N] [--rate PPS]
    python3 -m ryu_apps.lab.vmtools.forge tagged IFACE --vlans 300[,100] [--tpid 0x8100]
            --dst-mac MAC --dst-ip IP [--src-prefix 00:fe] [--count N] [--rate PPS]
    python3 -m ryu_apps.lab.vmtools.forge spoof IFACE --mac MAC --ip IP
            [--kind garp|icmp|udp] [--dst-mac MAC --dst-ip IP] [--sport N --dport N]
            [--count N] [--rate PPS]

``lldp`` sends LLDP frames naming switch ``DPID`` (16 hex digits, or any text
for a malformed chassis) and port ``TEXT`` (any text: ``-5``, ``0``, a huge
number), unsigned or with a signature TLV laid out as a real probe's whose
HMAC is random bytes. ``replay`` re-sends the LLDP frames of a capture (a real,
signed probe the VM received). ``tagged`` sends ICMP echo requests to
``--dst-ip`` inside one 802.1Q tag or two (QinQ; the outer one with
``--tpid``), from the interface's MAC or, with ``--src-prefix``, from a new MAC
per frame (the two prefix bytes, ``d9``, then a counter). ``spoof`` sends
frames with another VM's MAC and IP: gratuitous ARPs, ICMP echo requests or UDP
datagrams. ``--rate 0`` sends as fast as it can. Every ICMP and UDP payload
starts with :data:`MARKER`, so a capture can tell the attack's frames from
anything else. Prints ``sent N`` at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time
from typing import Callable, Iterator, List

from ryu_apps.core import lldp
from ryu_apps.lab.vmtools.announce import interface_addresses
from ryu_apps.lab.vmtools.prober import checksum

MARKER = b"dynprov-attack"
ETH_P_ARP, ETH_P_IP, ETH_P_8021Q = 0x0806, 0x0800, 0x8100
BROADCAST = b"\xff" * 6
PCAP_MAGIC_US, PCAP_MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D


# -- frames ---------------------------------------------------------------------------
def mac_bytes(text: str) -> bytes:
    """``00:fa:00:00:00:01`` as 6 bytes (ValueError naming the text otherwise)."""
    value = bytes.fromhex(text.replace(":", ""))
    if len(value) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return value


def _tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!H", (tlv_type << 9) | len(value)) + value


def forged_lldp(chassis: str, port: str, src_mac: bytes, signature: str = "none",
                nonce: bytes = b"\x00" * lldp.NONCE_BYTES, now: float = 0.0) -> bytes:
    """An LLDP frame naming switch ``chassis`` and port ``port`` as a dynprov probe does.

    ``signature``: ``none`` (no signature TLV) or ``garbage`` (a well-formed
    signature TLV, stamped ``now``, whose HMAC is random bytes).
    """
    chassis_id = bytes([7]) + b"dpid:" + chassis.encode()
    port_id = bytes([7]) + port.encode()
    body = _tlv(1, chassis_id) + _tlv(2, port_id) + _tlv(3, struct.pack("!H", 120))
    if signature == "garbage":
        process = b"forger"
        head = lldp.auth_head(False, int(now * 1000), nonce, process)
        body += _tlv(127, lldp.AUTH_OUI + bytes([lldp.AUTH_SUBTYPE]) + head + process
                     + os.urandom(lldp.SIGNATURE_BYTES))
    elif signature != "none":
        raise ValueError(f"signature: expected none or garbage, got {signature!r}")
    return (lldp.LLDP_MULTICAST + src_mac + struct.pack("!H", lldp.ETH_TYPE_LLDP) + body
            + _tlv(0, b""))


def ipv4_packet(src_ip: bytes, dst_ip: bytes, protocol: int, payload: bytes) -> bytes:
    """An IPv4 header (checksummed) and ``payload``."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64,
                         protocol, 0, src_ip, dst_ip)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def icmp_echo(sequence: int) -> bytes:
    """An ICMP echo request whose payload starts with :data:`MARKER`."""
    body = MARKER + struct.pack("!Q", sequence)
    header = struct.pack("!BBHHH", 8, 0, 0, 0xD9D9, sequence & 0xFFFF)
    return header[:2] + struct.pack("!H", checksum(header + body)) + header[4:] + body


def udp_datagram(sequence: int, port: int = 9, source_port: int = 40000) -> bytes:
    """A UDP datagram (to the discard port) whose payload starts with :data:`MARKER`."""
    body = MARKER + struct.pack("!Q", sequence)
    return struct.pack("!HHHH", source_port, port, 8 + len(body), 0) + body


def gratuitous_arp(mac: bytes, ip: bytes) -> bytes:
    """A gratuitous ARP request (sender and target: ``ip``) from ``mac``, broadcast."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, mac, ip, BROADCAST, ip)
    return _padded(BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp)


def tagged_echo(dst_mac: bytes, src_mac: bytes, vlans: List[int], outer_tpid: int,
                src_ip: bytes, dst_ip: bytes, sequence: int) -> bytes:
    """An ICMP echo request inside one tag per VLAN of ``vlans`` (outermost first)."""
    tags = b"".join(struct.pack("!HH", outer_tpid if index == 0 else ETH_P_8021Q,
                                vlan & 0x0FFF) for index, vlan in enumerate(vlans))
    packet = ipv4_packet(src_ip, dst_ip, 1, icmp_echo(sequence))
    return _padded(dst_mac + src_mac + tags + struct.pack("!H", ETH_P_IP) + packet)


def spoofed(kind: str, mac: bytes, ip: bytes, dst_mac: bytes, dst_ip: bytes,
            sequence: int, ports: tuple[int, int] = (40000, 9)) -> bytes:
    """A frame from another VM's ``mac`` and ``ip``: ``garp``, ``icmp`` or ``udp``
    (from and to ``ports``)."""
    if kind == "garp":
        return gratuitous_arp(mac, ip)
    if kind == "icmp":
        packet = ipv4_packet(ip, dst_ip, 1, icmp_echo(sequence))
    elif kind == "udp":
        packet = ipv4_packet(ip, dst_ip, 17, udp_datagram(sequence, ports[1], ports[0]))
    else:
        raise ValueError(f"kind: expected garp, icmp or udp, got {kind!r}")
    return _padded(dst_mac + mac + struct.pack("!H", ETH_P_IP) + packet)


def _padded(frame: bytes) -> bytes:
    return frame + bytes(max(0, 60 - len(frame)))


def has_marker(frame: bytes) -> bool:
    """Whether a captured frame is one of this tool's ICMP or UDP frames."""
    return MARKER in frame


# -- captures -------------------------------------------------------------------------
def read_pcap(path: str) -> List[bytes]:
    """The frames of a pcap file (as tcpdump ``-w`` writes it); a truncated last record
    (tcpdump killed while writing) is left out."""
    with open(path, "rb") as capture:
        data = capture.read()
    if len(data) < 24:
        return []
    for order in ("<", ">"):
        if struct.unpack(order + "I", data[:4])[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    else:
        raise ValueError(f"{path}: not a pcap file (magic {data[:4].hex()})")
    frames, offset = [], 24
    while offset + 16 <= len(data):
        captured = struct.unpack_from(order + "I", data, offset + 8)[0]
        if offset + 16 + captured > len(data):
            break
        frames.append(data[offset + 16:offset + 16 + captured])
        offset += 16 + captured
    return frames


# -- sending --------------------------------------------------------------------------
def send_paced(ifname: str, frames: Iterator[bytes], rate: float) -> int:
    """Send every frame out of ``ifname``, at ``rate`` frames/s (0: at once); how many
    went out. Deadlines are absolute, so a late frame does not delay the others."""
    sent = 0
    start = time.monotonic()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        for frame in frames:
            if rate > 0:
                delay = start + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                sock.send(frame)
            except BlockingIOError:
                continue   # the interface's queue is full: that frame is lost
            sent += 1
    return sent


def _frames(args: argparse.Namespace) -> Iterator[bytes]:
    own_mac, own_ip = interface_addresses(args.interface)
    build: Callable[[int], bytes]
    if args.command == "lldp":
        def build(i: int) -> bytes:
            return forged_lldp(args.chassis, args.port, own_mac, args.signature,
                               nonce=i.to_bytes(lldp.NONCE_BYTES, "big"), now=time.time())
    elif args.command == "replay":
        captured = [f for f in read_pcap(args.pcap) if f[12:14] == b"\x88\xcc"]
        if not captured:
            raise SystemExit(f"error: {args.pcap}: no LLDP frame to replay")
        def build(i: int) -> bytes:
            return captured[i % len(captured)]
    elif args.command == "tagged":
        vlans = [int(v) for v in args.vlans.split(",")]
        dst_mac, dst_ip = mac_bytes(args.dst_mac), socket.inet_aton(args.dst_ip)
        prefix = mac_bytes(args.src_prefix + ":d9:00:00:00")[:3] if args.src_prefix else None
        def build(i: int) -> bytes:
            src = own_mac if prefix is None else prefix + (i + 1).to_bytes(3, "big")
            return tagged_echo(dst_mac, src, vlans, args.tpid, own_ip, dst_ip, i)
    else:
        mac, ip = mac_bytes(args.mac), socket.inet_aton(args.ip)
        dst_mac = mac_bytes(args.dst_mac) if args.dst_mac else BROADCAST
        dst_ip = socket.inet_aton(args.dst_ip) if args.dst_ip else b"\xff" * 4
        def build(i: int) -> bytes:
            return spoofed(args.kind, mac, ip, dst_mac, dst_ip, i,
                           (args.sport, args.dport))
    return (build(i) for i in range(args.count))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    forged = commands.add_parser("lldp", help="LLDP frames naming a switch and port")
    forged.add_argument("--chassis", required=True, help="16 hex digits (or any text)")
    forged.add_argument("--port", required=True, help="port id text, e.g. 2, -5, 0")
    forged.add_argument("--signature", choices=("none", "garbage"), default="none")
    replay = commands.add_parser("replay", help="re-send the LLDP frames of a capture")
    replay.add_argument("--pcap", required=True)
    tagged = commands.add_parser("tagged", help="ICMP echo inside 802.1Q or QinQ tags")
    tagged.add_argument("--vlans", required=True, help="VLAN ids, outermost first: 300,100")
    tagged.add_argument("--tpid", type=lambda t: int(t, 0), default=ETH_P_8021Q,
                        help="the outer tag's TPID (0x8100, or 0x88a8 for 802.1ad)")
    tagged.add_argument("--dst-mac", required=True)
    tagged.add_argument("--dst-ip", required=True)
    tagged.add_argument("--src-prefix", help="two MAC bytes, e.g. 00:fe: a new source MAC "
                        "00:fe:d9:.. per frame (else the interface's own)")
    spoof = commands.add_parser("spoof", help="frames with another VM's MAC and IP")
    spoof.add_argument("--mac", required=True)
    spoof.add_argument("--ip", required=True)
    spoof.add_argument("--kind", choices=("garp", "icmp", "udp"), default="garp")
    spoof.add_argument("--dst-mac", help="icmp/udp destination MAC (default broadcast)")
    spoof.add_argument("--dst-ip", help="icmp/udp destination IP (default broadcast)")
    spoof.add_argument("--sport", type=int, default=40000, help="udp source port")
    spoof.add_argument("--dport", type=int, default=9, help="udp destination port")
    for command in (forged, replay, tagged, spoof):
        command.add_argument("interface")
        command.add_argument("--count", type=int, default=1)
        command.add_argument("--rate", type=float, default=0.0,
                             help="frames per second (0: as fast as possible)")
    args = parser.parse_args(argv)
    try:
        sent = send_paced(args.interface, _frames(args), args.rate)
    except (OSError, ValueError) as error:
        print(f"error: {args.command} on {args.interface}: {error}", file=sys.stderr)
        return 2
    print(f"sent {sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
