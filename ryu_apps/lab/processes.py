"""Local processes the lab starts: free ports, waiting for them, stopping them by PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional


def free_tcp_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ryu_manager_command() -> str:
    """The ryu-manager beside the running interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "ryu-manager"
    if beside.exists():
        return str(beside)
    found = shutil.which("ryu-manager")
    if not found:
        raise RuntimeError("ryu-manager not found: run scripts/setup.sh first")
    return found


def wait_for_text(read: Callable[[], str], text: str, count: int, timeout: float) -> bool:
    """Whether ``text`` appears ``count`` times in what ``read`` returns within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read().count(text) >= count:
            return True
        time.sleep(0.1)
    return False


def wait_until_listening(process: subprocess.Popen, port: int, timeout: float, what: str,
                         log: Callable[[], str]) -> None:
    """Wait until ``process`` accepts TCP connections on loopback ``port``.

    Stops it and raises RuntimeError (with the end of its log) if it exits or
    does not listen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g} s:\n"
                       f"{log()[-3000:]}")


def stop_process(process: Optional[subprocess.Popen]) -> None:
    """SIGTERM, then SIGKILL after 5 s, a process this program started (by PID)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
