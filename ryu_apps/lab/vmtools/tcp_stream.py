"""One long TCP connection inside a VM: an echo server, or a client that sends a numbered
line every few milliseconds and records when each echo came back.

    python -m ryu_apps.lab.vmtools.tcp_stream serve PORT
    python -m ryu_apps.lab.vmtools.tcp_stream send IP PORT --output F --stop-file S

The client writes ``started`` to stdout once connected, and at the end a JSON
document to ``--output``: lines sent and echoed, the longest gap between two
echoes (ms), the wall-clock time of the last echo, and the error that ended the
connection (null when it lived until the stop file appeared). A reset shows as
``ConnectionResetError``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time


def serve(port: int) -> None:
    """Echo every connection's bytes back, each in a thread of its own, forever."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(16)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_echo, args=(conn,), daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass


def send(ip: str, port: int, output: str, stop_file: str, interval_ms: float) -> int:
    """Stream numbered lines until ``stop_file`` exists; the result into ``output``."""
    conn = socket.create_connection((ip, port), timeout=5)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(interval_ms / 1000)
    print("started", flush=True)
    sent = echoed = 0
    last_echo = time.monotonic()
    gap = 0.0
    error = None
    pending = b""
    last_echo_at = None
    try:
        while not os.path.exists(stop_file):
            conn.sendall(b"%d\n" % sent)
            sent += 1
            try:
                data = conn.recv(65536)
                if not data:
                    raise ConnectionResetError("closed by the peer")
            except socket.timeout:
                continue
            pending += data
            now = time.monotonic()
            gap, last_echo = max(gap, now - last_echo), now
            last_echo_at = time.time()
            echoed += pending.count(b"\n")
            pending = pending[pending.rfind(b"\n") + 1:]
            time.sleep(interval_ms / 1000)
    except OSError as exc:
        error = type(exc).__name__
    with open(output, "w") as out:
        json.dump({"sent": sent, "echoed": echoed, "max_gap_ms": round(gap * 1000, 1),
                   "last_echo_at": last_echo_at, "error": error}, out)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("serve")
    server.add_argument("port", type=int)
    client = sub.add_parser("send")
    client.add_argument("ip")
    client.add_argument("port", type=int)
    client.add_argument("--output", required=True)
    client.add_argument("--stop-file", required=True)
    client.add_argument("--interval-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args.port)
        return 0
    return send(args.ip, args.port, args.output, args.stop_file, args.interval_ms)


if __name__ == "__main__":
    sys.exit(main())
