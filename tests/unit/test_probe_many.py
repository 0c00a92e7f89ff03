"""vmtools.probe_many on the loopback: every target answered, in order."""

import socket
import threading

from ryu_apps.lab.vmtools import probe_many, tcp_probe


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_open_and_closed_ports_in_the_given_order():
    listening, closed = _free_port(), _free_port()
    threading.Thread(target=tcp_probe.listen, args=([listening],), daemon=True).start()
    targets = [f"tcp:127.0.0.1:{closed}", f"tcp:127.0.0.1:{listening}"]
    for _ in range(50):
        results = probe_many.probe(targets, timeout=1.0)
        if results[1]["open"]:
            break
    assert [r["target"] for r in results] == targets
    assert [r["open"] for r in results] == [False, True]
    assert all(0 <= r["seconds"] <= 1.5 for r in results)
