"""Template change on live VMs: dynprov's library reload vs FAUCET's SIGHUP, same run.

Run: ``python -m benchmarks.template_change [--quick] [--repetitions N] [--plot-only]``
(root; OVS running; FAUCET installs itself into ``.venv-faucet`` on first use).

Both controllers run a copy of the demo topology (edge included). The change,
alternating between two versions at every repetition, is one rule of an ACL
that the probed traffic never meets:

- dynprov: the web template (250) of a private copy of the default library
  gets a first virtual-switch rule ``deny to_vm tcp dst_port 8080``, and each
  repetition flips its port between 8080 and 8081 in ``web.yaml``, then
  ``POST /dynprov/library/reload``; the four web VMs' flows on their servers
  change.
- FAUCET: the same rule as an ACL on the web VMs' switch ports
  (``acls_in``), flipped the same way in ``faucet.yaml``, then SIGHUP.

A timestamped ``ovs-ofctl monitor watch:`` stream on every bridge gives the
time from the change (just before the POST or the signal) to the last flow
event it caused (the stream must then stay quiet for ``QUIET_MS``). Meanwhile
web5 -> web1 and web3 -> web7 (web VMs on other servers) probe every 1 ms
with ICMP, which both versions allow; probes sent between the change and
``QUIET_MS`` after its last flow event that got no reply are counted lost.
For dynprov the REST answer time is reported too (the reload is applied and
its flow-mods sent, not yet confirmed by barrier).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from benchmarks.common import (PLOTS_DIR, format_table, print_machine, publish, pyplot,
                               replot, save_figure, summary)
from benchmarks.migration import DynprovTestbed, FaucetTestbed, ProbeStream

PORTS = (8080, 8081)
PROBE_PAIRS = (("web5", "web1"), ("web3", "web7"))
WEB_VMS = ("web1", "web3", "web5", "web7")
BRIDGES = ("s11", "s12", "s21", "s22", "a1", "a2", "f1", "e1")
QUIET_MS = 300.0
TIMEOUT_S = 5.0
MARK = "# benchmark rule"


def web_yaml(port: int, original: str) -> str:
    """The web template with the benchmark's first virtual-switch rule."""
    rule = (f"        - {{action: deny, direction: to_vm, protocol: tcp, dst_port: {port}}}"
            f"  {MARK}\n")
    lines = [line for line in original.splitlines(keepends=True) if MARK not in line]
    at = next(i for i, line in enumerate(lines) if line.strip() == "acl:") + 1
    return "".join(lines[:at] + [rule] + lines[at:])


def faucet_acls(port: int) -> dict:
    return {"web-in": [
        {"rule": {"dl_type": 0x800, "nw_proto": 6, "tcp_dst": port, "actions": {"allow": 0}}},
        {"rule": {"actions": {"allow": 1}}}]}


def wait_quiet(monitors, since_ns: int) -> tuple:
    """(first, last) event times after ``since_ns``, once quiet for QUIET_MS."""
    deadline = time.monotonic_ns() + TIMEOUT_S * 1e9
    while time.monotonic_ns() < deadline:
        events = [e for m in monitors for e in list(m.events) if e.at_ns >= since_ns]
        last = max((e.at_ns for e in events), default=None)
        reference = last if last is not None else since_ns
        if time.monotonic_ns() - reference >= QUIET_MS * 1e6 and last is not None:
            return min(e.at_ns for e in events), last, len(events)
        time.sleep(0.02)
    return None, None, 0


class _Side:
    """One controller's bed, its flow monitors and the change it makes."""

    def __init__(self, name: str, bed, change) -> None:
        from ryu_apps.lab.vmtools import flow_monitor

        self.name, self.bed, self.change = name, bed, change
        self.monitors = flow_monitor.watch([bed.switches[b].name for b in BRIDGES])
        self.streams: List[ProbeStream] = []
        self.windows: List[dict] = []

    def start_probes(self) -> None:
        self.streams = [ProbeStream(self.bed.vms[src], self.bed.vms[dst])
                        for src, dst in PROBE_PAIRS]
        for stream in self.streams:
            stream.wait_started()

    def once(self, index: int) -> dict:
        port = PORTS[(index + 1) % 2]
        start = time.monotonic_ns()
        answered_ns = self.change(port)
        first, last, count = wait_quiet(self.monitors, start)
        window = {"index": index, "port": port, "start_ns": start, "events": count,
                  "first_ms": None if first is None else (first - start) / 1e6,
                  "applied_ms": None if last is None else (last - start) / 1e6,
                  "answered_ms": None if answered_ns is None
                  else (answered_ns - start) / 1e6,
                  "end_ns": (last if last is not None else start) + int(QUIET_MS * 1e6)}
        self.windows.append(window)
        return window

    def finish(self) -> None:
        from ryu_apps.lab.vmtools import flow_monitor

        results = [s.stop() for s in self.streams]
        flow_monitor.stop_all(self.monitors)
        for window in self.windows:
            lost = 0
            for _, probes in results:
                lost += sum(1 for p in probes if window["start_ns"] <= p.sent_ns
                            <= window["end_ns"] and p.received_ns is None)
            window["lost"] = lost


