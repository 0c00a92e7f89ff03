"""Cross-process migration notice: source REST call to the destination receiving it.

A distributed lab (3-member Raft store on loopback, one ``ryu-manager`` per
access switch, packet detection only) and one VM held by process p1. The
management entity tells p1, N times, that the VM migrates to a server of p2
(``POST /dynprov/notifications``, the REST call ``dynprov notify`` makes),
alternately to p2's two servers so that every notice changes the binding.
p1 answers once its ``request_owner`` write is Raft-committed; p2 sees the
row through its conditional monitor and logs the hand-off with the wall-clock
time it received it (``received at T``), before acting on it. With no OVSDB
watcher the destination does not know the VM's new port, so a notice
pre-provisions nothing and the next one starts from the same state.

Per notice: the notice latency (p2's ``received at`` minus the wall clock
just before the REST call, same machine clock), split at the moment p1
submitted its write (``submitted at`` in p1's log) into the REST part and the
store part (Raft commit, p2 waking and parsing the update); the commit as p1
saw it; the REST round trip (until p1's answer). The REST floor is the same
call for a server no process manages (404, no store write): the HTTP path
alone. The machine's CPU and I/O pressure (Linux PSI, share of the run's
wall time in which some task waited for a CPU or for I/O) is recorded with
the load average.

Two diagnostics reproduce the machine's part of the tail: ``--busy-loops N``
runs N busy-looping processes during the notices (a loaded machine), and
``--workdir /dev/shm`` keeps the store's files on tmpfs (no disk fsync in the
Raft commit; not a deployment).

    python -m benchmarks.store_notice [--quick] [--notices N] [--busy-loops N]
                                      [--workdir DIR]
    python -m benchmarks.store_notice --plot-only
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks.common import (PLOTS_DIR, RESULTS_DIR, format_table, print_machine, publish,
                               pyplot, read_results, replot, save_figure, summary)

NAME = "store_notice"
TARGET_MS = 10.0
#: Seconds between two notices: random in this range (no lock-step with periodic work).
GAP_S = (0.05, 0.15)


class LogTail:
    """Reads what a controller's log gained since the last read (no re-reading)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.pending = ""

    def lines(self) -> List[str]:
        """The complete lines written since the last call."""
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        text = self.pending + data.decode("utf-8", "replace")
        *complete, self.pending = text.split("\n")
        return complete


def wait_logged(tail: LogTail, pattern: str, timeout: float = 5.0) -> re.Match:
    """The next line of the log matching ``pattern`` (a regular expression)."""
    compiled = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in tail.lines():
            found = compiled.search(line)
            if found:
                return found
        time.sleep(0.002)
    raise RuntimeError(f"{tail.path}: no line matching {pattern!r} within {timeout:g} s")


def received_pattern(mac: str, server: str) -> str:
    """The destination's log line for a hand-off it received (group 1: when)."""
    return (rf"hand-off of VM {re.escape(mac)} to server {re.escape(server)}: "
            r".*\(received at ([0-9.]+)\)")


def submitted_pattern(mac: str, server: str) -> str:
    """The source's log line for a hand-off it wrote (groups: commit ms, submitted at)."""
    return (rf"VM {re.escape(mac)} handed over to process \S+ \(server {re.escape(server)}\): "
            r"request committed in ([0-9.]+) ms \(submitted at ([0-9.]+)\)")


def pressure() -> Dict[str, float]:
    """Cumulative seconds some task waited for a CPU and for I/O (Linux PSI); {} if absent."""
    totals = {}
    for resource in ("cpu", "io"):
        try:
            text = Path(f"/proc/pressure/{resource}").read_text()
        except OSError:
            continue
        some = next(line for line in text.splitlines() if line.startswith("some"))
        totals[resource] = int(some.rsplit("total=", 1)[1]) / 1e6
    return totals


