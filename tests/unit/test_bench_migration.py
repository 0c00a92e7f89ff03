"""The migration benchmark's pure parts: cases, worst-prober figures, the per-mode table."""

import pytest

from benchmarks.migration_cases import (MODE_LABELS, MODES, SHAPES, Case, all_cases,
                                        case_figures, mode_grid, round_order, selected_cases,
                                        table, worst)


def _record(case: Case, outages, recovered=(True, True), lost=None) -> dict:
    lost = lost or [int(o) for o in outages]
    return {"controller": case.controller, "mode": case.mode, "shape": case.shape,
            "guest_downtime_ms": 5.0, "controller_cpu_ms": 12.0,
            "controller_cpu_after_switchover_ms": 7.0,
            "probers": {name: {"outage_ms": o, "lost": n, "recovered": r,
                               "network_share_ms": o / 2 if r else None,
                               "median_rtt_ms": 0.2}
                        for name, o, n, r in zip(("web5", "out1"), outages, lost,
                                                 recovered)}}


def test_every_detection_mode_runs_every_shape_and_faucet_runs_each_shape_once():
    cases = all_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    for shape in SHAPES:
        assert {c.mode for c in cases if c.controller == "dynprov" and c.shape == shape} \
            == set(MODES)
        assert [c.mode for c in cases if c.controller == "faucet" and c.shape == shape] \
            == ["learning"]
    controls = [c for c in cases if c.shape == "control"]
    assert sorted(c.bed for c in controls) == ["dynprov-ovsdb", "dynprov-packets", "faucet"]


def test_only_the_notice_mode_notifies_and_every_mode_has_a_bed_of_its_own():
    by_name = {c.name: c for c in all_cases()}
    assert by_name["dynprov/notice/qemu"].notify
    assert not any(c.notify for c in all_cases() if c.mode != "notice")
    beds = {(c.controller, c.mode): c.bed for c in all_cases()}
    assert len(set(beds.values())) == len(beds) == 4
    assert by_name["dynprov/notice/none"].bed == "dynprov-notice"
    assert by_name["dynprov/ovsdb/garp"].bed == "dynprov-ovsdb"
    assert by_name["faucet/garp"].bed == "faucet"


def test_rounds_alternate_direction_so_each_case_moves_both_ways():
    assert round_order(0) == all_cases()
    assert round_order(1) == all_cases()[::-1]
    assert round_order(2) == round_order(0)


def test_a_part_of_the_run_keeps_only_its_modes_and_shapes_in_round_order():
    part = selected_cases(["packets", "faucet"], ["none", "control"])
    assert [c.name for c in part] == ["faucet/none", "dynprov/packets/none",
                                      "dynprov/packets/control", "faucet/control"]
    assert round_order(1, part) == part[::-1]
    assert {c.bed for c in selected_cases(["notice"])} == {"dynprov-notice"}
    assert len(selected_cases(["notice"])) == 3       # the notice bed has no control
    assert selected_cases() == all_cases()
    with pytest.raises(ValueError, match="unknown shape rarp"):
        selected_cases(shapes=["qemu", "rarp"])


def test_a_move_counts_its_worse_prober_and_recovers_only_if_both_did():
    case = Case("dynprov", "packets", "none")
    move = worst(_record(case, (1.0, 7.5), lost=[1, 8]))
    assert (move["outage_ms"], move["lost"], move["recovered"]) == (7.5, 8, True)
    assert move["network_share_ms"] == 3.75
    failed = worst(_record(case, (1.0, 990.0), recovered=(True, False)))
    assert not failed["recovered"] and failed["network_share_ms"] is None


def test_case_figures_give_recovered_moves_and_worst_prober_statistics():
    ovsdb, faucet = Case("dynprov", "ovsdb", "qemu"), Case("faucet", "learning", "none")
    records = [_record(ovsdb, (0.0, 1.0)), _record(ovsdb, (3.0, 2.0)),
               _record(ovsdb, (0.5, 9.0)),
               _record(faucet, (999.0, 999.0), recovered=(False, False)),
               _record(faucet, (2.0, 999.0), recovered=(True, False))]
    cases = case_figures(records)
    assert list(cases) == ["dynprov/ovsdb/qemu", "faucet/none"]
    mine = cases["dynprov/ovsdb/qemu"]
    assert (mine["moves"], mine["recovered"]) == (3, 3)
    assert mine["outage_ms"]["p50"] == 3.0 and mine["outage_ms"]["max"] == 9.0
    assert mine["prober_runs"] == 6 and mine["prober_outage_ms"]["p50"] == 1.5
    theirs = cases["faucet/none"]
    assert (theirs["moves"], theirs["recovered"], theirs["outage_ms"]) == (2, 0, {"n": 0})
    assert theirs["prober_runs_recovered"] == 1
    assert "faucet/none" in table(cases) and "0/2" in table(cases)


