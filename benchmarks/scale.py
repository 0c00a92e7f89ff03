"""Scale of one controller: memory per binding, flows per VM, per-event cost vs binding count.

Drives the real pure core in one process, as the Ryu app does, on the generated
data center of :mod:`benchmarks.scale_bed` (2 fabric switches, 40 servers per
access switch, 30 VMs per server, the default library; links by ``link_seen``
as LLDP reports them). At each size it measures:

- memory: tracemalloc (after gc) of what the engine allocates for the last
  2,000 VMs provisioned at that size, per binding; and the process's RSS
  growth per binding over the other VMs (no tracemalloc running);
- flows per VM on a server switch, an access switch and a fabric switch,
  shared per-VLAN / per-port flows amortised over the VMs;
- the engine call for each event kind (µs, including building its plan), after
  the heap is settled as the app settles it when its warm start ends
  (``gc.collect`` then ``gc.freeze``, ryu_apps.app.wiring.settle_heap): a
  new VM's packet-in (its first frame carries its IP; its port then goes down,
  and the probe search that starts is ended as 10 s later would), a known VM's packet-in,
  an idle timeout (flow_removed), a VM port going down, a migration (notify
  migrating + the VM's arrival), a server link flap (port down + link seen
  again); and, separately, rendering a new VM's plan into OpenFlow messages through Ryu's classes
  (ryu_apps/app/openflow.py) and into bytes as the app sends them (shapes
  patched per VM, ryu_apps/app/prerendered.py);
- a new VM's engine cost at a fixed binding count with 10 to 600 VMs per server;
- reconciling a reconnecting server / access switch that holds all its flows,
  and one that comes back empty.

Run: ``python -m benchmarks.scale [--quick] [--sizes 1000,10000] [--name NAME]``.
(``--per-server 10,100,600`` and ``--per-server-bindings N`` set the second sweep;
``--gc-pauses 50000`` only measures the collector's pauses, heap as filled vs settled.)
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List

from benchmarks.common import (format_table, print_machine, publish, replot, summary, write_results)
from benchmarks.scale_bed import (SERVERS_PER_ACCESS, UPLINK, VMS_PER_SERVER, DataCenter,
                                  end_searches)
from benchmarks.scale_report import EVENTS, plot, print_tables

def _time(call: Callable[..., Any], *args: object, **kwargs: object) -> tuple[float, Any]:
    """Microseconds ``call(*args, **kwargs)`` took, and what it returned."""
    start = time.perf_counter()
    result = call(*args, **kwargs)
    return (time.perf_counter() - start) * 1e6, result


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def traced_populate(dc: DataCenter, bindings: int, traced: int) -> dict:
    """Provision the last ``traced`` of ``bindings`` VMs under tracemalloc, after gc.

    The figure is what one more binding costs the controller at that size (its
    engine state and its share of the shared VLAN and access-port flows);
    allocations made by this benchmark itself (its list of VMs, their MACs)
    are left out.
    """
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    dc.populate(bindings, start=bindings - traced)
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, __file__)])
    own = current - sum(s.size for s in snapshot.statistics("filename"))
    top = snapshot.statistics("lineno")[:12]
    tracemalloc.stop()
    engine_bytes = current - base - own
    return {
        "traced_bindings": traced,
        "bytes_per_binding": engine_bytes / traced,
        "benchmark_bytes_per_binding": own / traced,
        "top_allocations": [f"{s.traceback[0].filename.split('/')[-1]}:"
                            f"{s.traceback[0].lineno} {s.size / traced:.0f} B/binding"
                            for s in top],
    }


def flows_per_vm(dc: DataCenter) -> dict:
    """Flows on one full server, one access and one fabric switch, per VM."""
    desired = dc.engine.desired
    server = dc.server_dpids[0]
    on_server = desired.on_switch(server)
    owned = [f for f in on_server if (getattr(f, "cookie", 0) >> 52) & 0xF == 1]
    access = dc.access_dpids[0]
    on_access = desired.on_switch(access)
    per_vm_access = [f for f in on_access if (getattr(f, "cookie", 0) >> 52) & 0xF == 1]
    on_fabric = desired.on_switch(dc.fabric[0])
    n = len(dc.vms)
    servers_on_access = min(SERVERS_PER_ACCESS, dc.servers)
    return {
        "server_entries_per_vm": len(on_server) / VMS_PER_SERVER,
        "server_binding_entries_per_vm": len(owned) / VMS_PER_SERVER,
        "access_entries": len(on_access),
        "access_transit_per_vm_in_dc": len(per_vm_access) / n,
        "access_shared_per_local_vm": (len(on_access) - len(per_vm_access))
        / (servers_on_access * VMS_PER_SERVER),
        "fabric_entries": len(on_fabric),
        "fabric_entries_per_vm_in_dc": len(on_fabric) / n,
        "switches": len(dc.fabric) + dc.access + dc.servers,
    }


def measure_events(bindings: int, samples: int) -> dict:
    """Per-event engine cost at ``bindings`` VMs, and reconciliation of one switch."""
    from ryu_apps.core.fabric import PortRef, Role
    from ryu_apps.core.lifecycle import Notice

    dc = DataCenter(bindings)
    gc.collect()
    rss0 = _rss_kb()
    start = time.perf_counter()
    dc.build_fabric()
    fabric_s = time.perf_counter() - start
    rss1 = _rss_kb()
    traced = min(bindings // 2, 2000)
    start = time.perf_counter()
    dc.populate(bindings - traced)
    populate_s = time.perf_counter() - start
    gc.collect()
    rss2 = _rss_kb()
    memory = traced_populate(dc, bindings, traced)
    settle_heap()
    engine, rng = dc.engine, dc.rng
    times: Dict[str, List[float]] = {e: [] for e in EVENTS}

    def readd(dpid, port, mac):
        engine.confirm(engine.packet_in(dpid, port, mac, b"", now=0.0).plan.confirms)

    def migrate(mac, source, target, name):
        ack = engine.notify(Notice.MIGRATING, mac, server=name, now=0.0)
        pending = list(ack.plan.messages)
        engine.vm_attached(*target, mac, now=0.0)
        pending += engine.packet_in(*target, mac, b"garp", now=0.0).plan.messages
        pending += engine.port_down(*source, now=0.0).messages
        while pending:
            pending += engine.receive(pending.pop(0), now=0.0).messages

    def flap(server, far):
        engine.port_down(far.dpid, far.port, now=0.0)
        engine.link_seen(PortRef(server, UPLINK), far, now=0.0)

    renderer, to_bytes = _renderer(), _byte_renderer()
    for _ in range(samples):
        # a new VM on a random server, then gone again (port down)
        dpid = rng.choice(dc.server_dpids)
        port, mac = dc.free_port(dpid), dc.new_mac()
        took, verdict = _time(engine.packet_in, dpid, port, mac, b"frame", now=0.0,
                              sender_ip=dc.fresh_ip())
        times["new_vm"].append(took)
        if renderer is not None:
            times["render_new_vm"].append(_time(renderer, verdict.plan)[0])
            times["bytes_new_vm"].append(_time(to_bytes, verdict.plan)[0])
        engine.confirm(verdict.plan.confirms)
        times["port_down"].append(_time(engine.port_down, dpid, port, now=0.0)[0])
        end_searches(engine)
        # a known VM speaks again
        vdpid, vport, vmac = rng.choice(dc.vms)
        times["known_vm"].append(_time(engine.packet_in, vdpid, vport, vmac, b"", now=0.0)[0])
        # an idle timeout, then the VM comes back
        vdpid, vport, vmac = rng.choice(dc.vms)
        binding = engine.bindings[vmac]
        cookie = binding.owner.cookie
        times["idle_timeout"].append(
            _time(engine.flow_removed, vdpid, cookie, True)[0])
        readd(vdpid, vport, vmac)
    for _ in range(max(1, samples // 3)):
        # a notified migration to a server on another access switch, and back
        index = rng.randrange(len(dc.vms))
        sdpid, sport, mac = dc.vms[index]
        target = rng.choice(dc.server_dpids)
        if target == sdpid:
            continue
        tport = dc.free_port(target)
        name = engine.fabric.switches[target].name

        times["migration"].append(
            _time(migrate, mac, (sdpid, sport), (target, tport), name)[0])
        engine.confirm([mac])
        dc.vms[index] = (target, tport, mac)
    for _ in range(max(1, samples // 10)):
        i = rng.randrange(dc.servers)
        server = dc.server_dpids[i]
        far = dc.uplink_of(i, server)

        times["link_flap"].append(_time(flap, server, far)[0])
    reconcile = {}
    for label, dpid, role in (("server", dc.server_dpids[0], Role.SERVER),
                              ("access", dc.access_dpids[0], Role.ACCESS)):
        name = engine.fabric.switches[dpid].name
        full = list(engine.desired.on_switch(dpid))
        took, plan = _time(engine.switch_up, dpid, role, name, full, now=0.0)
        reconcile[f"{label}_full_ms"] = took / 1000
        reconcile[f"{label}_full_changes"] = plan.flow_count()
        reconcile[f"{label}_entries"] = len(full)
        took, plan = _time(engine.switch_up, dpid, role, name, [], now=0.0)
        reconcile[f"{label}_empty_ms"] = took / 1000
        reconcile[f"{label}_empty_changes"] = plan.flow_count()
    flows = flows_per_vm(dc)
    gc.unfreeze()
    return {
        "bindings": len(engine.bindings),
        "switches": flows["switches"],
        "build_fabric_s": fabric_s,
        "populate_s": populate_s,
        "populate_us_per_vm": populate_s * 1e6 / (bindings - traced),
        "rss_fabric_mb": (rss1 - rss0) / 1024,
        "rss_per_binding_bytes": (rss2 - rss1) * 1024 / (bindings - traced),
        "memory": memory,
        "events_us": {e: summary(v) for e, v in times.items() if v},
        "reconcile": reconcile,
        "flows": flows,
    }


def settle_heap() -> None:
    """What the app does when its warm start ends (ryu_apps.app.wiring.settle_heap):
    collect, then freeze what survived, so later collections skip it."""
    gc.collect()
    gc.freeze()


def measure_per_server(bindings: int, vms_per_server: int, samples: int) -> dict:
    """A new VM's engine cost with ``bindings`` VMs, ``vms_per_server`` on each server."""
    dc = DataCenter(bindings, vms_per_server=vms_per_server)
    dc.build_fabric()
    dc.populate(bindings)
    settle_heap()
    engine, rng, took = dc.engine, dc.rng, []
    for _ in range(samples):
        dpid = rng.choice(dc.server_dpids)
        port, mac = dc.free_port(dpid), dc.new_mac()
        spent, verdict = _time(engine.packet_in, dpid, port, mac, b"frame", now=0.0,
                               sender_ip=dc.fresh_ip())
        took.append(spent)
        engine.confirm(verdict.plan.confirms)
        engine.port_down(dpid, port, now=0.0)
        end_searches(engine)
    gc.unfreeze()
    return {"bindings": len(engine.bindings), "servers": dc.servers,
            "new_vm_us": summary(took)}


