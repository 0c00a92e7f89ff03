"""Probe many targets at once from one VM: ICMP echo and TCP (standard library and ping).

Inside a Mininet host::

    python3 -m ryu_apps.lab.vmtools.probe_many [--timeout S] TARGET [TARGET ...]

A TARGET is ``icmp:IP`` (one ``ping``) or ``tcp:IP:PORT`` (a connection to a
``tcp_probe listen`` port, which must greet). Every probe starts at once and
waits at most ``--timeout`` seconds, so a list of blocked targets costs one
timeout, not one each. Prints one JSON object per target, in the given order:
``{"target": T, "open": true|false, "seconds": S}`` (``seconds``: from the start
of the probes to the answer, or to the give-up).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from typing import Callable

from ryu_apps.lab.vmtools.tcp_probe import GREETING


def _tcp(ip: str, port: int, deadline: float) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=max(deadline - time.monotonic(),
                                                              0.01)) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            return sock.recv(len(GREETING)) == GREETING
    except OSError:
        return False


def _icmp(ip: str, timeout: float) -> bool:
    done = subprocess.run(["ping", "-n", "-q", "-c1", f"-W{timeout:g}", ip],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False)
    return done.returncode == 0


def probe(targets: list[str], timeout: float) -> list[dict]:
    """Probe every target concurrently; one result per target, in order."""
    results: list[dict] = [{} for _ in targets]
    started = time.monotonic()
    deadline = started + timeout

    def run(index: int, target: str) -> None:
        kind, _, rest = target.partition(":")
        if kind == "icmp":
            answered = _icmp(rest, timeout)
        elif kind == "tcp":
            ip, _, port = rest.rpartition(":")
            answered = _tcp(ip, int(port), deadline)
        else:
            raise ValueError(f"unknown target {target!r}")
        results[index] = {"target": target, "open": answered,
                          "seconds": round(time.monotonic() - started, 4)}

    run_all(targets, run)
    return results


def run_all(targets: list[str], run: Callable[[int, str], None]) -> None:
    """``run(index, target)`` for every target, each in a thread of its own, all at
    once; returns when every one has."""
    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    for result in probe(args.targets, args.timeout):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
