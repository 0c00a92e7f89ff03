"""The oracle's own semantics, on hand-made facts (what the network must do)."""

from ryu_apps.core.binding import VmState
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.template_validation import build_library
from tests.support.fake_switches import Packet
from tests.support.oracle import Facts, Oracle, Vm, arp_broadcast, probes

A1, S11, S12 = 0x201, 0x1101, 0x1102


def _template(template_id, vlan, port_acl=(), vswitch_acl=(), bind_ip=False):
    return {"id": template_id, "name": f"t{template_id}", "description": "t", "vlan": vlan,
            "virtual_switch": {"default_action": "allow", "bind_ip": bind_ip,
                               "acl": list(vswitch_acl)},
            "access_port": {"default_action": "allow", "acl": list(port_acl)}}


NO_SSH_IN = {"action": "deny", "direction": "to_vm", "protocol": "tcp", "dst_port": 22}
LIBRARY = build_library([("t.yaml", {"templates": [
    _template(1, 100, port_acl=[NO_SSH_IN]), _template(2, 100), _template(3, 200),
    _template(4, 100, bind_ip=True,
              vswitch_acl=[{"action": "deny", "direction": "from_vm",
                            "protocol": "tcp", "dst": "10.0.0.0/24", "dst_port": "5000-5010"}]),
]})])
LINKS = {frozenset((PortRef(S11, 10), PortRef(A1, 1))),
         frozenset((PortRef(S12, 10), PortRef(A1, 2)))}
ROLES = {A1: Role.ACCESS, S11: Role.SERVER, S12: Role.SERVER}


def _vm(mac, dpid, port, template_id, state=VmState.ACTIVE, ip=None):
    return Vm(mac, dpid, port, LIBRARY.get(template_id), state, ip)


def _tcp(src, dst, port, src_ip="10.0.0.1", dst_ip="10.0.0.2"):
    return Packet(src.mac, dst.mac, 0x0800, ip_proto=6, ipv4_src=src_ip, ipv4_dst=dst_ip,
                  tcp_src=40000, tcp_dst=port)


def test_the_access_port_rule_applies_only_across_the_access_port():
    a, b, c = (_vm("00:01:00:00:00:01", S11, 1, 1), _vm("00:01:00:00:00:02", S11, 2, 1),
               _vm("00:01:00:00:00:03", S12, 1, 1))
    oracle = Oracle(Facts(ROLES, LINKS, [a, b, c]))
    assert oracle.exits(a, _tcp(a, b, 22)) == {(S11, 2)}      # same server: never crosses
    assert oracle.exits(a, _tcp(a, c, 22)) == set()           # crosses c's access port
    assert oracle.exits(a, _tcp(a, c, 80)) == {(S12, 1)}


def test_a_template_merge_puts_each_vms_port_rules_on_its_own_port():
    a, b = _vm("00:01:00:00:00:01", S11, 1, 1), _vm("00:02:00:00:00:01", S11, 2, 2)
    oracle = Oracle(Facts(ROLES, LINKS, [a, b]))
    assert oracle.exits(b, _tcp(b, a, 22)) == set()           # merged: a's rule holds locally
    assert oracle.exits(a, _tcp(a, b, 22)) == {(S11, 2)}


def test_vlans_links_and_states_decide_too():
    a, b = _vm("00:01:00:00:00:01", S11, 1, 1), _vm("00:03:00:00:00:01", S12, 1, 3)
    c = _vm("00:02:00:00:00:01", S12, 2, 2)
    assert Oracle(Facts(ROLES, LINKS, [a, b, c])).exits(a, _tcp(a, b, 80)) == set()
    assert Oracle(Facts(ROLES, LINKS, [a, b, c])).exits(a, _tcp(a, c, 80)) == {(S12, 2)}
    one_link = {next(link for link in LINKS if PortRef(S11, 10) in link)}
    assert Oracle(Facts(ROLES, one_link, [a, c])).exits(a, _tcp(a, c, 80)) == set()
    suspended = _vm(c.mac, S12, 2, 2, VmState.SUSPENDED)
    assert Oracle(Facts(ROLES, LINKS, [a, suspended])).exits(a, _tcp(a, c, 80)) == set()


def test_broadcasts_reach_every_other_member_and_a_mover_both_ports():
    a, b = _vm("00:01:00:00:00:01", S11, 1, 1), _vm("00:02:00:00:00:01", S12, 2, 2)
    moving = _vm(b.mac, S11, 3, 2, VmState.PRE_PROVISIONED)
    oracle = Oracle(Facts(ROLES, LINKS, [a, b], [moving]))
    assert oracle.exits(a, arp_broadcast(a, "10.0.0.1")) == {(S12, 2)}
    assert oracle.exits(a, _tcp(a, b, 80)) == {(S12, 2), (S11, 3)}
    assert oracle.own_ports(moving) == {(S12, 2)}


def test_a_bound_address_and_the_rules_of_ports_and_ranges():
    a, b = _vm("00:04:00:00:00:01", S11, 1, 4), _vm("00:02:00:00:00:01", S12, 1, 2)
    unlearned = Oracle(Facts(ROLES, LINKS, [a, b]))
    assert unlearned.exits(a, _tcp(a, b, 80)) == set()          # address not learned yet
    learned = _vm(a.mac, S11, 1, 4, ip="10.0.0.1")
    oracle = Oracle(Facts(ROLES, LINKS, [learned, b]))
    assert oracle.exits(learned, _tcp(learned, b, 80)) == {(S12, 1)}
    assert oracle.exits(learned, _tcp(learned, b, 80, src_ip="10.0.0.9")) == set()
    assert oracle.exits(learned, _tcp(learned, b, 5005)) == set()
    assert oracle.exits(learned, _tcp(learned, b, 5005, dst_ip="10.0.1.2")) == {(S12, 1)}
    assert oracle.exits(learned, _tcp(learned, b, 5011)) == {(S12, 1)}
    assert len(list(probes(learned, b.mac, "10.0.0.2", "10.0.0.1"))) == 5