def measure_gc_pauses(bindings: int, vms: int = 3000) -> dict:
    """The collector's pauses (CPU time of each collection) while ``vms`` new VMs come
    and go at ``bindings`` bindings: first as filled, then after settle_heap()."""
    dc = DataCenter(bindings)
    dc.build_fabric()
    dc.populate(bindings)
    pauses: List[tuple] = []
    started: Dict[str, float] = {}

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            started["cpu"] = time.process_time()
        else:
            pauses.append((info["generation"], time.process_time() - started["cpu"]))

    engine, figures = dc.engine, {}
    gc.callbacks.append(watch)
    try:
        for label in ("as filled", "settled"):
            if label == "settled":
                settle_heap()
            pauses.clear()
            for _ in range(vms):
                dpid = dc.rng.choice(dc.server_dpids)
                port, mac = dc.free_port(dpid), dc.new_mac()
                verdict = engine.packet_in(dpid, port, mac, b"f", now=0.0,
                                           sender_ip=dc.fresh_ip())
                engine.confirm(verdict.plan.confirms)
                engine.port_down(dpid, port, now=0.0)
            full = [t for generation, t in pauses if generation == 2]
            figures[label] = {"collections": len(pauses), "full": len(full),
                              "longest_full_ms": 1000 * max(full, default=0.0),
                              "longest_ms": 1000 * max((t for _, t in pauses), default=0.0)}
    finally:
        gc.callbacks.remove(watch)
        gc.unfreeze()
    return {"bindings": bindings, "new_vms": vms, "pauses": figures}


