"""The shared template pipeline on real OVS: a VM of each default template reaches exactly
what its template allows, and owns at most 6 flows on its server bridge.

Topology (datacenter, with the edge): s11: web1, db2; s12: web3, mgmt4; s21: web5,
db6; s22: web7, mgmt8; e1: out1 (template outside); plus two quarantined VMs, q1 on
s11 and q2 on s22 (q2 at the remediation server's address). What each pair should
reach is worked out from the templates alone with the oracle's ACL semantics
(tests/support/oracle.py): VLANs, both virtual-switch sides, both port sides
(every pair below crosses an access port or shares a merged one, except the
edge's outside host, which hangs off the fabric directly).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.template_model import Direction
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from ryu_apps.loaders.library_files import load_library
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix
from tests.support.fake_switches import Packet
from tests.support.oracle import own_flow_budget, side_allows

pytestmark = pytest.mark.integration

LIBRARY = load_library(lab.DEFAULT_TEMPLATES)
#: The client's source port in the model (Linux picks one in 32768-60999).
EPHEMERAL = 40000
LISTEN = (22, 80, 5432)
SOURCES = ("web3", "db6", "mgmt4", "out1", "q1", "web1")
DESTINATIONS = ("web1", "db2", "mgmt8", "out1", "q2")


@pytest.fixture(scope="module")
def dc():
    prefix = "p" + unique_prefix()[1:]
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, prefix, edge=1)
    try:
        switches = {re.sub(r"^p\d{3}", "", s.name): s for s in net.switches}
        extra = {"q1": (switches["s11"], "00:f0:00:00:00:01", "10.0.99.1/16"),
                 "q2": (switches["s22"], "00:f0:00:00:00:0a", "10.0.99.10/16")}
        for name, (server, mac, ip) in extra.items():
            lab.announce(lab.add_vm(net, server, prefix + name, mac, ip))
        assert controller.wait_for_log("provisioned VM", timeout=15,
                                       count=len(net.hosts)), controller.log()[-3000:]
        vms = {re.sub(r"^p\d{3}", "", h.name): h for h in net.hosts}
        for name in DESTINATIONS:
            lab.start_listener(vms[name], *LISTEN)
    except BaseException:
        stop_datacenter(controller, net)
        raise
    yield controller, net, vms, switches
    stop_datacenter(controller, net)


def _template_id(mac: str) -> int:
    """The template id a MAC selects under prefix/16 (the default scheme)."""
    return int(mac[:5].replace(":", ""), 16)


def _template(host):
    return LIBRARY.get(_template_id(host.MAC()))


def _one_way(src, dst, packet: Packet, port_sides: bool, reply: bool = False) -> bool:
    """Whether the rules let ``packet`` from ``src`` to ``dst``; a ``reply`` of an allowed
    connection passes a stateful side without a rule."""
    a, b = _template(src), _template(dst)
    if not (reply and a.virtual_switch.stateful) and \
            not side_allows(a.virtual_switch, Direction.FROM_VM, packet):
        return False
    if not (reply and b.virtual_switch.stateful) and \
            not side_allows(b.virtual_switch, Direction.TO_VM, packet):
        return False
    sides = [(a, Direction.FROM_VM, src), (b, Direction.TO_VM, dst)]
    return all(side_allows(t.access_port, d, packet) for t, d, host in sides
               if port_sides and not host.name.endswith("out1"))


def _expected(src, dst, proto: int, port: int = 0) -> bool:
    if _template(src).vlan != _template(dst).vlan:
        return False
    there = Packet(src.MAC(), dst.MAC(), 0x0800, ip_proto=proto, ipv4_src=src.IP(),
                   ipv4_dst=dst.IP(), tcp_src=EPHEMERAL if proto == 6 else None,
                   tcp_dst=port if proto == 6 else None)
    back = Packet(dst.MAC(), src.MAC(), 0x0800, ip_proto=proto, ipv4_src=dst.IP(),
                  ipv4_dst=src.IP(), tcp_src=port if proto == 6 else None,
                  tcp_dst=EPHEMERAL if proto == 6 else None)
    return _one_way(src, dst, there, True) and _one_way(dst, src, back, True, reply=True)


def _owners(bridge: str) -> Counter:
    counts: Counter = Counter()
    for line in lab.dump_flows(bridge).splitlines():
        found = re.search(r"cookie=(0x[0-9a-f]+)", line)
        owner = decode_cookie(int(found.group(1), 16)) if found else None
        if owner is not None:
            counts[owner] += 1
    return counts


def test_each_vm_owns_at_most_its_budget_on_its_server_and_templates_are_shared(dc):
    """6 flows, plus what its template's IPv6 guard and allowed prefixes cost per VM."""
    # first: the quarantined VMs idle out after 120 s of silence
    _, net, _, switches = dc
    per_template: dict = {}
    for name in ("s11", "s12", "s21", "s22", "e1"):
        owners = _owners(switches[name].name)
        bindings = {o: n for o, n in owners.items() if o.kind is CookieKind.BINDING}
        here = {_template_id(h.MAC()) for h in net.hosts
                if h.defaultIntf().link.intf2.node is switches[name]}
        assert {o.template_id for o in bindings} == here, name
        # one set of shared flows per template whose VMs are on this bridge, no other
        assert {o.template_id for o in owners if o.kind is CookieKind.TEMPLATE} == here, name
        for owner, count in bindings.items():
            budget = own_flow_budget()
            assert count <= budget, (name, owner.describe(), count, budget)
            per_template.setdefault(LIBRARY.get(owner.template_id).name, []).append(count)
    assert set(per_template) == {t.name for t in LIBRARY}      # every default template
    print("\nflows per VM on its server (ovs-ofctl dump-flows):",
          {k: sorted(v) for k, v in sorted(per_template.items())})


def test_each_template_reaches_exactly_what_it_allows(dc):
    _, _, vms, _ = dc
    wrong, allowed, checked = [], 0, 0
    for src_name in SOURCES:
        for dst_name in DESTINATIONS:
            if src_name == dst_name:
                continue
            src, dst = vms[src_name], vms[dst_name]
            reach = _expected(src, dst, 1)
            cases = [("icmp", reach, lambda s=src, d=dst, n=1 + reach: ping(s, d, count=n))]
            cases += [(f"tcp/{port}", _expected(src, dst, 6, port),
                       lambda s=src, d=dst, p=port: lab.tcp_open(s, d, p, timeout=1.0))
                      for port in LISTEN]
            for what, expected, probe in cases:
                checked += 1
                allowed += expected
                if probe() != expected:
                    wrong.append(f"{src_name} -> {dst_name} {what}: expected "
                                 f"{'reached' if expected else 'blocked'}")
    assert not wrong, "\n".join(wrong)
    assert allowed >= 10 and checked - allowed >= 10     # both answers are exercised


