"""The template merge of an access-port group, kept incrementally: the group's templates
come from per-VLAN counts and only bindings that joined or left since are re-flagged,
yet every member's flag follows the merge as a from-scratch recompute would."""

from __future__ import annotations

from ryu_apps.core.binding import VmState
from tests.unit.test_shared_pipeline import S11, S12, UPLINK, Lab, _mac

WEB, DATABASE = 250, 252   # same VLAN, different port-side rules: they merge


def _moved(lab: Lab, dpid: int) -> set:
    table = lab.engine.state.table
    return {b.mac for b in table.index.on_server(dpid) if b.binding_id in table.moved}


def _on(lab: Lab, dpid: int, template_id: int) -> set:
    return {b.mac for b in lab.engine.state.table.index.on_server(dpid)
            if b.template_id == template_id}


def test_merge_flags_follow_members_joining_and_leaving():
    lab = Lab()   # invariants (incremental == recompute, reconnect empty) after each plan
    for index in range(12):
        lab.vm(S11, UPLINK + 1 + index, _mac(WEB, index + 1), f"10.0.0.{index + 1}")
    assert _moved(lab, S11) == set()
    lab.vm(S11, 40, _mac(DATABASE, 1), "10.0.1.1")          # the merge starts
    assert _moved(lab, S11) == _on(lab, S11, WEB) | _on(lab, S11, DATABASE)
    lab.vm(S11, 41, _mac(WEB, 50), "10.0.0.50")             # joins a merged group
    assert _mac(WEB, 50) in _moved(lab, S11)
    lab.vm(S12, 40, _mac(WEB, 60), "10.0.2.1")              # another server: its own group
    assert _moved(lab, S12) == set()
    lab.apply(lab.engine.port_down(S11, 40, now=0.0))      # the database VM leaves
    assert _moved(lab, S11) == set()
    lab.vm(S11, 42, _mac(DATABASE, 2), "10.0.1.2")          # and another comes
    assert _moved(lab, S11) == _on(lab, S11, WEB) | _on(lab, S11, DATABASE)
    assert not lab.engine.state.table.fresh


def test_a_suspended_member_does_not_count_and_is_reflagged_when_it_resumes():
    lab = Lab()
    lab.vm(S11, 20, _mac(WEB, 1), "10.0.0.1")
    lab.vm(S11, 21, _mac(DATABASE, 1), "10.0.1.1")
    database = lab.engine.bindings[_mac(DATABASE, 1)]
    st = lab.engine.state
    from ryu_apps.core import binding_ops
    from ryu_apps.core.flow_plan import Plan

    plan = Plan()
    binding_ops.set_state(st, database, VmState.SUSPENDED, plan)
    lab.apply(lab.engine._done(plan))
    assert _mac(WEB, 1) not in _moved(lab, S11)             # web alone: no merge
    plan = Plan()
    binding_ops.set_state(st, lab.engine.bindings[_mac(DATABASE, 1)], VmState.ACTIVE, plan)
    lab.apply(lab.engine._done(plan))
    assert _moved(lab, S11) == {_mac(WEB, 1), _mac(DATABASE, 1)}
    assert not st.table.fresh
