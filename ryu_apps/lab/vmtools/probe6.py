"""Prove whether a TCP or UDP port is reachable over IPv6 between two VMs (standard library).

Inside a Mininet host (addresses may be link-local with a scope, ``fe80::1%eth0``)::

    python3 -m ryu_apps.lab.vmtools.probe6 listen --tcp 443 5432 --udp 53   # forever
    python3 -m ryu_apps.lab.vmtools.probe6 tcp ADDRESS PORT [--timeout S]
    python3 -m ryu_apps.lab.vmtools.probe6 udp ADDRESS PORT [--timeout S]

``listen`` greets each TCP connection and echoes each UDP datagram. ``tcp`` prints
``open`` (exit 0) once the handshake completed and the greeting arrived; ``udp``
prints ``open`` once its datagram came back (the packet and its answer got
through); else ``closed: <reason>`` (exit 1).
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys

GREETING = b"dynprov-probe6\n"


def _bound(kind: int, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)   # IPv4 listeners may share
    sock.bind(("::", port))
    return sock


def listen(tcp_ports: list[int], udp_ports: list[int]) -> None:
    """Greet every TCP connection and echo every UDP datagram, forever."""
    selector = selectors.DefaultSelector()
    for port in tcp_ports:
        server = _bound(socket.SOCK_STREAM, port)
        server.listen(64)
        selector.register(server, selectors.EVENT_READ, "tcp")
    for port in udp_ports:
        selector.register(_bound(socket.SOCK_DGRAM, port), selectors.EVENT_READ, "udp")
    print("listening", flush=True)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "tcp":
                connection, _ = sock.accept()
                with connection:
                    connection.sendall(GREETING)
            else:
                data, peer = sock.recvfrom(2048)
                sock.sendto(data, peer)


def _address(text: str, port: int):
    family, kind, proto, _, address = socket.getaddrinfo(text, port, socket.AF_INET6)[0]
    return address


def tcp(text: str, port: int, timeout: float) -> bool:
    """True when the port answers with the greeting within ``timeout`` seconds."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(_address(text, port))
            return sock.recv(len(GREETING)) == GREETING
    except OSError as error:
        print(f"closed: {error}")
        return False


def udp(text: str, port: int, timeout: float) -> bool:
    """True when a datagram sent to the port comes back within ``timeout`` seconds."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(GREETING, _address(text, port))
            data, _ = sock.recvfrom(2048)
            return data == GREETING
    except OSError as error:
        print(f"closed: {error}")
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    listener = sub.add_parser("listen")
    listener.add_argument("--tcp", nargs="*", type=int, default=[])
    listener.add_argument("--udp", nargs="*", type=int, default=[])
    for mode in ("tcp", "udp"):
        client = sub.add_parser(mode)
        client.add_argument("address")
        client.add_argument("port", type=int)
        client.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.mode == "listen":
        listen(args.tcp, args.udp)
        return 0
    if (tcp if args.mode == "tcp" else udp)(args.address, args.port, args.timeout):
        print("open")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
