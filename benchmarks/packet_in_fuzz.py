"""Packet-in fuzzer: a million hostile PACKET_INs at a real controller, and what it did.

A real ``ryu-manager ryu_apps.provisioner`` (no --verbose, its own signed-probe
secret) manages an emulated data center (:mod:`benchmarks.ofload`'s switches:
a fabric switch, access switches with free ports, servers). Once it has
discovered the real links, the emulated switches send ``--count`` hostile
messages (:mod:`benchmarks.hostile.fuzz_driver`): random bytes, truncated
frames, group and zero source MACs, unknown templates, random VM MACs,
802.1Q/QinQ tags, forged LLDP (unsigned, garbage-signed, mangled), replays of
the controller's own captured probes (wrong port, twice, too late, reflected),
beacons (unsigned, signed by another process, by this one, re-addressed
probes) and malformed PACKET_INs (those Ryu's parser would die on are sent only
on a stranger's connection). Then a fresh VM on every server proves that
everything before it was handled and that provisioning still works.

Printed and saved (``benchmarks/results/packet_in_fuzz.json``): messages by
kind; handler exceptions and tracebacks (from the controller's log, by who
logged them); links and shared uplinks before, during and after (must be the
emulated topology's own); controller RSS at start, peak, end; drop flows
(cookie kind 4) the switches received; packet-ins processed per second.

    python -m benchmarks.packet_in_fuzz [--count 1000000] [--seed 11]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Optional

from benchmarks import common
from benchmarks.hostile import controller_watch as watch
from benchmarks.hostile.fuzz_driver import FuzzConfig, Fuzzer, summarise_sent
from benchmarks.hostile.fuzz_messages import CATEGORY_WEIGHTS
from ryu_apps.lab import testbed as lab
from ryu_apps.store.hook import default_process_name

NAME = "packet_in_fuzz"
#: "Bounded memory": RSS may grow in the second half of the run by at most this
#: share of what it grew in the first half, or SLACK_KB, whichever is larger.
SECOND_HALF_SHARE, SLACK_KB = 0.25, 8 * 1024
#: The controller's default ``reconcile_grace`` (seconds), which the fuzzer keeps.
RECONCILE_GRACE = 5.0


def start_controller(probe_max_age: float) -> tuple[lab.ControllerProcess, bytes, float]:
    """A controller as an operator runs it, with a topology secret the fuzzer also
    knows (only to sign beacons as a process the controller does not know); the
    secret, and when the controller was started (monotonic seconds)."""
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"dynprov-fuzz-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    secret_file = workdir / "topology-secret"
    descriptor = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secret.hex() + "\n")
    controller = lab.ControllerProcess(
        workdir=workdir, verbose=False,
        extra_options=f"topology_secret_file = {secret_file}\n"
                      f"probe_max_age = {probe_max_age}\n")
    started = time.monotonic()
    return controller.start(), secret, started


async def _rest(controller, path: str):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, watch.rest_get, controller, path)


async def _wait_for_links(controller, expected: set, timeout: float = 60.0) -> frozenset:
    deadline = time.monotonic() + timeout
    found = frozenset()
    while time.monotonic() < deadline:
        found = watch.normalise_links(await _rest(controller, "/dynprov/links"))
        if found == expected:
            return found
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the controller discovered {sorted(found)}, expected {sorted(expected)}"
                       f":\n{controller.log()[-3000:]}")


class _Watchers:
    """Background checks during the fuzz: links every 2 s, the log every second."""

    def __init__(self, controller, fuzzer: Fuzzer, expected: set, suspects: Path) -> None:
        self.controller, self.fuzzer, self.expected = controller, fuzzer, expected
        self.suspects = suspects
        self.forged_links: set = set()
        self.link_polls = self.rest_failures = 0
        self.dumps = 0
        self.tail = watch.LogTail(controller.log_file)
        self._tasks = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._links()), asyncio.ensure_future(self._log())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _links(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                found = watch.normalise_links(await _rest(self.controller, "/dynprov/links"))
            except (OSError, RuntimeError):
                self.rest_failures += 1
                continue
            self.link_polls += 1
            self.forged_links |= set(found) - self.expected

    async def _log(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            text = self.tail.read_new()
            if watch.HANDLER_RAISED.search(text) and self.dumps < 3:
                self.dumps += 1
                path = self.suspects.with_name(f"{self.suspects.stem}-{self.dumps}.json")
                self.fuzzer.dump_recent(path, "a handler raised; the last messages sent")
                print(f"!! a handler raised: last messages saved in {path}", flush=True)


async def fuzz(controller: lab.ControllerProcess, config: FuzzConfig,
               controller_started: float) -> dict:
    """Connect the emulated switches, fuzz, send the sentinels; every figure.
    ``controller_started``: when the controller was started (monotonic seconds)."""
    fuzzer = Fuzzer(config)
    pid = controller.process.pid
    loop = asyncio.get_running_loop()
    try:
        await fuzzer.connect()
        expected = fuzzer.expected_links()
        links_before = await _wait_for_links(controller, expected)
        # The full reconciliation at the end of the start-up grace period reads every
        # switch's flows back; emulated switches keep none, so it would re-send every
        # flow made until then: let it happen before the fuzz.
        await asyncio.sleep(max(0.0, controller_started + RECONCILE_GRACE + 1.0
                                - time.monotonic()))
        await loop.run_in_executor(None, watch.wait_until_idle, pid)
        sampler = watch.RssSampler(pid).start()
        watchers = _Watchers(controller, fuzzer, expected, config.suspects_file)
        watchers.start()
        marks = {}
        started = time.monotonic()
        cpu_before = watch.cpu_seconds(pid)

        def progress(sent: int) -> None:
            for share in (0.25, 0.5, 0.75):
                if sent >= share * config.count and share not in marks:
                    marks[share] = time.monotonic() - sampler.started
            elapsed = time.monotonic() - started
            print(f"  {sent:>9,} sent, {sent / elapsed:,.0f}/s, RSS "
                  f"{watch.rss_kb(pid) / 1024:.1f} MB", flush=True)

        send_seconds = await fuzzer.run(progress)
        sentinel_seconds = await fuzzer.send_sentinels(timeout=900)
        processed_seconds = time.monotonic() - started
        cpu_seconds = watch.cpu_seconds(pid) - cpu_before
        marks[1.0] = time.monotonic() - sampler.started
        await fuzzer.finish_strangers()
        idle_after = await loop.run_in_executor(None, watch.wait_until_idle, pid)
        await watchers.stop()
        sampler.sample()
        sampler.stop()
        links_after = watch.normalise_links(await _rest(controller, "/dynprov/links"))
        security = await _rest(controller, "/dynprov/security")
        bindings = await _rest(controller, "/dynprov/bindings?counters=false")
        refused = await _rest(controller, "/dynprov/refused")
    finally:
        fuzzer.close()
    log = watch.scan_log(controller.log())
    active = {b["mac"] for b in bindings if b["state"] == "active"}
    sentinels = fuzzer.sentinel_macs()
    total = sum(fuzzer.sent.values())
    rss = {"start_kb": sampler.samples[0][1], "peak_kb": sampler.peak_kb,
           "end_kb": sampler.samples[-1][1],
           **{f"at_{int(share * 100)}pct_kb": sampler.at(t) for share, t in marks.items()},
           "series": sampler.series()}
    first_half = rss.get("at_50pct_kb", rss["start_kb"]) - rss["start_kb"]
    second_half = rss.get("at_100pct_kb", rss["end_kb"]) - rss.get("at_50pct_kb", rss["start_kb"])
    rss["bounded"] = second_half <= max(SECOND_HALF_SHARE * first_half, SLACK_KB)
    drops = fuzzer.drop_flows
    per_port = drops.per_port()
    return {
        "config": {"count": config.count, "seed": config.seed, "access": config.access,
                   "servers": config.servers, "free_ports_per_access": config.free_ports,
                   "vm_ports_per_server": config.vm_ports, "probe_max_age": config.probe_max_age,
                   "switches": len(fuzzer.switches), "links": len(expected),
                   "weights": config.weights, "window": config.window,
                   "rogue_limit": config.rogue_limit,
                   "rejected_limit": config.rejected_limit},
        "sent": {"total": total, "by_kind": summarise_sent(fuzzer.sent),
                 "by_label": dict(sorted(fuzzer.sent.items()))},
        "stranger_connections": dict(fuzzer.rogue),
        "log": log,
        "links": {"expected": len(expected), "before": len(links_before),
                  "after": len(links_after),
                  "forged_after": sorted(watch.show_link(link) for link in links_after - expected),
                  "missing_after": sorted(watch.show_link(link) for link in expected - links_after),
                  "forged_seen_during": sorted(watch.show_link(link)
                                             for link in watchers.forged_links),
                  "shared_uplinks_after": sum(1 for link in links_after
                                              if ("shared-fabric", 0) in link),
                  "polls_during": watchers.link_polls, "poll_failures": watchers.rest_failures},
        "rss": rss,
        "drop_flows": {"added": drops.adds, "removed": drops.deletes,
                       "installed_at_end": len(drops.installed), "peak_installed": drops.peak,
                       "peak_on_one_port": drops.peak_per_port,
                       "ports_with_drops_at_end": len(per_port)},
        "timing": {"send_seconds": send_seconds, "sentinel_seconds": sentinel_seconds,
                   "processed_seconds": processed_seconds,
                   "packet_ins_per_second": total / processed_seconds,
                   "controller_cpu_seconds": cpu_seconds,
                   "idle_after_seconds": idle_after},
        "sentinels": {"macs": sentinels, "active": sum(1 for m in sentinels if m in active)},
        "controller": {"bindings": len(bindings), "active_bindings": len(active),
                       "refused_listed": len(refused), "security": security,
                       "log_file": str(controller.log_file)},
        "suspect_dumps": watchers.dumps,
    }


def verdicts(figures: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each target of issue 11."""
    log, links, rss = figures["log"], figures["links"], figures["rss"]
    forged = len(set(links["forged_after"]) | set(links["forged_seen_during"]))
    sentinels = figures["sentinels"]
    return [
        ("0 handler exceptions", f"{log['handler_exceptions']}", log["handler_exceptions"] == 0),
        ("0 links or uplinks from forged frames",
         f"{forged} forged ({links['after']} links after, {links['expected']} real)",
         forged == 0 and not links["missing_after"]),
        ("memory bounded",
         f"RSS {rss['start_kb'] / 1024:.1f} -> peak {rss['peak_kb'] / 1024:.1f} -> end "
         f"{rss['end_kb'] / 1024:.1f} MB (50%: {rss.get('at_50pct_kb', 0) / 1024:.1f} MB)",
         rss["bounded"]),
        ("fresh VM provisioned after the fuzz",
         f"{sentinels['active']} of {len(sentinels['macs'])} sentinels active",
         sentinels["active"] == len(sentinels["macs"])),
    ]


