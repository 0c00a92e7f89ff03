"""The migration benchmark's plots: outage by detection mode and shape, and timelines."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from benchmarks.common import PLOTS_DIR, pyplot, save_figure
from benchmarks.migration_cases import MODE_LABELS, MODES, SHAPE_LABELS, SHAPES, Case

#: One colour per detection mode, FAUCET in orange as in the other plots.
COLOURS = {"ovsdb": "tab:blue", "notice": "tab:green", "packets": "tab:purple",
           "learning": "tab:orange"}
GROUPS = [("dynprov", m) for m in MODES] + [("faucet", "learning")]


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    """The outage plot and, if any move was watched, the timelines; their paths."""
    figures = record["figures"]
    suffix = plot_suffix(record.get("benchmark", ""), bool(figures.get("quick")))
    paths = [outage_plot(figures["cases"], figures.get("recovery_limit_ms", 1000.0),
                         outdir / f"migration_outage{suffix}.png")]
    if figures.get("timelines"):
        paths.append(timeline_plot(figures["timelines"],
                                   outdir / f"migration_timeline{suffix}.png"))
    return paths


def plot_suffix(name: str, quick: bool) -> str:
    """``-before`` for results ``migration-before``; ``-quick`` for an unnamed quick run."""
    if name.startswith("migration-"):
        return name[len("migration"):]
    return "-quick" if quick else ""


def outage_plot(cases: Dict[str, dict], limit_ms: float, path: Path) -> Path:
    """Worst-prober outage of every move: one panel per shape, one box per mode."""
    plt = pyplot()
    shapes = [s for s in (*SHAPES, "control")
              if any(c["shape"] == s for c in cases.values())]
    fig, axes = plt.subplots(1, len(shapes), figsize=(3.2 * len(shapes) + 1, 4.6),
                             sharey=True, squeeze=False)
    for ax, shape in zip(axes[0], shapes):
        present = [(c, m) for c, m in GROUPS if Case(c, m, shape).name in cases]
        data = [cases[Case(c, m, shape).name]["outage_ms_all"] for c, m in present]
        if data:
            ax.boxplot(data, showfliers=False)
        for i, ((_, mode), values) in enumerate(zip(present, data), start=1):
            ax.scatter([i + (j % 7 - 3) * 0.05 for j in range(len(values))], values, s=9,
                       color=COLOURS[mode], alpha=0.7, zorder=3)
            case = cases[Case(present[i - 1][0], mode, shape).name]
            ax.text(i, limit_ms * 3.2, f"{case['recovered']}/{case['moves']}",
                    ha="center", fontsize=7)
        ax.set_xticks(range(1, len(present) + 1))
        ax.set_xticklabels([MODE_LABELS[m].replace(" (", "\n(") for _, m in present],
                           fontsize=7, rotation=30, ha="right")
        ax.set_title(SHAPE_LABELS[shape], fontsize=9)
        ax.axhline(limit_ms, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_ylim(-0.5, limit_ms * 5)
    axes[0, 0].set_ylabel("outage, worse of two 1 ms probers (ms)")
    joint = "\n" if len(shapes) < 3 else " "   # one or two panels: too narrow for one line
    fig.suptitle(f"Migration outage per move by detection mode;{joint}numbers: moves "
                 f"recovered within {limit_ms:.0f} ms (dotted)", fontsize=9)
    return save_figure(fig, path)


def timeline_plot(timelines: List[dict], path: Path) -> Path:
    """One row per watched move: probes answered/lost and flow changes per bridge."""
    plt = pyplot()
    fig, axes = plt.subplots(len(timelines), 1, figsize=(11, 2.8 * len(timelines)),
                             squeeze=False)
    for ax, entry in zip(axes[:, 0], timelines):
        _timeline_axis(ax, entry["case"], entry["timeline"])
    axes[-1, 0].set_xlabel("ms since the switchover")
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=7, loc="upper right")
    return save_figure(fig, path)


def _timeline_axis(ax, case: str, line: dict) -> None:
    bridges = sorted({e[0] for e in line["flow_events"]})
    rows = list(line["probes"]) + bridges
    for row, name in enumerate(line["probes"]):
        answered = [t for t, ok in line["probes"][name] if ok]
        lost = [t for t, ok in line["probes"][name] if not ok]
        ax.scatter(answered, [row] * len(answered), s=4, color="tab:green", marker="|")
        ax.scatter(lost, [row] * len(lost), s=10, color="tab:red", marker="|")
    offset = len(line["probes"])
    for row, bridge in enumerate(bridges, start=offset):
        for kind, colour in (("ADDED", "tab:blue"), ("MODIFIED", "tab:purple"),
                             ("DELETED", "black")):
            at = [t for b, t, k in line["flow_events"] if b == bridge and k == kind]
            ax.scatter(at, [row] * len(at), s=12, color=colour,
                       marker="x" if kind == "DELETED" else "o",
                       label=kind if row == offset else None)
    ax.axvline(line["guest_down_ms"], color="grey", linestyle="--", linewidth=1)
    ax.axvline(line["guest_up_ms"], color="grey", linestyle="-", linewidth=1)
    for t in line["notified_ms"]:
        ax.axvline(t, color="tab:olive", linestyle=":", linewidth=1)
    for t in line.get("announcements_ms", []):
        ax.axvline(t, color="tab:cyan", linestyle=":", linewidth=0.8)
    ax.axvline(line["port_created_ms"], color="tab:brown", linestyle="-.", linewidth=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"probe {r}" if r in line["probes"] else r for r in rows],
                       fontsize=7)
    ax.set_xlim(-250, 300)
    ax.set_title(f"{case}: probes (green answered, red lost), flow changes; brown: "
                 "destination port created, olive: notified, grey dashed/solid: VM "
                 "interface down/up, cyan: announcements", fontsize=8)
