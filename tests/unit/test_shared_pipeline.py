"""The shared template pipeline: each template's ACLs once per server bridge, a VM's own
flows few (at most 6 whatever its template, besides its per-VM address allows), shared
flows counted by their VMs."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ryu_apps.core.binding import VmState
from ryu_apps.core.cookies import CookieKind, decode_cookie, template_owner
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import Role
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import FlowSpec, WriteMetadata, flow, make_match
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import (
    LEARN_IP_BIT,
    TAG_MASK,
    Table,
    from_vm_metadata,
    template_metadata_match,
    template_tag,
    to_vm_metadata,
)
from ryu_apps.core.template_errors import TemplateValidationError
from ryu_apps.core.template_tables import LINGER_SECONDS, MAX_IDLE_PER_SERVER, template_flows
from ryu_apps.core.template_validation import build_library
from ryu_apps.loaders.library_files import load_library
from tests.support.small_fabric import S11, S12, UPLINK, bring_up
from tests.support.fake_switches import FakeSwitches, Packet, tcp
from tests.support.invariants import check_event
from tests.support.oracle import MAX_OWN_FLOWS, own_flow_budget

LIBRARY = load_library("templates")
MAX_PER_VM = MAX_OWN_FLOWS
#: Generated templates' first id (MACs 00:a0:..: unicast)
GENERATED = 0xA0


def max_per_vm(template) -> int:
    """At most 6 own flows per VM (the default library binds no global IPv6)."""
    return own_flow_budget()


#: A bound VM's own flows on its server, by default template: its classifier and its
#: delivery; with bind_ip its IPv4 and ARP checks; with bind_ipv6 its link-local's
#: source and NA (its prefix, NS, DAD and OUTPUT are shared).
OWN_FLOWS = {250: 6, 252: 6, 254: 4, 242: 2, 240: 2}


def _mac(template_id: int, index: int) -> str:
    raw = (template_id << 32) | index
    return ":".join(f"{(raw >> shift) & 0xFF:02x}" for shift in range(40, -1, -8))


class Lab:
    """Fabric switch, access switch, two servers behind it; invariants after each plan."""

    def __init__(self, library=LIBRARY, checking=True):
        self.checking = checking
        self.engine = ProvisioningEngine(library, PrefixScheme(16))
        self.switches = FakeSwitches()
        bring_up(self.engine, self.apply)

    def apply(self, plan: Plan) -> Plan:
        self.switches.apply(plan)
        if self.checking:
            check_event(self.engine, self.switches, plan)
        return plan

    def vm(self, dpid, port, mac, ip=None) -> Plan:
        plan = self.apply(self.engine.packet_in(dpid, port, mac, b"x", now=0.0).plan)
        if ip is not None:
            plan.extend(self.apply(self.engine.packet_in(dpid, port, mac, b"x", now=0.0,
                                                         sender_ip=ip).plan))
        return plan

    def own_flows(self, mac):
        """The flows a VM owns on its server (meters are not flows)."""
        binding = self.engine.bindings[mac]
        return [f for f in self.switches.flows(binding.dpid)
                if decode_cookie(f.cookie) == binding.owner]

    def shared_flows(self, dpid, template_id):
        owner = template_owner(template_id)
        return {f for f in self.switches.flows(dpid) if decode_cookie(f.cookie) == owner}


def _kinds(plan: Plan) -> Counter:
    return Counter(decode_cookie(spec.cookie).kind for changes in plan.changes.values()
                   for spec in changes.adds + changes.deletes
                   if decode_cookie(spec.cookie) is not None)


def _populate(lab: Lab, templates, per_server: int) -> list:
    """``per_server`` VMs of each template on each server, with their IPv4 bound."""
    macs, port = [], UPLINK + 10
    for template_id in templates:
        for index in range(2 * per_server):
            port += 1
            mac = _mac(template_id, index + 1)
            lab.vm(S11 if index % 2 == 0 else S12, port, mac,
                   f"10.{template_id % 250}.{index // 250}.{index % 250 + 1}")
            macs.append(mac)
    return macs


# -- at most 6 flows per VM ----------------------------------------------------------------
def test_every_default_template_costs_at_most_6_flows_per_vm_in_every_state():
    lab = Lab()
    templates = sorted(LIBRARY.templates)
    macs = _populate(lab, templates, 3)
    assert len(lab.engine.bindings) == len(macs) == 6 * len(templates)
    for mac in macs:
        own = lab.own_flows(mac)
        template = LIBRARY.get(lab.engine.bindings[mac].template_id)
        assert len(own) == OWN_FLOWS[template.template_id] <= max_per_vm(template), \
            (mac, sorted(map(str, own)))
    # web and database share VLAN 100 behind each access port: the merge holds, and
    # their port-side rules are shared too (no per-VM copy of them)
    web = lab.engine.bindings[_mac(250, 1)]
    assert web.binding_id in lab.engine.state.table.moved
    port_side = {f for f in lab.shared_flows(S11, 250)
                 if f.table_id in (Table.FROM_VM_PORT_ACL, Table.TO_VM_PORT_ACL)}
    assert len(port_side) > 2
    # a VM whose IP is not bound yet, and a pre-provisioned one, are not dearer
    lab.vm(S11, 90, _mac(254, 90))
    assert len(lab.own_flows(_mac(254, 90))) <= max_per_vm(LIBRARY.get(254))


def test_a_merged_vm_has_one_meter_the_tighter_of_its_two_limits():
    """Where the merge moved a port side with a limit onto the server, the VM's one meter
    (at its classifier) takes the tighter rate and burst; no second, per-VM port meter
    and no per-VM metered pass keep its other anti-spoofing flows from being shared."""
    tight = {"id": GENERATED, "name": "tight", "description": "port side tighter",
             "vlan": 100,
             "virtual_switch": {"default_action": "allow", "bind_ip": True,
                                "bandwidth": {"rate_kbps": 100000, "burst_kbits": 10000}},
             "access_port": {"default_action": "allow", "acl": [
                 {"action": "deny", "direction": "to_vm", "protocol": "tcp", "dst_port": 22}],
                 "bandwidth": {"rate_kbps": 30000, "burst_kbits": 20000}}}
    other = {"id": GENERATED + 1, "name": "other", "description": "shares the VLAN",
             "vlan": 100, "virtual_switch": {"default_action": "allow"},
             "access_port": {"default_action": "allow"}}
    lab = Lab(build_library([("t.yaml", {"templates": [tight, other]})]))
    lab.vm(S11, 1, _mac(GENERATED, 1), "10.0.0.1")
    lab.vm(S11, 2, _mac(GENERATED + 1, 1), "10.0.0.2")
    binding = lab.engine.bindings[_mac(GENERATED, 1)]
    assert binding.binding_id in lab.engine.state.table.moved   # the merge holds
    meters = [m for m in lab.switches.meters[S11].values() if m.cookie == binding.owner.cookie]
    assert [(m.rate_kbps, m.burst_kbits) for m in meters] == [(30000, 10000)]
    own = lab.own_flows(_mac(GENERATED, 1))
    assert len(own) == 4 and not [f for f in own if f.match == (("in_port", 1),)]


def test_shared_flows_do_not_grow_with_the_vms_of_a_template():
    one, many = Lab(), Lab(checking=False)
    templates = sorted(LIBRARY.templates)
    _populate(one, templates, 1)
    _populate(many, templates, 4)
    for template_id in templates:
        for dpid in (S11, S12):
            shared = one.shared_flows(dpid, template_id)
            assert shared and shared == many.shared_flows(dpid, template_id)


_RULE = st.fixed_dictionaries({
    "action": st.sampled_from(["allow", "deny"]),
    "direction": st.sampled_from(["to_vm", "from_vm"]),
}, optional={
    "protocol": st.sampled_from(["tcp", "udp", "icmp"]),
    "dst_port": st.integers(1, 65535),
    "src": st.sampled_from(["10.0.0.0/8", "192.0.2.0/24", "10.1.2.3/32"]),
})
_SIDE = st.fixed_dictionaries({
    "default_action": st.sampled_from(["allow", "deny"]),
    "acl": st.lists(_RULE, max_size=8, unique_by=lambda rule: tuple(sorted(rule.items()))),
}, optional={"bandwidth": st.fixed_dictionaries({"rate_kbps": st.integers(1000, 10**6),
                                                 "burst_kbits": st.integers(100, 10**5)})})


def _generated(template_id, vswitch, port_side, bind_ip):
    if any("dst_port" in rule and rule.get("protocol") not in ("tcp", "udp")
           for side in (vswitch, port_side) for rule in side["acl"]):
        vswitch = dict(vswitch, acl=[r for r in vswitch["acl"] if "dst_port" not in r])
        port_side = dict(port_side, acl=[r for r in port_side["acl"] if "dst_port" not in r])
    return {"id": template_id, "name": f"t{template_id}", "description": "generated",
            "vlan": 100, "virtual_switch": dict(vswitch, bind_ip=bind_ip),
            "access_port": port_side}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sides=st.lists(st.tuples(_SIDE, _SIDE, st.booleans()), min_size=1, max_size=3))
def test_generated_templates_cost_at_most_6_flows_per_vm(sides):
    """Generated templates sharing one VLAN (so merged when they differ), 2 VMs each."""
    documents = [_generated(GENERATED + n, *side) for n, side in enumerate(sides)]
    try:
        library = build_library([("generated.yaml", {"templates": documents})])
    except TemplateValidationError:
        assume(False)     # e.g. two rules that became equal
    lab = Lab(library, checking=False)
    macs = _populate(lab, [GENERATED + n for n in range(len(sides))], 1)
    lab.vm(S11, 99, _mac(GENERATED, 99))          # and one whose IP is not bound
    assert len(lab.engine.bindings) == len(macs) + 1
    for mac in macs + [_mac(GENERATED, 99)]:
        assert len(lab.own_flows(mac)) <= MAX_PER_VM, mac
    for n in range(len(sides)):
        assert lab.shared_flows(S11, GENERATED + n)


# -- installed with the first VM, lingering after the last, then removed --------------------
def _template_ids_on(lab: Lab, dpid: int) -> set:
    return {decode_cookie(f.cookie).template_id for f in lab.switches.flows(dpid)
            if decode_cookie(f.cookie).kind is CookieKind.TEMPLATE}


def test_a_templates_flows_come_with_its_first_vm_and_go_a_while_after_its_last():
    lab = Lab()
    first = lab.vm(S11, 1, _mac(254, 1), "10.0.254.1")
    assert _kinds(first)[CookieKind.TEMPLATE] > 10
    assert lab.shared_flows(S11, 254) and not lab.shared_flows(S12, 254)
    second = lab.vm(S11, 2, _mac(254, 2), "10.0.254.2")
    assert CookieKind.TEMPLATE not in _kinds(second)      # already there: nothing shared sent
    lab.apply(lab.engine.port_down(S11, 1, now=1.0))
    held = lab.shared_flows(S11, 254)
    last = lab.apply(lab.engine.port_down(S11, 2, now=2.0))
    assert CookieKind.TEMPLATE not in _kinds(last)        # the last VM left: they linger
    assert lab.shared_flows(S11, 254) == held
    assert not lab.apply(lab.engine.tick(3.0)).changes    # the first tick that sees them idle
    assert lab.shared_flows(S11, 254) == held
    assert not lab.apply(lab.engine.tick(3.0 + LINGER_SECONDS - 1)).changes
    gone = lab.apply(lab.engine.tick(3.0 + LINGER_SECONDS))
    assert _kinds(gone) == Counter({CookieKind.TEMPLATE: len(held)})
    assert 254 not in _template_ids_on(lab, S11)


def test_a_vm_back_within_the_linger_costs_only_its_own_flows():
    lab = Lab()
    lab.vm(S11, 1, _mac(254, 1), "10.0.254.1")
    held = lab.shared_flows(S11, 254)
    lab.apply(lab.engine.port_down(S11, 1, now=1.0))
    lab.apply(lab.engine.tick(2.0))
    back = lab.vm(S11, 3, _mac(254, 1), "10.0.254.1")
    assert CookieKind.TEMPLATE not in _kinds(back)
    assert lab.shared_flows(S11, 254) == held
    # in use again: no tick removes them
    assert not lab.apply(lab.engine.tick(2.0 + 10 * LINGER_SECONDS)).changes.get(S11)
    assert lab.shared_flows(S11, 254) == held


def test_at_most_a_bounded_number_of_unused_templates_linger_per_server():
    templates = [240, 242, 250, 252, 254]
    assert len(templates) > MAX_IDLE_PER_SERVER
    lab = Lab()
    for port, template_id in enumerate(templates, start=1):
        lab.vm(S11, port, _mac(template_id, 1), f"10.0.{template_id}.1")
    for port in range(1, len(templates) + 1):
        lab.apply(lab.engine.port_down(S11, port, now=1.0))
    # the first to go idle went when the bound was passed; the last ones linger
    assert _template_ids_on(lab, S11) == set(templates[-MAX_IDLE_PER_SERVER:])
    lab.apply(lab.engine.tick(2.0))
    lab.apply(lab.engine.tick(2.0 + LINGER_SECONDS))
    assert not _template_ids_on(lab, S11)


def test_a_rebuild_from_scratch_keeps_the_lingering_flows():
    lab = Lab()
    lab.vm(S11, 1, _mac(254, 1), "10.0.254.1")
    lab.apply(lab.engine.port_down(S11, 1, now=1.0))
    assert lab.shared_flows(S11, 254)
    assert not lab.engine.recompute_all().changes
    lab.apply(lab.engine.tick(2.0))
    assert lab.apply(lab.engine.tick(2.0 + LINGER_SECONDS)).changes
    assert not lab.shared_flows(S11, 254)


def test_a_merge_flip_rewrites_only_the_merge_dependent_shared_flows():
    # web and database share VLAN 100 behind s11's access port: the merge flips with
    # web's arrival and departure; the vswitch ACL tables are left alone, and the
    # switch ends as a full recompile of the new recipe says (checked after each event)
    lab = Lab()
    lab.vm(S11, 2, _mac(252, 2), "10.0.200.2")
    before = lab.shared_flows(S11, 252)
    arrived = lab.vm(S11, 1, _mac(250, 1), "10.0.100.1")
    after = lab.shared_flows(S11, 252)
    assert before != after
    template = LIBRARY.get(252)
    assert after == template_flows(S11, template, True)
    changed = {spec for changes in arrived.changes.values()
               for spec in changes.adds + changes.deletes
               if decode_cookie(spec.cookie) == template_owner(252)}
    assert changed and not any(spec.table_id in (Table.FROM_VM_ACL, Table.TO_VM_ACL)
                               for spec in changed)
    lab.apply(lab.engine.port_down(S11, 1, now=1.0))
    assert lab.shared_flows(S11, 252) == before == template_flows(S11, template, False)


def test_a_suspended_vm_keeps_only_its_drop_and_the_shared_flows_follow_the_others():
    lab = Lab()
    lab.vm(S11, 1, _mac(254, 1), "10.0.254.1")
    binding = lab.engine.bindings[_mac(254, 1)]
    state = lab.engine.state
    from ryu_apps.core import binding_ops, derived
    plan = Plan()
    binding_ops.set_state(state, binding, VmState.SUSPENDED, plan)
    derived.flush(state, plan)
    lab.apply(plan)
    assert len(lab.own_flows(_mac(254, 1))) == 1
    lab.apply(lab.engine.tick(1.0))
    lab.apply(lab.engine.tick(1.0 + LINGER_SECONDS))    # unused: they lingered, then went
    assert not lab.shared_flows(S11, 254)


def test_a_template_change_rewrites_its_shared_flows_once_per_server():
    lab = Lab()
    macs = _populate(lab, [252], 3)
    template = LIBRARY.get(252)
    import dataclasses
    from ryu_apps.core.template_model import Action
    changed = dataclasses.replace(template, virtual_switch=dataclasses.replace(
        template.virtual_switch, default_action=Action.ALLOW))
    library = dataclasses.replace(LIBRARY, templates={**LIBRARY.templates, 252: changed})
    plan = lab.apply(lab.engine.set_library(library))
    changes = [spec for changes in plan.changes.values() for spec in changes.adds]
    # the default rule of each direction, on each of the two servers: 4, not 4 per VM
    assert len(changes) == 4 and len(macs) == 6
    assert {decode_cookie(spec.cookie) for spec in changes} == {template_owner(252)}
    assert {spec.dpid for spec in changes} == {S11, S12}


# -- behaviour through the shared tables ------------------------------------------------------
def test_vms_of_two_templates_on_one_server_get_each_their_own_template():
    lab = Lab()
    lab.vm(S11, 1, _mac(250, 1), "10.0.100.1")        # web
    lab.vm(S11, 2, _mac(252, 2), "10.0.200.2")        # database
    lab.vm(S12, 1, _mac(250, 3), "10.0.100.3")        # web on the other server

    def reached(src, dst, src_ip, dst_ip, port):
        here = lab.engine.bindings[src]
        return [(d, p) for d, p, _ in lab.switches.trace(
            lab.engine.fabric, here.dpid, here.port, tcp(src, dst, src_ip, dst_ip, port))]

    # web -> database on 5432: web allows it out, database allows it in
    assert reached(_mac(250, 1), _mac(252, 2), "10.0.100.1", "10.0.200.2", 5432) == [(S11, 2)]
    # database -> web on 80 is not what the database's template lets it send
    assert reached(_mac(252, 2), _mac(250, 1), "10.0.200.2", "10.0.100.1", 80) == []
    # web -> web across servers: a reply from port 80 passes both webs' rules, a
    # connection to port 22 neither
    assert reached(_mac(250, 1), _mac(250, 3), "10.0.100.1", "10.0.100.3", 80) == []
    here = lab.engine.bindings[_mac(250, 1)]
    reply = tcp(_mac(250, 1), _mac(250, 3), "10.0.100.1", "10.0.100.3", 40000, src_port=80)
    assert [(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, here.dpid, here.port,
                                                       reply)] == []
    ping = Packet(_mac(250, 1), _mac(250, 3), 0x0800, ip_proto=1, ipv4_src="10.0.100.1",
                  ipv4_dst="10.0.100.3")
    assert [(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, here.dpid, here.port,
                                                       ping)] == [(S12, 1)]


def test_a_spoofed_ip_is_dropped_and_an_unbound_vm_learns_through_the_shared_flows():
    lab = Lab()
    lab.vm(S11, 1, _mac(254, 1), "10.0.254.1")
    lab.vm(S11, 2, _mac(254, 2))                       # IP not bound yet
    spoofed = Packet(_mac(254, 1), "ff:ff:ff:ff:ff:ff", 0x0800, ipv4_src="10.0.254.9")
    outputs, _ = lab.switches.run_pipeline(S11, 1, spoofed)
    assert outputs == []
    learning = Packet(_mac(254, 2), "ff:ff:ff:ff:ff:ff", 0x0800, ipv4_src="10.0.254.2")
    outputs, end = lab.switches.run_pipeline(S11, 2, learning)
    assert [port for port, _ in outputs] == [0xFFFFFFFD]     # to the controller, only
    assert end.metadata & LEARN_IP_BIT


# -- the metadata layout and the fake switches' masks --------------------------------------------
def test_the_metadata_fields_do_not_overlap_and_select_one_template():
    assert from_vm_metadata(0) & TAG_MASK == template_tag(0) != 0
    assert to_vm_metadata(0xFFFFFFFF, 0xFFFF) & 0xFFFFFFFF == 0xFFFFFFFF
    assert to_vm_metadata(7, 250) & TAG_MASK == template_tag(250)
    value, mask = template_metadata_match(250)
    assert to_vm_metadata(7, 252) & mask != value
    assert from_vm_metadata(250, learn_ip=True) & mask == value
    value, mask = template_metadata_match(250, learn_ip=False)
    assert from_vm_metadata(250, learn_ip=True) & mask != value


def test_the_fake_switches_write_metadata_under_its_mask():
    switches = FakeSwitches()
    plan = Plan()
    first = flow(1, Table.CLASSIFY, 10, make_match(), 0xD9 << 56, goto=Table.FORWARD)
    first = FlowSpec(1, Table.CLASSIFY, 10, make_match(), (
        WriteMetadata(0x1234_0000_00AB, 0xFFFF_0000_00FF), *first.instructions), 0xD9 << 56)
    plan.for_switch(1).add(first)
    switches.apply(plan)
    _, end = switches.run_pipeline(1, 1, Packet("00:00:00:00:00:01", "00:00:00:00:00:02",
                                                metadata=0x0000_00FF_FF00))
    assert end.metadata == 0x1234_00FF_FFAB


# -- reconciliation ------------------------------------------------------------------------------
def test_a_reconnecting_server_gets_back_a_lost_shared_flow_and_loses_a_stale_one():
    lab = Lab()
    _populate(lab, [250, 254], 2)
    held = lab.switches.entries(S11)
    intact = lab.engine.switch_up(S11, Role.SERVER, hex(S11), held, now=1.0)
    assert not intact.changes.get(S11)                          # nothing changed: nothing sent
    lost = next(iter(lab.shared_flows(S11, 254)))
    stale = next(iter(lab.shared_flows(S12, 250)))
    # a shared flow of a template with no VM on this server any more (from its last run)
    stale = FlowSpec(S11, stale.table_id, stale.priority, make_match(
        metadata=template_metadata_match(0x00F0)), stale.instructions,
        template_owner(0x00F0).cookie)
    plan = lab.engine.switch_up(S11, Role.SERVER, hex(S11), (held - {lost}) | {stale}, now=2.0)
    assert plan.changes[S11].adds == [lost]
    assert plan.changes[S11].deletes == [stale]


def test_a_pre_provisioned_destination_costs_at_most_6_flows_and_brings_its_template():
    lab = Lab()
    lab.vm(S11, 20, _mac(250, 1), "10.0.100.1")
    assert not lab.shared_flows(S12, 250)
    lab.apply(lab.engine.vm_attached(S12, 50, _mac(250, 1), now=0.0).plan)
    incoming = lab.engine.incoming[_mac(250, 1)]
    assert incoming.state is VmState.PRE_PROVISIONED and incoming.dpid == S12
    own = [f for f in lab.switches.flows(S12) if decode_cookie(f.cookie) == incoming.owner]
    assert 1 <= len(own) <= max_per_vm(LIBRARY.get(250))
    assert lab.shared_flows(S12, 250)      # what it sends passes its template's rules at once
