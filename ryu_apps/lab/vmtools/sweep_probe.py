"""The conformance sweep's probes from inside a VM (standard library and ping).

Inside a Mininet host::

    python3 -m ryu_apps.lab.vmtools.sweep_probe listen --tcp P [P ...] --udp P [P ...] \
        --log FILE [--ipv6]
    python3 -m ryu_apps.lab.vmtools.sweep_probe probe [--timeout S] [--interface IF] \
        TARGET [TARGET ...]
    python3 -m ryu_apps.lab.vmtools.sweep_probe hold --go FILE [--timeout S] TARGET ...

``listen`` greets every TCP connection (``tcp_probe``'s greeting), then echoes
what it sends until it closes, and echoes every UDP datagram, and appends
``udp SOURCE_IP SOURCE_PORT PORT`` to FILE for each datagram that arrived (what
one-way delivery the sweep checks); with ``--ipv6`` on IPv6 too (a socket per
family). A TARGET is ``icmp:IP`` (one ping), ``arp:IP`` (an ARP request, broadcast from
``--interface``'s MAC and address, that must be answered; the kernel's
neighbour table plays no part), ``tcp:IP:PORT:SOURCE_PORT`` (a connection from that
source port that must be greeted) or ``udp:IP:PORT:SOURCE_PORT`` (a datagram
from that source port that must be echoed; ``udp:IP:PORT:SOURCE_PORT@SOURCE_IP``
sends from ``SOURCE_IP``, an address of the VM's interface, until echoed or the
timeout); ``icmp6:IP``, ``tcp6:IP:PORT:SOURCE_PORT``
and ``udp6:...`` the same over IPv6. Every probe starts at once and waits
at most ``--timeout`` s; one JSON line per target, in order:
``{"target": T, "open": true|false}``.

``blast --rate-kbps R [--seconds S] IP:PORT:SOURCE_PORT`` sends UDP at R kbit/s
(Ethernet frames' bits) for S s and prints ``{"sent": N}``; ``sink --port P
--seconds S`` prints ``listening``, then after S s ``{"datagrams": N, "bytes": B}``
that reached P (the sweep's bandwidth check).

``hold`` opens each ``tcp:IP:PORT:SOURCE_PORT`` TARGET, checks the greeting and
one echo (``{"target": T, "open": ...}``), prints ``held``, waits for FILE to
exist, then sends on each connection again and prints ``{"target": T, "kept":
true|false}``: whether the connection still carries data both ways (a live
migration in between must not cut it, docs/templates.md).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import time

from ryu_apps.lab.vmtools.announce import interface_addresses
from ryu_apps.lab.vmtools.probe_many import run_all
from ryu_apps.lab.vmtools.tcp_probe import GREETING

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
#: Ethernet, IPv4 and UDP headers: what a meter counts beyond a datagram's payload.
FRAME_OVERHEAD = 14 + 20 + 8


def _bound(family: int, kind: int, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    return sock


def listen(tcp_ports: list[int], udp_ports: list[int], log_path: str,
           ipv6: bool = False) -> None:
    """Serve every port (``ipv6``: on both families) until killed."""
    selector = selectors.DefaultSelector()
    families = (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,)
    for family in families:
        for port in tcp_ports:
            server = _bound(family, socket.SOCK_STREAM, port)
            server.listen(64)
            server.setblocking(False)
            selector.register(server, selectors.EVENT_READ, ("tcp", port))
        for port in udp_ports:
            selector.register(_bound(family, socket.SOCK_DGRAM, port), selectors.EVENT_READ,
                              ("udp", port))
    with open(log_path, "a", buffering=1) as log:
        print("listening", flush=True)
        while True:
            for key, _ in selector.select():
                kind, port = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if kind == "tcp":
                    try:
                        connection, _ = sock.accept()
                        connection.sendall(GREETING)
                    except OSError:
                        continue
                    connection.setblocking(False)
                    selector.register(connection, selectors.EVENT_READ, ("echo", port))
                    continue
                if kind == "echo":
                    try:
                        data = sock.recv(4096)
                        if data:
                            sock.sendall(data)
                            continue
                    except OSError:
                        pass
                    selector.unregister(sock)
                    sock.close()
                    continue
                data, peer = sock.recvfrom(2048)
                log.write(f"udp {peer[0]} {peer[1]} {port}\n")
                sock.sendto(data, peer)


def _tcp(ip: str, port: int, source_port: int, deadline: float) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=max(deadline - time.monotonic(), 0.01),
                                      source_address=("", source_port)) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            return sock.recv(len(GREETING)) == GREETING
    except OSError:
        return False


def _echoed(sock: socket.socket, data: bytes) -> bool:
    """Send ``data`` and read it back (the socket's timeout applies)."""
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(len(data) - len(got))
        if not chunk:
            return False
        got += chunk
    return got == data


def hold(targets: list[str], go: str, timeout: float) -> None:
    """Open, hold until ``go`` exists, use again: the module docstring's ``hold``."""
    held: list = []
    for target in targets:
        _, _, rest = target.partition(":")
        ip, port, source = rest.rsplit(":", 2)
        sock = None
        try:
            sock = socket.create_connection((ip, int(port)), timeout=timeout,
                                            source_address=("", int(source)))
            sock.settimeout(timeout)
            opened = sock.recv(len(GREETING)) == GREETING and _echoed(sock, b"before\n")
        except OSError:
            opened = False
        held.append(sock if opened else None)
        print(json.dumps({"target": target, "open": opened}), flush=True)
    print("held", flush=True)
    deadline = time.monotonic() + 600
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)
    for target, sock in zip(targets, held):
        kept = False
        if sock is not None:
            try:
                kept = _echoed(sock, b"after\n")
            except OSError:
                kept = False
            sock.close()
        print(json.dumps({"target": target, "kept": kept}), flush=True)


