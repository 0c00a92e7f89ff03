"""A storm from inside a VM: hostile frames at a fixed rate out of one interface.

Runs inside a Mininet host (a network namespace)::

    python3 -m ryu_apps.lab.vmtools.flood IFACE random-macs|tagged|lldp
            [--rate 10000] [--seconds 10] [--stop-file PATH]
            [--name DPID:PORT ...] [--seed N]

- ``random-macs``: gratuitous ARPs, each from a new random unicast source MAC
  (most select no template, some a real one);
- ``tagged``: the VM's own frames with 802.1Q tags, 802.1ad + 802.1Q (QinQ)
  tags, and Q-in-Q stacks, alternately, random VLAN ids;
- ``lldp``: LLDP probes naming the switch ports given with ``--name`` (as the
  controller's own probes do), alternately unsigned and with a signature TLV of
  random bytes (a fresh time stamp, so only the HMAC gives them away).

Frames go out at absolute deadlines ``start + n / rate`` (a late iteration
sends what is due at once, nothing shifts later frames), until ``--seconds``
passed or ``--stop-file`` exists. Prints ``started`` when the first frame is
due and ``done SENT SECONDS`` at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import struct
import sys
import time
from typing import Callable, List, Tuple

from ryu_apps.core import lldp
from ryu_apps.lab.vmtools.announce import gratuitous_arp, interface_addresses

MODES = ("random-macs", "tagged", "lldp")
#: Frames sent between two checks of the clock's deadline and the stop file.
BURST = 16
STOP_FILE_CHECK_S = 0.05


def random_mac_frames(mac: bytes, ip: bytes, rng: random.Random) -> Callable[[int], bytes]:
    """Frame n: a gratuitous ARP from a fresh random unicast MAC."""
    template = bytearray(gratuitous_arp(mac, ip))

    def frame(_n: int) -> bytes:
        src = bytes([rng.getrandbits(8) & 0xFE]) + rng.getrandbits(40).to_bytes(5, "big")
        template[6:12] = src
        template[22:28] = src   # the ARP sender hardware address
        return bytes(template)
    return frame


def tagged_frames(mac: bytes, ip: bytes, rng: random.Random) -> Callable[[int], bytes]:
    """Frame n: the VM's own gratuitous ARP under a tag, two tags, or a stack of four."""
    arp = gratuitous_arp(mac, ip)
    stacks = ((0x8100,), (0x88A8, 0x8100), (0x8100, 0x8100, 0x88A8, 0x8100))

    def frame(n: int) -> bytes:
        tags = b"".join(struct.pack("!HH", tpid, rng.getrandbits(12) or 1)
                        for tpid in stacks[n % len(stacks)])
        return arp[:12] + tags + arp[12:]
    return frame


def lldp_frames(mac: bytes, names: List[Tuple[int, int]],
                rng: random.Random) -> Callable[[int], bytes]:
    """Frame n: a probe naming one of ``names``, unsigned (even n) or garbage-signed."""
    if not names:
        raise ValueError("lldp storm: name at least one switch port (--name DPID:PORT)")

    def frame(n: int) -> bytes:
        dpid, port = names[n % len(names)]
        if n % 2 == 0:
            return lldp.build_probe(dpid, port, mac)
        process = b"dynprov"
        head = lldp.auth_head(False, int(time.time() * 1000), rng.randbytes(lldp.NONCE_BYTES),
                              process)
        return lldp.build_probe(dpid, port, mac,
                                auth=(head, process, rng.randbytes(lldp.SIGNATURE_BYTES)))
    return frame


def parse_name(text: str) -> Tuple[int, int]:
    """``DPID:PORT`` (datapath id in hex) as (dpid, port)."""
    try:
        dpid, port = text.rsplit(":", 1)
        return int(dpid, 16), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DPID:PORT (hex:decimal), got {text!r}") \
            from None


def flood(ifname: str, make: Callable[[int], bytes], rate: float, seconds: float,
          stop_file: str | None) -> Tuple[int, float]:
    """Send frame ``make(n)`` for n = 0, 1, ... at ``rate`` per second; (sent, seconds)."""
    if rate <= 0:
        raise ValueError(f"rate {rate}: expected a positive number of frames per second")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        start = time.monotonic()
        print("started", flush=True)
        sent, next_check = 0, start
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now >= next_check:
                next_check = now + STOP_FILE_CHECK_S
                if stop_file and os.path.exists(stop_file):
                    break
            due = int((now - start) * rate) + 1
            if due <= sent:
                time.sleep(min(BURST / rate, (sent - due + 1) / rate))
                continue
            for _ in range(min(due - sent, BURST)):
                try:
                    sock.send(make(sent))
                except OSError:   # a full queue: the frame is lost, as on a wire
                    pass
                sent += 1
        return sent, time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interface")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--rate", type=float, default=10000.0, help="frames per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stop-file", help="stop as soon as this file exists")
    parser.add_argument("--name", type=parse_name, action="append", default=[],
                        help="a switch port the LLDP storm names (DPID:PORT), repeatable")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    mac, ip = interface_addresses(args.interface)
    if args.mode == "random-macs":
        make = random_mac_frames(mac, ip, rng)
    elif args.mode == "tagged":
        make = tagged_frames(mac, ip, rng)
    else:
        try:
            make = lldp_frames(mac, args.name, rng)
        except ValueError as error:
            parser.error(str(error))
    sent, seconds = flood(args.interface, make, args.rate, args.seconds, args.stop_file)
    print(f"done {sent} {seconds:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
