"""The first frame of a fresh VM, as real Ethernet/IPv4/UDP or ARP bytes."""

from __future__ import annotations

import struct

BROADCAST = b"\xff" * 6
ETH_IPV4, ETH_ARP = 0x0800, 0x0806
#: The router every VM talks to first (a locally administered MAC).
GATEWAY_MAC = 0x02_00_00_00_00_01
GATEWAY_IP = bytes([10, 255, 255, 254])


def vm_mac(template_id: int, serial: int) -> int:
    """A VM MAC: template id in the top 16 bits, ``serial`` in the lower 32."""
    if not 0 <= serial < 1 << 32:
        raise ValueError(f"VM serial {serial}: expected 0..2**32-1")
    return (template_id << 32) | serial


def vm_ip(serial: int) -> bytes:
    """An IPv4 address in 10.0.0.0/8 derived from the VM serial (never .0 or .255)."""
    host = serial % 0xFFFFFD + 1
    return bytes([10, (host >> 16) & 0xFF, (host >> 8) & 0xFF, host & 0xFF])


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes,
             src_port: int = 40000, dst_port: int = 53, payload: bytes = b"ofload") -> bytes:
    """An Ethernet + IPv4 + UDP frame (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         src_ip, dst_ip)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_IPV4) + header + udp


def arp_request(src_mac: bytes, src_ip: bytes, target_ip: bytes) -> bytes:
    """A broadcast ARP request who-has ``target_ip``."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 1, src_mac, src_ip,
                      b"\0" * 6, target_ip)
    return BROADCAST + src_mac + struct.pack("!H", ETH_ARP) + arp


def first_frame(kind: str, mac: int, serial: int) -> bytes:
    """The first frame VM ``mac`` sends: ``ipv4`` to the gateway, or an ``arp`` request."""
    src = mac.to_bytes(6, "big")
    if kind == "ipv4":
        return ipv4_udp(src, GATEWAY_MAC.to_bytes(6, "big"), vm_ip(serial), GATEWAY_IP)
    if kind == "arp":
        return arp_request(src, vm_ip(serial), GATEWAY_IP)
    raise ValueError(f"frame kind {kind!r}: expected 'ipv4' or 'arp'")


def gateway_frame() -> bytes:
    """A frame from the gateway, so a learning switch knows where it is."""
    gateway = GATEWAY_MAC.to_bytes(6, "big")
    return arp_request(gateway, GATEWAY_IP, bytes([10, 0, 0, 1]))