def start_busy_loops(count: int) -> List[subprocess.Popen]:
    """``count`` processes that spin on a CPU (a loaded machine); stop them by PID."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(count)]


def run(notices: int, busy_loops: int = 0, workdir: Optional[str] = None,
        seed: int = 6) -> dict:
    from ryu_apps.lab import testbed as lab
    from ryu_apps.cli.notify import send
    from ryu_apps.lab.distributed import DistributedLab

    rng = random.Random(seed)
    setup = DistributedLab(access=2, servers=2, vms=1, prefix="n%03d" % (os.getpid() % 1000),
                           dpid_base=((os.getpid() + 23) % 4096) << 24,
                           workdir=Path(tempfile.mkdtemp(prefix="dynprov-notice-",
                                                         dir=workdir)))
    samples: Dict[str, List[float]] = {key: [] for key in (
        "notice_ms", "rest_to_write_ms", "write_to_destination_ms", "commit_ms", "rest_ms",
        "rest_floor_ms")}
    busy: List[subprocess.Popen] = []
    machine: Dict[str, object] = {"workdir_filesystem": _filesystem(setup.workdir),
                                  "busy_loops": busy_loops}
    try:
        setup.start()
        setup.announce_all()
        mac = _vm_of(setup, "p1")
        servers = [setup.prefix + "s21", setup.prefix + "s22"]
        setup.wait_for_store(lambda rows: any(
            r["name"] == "p2" and set(servers) <= set(r["devices"]) for r in rows),
            table="Process")
        source = setup.controllers[0].rest_target()   # URL and admin token
        source_log = LogTail(setup.controllers[0].log_file)
        destination_log = LogTail(setup.controllers[1].log_file)
        busy = start_busy_loops(busy_loops)
        started, pressure_before = time.monotonic(), pressure()
        machine["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
        for number in range(notices):
            time.sleep(rng.uniform(*GAP_S))
            server = servers[number % 2]
            sent = time.time()
            status, answer = send(source, {"event": "migrating", "mac": mac, "server": server})
            answered = time.time()
            if status != 200 or "through the store" not in answer.get("acknowledged", ""):
                raise RuntimeError(f"notice {number + 1}: {status} {answer}")
            received = float(wait_logged(destination_log,
                                         received_pattern(mac, server)).group(1))
            written = wait_logged(source_log, submitted_pattern(mac, server))
            submitted = float(written.group(2))
            samples["notice_ms"].append((received - sent) * 1000)
            samples["rest_to_write_ms"].append((submitted - sent) * 1000)
            samples["write_to_destination_ms"].append((received - submitted) * 1000)
            samples["commit_ms"].append(float(written.group(1)))
            samples["rest_ms"].append((answered - sent) * 1000)
            time.sleep(rng.uniform(*GAP_S))
            samples["rest_floor_ms"].append(_refused_call_ms(send, source, mac))
        elapsed = time.monotonic() - started
        machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        machine["stall_share"] = {resource: round((total - pressure_before[resource])
                                                  / elapsed, 3)
                                  for resource, total in pressure().items()}
    finally:
        for process in busy:
            lab.stop_process(process)
        setup.stop()
    return {"notices": notices, "processes": 2, "store": "3-member Raft cluster",
            **{key: summary(values) for key, values in samples.items()},
            "over_target": over_target(samples), "samples": samples, **machine,
            "target_ms": TARGET_MS}


def over_target(samples: Dict[str, List[float]]) -> dict:
    """The notices over the target: how many, and which part was the larger in each."""
    parts = ("rest_to_write_ms", "write_to_destination_ms")
    slow = [i for i, value in enumerate(samples["notice_ms"]) if value > TARGET_MS]
    larger = [max(parts, key=lambda part: samples[part][i]) for i in slow]
    return {"count": len(slow), **{f"{part}_larger": larger.count(part) for part in parts}}


def _medium(figures: dict) -> str:
    """Where the run kept the store: tmpfs, or the disk's file system."""
    filesystem = figures["workdir_filesystem"]
    return filesystem if filesystem == "tmpfs" else f"disk ({filesystem})"


def _filesystem(path: Path) -> str:
    out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                         text=True, check=False).stdout
    return out.strip() or "unknown"


def _vm_of(setup, process: str) -> str:
    rows = setup.wait_for_store(lambda rows: any(r["owner"] == process for r in rows))
    return sorted(r["mac"] for r in rows if r["owner"] == process)[0]


