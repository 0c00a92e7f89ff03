"""Diffing desired flows: exact deletes, in-place replacement, idempotence."""

from ryu_apps.core.cookies import binding_owner, vlan_owner
from ryu_apps.core.flow_plan import DesiredFlows, Plan, diff_flows
from ryu_apps.core.flowspec import MeterSpec, Output, flow, make_match
from ryu_apps.core.pipeline import (
    BINDING_METER_BASE,
    LIVENESS_METER,
    LLDP_OTHER_METER,
    MAX_BINDING_ID,
    MOVED_PORT_METER_OFFSET,
    PACKET_IN_METER,
    LLDP_PORT_METER_BASE,
    is_dynprov_meter,
    lldp_port_meter,
    port_group_meter,
)

#: The highest meter id OpenFlow 1.3 lets a controller allocate.
OFPM_MAX = 0xFFFF0000


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


def _metered(dpid, port, owner, meter_id):
    return flow(dpid, 0, 10, make_match(in_port=port), owner.cookie, meter=meter_id,
                actions=(Output(1),))


def test_reconcile_never_touches_a_meter_that_is_not_provably_ours():
    # Another application's single-drop-band meters: low ids (dynprov's before it
    # had a block of its own), and the ids just outside that block.
    foreign = [MeterSpec(1, 1, 1000, 100), MeterSpec(1, 0x0FFFFFFF, 200, 50, packets=True),
               MeterSpec(1, BINDING_METER_BASE, 10, 10),
               MeterSpec(1, LLDP_PORT_METER_BASE + 0x10000000, 10, 10)]
    plan = Plan()
    DesiredFlows().reconcile(1, foreign, plan)
    assert plan.is_empty()


def test_reconcile_deletes_our_stale_meters_and_fixes_wanted_ones():
    desired = DesiredFlows()
    owner, gone = binding_owner(1, 250), binding_owner(2, 250)
    wanted_meter = MeterSpec(1, BINDING_METER_BASE + 1, 1000, 100, cookie=owner.cookie)
    desired.replace(owner, {wanted_meter, _metered(1, 1, owner, wanted_meter.meter_id)},
                    Plan())
    stale_meter = MeterSpec(1, BINDING_METER_BASE + 2, 1000, 100)     # its flow timed out
    legacy_meter = MeterSpec(1, 2, 1000, 100)   # an older dynprov's id, used by our flow
    legacy_flow = _metered(1, 2, gone, 2)
    changed = MeterSpec(1, wanted_meter.meter_id, 5, 5)
    plan = Plan()
    desired.reconcile(1, [changed, stale_meter, legacy_meter, legacy_flow,
                          _metered(1, 1, owner, wanted_meter.meter_id)], plan)
    assert plan.changes[1].adds == [wanted_meter]
    assert plan.changes[1].replaces(wanted_meter)
    assert sorted(plan.changes[1].deletes, key=str) == sorted(
        [stale_meter, legacy_meter, legacy_flow], key=str)


def test_every_meter_id_dynprov_allocates_lies_in_its_own_block():
    ids = [BINDING_METER_BASE + 1, BINDING_METER_BASE + MAX_BINDING_ID,
           MOVED_PORT_METER_OFFSET + 1, MOVED_PORT_METER_OFFSET + MAX_BINDING_ID,
           PACKET_IN_METER, LLDP_OTHER_METER, LIVENESS_METER,
           port_group_meter(0xFFFF, 4095), port_group_meter(1, 1),
           lldp_port_meter(1), lldp_port_meter(0xFFFFFF00)]
    assert all(is_dynprov_meter(i) and i <= OFPM_MAX for i in ids)
    assert len(set(ids)) == len(ids)
    assert not any(is_dynprov_meter(i) for i in (1, 100, 0xFFFF, 0x0FFFFFFF, 0x20000001))


def test_reconcile_reads_what_the_switch_holds_once():
    owner = binding_owner(1, 250)
    meter = MeterSpec(1, BINDING_METER_BASE + 1, 1000, 100)
    plan = Plan()
    DesiredFlows().reconcile(1, iter([meter, _metered(1, 1, owner, meter.meter_id)]), plan)
    assert sorted(plan.changes[1].deletes, key=str) == sorted(
        [meter, _metered(1, 1, owner, meter.meter_id)], key=str)


def test_patch_changes_only_the_named_entries_and_records_their_diff():
    owner = vlan_owner(100)
    desired = DesiredFlows()
    a, b, c = _f(1, 1, owner), _f(1, 2, owner), _f(1, 3, owner)
    desired.replace(owner, {a, b}, Plan(), dpid=1)
    plan = Plan()
    b2 = _f(1, 2, owner, out=9)
    desired.patch(owner, 1, {b.key: b2, a.key: None, c.key: c}, plan)
    assert desired.flows_of(owner) == {b2, c}
    changes = plan.changes[1]
    assert set(changes.adds) == {b2, c} and changes.replaces(b2) and not changes.replaces(c)
    assert changes.deletes == [a]
    again = Plan()
    desired.patch(owner, 1, {b.key: b2, a.key: None}, again)   # idempotent
    assert again.is_empty()
    desired.patch(owner, 1, {b.key: None, c.key: None}, Plan())
    assert desired.flows_of(owner) == set() and owner not in desired.owners()
