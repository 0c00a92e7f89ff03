"""Profile a controller under load with py-spy: where its CPU time goes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Optional


def py_spy() -> Optional[str]:
    """The py-spy beside the interpreter, else on PATH, else None."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_recording(pid: int, seconds: float, output: Path, rate: int = 250):
    """Start ``py-spy record`` (collapsed stacks) on ``pid``; the Popen."""
    command = py_spy()
    if command is None:
        raise RuntimeError("py-spy not found beside the interpreter or on PATH")
    return subprocess.Popen(
        [command, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", str(rate),
         "-f", "raw", "-o", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(collapsed: Path, top: int = 30) -> dict:
    """Self and inclusive shares (percent of samples) of the hottest frames."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in collapsed.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    share = lambda n: round(100.0 * n / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self_percent": [[f, share(n)] for f, n in own.most_common(top)],
        "inclusive_percent": [[f, share(n)] for f, n in inclusive.most_common(top * 2)],
    }