def _udp(ip: str, port: int, source_port: int, deadline: float, source_ip: str = "") -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((source_ip, source_port))
        payload = b"dynprov-sweep %d" % source_port
        while time.monotonic() < deadline:      # a datagram may meet a flow being set up
            sock.sendto(payload, (ip, port))
            sock.settimeout(min(0.3, max(deadline - time.monotonic(), 0.01)))
            try:
                data, _ = sock.recvfrom(2048)
            except OSError:
                continue
            if data == payload:
                return True
    return False


def blast(target: str, rate_kbps: int, seconds: float, size: int = 1000) -> int:
    """UDP datagrams of ``size`` bytes to ``IP:PORT:SOURCE_PORT`` at ``rate_kbps`` (their
    Ethernet frames' bits) for ``seconds``, at absolute deadlines; how many were sent."""
    ip, port, source = target.rsplit(":", 2)
    interval = (size + FRAME_OVERHEAD) * 8 / (rate_kbps * 1000)
    payload = b"dynprov-blast".ljust(size, b".")
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", int(source)))
        start = time.monotonic()
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                return sent
            while sent * interval <= now - start:   # late: send what is due at once
                try:
                    sock.sendto(payload, (ip, int(port)))
                except OSError:   # a full socket buffer: that datagram is lost, as on a wire
                    pass
                sent += 1
            time.sleep(max(0.0, start + sent * interval - time.monotonic()))


