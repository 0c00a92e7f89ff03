"""The VM's self-announcements after a switchover (``vmtools.announce`` run inside it)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from ryu_apps.lab.migration_records import MigrationError

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Offsets of QEMU's self-announcements after the guest resumes (its defaults:
#: initial 50 ms, +100 ms each round, 5 rounds).
QEMU_ANNOUNCE_MS = (0, 50, 200, 450, 800)
ANNOUNCE_MODES = ("qemu", "garp", "none")


class Announcer:
    """``announce --wait-new`` inside the VM, started before the switchover."""

    def __init__(self, vm, ifname: str, mode: str, timeout_s: float = 30.0) -> None:
        options = (["--rarp", "--delays-ms", ",".join(map(str, QEMU_ANNOUNCE_MS))]
                   if mode == "qemu" else ["--delays-ms", "0"])
        self.vm = vm
        self.process = vm.popen(
            [sys.executable, "-m", "ryu_apps.lab.vmtools.announce", ifname, *options,
             "--wait-new", str(timeout_s), "--timestamps"],
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), text=True)
        if not select.select([self.process.stdout], [], [], 10)[0] or \
                self.process.stdout.readline().strip() != "ready":
            self.kill()
            raise MigrationError(f"{vm.name}: announcer on {ifname} did not start: "
                                 f"{self.process.stderr.read().strip()}")

    def finish(self, timeout_s: float = 10.0) -> tuple:
        """Wait for the last announcement; the send times."""
        try:
            out, err = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise MigrationError(f"{self.vm.name}: announcer did not finish") from None
        if self.process.returncode:
            raise MigrationError(f"{self.vm.name}: announcer failed: {err.strip()}")
        return tuple(int(line.split()[1]) for line in out.splitlines()
                     if line.startswith("sent "))

    def kill(self) -> None:
        """Stop the announcer at once (a failed or abandoned move)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
