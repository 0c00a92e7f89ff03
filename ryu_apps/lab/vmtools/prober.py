"""A fixed-rate prober: one probe every interval, each timestamped on send and reply.

Runs inside a Mininet host (a network namespace), standard library only::

    python3 -m ryu_apps.lab.vmtools.prober probe TARGET --output FILE
            [--interval-ms 1] [--duration-s 10] [--stop-file PATH]
            [--udp-port PORT] [--ident N] [--linger-ms 200]
    python3 -m ryu_apps.lab.vmtools.prober echo [--port 7007]

``probe`` sends ICMP echo requests over a raw socket (or, with ``--udp-port``,
UDP datagrams to an ``echo`` responder on the target) at absolute deadlines
``start + seq * interval``: a late iteration never shifts later probes, and
probes keep going out while replies stop coming. It stops after
``--duration-s`` or as soon as ``--stop-file`` exists, waits ``--linger-ms``
for late replies, and writes one JSON document::

    {"target": ..., "mode": "icmp"|"udp", "interval_ns": ..., "ident": ...,
     "start_ns": ..., "start_unix": ..., "probes": [
        {"seq": 0, "sent_ns": ..., "received_ns": ... | null}, ...]}

Times are ``CLOCK_MONOTONIC`` nanoseconds (one clock for every namespace of
the machine, so they compare with the test's ``time.monotonic_ns()``). It
prints ``started <start_ns>`` when the first probe is due and ``done SENT
ANSWERED`` at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time
from typing import Callable, Optional

MAGIC = b"dynprobe"
#: Payload: magic, run nonce, full 64-bit sequence number.
PAYLOAD = struct.Struct("!8s8sQ")
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMP_HEADER = struct.Struct("!BBHHH")
STOP_FILE_CHECK_EVERY = 10  # probes


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request (header and payload; the kernel adds the IP header)."""
    header = ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, 0, ident, seq & 0xFFFF)
    body = header + payload
    return ICMP_HEADER.pack(ICMP_ECHO_REQUEST, 0, checksum(body), ident,
                            seq & 0xFFFF) + payload


def parse_echo_reply(packet: bytes, ident: int) -> Optional[bytes]:
    """The payload of an ICMP echo reply with our identifier (IP header included)."""
    if len(packet) < 20:
        return None
    offset = (packet[0] & 0x0F) * 4
    if len(packet) < offset + ICMP_HEADER.size:
        return None
    kind, _, _, reply_ident, _ = ICMP_HEADER.unpack_from(packet, offset)
    if kind != ICMP_ECHO_REPLY or reply_ident != ident:
        return None
    return packet[offset + ICMP_HEADER.size:]


class Transport:
    """Sends probe payloads to the target and extracts payloads from replies."""

    def __init__(self, target: str, udp_port: Optional[int], ident: int) -> None:
        self.target, self.udp_port, self.ident = target, udp_port, ident
        if udp_port is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setblocking(False)

    def send(self, seq: int, payload: bytes) -> None:
        """Send one probe; errors (no route, no neighbour, full buffer) are ignored."""
        try:
            if self.udp_port is None:
                self.sock.sendto(echo_request(self.ident, seq, payload), (self.target, 0))
            else:
                self.sock.sendto(payload, (self.target, self.udp_port))
        except OSError:
            pass  # the probe counts as sent and unanswered

    def receive(self) -> list[bytes]:
        """Every payload waiting on the socket (non-blocking)."""
        payloads: list[bytes] = []
        while True:
            try:
                packet = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return payloads
            except OSError:
                continue  # e.g. an ICMP error queued on the UDP socket
            payload = packet if self.udp_port is not None else \
                parse_echo_reply(packet, self.ident)
            if payload is not None:
                payloads.append(payload)

    def close(self) -> None:
        self.sock.close()