def _byte_renderer():
    """A function encoding a plan as the app sends it (None without Ryu)."""
    try:
        from ryu_apps.app import prerendered
    except ImportError:
        return None

    def render(plan) -> int:
        return sum(len(m) for changes in plan.changes.values()
                   for m in prerendered.messages(changes))
    return render


def _renderer():
    """A function rendering a plan into OpenFlow messages and bytes (None without Ryu)."""
    try:
        from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser
        from ryu_apps.app.openflow import messages_for
    except ImportError:
        return None

    class Datapath:
        ofproto = ofproto_v1_3
        ofproto_parser = ofproto_v1_3_parser
        id = 1

    datapath = Datapath()

    def render(plan) -> int:
        size = 0
        for changes in plan.changes.values():
            for message in messages_for(datapath, changes):
                message.serialize()
                size += len(message.buf)
        return size
    return render


def run(sizes: List[int], samples: int, per_server: List[int],
        per_server_bindings: int) -> dict:
    figures: Dict[str, Any] = {"sizes": {}, "vms_per_server": VMS_PER_SERVER,
                               "servers_per_access": SERVERS_PER_ACCESS, "samples": samples,
                               "per_server": {}, "per_server_bindings": per_server_bindings}
    for size in sizes:
        print(f"[scale] {size} bindings ...", flush=True)
        figures["sizes"][str(size)] = measure_events(size, samples)
    for count in per_server:
        print(f"[scale] {per_server_bindings} bindings, {count} VMs per server ...", flush=True)
        figures["per_server"][str(count)] = measure_per_server(per_server_bindings, count,
                                                               samples)
    return figures


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few samples")
    parser.add_argument("--sizes", help="comma-separated binding counts")
    parser.add_argument("--samples", type=int, help="events timed per kind and size")
    parser.add_argument("--name", help="results name (default scale / scale-quick)")
    parser.add_argument("--plot-only", action="store_true", help="plot the saved results")
    parser.add_argument("--per-server", help="comma-separated VMs per server (second sweep)")
    parser.add_argument("--per-server-bindings", type=int,
                        help="bindings in the VMs-per-server sweep (default 10000)")
    parser.add_argument("--gc-pauses", type=int, metavar="BINDINGS",
                        help="only the collector's pauses while new VMs arrive at BINDINGS, "
                             "heap as filled vs settled (saved as scale-gc)")
    args = parser.parse_args(argv)
    name = args.name or ("scale-quick" if args.quick else "scale")
    if args.plot_only:
        replot(name, plot)
        return
    print_machine()
    if args.gc_pauses:
        found = measure_gc_pauses(args.gc_pauses)
        rows = [[label, f["collections"], f["full"], round(f["longest_full_ms"], 1),
                 round(f["longest_ms"], 1)] for label, f in found["pauses"].items()]
        print(format_table(["heap", "collections", "full", "longest full ms CPU",
                            "longest ms CPU"], rows))
        write_results(args.name or "scale-gc", found)
        return
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [300, 1000] if args.quick else [1000, 10000, 50000])
    samples = args.samples or (30 if args.quick else 300)
    per_server = ([int(s) for s in args.per_server.split(",")] if args.per_server
                  else [10, 100] if args.quick else [10, 30, 100, 600])
    per_server_bindings = args.per_server_bindings or (600 if args.quick else 10000)
    figures = run(sizes, samples, per_server, per_server_bindings)
    print_tables(figures)
    publish(name, figures, plot)


if __name__ == "__main__":
    main()
