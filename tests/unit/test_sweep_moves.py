"""The conformance sweep's move phase: seeded plans, where VMs end up, what is probed again,
and which flows count as left behind."""

from ryu_apps.core.cookies import CookieKind, Owner
from ryu_apps.lab import sweep_moves
from ryu_apps.lab.sweep_library import generate, redraw
from ryu_apps.lab.sweep_moves import (MODES, SHAPES, move_targets, moved, plan_moves,
                                      stale_flows)
from ryu_apps.lab.sweep_oracle import Endpoint, Oracle
from ryu_apps.lab.sweep_probes import plan_targets

SEEDS = range(1, 41)


def test_a_seed_always_draws_the_same_plan():
    assert plan_moves(generate(6)) == plan_moves(generate(6))


def test_moves_go_to_another_server_of_the_right_kind_and_only_the_first_comes_back():
    returns = 0
    for seed in SEEDS:
        case = generate(seed)
        plan = plan_moves(case)
        assert plan.mode in MODES and plan.shape in SHAPES
        if case.access == case.servers == 1:
            assert plan.moves == ()
            continue
        assert 1 <= len(plan.moves) <= 3
        home = {vm.name: vm.server_key for vm in case.vms}
        where = dict(home)
        for index, move in enumerate(plan.moves):
            again = move.vm in {m.vm for m in plan.moves[:index]}
            assert not again or (move.vm == plan.moves[0].vm and index == len(plan.moves) - 1
                                 and (move.access, move.server) == home[move.vm])
            returns += again
            assert (move.access, move.server) != where[move.vm]
            assert move.cross == (move.access != where[move.vm][0])
            assert 1 <= move.access <= case.access and 1 <= move.server <= case.servers
            where[move.vm] = (move.access, move.server)
        assert moved(case, plan).vms == tuple(
            vm.__class__(vm.name, vm.template_id, vm.mac, vm.ip, *where[vm.name])
            for vm in case.vms)
        outward = [m for m in plan.moves if (m.access, m.server) != home[m.vm]]
        if case.access > 1 and case.servers > 1 and len(outward) > 1:
            assert {m.cross for m in outward} == {True, False}
    assert returns > 2


def test_the_seeds_draw_every_mode_shape_and_kind_of_move():
    plans = [plan_moves(generate(seed)) for seed in SEEDS]
    assert {p.mode for p in plans} == set(MODES)
    assert {p.shape for p in plans} == set(SHAPES)
    assert {m.cross for p in plans for m in p.moves} == {True, False}


def test_moved_vms_keep_everything_but_their_server_and_a_reload_draws_the_same_library():
    case = generate(33)
    plan = plan_moves(case)
    after = moved(case, plan)
    to = {m.vm: (m.access, m.server) for m in plan.moves}
    for old, new in zip(case.vms, after.vms):
        assert new.server_key == to.get(old.name, old.server_key)
        assert (new.name, new.mac, new.ip, new.template_id) == (
            old.name, old.mac, old.ip, old.template_id)
    assert redraw(after).library == redraw(case).library


def test_the_move_phase_probes_a_moved_vms_pairs_both_ways_and_pairs_the_merge_changed():
    for seed in SEEDS:
        case = generate(seed)
        first = plan_targets(case, 24, 0)
        plan = plan_moves(case)
        after = moved(case, plan)
        chosen = move_targets(case, after, plan, first)
        movers = {m.vm for m in plan.moves}
        then, now = (Oracle(c.library, [Endpoint(v.name, v.template_id, v.ip, v.server_key)
                                        for v in c.vms]) for c in (case, after))
        for src, dst, protocol, port in first:
            merge = (then.port_rules_apply(then.vms[src], then.vms[dst])
                     != now.port_rules_apply(now.vms[src], now.vms[dst]))
            wanted = src in movers or dst in movers or merge
            assert ((src, dst, protocol, port) in chosen) == wanted or (
                (dst, src, protocol, port) in first)
            if wanted:
                assert (dst, src, protocol, port) in chosen
        assert len(chosen) == len(set(chosen))
        assert not plan.moves or chosen


def test_stale_flows_are_the_ones_whose_cookie_names_the_binding(monkeypatch):
    ours = Owner(CookieKind.BINDING, 5, 0x1234).cookie
    redirect = Owner(CookieKind.MIGRATION, 5, 0x1234).cookie
    other = Owner(CookieKind.BINDING, 6, 0x1234).cookie
    template = Owner(CookieKind.TEMPLATE, 5, 0x1234).cookie
    dump = "\n".join([f" cookie={hex(c)}, duration=1s, table=0, priority=1 actions=drop"
                      for c in (ours, redirect, other, template, 0x5)] + ["OFPST_FLOW reply"])
    monkeypatch.setattr(sweep_moves.lab, "dump_flows", lambda bridge: dump)
    found = stale_flows(["s11", "a1"], {5})
    assert len(found) == 4
    assert all(hex(ours) in f or hex(redirect) in f for f in found)
    assert stale_flows(["s11"], {7}) == []


def test_held_connections_are_tcp_of_a_moved_vm_that_work_before_and_after(tmp_path):
    from ryu_apps.lab.sweep_held import MOST, HeldConnections
    from ryu_apps.lab.sweep_probes import listened_ports

    held_any = 0
    for seed in SEEDS:
        case = generate(seed)
        first = plan_targets(case, 24, 0)
        plan = plan_moves(case)
        after = moved(case, plan)
        avoid = listened_ports(first)
        listened = {name: set(ports) for name, ports in avoid.items()}
        held = HeldConnections(case, after, plan, {}, first, avoid, tmp_path)
        assert len(held.held) <= MOST
        movers = {m.vm for m in plan.moves}
        sources = set()
        for (src, dst, probe), verdict in zip(held.held, held.verdicts):
            assert probe.protocol == "tcp" and {src, dst} & movers and verdict.passes
            assert (src, dst, "tcp", probe.port) in first
            assert probe.source_port not in listened.get(src, ())
            assert (src, probe.source_port) not in sources
            sources.add((src, probe.source_port))
        held_any += bool(held.held)
    assert held_any > 5