def run(repetitions: int, quick: bool) -> dict:
    from ryu_apps.lab import testbed as lab

    tag = os.getpid() % 1000
    base = ((os.getpid() + 7) % 2048) << 24
    library = Path(tempfile.mkdtemp(prefix="dynprov-tc-")) / "templates"
    shutil.copytree(lab.DEFAULT_TEMPLATES, library)
    web = library / "web.yaml"
    original = web.read_text()
    web.write_text(web_yaml(PORTS[0], original))
    beds = {}
    sides: Dict[str, _Side] = {}
    try:
        beds["dynprov"] = DynprovTestbed(f"td{tag:03d}", base, templates=library)
        beds["faucet"] = FaucetTestbed(f"tf{tag:03d}", base + (1 << 23), faucet_acls(PORTS[0]),
                                       {name: ["web-in"] for name in WEB_VMS})
        controller = beds["dynprov"].controller

        def dynprov_change(port: int):
            web.write_text(web_yaml(port, original))
            status, answer = controller.rest("POST", "/dynprov/library/reload", timeout=10)
            if status != 200:
                raise RuntimeError(f"library reload: {status} {answer}")
            return time.monotonic_ns()

        def faucet_change(port: int):
            beds["faucet"].faucet.reconfigure(faucet_acls(port))
            return None

        for name, change in (("dynprov", dynprov_change), ("faucet", faucet_change)):
            bed = beds[name]
            for src, dst in PROBE_PAIRS:
                bed.vms[src].cmd(f"ping -c2 -i0.2 -W1 {bed.vms[dst].IP()}")
            sides[name] = _Side(name, bed, change)
            sides[name].start_probes()
        time.sleep(0.5)
        started = time.monotonic()
        for index in range(repetitions):
            for name, side in sides.items():
                window = side.once(index)
                print(f"[{time.monotonic() - started:6.1f}s] {index + 1}/{repetitions} "
                      f"{name:8} -> port {window['port']}: {window['events']} flow events, "
                      f"applied after {window['applied_ms']} ms", flush=True)
        for side in sides.values():
            side.finish()
    finally:
        for side in sides.values():
            if side.streams and "lost" not in (side.windows[-1] if side.windows else {"": 0}):
                for stream in side.streams:
                    try:
                        stream.stop()
                    except RuntimeError:
                        pass
        for bed in beds.values():
            bed.stop()
    figures = {"quick": quick, "repetitions": repetitions, "quiet_ms": QUIET_MS,
               "probe_pairs": [list(p) for p in PROBE_PAIRS], "controllers": {}}
    for name, side in sides.items():
        applied = [w["applied_ms"] for w in side.windows if w["applied_ms"] is not None]
        figures["controllers"][name] = {
            "applied_ms": summary(applied),
            "first_event_ms": summary([w["first_ms"] for w in side.windows
                                       if w["first_ms"] is not None]),
            "answered_ms": summary([w["answered_ms"] for w in side.windows
                                    if w["answered_ms"] is not None]),
            "flow_events": summary([w["events"] for w in side.windows]),
            "lost": summary([w.get("lost", 0) for w in side.windows]),
            "not_applied": sum(1 for w in side.windows if w["applied_ms"] is None),
            "windows": side.windows,
        }
    return figures


def table(figures: dict) -> str:
    rows = []
    for name, c in figures["controllers"].items():
        a = c["applied_ms"]
        rows.append([name, a.get("n", 0), c["not_applied"], a.get("p50", "-"),
                     a.get("p99", "-"), a.get("max", "-"),
                     c["answered_ms"].get("p50", "-"), c["flow_events"].get("p50", "-"),
                     c["lost"].get("p50", "-"), c["lost"].get("max", "-")])
    return format_table(["controller", "n", "not applied", "applied p50 ms", "p99", "max",
                         "REST answer p50", "flow events p50", "lost p50", "lost max"], rows)


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    """Strip plot of the time to apply a template/ACL change, per controller."""
    plt = pyplot()

    suffix = "-quick" if record["figures"].get("quick") else ""
    controllers = record["figures"]["controllers"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, c in enumerate(controllers.values(), start=1):
        values = [w["applied_ms"] for w in c["windows"] if w["applied_ms"] is not None]
        ax.boxplot([values], positions=[i], showfliers=False, widths=0.5)
        ax.scatter([i + (j % 7 - 3) * 0.04 for j in range(len(values))], values, s=10,
                   alpha=0.7, zorder=3)
    ax.set_xticks(range(1, len(controllers) + 1))
    ax.set_xticklabels([f"{n}\n({'library reload' if n == 'dynprov' else 'SIGHUP'})"
                        for n in controllers])
    ax.set_yscale("log")
    ax.set_ylabel("change to last flow replaced (ms)")
    ax.set_title("ACL change on live VMs")
    path = save_figure(fig, outdir / f"template_change{suffix}.png")
    return [path]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions")
    parser.add_argument("--repetitions", type=int, help="changes per controller (default 20)")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args(argv)
    name = "template_change-quick" if args.quick else "template_change"
    if args.plot_only:
        replot(name, plot)
        return 0
    if os.geteuid() != 0:
        print("needs root (Mininet, OVS)", file=sys.stderr)
        return 2
    print_machine()
    figures = run(args.repetitions or (2 if args.quick else 20), args.quick)
    print(table(figures))
    publish(name, figures, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
