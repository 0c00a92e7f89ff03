"""The scale benchmark's tables and plots (:mod:`benchmarks.scale` measures)."""

from __future__ import annotations

from pathlib import Path
from typing import List

from benchmarks.common import PLOTS_DIR, format_table, pyplot, read_results, save_figure

EVENTS = ("new_vm", "known_vm", "idle_timeout", "port_down", "migration", "link_flap",
          "render_new_vm", "bytes_new_vm")


def print_tables(figures: dict) -> None:
    sizes = figures["sizes"]
    rows = []
    for size, rec in sizes.items():
        mem, flows = rec["memory"], rec["flows"]
        rows.append([int(size), rec["switches"], round(mem["bytes_per_binding"]),
                     round(rec["rss_per_binding_bytes"]), round(rec["populate_us_per_vm"]),
                     round(flows["server_entries_per_vm"], 1),
                     round(flows["access_transit_per_vm_in_dc"], 2),
                     round(flows["access_shared_per_local_vm"], 2),
                     flows["access_entries"], flows["fabric_entries"]])
    print(format_table(["bindings", "switches", "B/binding", "RSS B/binding", "fill us/VM",
                        "server flows/VM", "access transit/VM", "access shared/VM",
                        "access flows", "fabric flows"], rows))
    print()
    rows = []
    for size, rec in sizes.items():
        for event, s in rec["events_us"].items():
            rows.append([int(size), event, s["n"], round(s["p50"]), round(s["p90"]),
                         round(s["p99"]), round(s["max"])])
    print(format_table(["bindings", "event", "n", "p50 us", "p90 us", "p99 us", "max us"],
                       rows))
    print()
    rows = []
    for size, rec in sizes.items():
        r = rec["reconcile"]
        rows.append([int(size), r["server_entries"], round(r["server_full_ms"], 2),
                     r["server_full_changes"], round(r["server_empty_ms"], 2),
                     r["access_entries"], round(r["access_full_ms"], 2),
                     r["access_full_changes"], round(r["access_empty_ms"], 2),
                     r["access_empty_changes"]])
    print(format_table(["bindings", "server flows", "server full ms", "changes",
                        "server empty ms", "access flows", "access full ms", "changes",
                        "access empty ms", "adds"], rows))
    rows = [[int(count), rec["bindings"], rec["servers"], rec["new_vm_us"]["n"],
             round(rec["new_vm_us"]["p50"]), round(rec["new_vm_us"]["p90"]),
             round(rec["new_vm_us"]["p99"]), round(rec["new_vm_us"]["max"])]
            for count, rec in figures.get("per_server", {}).items()]
    if rows:
        print()
        print(format_table(["VMs/server", "bindings", "servers", "n", "new_vm p50 us",
                            "p90 us", "p99 us", "max us"], rows))


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    """Per-event cost and memory per binding vs binding count."""
    plt = pyplot()

    figures = record["figures"]
    sizes = sorted(figures["sizes"], key=int)
    xs = [int(s) for s in sizes]
    stem = record.get("benchmark", "scale").replace("-", "_")
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for event in EVENTS:
        p50 = [figures["sizes"][s]["events_us"].get(event, {}).get("p50") for s in sizes]
        p99 = [figures["sizes"][s]["events_us"].get(event, {}).get("p99") for s in sizes]
        if None in p50:
            continue
        axes[0].plot(xs, p50, marker="o", label=event)
        axes[1].plot(xs, p99, marker="o", label=event)
    before = _before(record)
    if before is not None:
        bsizes = sorted(before["sizes"], key=int)
        for event in ("new_vm", "migration"):
            for ax, stat in zip(axes, ("p50", "p99")):
                ax.plot([int(s) for s in bsizes],
                        [before["sizes"][s]["events_us"][event][stat] for s in bsizes],
                        linestyle="--", marker="x", color="grey",
                        label=f"{event} before indexing")
    for ax, title in zip(axes, ("p50", "p99")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bindings in the controller")
        ax.set_ylabel("engine call (µs)")
        ax.set_title(f"per-event cost, {title}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    path = save_figure(fig, outdir / f"{stem}_event_cost.png")
    paths.append(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [figures["sizes"][s]["memory"]["bytes_per_binding"] for s in sizes],
            marker="o", label="tracemalloc (engine state)")
    ax.plot(xs, [figures["sizes"][s]["rss_per_binding_bytes"] for s in sizes],
            marker="s", label="RSS growth")
    if before is not None:
        ax.plot([int(s) for s in bsizes],
                [before["sizes"][s]["memory"]["bytes_per_binding"] for s in bsizes],
                marker="x", linestyle="--", color="grey", label="tracemalloc, before indexing")
        ax.set_yscale("log")
    ax.axhline(2048, color="red", linestyle="--", label="target 2 KB")
    ax.set_xscale("log")
    ax.set_xlabel("bindings in the controller")
    ax.set_ylabel("bytes per binding")
    ax.set_title("controller memory per binding")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = save_figure(fig, outdir / f"{stem}_memory.png")
    paths.append(path)
    return paths


def _before(record: dict) -> dict | None:
    """The pre-refactor engine's figures (scale-before.json), for the full run's plots."""
    if record.get("benchmark") != "scale":
        return None
    try:
        return read_results("scale-before")["figures"]
    except (OSError, ValueError):
        return None
