"""Prove whether a TCP port is reachable between two VMs (standard library only).

Inside a Mininet host::

    python3 -m ryu_apps.lab.vmtools.tcp_probe listen PORT [PORT ...] [--ipv6]  # accept forever
    python3 -m ryu_apps.lab.vmtools.tcp_probe connect IP PORT [--timeout S] [--source-port P]

``listen --ipv6`` listens on IPv6 (``[::]``) instead of IPv4; ``connect`` takes
either family's address.

``connect`` prints ``open`` (exit 0) when the handshake completes and the
listener's greeting arrives, else ``closed: <reason>`` (exit 1).
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys

GREETING = b"dynprov-probe\n"


def listen(ports: list[int], ipv6: bool = False) -> None:
    """Accept connections on every port; greet each and close it."""
    selector = selectors.DefaultSelector()
    servers: dict[int, socket.socket] = {}   # by file descriptor
    family, anywhere = (socket.AF_INET6, "::") if ipv6 else (socket.AF_INET, "0.0.0.0")
    for port in ports:
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ipv6:
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        server.bind((anywhere, port))
        server.listen(64)
        selector.register(server, selectors.EVENT_READ)
        servers[server.fileno()] = server
    print("listening", flush=True)
    while True:
        for key, _ in selector.select():
            connection, _ = servers[key.fd].accept()
            with connection:
                connection.sendall(GREETING)


def connect(ip: str, port: int, timeout: float, source_port: int = 0) -> bool:
    """True when the port answers with the greeting within ``timeout`` seconds."""
    try:
        with socket.create_connection((ip, port), timeout=timeout,
                                      source_address=("", source_port)) as sock:
            sock.settimeout(timeout)
            return sock.recv(len(GREETING)) == GREETING
    except OSError as error:
        print(f"closed: {error}")
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    listener = sub.add_parser("listen")
    listener.add_argument("ports", nargs="+", type=int)
    listener.add_argument("--ipv6", action="store_true")
    client = sub.add_parser("connect")
    client.add_argument("ip")
    client.add_argument("port", type=int)
    client.add_argument("--timeout", type=float, default=2.0)
    client.add_argument("--source-port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.mode == "listen":
        listen(args.ports, args.ipv6)
        return 0
    if connect(args.ip, args.port, args.timeout, args.source_port):
        print("open")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