def test_the_mode_grid_has_one_labelled_row_per_mode_and_faucet_last():
    records = [_record(Case("dynprov", m, s), (1.0, 2.0)) for m in MODES for s in SHAPES]
    records.append(_record(Case("faucet", "learning", "none"), (999.0, 999.0),
                           recovered=(False, False)))
    grid = mode_grid(case_figures(records)).splitlines()
    assert grid[0].startswith("| detection mode | hypervisor-style |")
    assert [row.split(" | ")[0].lstrip("| ") for row in grid[2:]] == \
        [MODE_LABELS[m] for m in (*MODES, "learning")]
    assert "2.0 / 2.0 / 2.0 (1/1)" in grid[2]
    assert grid[-1].endswith("| - | - | never (0/1) | - |")


def test_a_move_that_started_unreachable_is_skipped_not_counted_as_an_outage():
    case = Case("dynprov", "packets", "garp")
    stale = dict(_record(case, (1500.0, 1500.0), recovered=(False, False)),
                 reachable_before=False)
    figures = case_figures([_record(case, (2.0, 3.0)), stale])[case.name]
    assert (figures["moves"], figures["skipped"], figures["recovered"]) == (1, 1, 1)
    assert "1/1, 1 skipped" in table({case.name: figures})
    assert figures["outage_ms"]["max"] == 3.0


def test_controller_cpu_is_summarised_per_case_and_the_control_has_no_switchover():
    case, control = Case("faucet", "learning", "qemu"), Case("faucet", "learning", "control")
    still = dict(_record(control, (0.0, 0.0)), controller_cpu_after_switchover_ms=None)
    cases = case_figures([_record(case, (9.0, 9.0)), still])
    assert cases["faucet/qemu"]["controller_cpu_after_ms"]["p50"] == 7.0
    assert cases["faucet/control"]["controller_cpu_after_ms"] == {"n": 0}
    assert cases["faucet/control"]["controller_cpu_ms"]["p50"] == 12.0


def test_plots_take_the_results_name_as_suffix():
    from benchmarks.migration_plot import plot_suffix

    assert plot_suffix("migration", False) == ""
    assert plot_suffix("migration-quick", True) == "-quick"
    assert plot_suffix("migration-before", False) == "-before"
    assert plot_suffix("", True) == "-quick"


def test_the_table_lists_cases_in_round_order_even_from_a_sorted_file():
    records = [_record(Case("faucet", "learning", "qemu"), (1.0, 1.0)),
               _record(Case("dynprov", "ovsdb", "qemu"), (1.0, 1.0))]
    cases = dict(sorted(case_figures(records).items(), reverse=True))
    lines = table(cases).splitlines()[2:]
    assert [line.split()[0] for line in lines] == ["dynprov/ovsdb/qemu", "faucet/qemu"]


def test_parts_run_apart_merge_into_one_run_with_every_move(tmp_path, monkeypatch):
    import json

    from benchmarks import common
    from benchmarks.migration import merged

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    parts = {"migration-a": [_record(Case("dynprov", "packets", "qemu"), (3.0, 5.0))],
             "migration-b": [_record(Case("faucet", "learning", "qemu"), (80.0, 90.0)),
                             _record(Case("faucet", "learning", "qemu"), (70.0, 60.0))]}
    for name, records in parts.items():
        figures = {"duration_s": 10.0, "migrations_per_case": len(records),
                   "order": name, "records": records, "timelines": [{"case": name}],
                   "cases": case_figures(records)}
        (tmp_path / f"{name}.json").write_text(json.dumps({"figures": figures}))
    run = merged(["migration-a", "migration-b"])
    assert run["parts"] == ["migration-a", "migration-b"]
    assert run["duration_s"] == 20.0 and run["migrations_per_case"] == 2
    assert len(run["records"]) == 3 and len(run["timelines"]) == 2
    assert run["cases"]["dynprov/packets/qemu"]["outage_ms"]["p50"] == 5.0
    assert run["cases"]["faucet/qemu"]["moves"] == 2