class Prober:
    """Sends probe ``seq`` at ``start + seq * interval`` and records replies."""

    def __init__(self, transport: Transport, interval_ns: int,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.transport, self.interval_ns, self.clock = transport, interval_ns, clock
        self.nonce = os.urandom(8)
        self.sent: list[int] = []
        self.received: dict[int, int] = {}
        self.start_ns = 0

    def run(self, should_stop: Callable[[int], bool], linger_ns: int) -> None:
        """Probe until ``should_stop(seq)`` is true, then wait ``linger_ns`` for replies."""
        self.start_ns = self.clock()
        print(f"started {self.start_ns}", flush=True)
        while not should_stop(len(self.sent)):
            self._wait_until(self.start_ns + len(self.sent) * self.interval_ns)
            seq = len(self.sent)
            self.sent.append(self.clock())
            self.transport.send(seq, PAYLOAD.pack(MAGIC, self.nonce, seq))
        self._wait_until(self.clock() + linger_ns)

    def _wait_until(self, deadline_ns: int) -> None:
        """Collect replies until ``deadline_ns`` (returns at once if it has passed)."""
        while True:
            self._collect()
            remaining = deadline_ns - self.clock()
            if remaining <= 0:
                return
            select.select([self.transport.sock], [], [], remaining / 1e9)

    def _collect(self) -> None:
        for payload in self.transport.receive():
            now = self.clock()
            if len(payload) < PAYLOAD.size:
                continue
            magic, nonce, seq = PAYLOAD.unpack_from(payload)
            if magic == MAGIC and nonce == self.nonce and seq < len(self.sent):
                self.received.setdefault(seq, now)

    def document(self, target: str, mode: str, ident: int, start_unix: float) -> dict:
        """The JSON document the prober writes."""
        return {
            "target": target, "mode": mode, "interval_ns": self.interval_ns,
            "ident": ident, "start_ns": self.start_ns, "start_unix": start_unix,
            "probes": [{"seq": seq, "sent_ns": sent, "received_ns": self.received.get(seq)}
                       for seq, sent in enumerate(self.sent)],
        }


def stop_condition(count: Optional[int], stop_file: Optional[str]) -> Callable[[int], bool]:
    """Stop after ``count`` probes or once ``stop_file`` exists (checked every 10)."""
    def should_stop(sent: int) -> bool:
        if count is not None and sent >= count:
            return True
        if not stop_file or sent % STOP_FILE_CHECK_EVERY:
            return False
        return os.path.exists(stop_file)
    return should_stop


def probe(args: argparse.Namespace) -> int:
    """The ``probe`` command."""
    interval_ns = round(args.interval_ms * 1e6)
    if interval_ns <= 0:
        raise SystemExit("--interval-ms must be positive")
    if args.duration_s is None and not args.stop_file:
        raise SystemExit("give --duration-s or --stop-file (or both)")
    count = None if args.duration_s is None else round(args.duration_s * 1e9 / interval_ns)
    ident = args.ident if args.ident is not None else 0xD900 | (os.getpid() & 0xFF)
    transport = Transport(args.target, args.udp_port, ident)
    prober = Prober(transport, interval_ns)
    start_unix = time.time()
    try:
        prober.run(stop_condition(count, args.stop_file), round(args.linger_ms * 1e6))
    finally:
        transport.close()
    mode = "icmp" if args.udp_port is None else "udp"
    document = prober.document(args.target, mode, ident, start_unix)
    temporary = args.output + ".part"
    with open(temporary, "w") as out:
        json.dump(document, out, separators=(",", ":"))
    os.replace(temporary, args.output)
    print(f"done {len(prober.sent)} {len(prober.received)}", flush=True)
    return 0


def echo(args: argparse.Namespace) -> int:
    """The ``echo`` command: send every UDP datagram back to its sender, forever."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", args.port))
        print("listening", flush=True)
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    run = sub.add_parser("probe", help="probe TARGET at a fixed rate")
    run.add_argument("target", help="IPv4 address to probe")
    run.add_argument("--output", required=True, help="JSON file to write")
    run.add_argument("--interval-ms", type=float, default=1.0)
    run.add_argument("--duration-s", type=float, help="stop after this long")
    run.add_argument("--stop-file", help="stop as soon as this file exists")
    run.add_argument("--udp-port", type=int, help="probe a UDP echo responder instead "
                     "of ICMP echo")
    run.add_argument("--ident", type=lambda text: int(text, 0),
                     help="ICMP identifier (default 0xD9xx, xx from the PID)")
    run.add_argument("--linger-ms", type=float, default=200.0,
                     help="how long to wait for late replies after the last probe")
    responder = sub.add_parser("echo", help="UDP echo responder")
    responder.add_argument("--port", type=int, default=7007)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return probe(args) if args.command == "probe" else echo(args)


if __name__ == "__main__":
    sys.exit(main())
