"""The migration benchmark's pure parts: its cases, per-move and per-case figures, tables.

A case is one controller in one detection mode moving the VM in one shape:

- dynprov, ``ovsdb``: the servers' OVSDB watched (the hypervisor sets
  ``attached-mac`` on the destination port), no notice;
- dynprov, ``notice``: OVSDB not watched, a ``migrating`` notice sent as the
  destination port is created;
- dynprov, ``packets``: no OVSDB, no notice: only the VM's own frames;
- FAUCET, ``learning``: MAC learning, no notice (FAUCET has none).

Shapes: ``qemu`` (hypervisor-style RARPs), ``garp`` (one gratuitous ARP),
``none`` (no announcement); ``control`` probes for the same time without a
move (the background loss of the machine), once per test bed.

A move's figure is the worse of its two probers (the issue's "worst of two
1 ms probers"); it recovered when both did. A move whose VM was not reachable
before it started (the previous move left it unreachable past the harness's
10 s of re-announcing) is counted as skipped, not as an outage of its own.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

from benchmarks.common import format_table, summary

SHAPES = ("qemu", "garp", "none")
SHAPE_LABELS = {"qemu": "hypervisor-style", "garp": "silent + 1 GARP",
                "none": "no announcement", "control": "no move (background loss)"}
MODES = ("ovsdb", "notice", "packets")
MODE_LABELS = {"ovsdb": "OVSDB watched", "notice": "notice only",
               "packets": "packets only", "learning": "FAUCET (MAC learning)"}
#: Which test bed (controller process and topology copy) runs a mode. Each
#: mode has its own, so that a move one mode leaves unrecovered (its VM
#: refused at the new port until the quarantine lifts) cannot spoil the next
#: move of another mode.
BEDS = {("dynprov", "ovsdb"): "dynprov-ovsdb", ("dynprov", "notice"): "dynprov-notice",
        ("dynprov", "packets"): "dynprov-packets", ("faucet", "learning"): "faucet"}


class Case(NamedTuple):
    """One controller, detection mode and move shape."""

    controller: str
    mode: str
    shape: str

    @property
    def name(self) -> str:
        """``dynprov/ovsdb/qemu``, ``dynprov/packets/none``, ``faucet/garp`` ..."""
        if self.controller == "faucet":
            return f"faucet/{self.shape}"
        return f"{self.controller}/{self.mode}/{self.shape}"

    @property
    def bed(self) -> str:
        """The test bed the case runs on."""
        return BEDS[(self.controller, self.mode)]

    @property
    def notify(self) -> bool:
        """Whether a ``migrating`` notice is sent as the destination port appears."""
        return self.mode == "notice"


def all_cases() -> List[Case]:
    """Every case in the order one round interleaves them.

    Per shape the modes of dynprov with FAUCET in the middle, so each
    controller's moves are spread over the round alike; then one control per
    test bed.
    """
    cases: List[Case] = []
    for shape in SHAPES:
        cases += [Case("dynprov", "ovsdb", shape), Case("dynprov", "notice", shape),
                  Case("faucet", "learning", shape), Case("dynprov", "packets", shape)]
    # The notice bed is the packets bed's twin: its background loss is theirs.
    controls = {(c.controller, c.mode) for c in cases if c.mode != "notice"}
    return cases + [Case(controller, mode, "control") for controller, mode in sorted(controls)]


#: The names ``--modes`` takes: dynprov's detection modes and FAUCET.
BED_NAMES = {"ovsdb": "dynprov-ovsdb", "notice": "dynprov-notice",
             "packets": "dynprov-packets", "faucet": "faucet"}


def selected_cases(modes: Optional[Sequence[str]] = None,
                   shapes: Optional[Sequence[str]] = None) -> List[Case]:
    """``all_cases`` restricted to ``modes`` (keys of ``BED_NAMES``) and ``shapes``.

    None keeps everything; an unknown name raises ValueError naming it.
    """
    for kind, given, known in (("mode", modes, BED_NAMES), ("shape", shapes,
                                                            (*SHAPES, "control"))):
        unknown = sorted(set(given or ()) - set(known))
        if unknown:
            raise ValueError(f"unknown {kind} {', '.join(unknown)}: "
                             f"choose from {', '.join(known)}")
    beds = {BED_NAMES[m] for m in modes} if modes is not None else None
    return [c for c in all_cases()
            if (beds is None or c.bed in beds) and (shapes is None or c.shape in shapes)]


def round_order(index: int, cases: Optional[Sequence[Case]] = None) -> List[Case]:
    """Round ``index``'s order of ``cases`` (default every case): reversed every other round.

    Each bed's VM alternates direction move by move; reversing every other
    round makes every case move it both ways over two rounds.
    """
    ordered = list(all_cases() if cases is None else cases)
    return ordered if index % 2 == 0 else ordered[::-1]


def case_of(record: dict) -> Case:
    """The case a move's record belongs to."""
    return Case(record["controller"], record["mode"], record["shape"])


