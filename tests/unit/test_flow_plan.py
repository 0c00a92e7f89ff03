"""Diffing desired flows: exact deletes, in-place replacement, idempotence."""

from ryu_apps.core.cookies import binding_owner, vlan_owner
from ryu_apps.core.flow_plan import DesiredFlows, Plan, diff_flows
from ryu_apps.core.flowspec import Output, flow, make_match


def _f(dpid, port, owner, out=1):
    return flow(dpid, 0, 10, make_match(in_port=port), owner.cookie, actions=(Output(out),))


def test_diff_of_equal_sets_is_empty():
    owner = binding_owner(1, 250)
    flows = {_f(1, 1, owner), _f(2, 1, owner)}
    plan = Plan()
    diff_flows(flows, set(flows), plan)
    assert plan.is_empty()


def test_changed_actions_are_replaced_in_place_not_deleted():
    owner = binding_owner(1, 250)
    plan = Plan()
    diff_flows({_f(1, 1, owner, out=2)}, {_f(1, 1, owner, out=3)}, plan)
    assert plan.changes[1].deletes == []
    assert [a.instructions for a in plan.changes[1].adds] == [_f(1, 1, owner, out=3).instructions]


def test_replace_twice_sends_nothing_the_second_time():
    desired = DesiredFlows()
    owner = binding_owner(1, 250)
    flows = {_f(1, 1, owner), _f(2, 1, owner)}
    first, second = Plan(), Plan()
    desired.replace(owner, flows, first)
    desired.replace(owner, flows, second)
    assert first.flow_count() == 2
    assert second.is_empty()


def test_replace_on_one_switch_keeps_the_others():
    desired = DesiredFlows()
    owner = vlan_owner(100)
    desired.replace(owner, {_f(1, 1, owner), _f(2, 1, owner)}, Plan())
    plan = Plan()
    desired.replace(owner, set(), plan, dpid=2)
    assert [f.dpid for f in plan.changes[2].deletes] == [2]
    assert desired.flows_of(owner) == {_f(1, 1, owner)}


def test_reconcile_ignores_foreign_flows_and_fixes_ours():
    desired = DesiredFlows()
    owner = binding_owner(1, 250)
    wanted, stale = _f(1, 1, owner), _f(1, 9, binding_owner(2, 250))
    foreign = flow(1, 0, 10, make_match(in_port=5), 0x1234, actions=(Output(1),))
    desired.replace(owner, {wanted}, Plan())
    plan = Plan()
    desired.reconcile(1, [stale, foreign], plan)
    assert plan.changes[1].adds == [wanted]
    assert plan.changes[1].deletes == [stale]
    after = Plan()
    desired.reconcile(1, [wanted, foreign], after)
    assert after.is_empty()


def test_without_deletes_returns_a_new_plan_and_leaves_the_original_whole():
    owner, old_owner = binding_owner(1, 250), binding_owner(2, 250)
    plan = Plan(notes=["n"], warnings=["w"], confirms=["00:fa:00:00:00:01"])
    diff_flows({_f(1, 9, old_owner)}, {_f(1, 1, owner)}, plan)
    adds_only = plan.without_deletes()
    assert adds_only is not plan
    assert plan.changes[1].deletes == [_f(1, 9, old_owner)]
    assert plan.changes[1].adds == [_f(1, 1, owner)]
    assert adds_only.changes[1].deletes == [] and adds_only.changes[1].adds == [_f(1, 1, owner)]
    assert (adds_only.notes, adds_only.warnings, adds_only.confirms) == (
        ["n"], ["w"], ["00:fa:00:00:00:01"])
    adds_only.notes.append("only in the copy")
    assert plan.notes == ["n"]


def test_without_deletes_keeps_replacements_in_place():
    owner = binding_owner(1, 250)
    plan = Plan()
    diff_flows({_f(1, 1, owner, out=2)}, {_f(1, 1, owner, out=3)}, plan)
    adds_only = plan.without_deletes()
    assert adds_only.changes[1].replaces(_f(1, 1, owner, out=3))
