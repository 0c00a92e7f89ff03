"""Each pipeline table declares what its flows may do; the fake switches enforce it."""

import pytest

from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER, Output, PopVlan, Resubmit, flow, make_match
from ryu_apps.core.pipeline import CONTRACTS, Table, contract_violations
from tests.support.fake_switches import FakeSwitches

COOKIE = 0xD9 << 56


def _install(spec):
    plan = Plan()
    plan.for_switch(spec.dpid).add(spec)
    FakeSwitches().apply(plan)


def test_every_table_has_a_contract():
    assert set(CONTRACTS) == set(Table)


def test_a_flow_within_its_contract_is_installed():
    _install(flow(1, Table.FORWARD, 100, make_match(vlan_vid=0x1064, eth_dst="00:fa:00:00:00:01"),
                  COOKIE, actions=(PopVlan(), Output(3))))


@pytest.mark.parametrize("spec, complaint", [
    (flow(1, Table.FORWARD, 100, make_match(in_port=3), COOKIE, actions=(Output(4),)),
     "table FORWARD: match field in_port not allowed"),
    (flow(1, Table.TO_VM_ACL, 100, make_match(metadata=3), COOKIE,
          actions=(Output(OFPP_CONTROLLER),)),
     "table TO_VM_ACL: action controller not allowed (allowed: ct, ct_commit)"),
    (flow(1, Table.FORWARD, 100, make_match(vlan_vid=0x1064), COOKIE, goto=Table.FROM_VM_ACL),
     "table FORWARD: goto FROM_VM_ACL not allowed"),
    (flow(1, Table.CLASSIFY, 100, make_match(in_port=3), COOKIE,
          actions=(Resubmit(Table.TO_VM_ACL),)),
     "table CLASSIFY: resubmit TO_VM_ACL not allowed (allowed: none)"),
    (flow(1, 9, 100, make_match(in_port=3), COOKIE), "table 9 is not a pipeline table"),
])
def test_a_flow_outside_its_contract_is_refused_with_what_broke_it(spec, complaint):
    with pytest.raises(AssertionError, match="breaks its table's contract") as raised:
        _install(spec)
    assert complaint in str(raised.value)


def test_violations_name_every_broken_part():
    problems = contract_violations(Table.TO_VM_PORT_ACL, ["metadata", "eth_src"],
                                   ["output", "push_vlan"], [Table.FORWARD], [])
    assert problems == [
        "table TO_VM_PORT_ACL: match field eth_src not allowed (allowed: eth_type, "
        "icmpv4_code, icmpv4_type, icmpv6_code, icmpv6_type, ip_proto, ipv4_dst, "
        "ipv4_src, ipv6_dst, ipv6_src, metadata, tcp_dst, tcp_src, udp_dst, udp_src, "
        "vlan_vid)",
        "table TO_VM_PORT_ACL: action push_vlan not allowed (allowed: output)",
        "table TO_VM_PORT_ACL: goto FORWARD not allowed (allowed: OUTPUT)"]