def worst(record: dict) -> dict:
    """The move's figure: the worse of its probers, recovered only if all recovered."""
    probers = list(record["probers"].values())
    recovered = all(p["recovered"] for p in probers)
    shares = [p["network_share_ms"] for p in probers]
    return {"outage_ms": max(p["outage_ms"] for p in probers),
            "lost": max(p["lost"] for p in probers), "recovered": recovered,
            "network_share_ms": (max(s for s in shares if s is not None)
                                 if recovered and any(s is not None for s in shares)
                                 else None)}


def _values(items: Iterable[Optional[float]]) -> List[float]:
    return [v for v in items if v is not None]


def figures_of(records: Sequence[dict]) -> dict:
    """One case's figures over its moves (worst prober) and its prober runs."""
    moves = [worst(r) for r in records]
    done = [m for m in moves if m["recovered"]]
    runs = [p for r in records for p in r["probers"].values()]
    return {
        "moves": len(moves), "recovered": len(done),
        "outage_ms": summary([m["outage_ms"] for m in done]),
        "outage_ms_all": [m["outage_ms"] for m in moves],
        "lost": summary([m["lost"] for m in done]),
        "lost_total": sum(m["lost"] for m in moves),
        "network_share_ms": summary(_values(m["network_share_ms"] for m in done)),
        "prober_runs": len(runs), "prober_runs_recovered": sum(p["recovered"] for p in runs),
        "prober_outage_ms": summary([p["outage_ms"] for p in runs if p["recovered"]]),
        "guest_downtime_ms": summary([r["guest_downtime_ms"] for r in records]),
        "controller_cpu_ms": summary(_values(r.get("controller_cpu_ms") for r in records)),
        "controller_cpu_after_ms": summary(_values(r.get("controller_cpu_after_switchover_ms")
                                                   for r in records)),
        "median_rtt_ms": summary([p["median_rtt_ms"] for p in runs]),
    }


def case_figures(records: Sequence[dict]) -> Dict[str, dict]:
    """Per case name (in ``all_cases`` order): its label and figures."""
    cases: Dict[str, dict] = {}
    for case in all_cases():
        mine = [r for r in records if case_of(r) == case]
        usable = [r for r in mine if r.get("reachable_before", True)]
        if mine:
            cases[case.name] = {"controller": case.controller, "mode": case.mode,
                                "shape": case.shape, "bed": case.bed,
                                "skipped": len(mine) - len(usable), **figures_of(usable)}
    return cases


def _in_case_order(cases: Dict[str, dict]) -> List[tuple]:
    """(name, case) in ``all_cases`` order (a saved JSON file sorts its keys)."""
    order = [c.name for c in all_cases()]
    return sorted(cases.items(), key=lambda item: (order.index(item[0])
                                                   if item[0] in order else len(order)))


def _cell(stats: dict, key: str) -> object:
    return stats.get(key, "-")


def table(cases: Dict[str, dict]) -> str:
    """Every case, one line: recovered moves, worst-prober outage and loss, context."""
    rows = []
    for name, case in _in_case_order(cases):
        outage, lost, share = case["outage_ms"], case["lost"], case["network_share_ms"]
        rows.append([name, _recovered(case), _cell(outage, "p50"),
                     _cell(outage, "p90"), _cell(outage, "max"), _cell(lost, "p50"),
                     _cell(lost, "max"), _cell(share, "p50"),
                     _cell(case["guest_downtime_ms"], "p50"),
                     _cell(case["median_rtt_ms"], "p50"),
                     _cell(case["controller_cpu_ms"], "p50"),
                     _cell(case["controller_cpu_after_ms"], "p50")])
    return format_table(["case", "recovered", "outage p50", "p90", "max", "lost p50",
                         "lost max", "net share p50", "VM swap p50", "RTT p50",
                         "ctl CPU p50", "after switchover"], rows)


def _recovered(case: dict) -> str:
    """``recovered/moves``, and the skipped moves if any."""
    skipped = case.get("skipped", 0)
    return f"{case['recovered']}/{case['moves']}" + (f", {skipped} skipped" if skipped else "")


def grid_cell(case: Optional[dict]) -> str:
    """``p50 / p90 / max ms (recovered x/N)`` for one case; ``-`` when it did not run."""
    if case is None:
        return "-"
    outage = case["outage_ms"]
    if not outage.get("n"):
        return f"never ({_recovered(case)})"
    return (f"{outage['p50']:.1f} / {outage['p90']:.1f} / {outage['max']:.1f} "
            f"({_recovered(case)})")


def mode_grid(cases: Dict[str, dict]) -> str:
    """Markdown: detection mode (FAUCET last) by move shape, worst-prober outage per cell."""
    header = ("| detection mode | " + " | ".join(SHAPE_LABELS[s] for s in SHAPES)
              + " | " + SHAPE_LABELS["control"] + " |")
    lines = [header, "|" + " --- |" * (len(SHAPES) + 2)]
    for controller, mode in [("dynprov", m) for m in MODES] + [("faucet", "learning")]:
        cells = [grid_cell(cases.get(Case(controller, mode, s).name))
                 for s in (*SHAPES, "control")]
        lines.append(f"| {MODE_LABELS[mode]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