def _refused_call_ms(send, source, mac: str) -> float:
    """The same REST call for a server nobody manages: answered 404 without a store write."""
    sent = time.time()
    status, answer = send(source, {"event": "migrating", "mac": mac, "server": "nowhere"})
    elapsed = (time.time() - sent) * 1000
    if status != 404:
        raise RuntimeError(f"notice for server 'nowhere': expected 404, got {status} {answer}")
    return elapsed


ROWS = (("notice: REST call to destination received", "notice_ms"),
        ("  REST call to write submitted (source)", "rest_to_write_ms"),
        ("  write submitted to destination received", "write_to_destination_ms"),
        ("write committed, as the source saw it", "commit_ms"),
        ("REST round trip (answered once committed)", "rest_ms"),
        ("REST floor (404, no store write)", "rest_floor_ms"))


def report(figures: dict) -> None:
    rows = [(label, figures[key]["n"], figures[key]["p50"], figures[key]["p90"],
             figures[key]["p99"], figures[key]["max"]) for label, key in ROWS]
    stalls = ", ".join(f"{resource} {share * 100:.1f}%"
                       for resource, share in figures["stall_share"].items())
    print(f"{figures['notices']} migration notices from process p1 to p2, {figures['store']} "
          f"on {_medium(figures)}, {figures['busy_loops']} busy loops; "
          f"load average {figures['load_average_before']} before, "
          f"{figures['load_average_after']} after; stalled (PSI some): {stalls or 'n/a'}")
    print(format_table(("latency (ms)", "n", "p50", "p90", "p99", "max"), rows))
    slow = figures["over_target"]
    print(f"notices over {TARGET_MS:.0f} ms: {slow['count']}; the larger part was the REST "
          f"call to the write in {slow['rest_to_write_ms_larger']}, the write to the "
          f"destination in {slow['write_to_destination_ms_larger']}")
    notice = figures["notice_ms"]
    for key in ("p50", "p99", "max"):
        print(f"target notice <= {TARGET_MS:.0f} ms at {key}: "
              f"{'met' if notice[key] <= TARGET_MS else 'MISSED'} ({notice[key]:.1f} ms)")


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    """CDFs: the run's notice and its two parts; beside it, the notice of every saved run."""
    plt = pyplot()

    def cdf(ax, values: List[float], label: str) -> None:
        values = sorted(values)
        if values:
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=label)

    samples = record["figures"]["samples"]
    fig, (parts, runs) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for label, key in ROWS[:3]:
        cdf(parts, samples[key], label.strip())
    parts.set_title(f"{record['benchmark']}: the notice and its parts")
    for other in [record] + _other_runs(record["benchmark"]):
        figures = other["figures"]
        cdf(runs, figures["samples"]["notice_ms"],
            f"store on {_medium(figures)}, {figures['busy_loops']} busy loops "
            f"({other['benchmark']})")
    runs.set_title("the notice, run by run")
    for ax in (parts, runs):
        ax.axvline(TARGET_MS, color="red", linestyle="--", label="target")
        ax.set_xlabel("ms")
        ax.legend(fontsize="small")
    parts.set_ylabel("fraction of notices")
    return [save_figure(fig, outdir / f"{record['benchmark']}.png", dpi=100)]


def _other_runs(name: str) -> List[dict]:
    """The other saved full runs of this benchmark (``--name store_notice-*``)."""
    paths = sorted(RESULTS_DIR.glob(f"{NAME}*.json"))
    names = [path.stem for path in paths if path.stem != name and
             not path.stem.endswith("-quick")]
    return [read_results(other) for other in names]


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 notices")
    parser.add_argument("--notices", type=int, default=200)
    parser.add_argument("--busy-loops", type=int, default=0, metavar="N",
                        help="busy-looping processes during the notices (a loaded machine)")
    parser.add_argument("--workdir", help="where the lab keeps the store's files and logs "
                        "(default: the temporary directory; /dev/shm: no disk fsync)")
    parser.add_argument("--name", default=NAME, help="name of the results file and plot")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args(argv)
    name = args.name + ("-quick" if args.quick else "")
    if args.plot_only:
        replot(name, plot)
        return
    print_machine()
    figures = run(10 if args.quick else args.notices, args.busy_loops, args.workdir)
    report(figures)
    # One figure: the main run's, which overlays every saved run (diagnostics included).
    publish(name, figures, plot if name == NAME else None)


if __name__ == "__main__":
    main()