def sink(port: int, seconds: float) -> dict:
    """Count the datagrams (and their bytes) that reach UDP ``port`` within ``seconds``."""
    datagrams = received = 0
    with _bound(socket.AF_INET, socket.SOCK_DGRAM, port) as sock:
        print("listening", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = sock.recv(65536)
            except OSError:
                continue
            datagrams += 1
            received += len(data)
    return {"datagrams": datagrams, "bytes": received}


def _arp(ifname: str, ip: str, deadline: float) -> bool:
    """True when ``ip`` answers an ARP request sent from ``ifname``."""
    mac, own_ip = interface_addresses(ifname)
    target = socket.inet_aton(ip)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, own_ip, bytes(6), target)
    frame = BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp
    frame += bytes(max(0, 60 - len(frame)))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        sent = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - sent > 0.3:
                sock.send(frame)
                sent = time.monotonic()
            sock.settimeout(max(min(0.1, deadline - time.monotonic()), 0.01))
            try:
                data = sock.recv(128)
            except OSError:
                continue
            if len(data) < 42 or data[12:14] != b"\x08\x06":
                continue
            operation, sender, receiver = struct.unpack("!H", data[20:22])[0], data[28:32], \
                data[38:42]
            if operation == 2 and sender == target and receiver == own_ip:
                return True
    return False


def _icmp(ip: str, timeout: float) -> bool:
    family = ["-6"] if ":" in ip else []
    done = subprocess.run(["ping", *family, "-n", "-q", "-c1", f"-W{max(int(timeout), 1)}", ip],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return done.returncode == 0


def probe(targets: list[str], timeout: float, interface: str = "") -> list[dict]:
    """Probe every target concurrently; one result per target, in order."""
    results: list[dict] = [{} for _ in targets]
    deadline = time.monotonic() + timeout

    def run(index: int, target: str) -> None:
        kind, _, rest = target.partition(":")
        try:
            if kind in ("icmp", "icmp6"):
                answered = _icmp(rest, timeout)
            elif kind == "arp":
                answered = _arp(interface, rest, deadline)
            else:
                rest, _, bind = rest.partition("@")
                ip, port, source = rest.rsplit(":", 2)
                if kind in ("tcp", "tcp6"):
                    answered = _tcp(ip, int(port), int(source), deadline)
                else:
                    answered = _udp(ip, int(port), int(source), deadline, bind)
        except Exception as error:   # noqa: BLE001 (reported, never a silent "closed")
            results[index] = {"target": target, "open": False, "error": repr(error)}
            return
        results[index] = {"target": target, "open": answered}

    run_all(targets, run)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    listener = sub.add_parser("listen")
    listener.add_argument("--tcp", nargs="*", type=int, default=[])
    listener.add_argument("--udp", nargs="*", type=int, default=[])
    listener.add_argument("--log", required=True)
    listener.add_argument("--ipv6", action="store_true", help="serve IPv6 too")
    prober = sub.add_parser("probe")
    prober.add_argument("--timeout", type=float, default=1.5)
    prober.add_argument("--interface", default="", help="the VM's interface (ARP probes)")
    prober.add_argument("targets", nargs="+")
    blaster = sub.add_parser("blast")
    blaster.add_argument("--rate-kbps", type=int, required=True)
    blaster.add_argument("--seconds", type=float, default=1.0)
    blaster.add_argument("target", help="IP:PORT:SOURCE_PORT")
    sinker = sub.add_parser("sink")
    sinker.add_argument("--port", type=int, required=True)
    sinker.add_argument("--seconds", type=float, required=True)
    holder = sub.add_parser("hold")
    holder.add_argument("--go", required=True, help="send again once this file exists")
    holder.add_argument("--timeout", type=float, default=5.0)
    holder.add_argument("targets", nargs="+")
    args = parser.parse_args(argv)
    if args.mode == "listen":
        listen(args.tcp, args.udp, args.log, args.ipv6)
        return 0
    if args.mode == "blast":
        print(json.dumps({"sent": blast(args.target, args.rate_kbps, args.seconds)}))
        return 0
    if args.mode == "sink":
        print(json.dumps(sink(args.port, args.seconds)), flush=True)
        return 0
    if args.mode == "hold":
        hold(args.targets, args.go, args.timeout)
        return 0
    for result in probe(args.targets, args.timeout, args.interface):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