def report(figures: dict) -> None:
    sent = figures["sent"]
    rows = [[kind, n, f"{100 * n / sent['total']:.1f}%"] for kind, n in sent["by_kind"].items()]
    print(common.format_table(["messages by kind", "sent", "share"], rows))
    log, drops, timing = figures["log"], figures["drop_flows"], figures["timing"]
    print(f"packet-ins sent: {sent['total']:,}; processed in {timing['processed_seconds']:.1f} s "
          f"= {timing['packet_ins_per_second']:,.0f} packet-ins/s (controller CPU "
          f"{timing['controller_cpu_seconds']:.1f} s; sentinels provisioned "
          f"{timing['sentinel_seconds']:.2f} s after the last message)")
    print(f"stranger connections: {figures['stranger_connections']}")
    print(f"controller log: {log['handler_exceptions']} handler exceptions, "
          f"{log['tracebacks']} tracebacks ({log['tracebacks_ryu_parser']} Ryu parser, "
          f"{log['tracebacks_ryu_connection']} Ryu connection, "
          f"{log['tracebacks_dynprov_handler']} dynprov handler, {log['tracebacks_other']} other), "
          f"{log['resyncs']} resynchronisations")
    links = figures["links"]
    print(f"links: {links['before']} before, {links['after']} after, {links['expected']} real; "
          f"forged after: {links['forged_after'] or 'none'}; forged seen during the run "
          f"({links['polls_during']} polls): {links['forged_seen_during'] or 'none'}; "
          f"shared uplinks after: {links['shared_uplinks_after']}")
    rss = figures["rss"]
    print("controller RSS (MB): start {:.1f}, 25% {:.1f}, 50% {:.1f}, 75% {:.1f}, 100% {:.1f}, "
          "peak {:.1f}, end {:.1f}".format(*(rss.get(k, 0) / 1024 for k in (
              "start_kb", "at_25pct_kb", "at_50pct_kb", "at_75pct_kb", "at_100pct_kb",
              "peak_kb", "end_kb"))))
    print(f"drop flows (cookie kind 4) the switches received: {drops['added']} added, "
          f"{drops['removed']} removed, {drops['installed_at_end']} installed at the end on "
          f"{drops['ports_with_drops_at_end']} ports, peak {drops['peak_installed']}, at most "
          f"{drops['peak_on_one_port']} on one port")
    probes = figures["controller"]["security"].get("lldp_probes", {})
    print(f"controller's probe counters: {probes}")
    print(common.format_table(["target", "measured", "met"],
                              [[t, m, "yes" if ok else "NO"] for t, m, ok in verdicts(figures)]))


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="hostile messages")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--access", type=int, default=2)
    parser.add_argument("--servers", type=int, default=2, help="servers per access switch")
    parser.add_argument("--free-ports", type=int, default=4, help="per access switch")
    parser.add_argument("--vm-ports", type=int, default=64, help="hostile VM ports per server")
    parser.add_argument("--probe-max-age", type=float, default=10.0,
                        help="the controller's probe_max_age (s); replays 'too late' wait for it")
    parser.add_argument("--window", type=int, default=4,
                        help="batches a switch may have in flight before the controller "
                             "took them in (0: no pacing; see the module docstring)")
    parser.add_argument("--only", default="",
                        help="comma-separated kinds to send (default: all of "
                             + ", ".join(sorted(CATEGORY_WEIGHTS)) + ")")
    parser.add_argument("--name", default=NAME, help="results name")
    args = parser.parse_args(argv)
    weights = dict(CATEGORY_WEIGHTS)
    if args.only:
        unknown = set(args.only.split(",")) - set(weights)
        if unknown:
            parser.error(f"--only: unknown kinds {sorted(unknown)}")
        weights = {k: v for k, v in weights.items() if k in args.only.split(",")}
    common.print_machine()
    controller, secret, started = start_controller(args.probe_max_age)
    print(f"controller: pid {controller.process.pid}, log {controller.log_file}", flush=True)
    config = FuzzConfig(port=controller.of_port, count=args.count, seed=args.seed,
                        access=args.access, servers=args.servers, free_ports=args.free_ports,
                        vm_ports=args.vm_ports, weights=weights, window=args.window,
                        sweep_each=8 if "openflow_malformed" in weights else 0,
                        probe_max_age=args.probe_max_age,
                        secret=secret, process_name=default_process_name(controller.of_port),
                        dpid_base=(0x0B << 32) | (os.getpid() % 4096) << 16,
                        suspects_file=common.RESULTS_DIR / f"{args.name}-suspects.json")
    try:
        figures = asyncio.run(fuzz(controller, config, started))
    finally:
        controller.stop()
    report(figures)
    common.publish(args.name, figures)
    return 0 if all(ok for _, _, ok in verdicts(figures)) else 1


if __name__ == "__main__":
    sys.exit(main())
