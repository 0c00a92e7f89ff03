"""Pre-rendered bytes patched per VM are the general encoder's bytes, exactly."""

import random

from ryu_apps.app import openflow_bytes, prerendered
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.flowspec import FlowSpec
from tests.unit.test_template_enforcement import LIBRARY, S11, S12, Lab


def _random_mac(rng, template_id):
    tail = [rng.choice((0, 255, rng.randrange(256))) for _ in range(4)]
    return ":".join(f"{b:02x}" for b in [template_id >> 8, template_id & 0xFF, *tail])


def _random_ip(rng):
    return ".".join(str(rng.choice((1, 255, rng.randrange(1, 255)))) for _ in range(4))


def _plans_of_random_vms(seed, count):
    rng = random.Random(seed)
    lab = Lab()
    templates = [t.template_id for t in LIBRARY]
    for n in range(count):
        template_id = templates[n % len(templates)]
        dpid = rng.choice((S11, S12))
        port = rng.choice((n + 1, 0xFEFF - n, rng.randrange(1, 0xFF00)))
        verdict = lab.engine.packet_in(dpid, port, _random_mac(rng, template_id), b"x",
                                       now=0.0, sender_ip=_random_ip(rng))
        lab.apply(verdict.plan)
        yield verdict.plan
        if rng.random() < 0.3:   # and some go again: deletes, shrinking groups
            gone = lab.engine.port_down(dpid, port, now=0.0)
            lab.apply(gone)
            yield gone


def test_every_default_template_is_byte_identical_for_random_vms():
    compared = 0
    for plan in _plans_of_random_vms(seed=13, count=6 * len(LIBRARY)):
        for changes in plan.changes.values():
            assert prerendered.messages(changes) == openflow_bytes.encoded_messages(changes)
            compared += len(changes.adds)
    assert compared > 100


def test_the_hot_path_patches_shapes_rather_than_encoding():
    prerendered._SHAPES.clear()
    prerendered._SEEN_ONCE.clear()
    specs = [spec for plan in _plans_of_random_vms(seed=7, count=6 * len(LIBRARY))
             for changes in plan.changes.values() for spec in changes.adds
             if isinstance(spec, FlowSpec)
             and decode_cookie(spec.cookie).kind is CookieKind.BINDING]
    for spec in specs:
        assert prerendered.flow_add(spec) == openflow_bytes.encoded_flow_add(spec)
    shapes = list(prerendered._SHAPES.values())
    patchable = [s for s in shapes if s is not prerendered._UNPATCHABLE]
    assert shapes and len(patchable) == len(shapes)   # the default library's shapes patch
    keys = {prerendered._split_flow(spec)[0] for spec in specs}
    assert len(keys) < len(specs) / 3     # VMs of a template share their flows' shapes
    assert any(len(s.slots) >= 3 for s in patchable)   # cookie, port, MAC at least


def test_a_value_whose_encoding_changes_length_falls_back_to_the_encoder():
    spec = FlowSpec(1, 4, 100, (("in_port", 3),), (), 0xD910000000000001)
    odd = FlowSpec(1, 4, 100, (("in_port", -1),), (), 0xD910000000000002)
    assert prerendered.flow_add(spec) == openflow_bytes.encoded_flow_add(spec)
    try:
        expected = openflow_bytes.encoded_flow_add(odd)
    except Exception as error:   # noqa: BLE001 - the encoder's verdict is the reference
        expected = type(error)
    try:
        got = prerendered.flow_add(odd)
    except Exception as error:   # noqa: BLE001
        got = type(error)
    assert got == expected


def _fresh_vm_plans(count):
    """Plans of ``count`` fresh VMs of the default templates, round-robin over the
    servers of the throughput benchmark's topology, each with its first frame."""
    from benchmarks.ofload import frames
    from benchmarks.ofload.reference import engine_for
    from benchmarks.ofload.topology import FIRST_VM_PORT, datacenter
    from ryu_apps.core.identifiers import format_mac
    from ryu_apps.lab.project import DEFAULT_TEMPLATES

    topo = datacenter(2, 2, dpid_base=0)
    engine = engine_for(topo, DEFAULT_TEMPLATES)
    for n in range(count):
        template_id = (0x00FA, 0x00FC, 0x00FE)[n % 3]
        mac = frames.vm_mac(template_id, n + 1)
        verdict = engine.packet_in(topo.servers[n % len(topo.servers)].dpid,
                                   FIRST_VM_PORT + n, format_mac(mac),
                                   frames.first_frame("ipv4", mac, n + 1), now=0.0)
        assert verdict.provisioned is not None
        yield verdict.plan


def test_every_per_vm_flow_of_the_default_templates_hits_a_shape(monkeypatch):
    """Once each shape was seen twice, a new VM's own flows and its template's flows
    are copied and patched: none goes through the general encoder."""
    prerendered._SHAPES.clear()
    prerendered._SEEN_ONCE.clear()
    plans = list(_fresh_vm_plans(60))
    for plan in plans[:24]:   # two VMs of each template on each of the 4 servers
        for changes in plan.changes.values():
            prerendered.messages(changes)
    fallbacks, flows = [], 0
    general = openflow_bytes.encoded_flow_add

    def counted(spec):
        fallbacks.append(spec)
        return general(spec)

    monkeypatch.setattr(openflow_bytes, "encoded_flow_add", counted)
    for plan in plans[24:]:
        for changes in plan.changes.values():
            prerendered.messages(changes)
            flows += sum(1 for spec in changes.adds if isinstance(spec, FlowSpec))
    kinds = [decode_cookie(spec.cookie).kind for spec in fallbacks]
    assert flows > 36 * 4
    # Only a VLAN's flood entry (one action per member: a new shape per member
    # count) may miss; every flow of the VM and of its template hits.
    assert set(kinds) <= {CookieKind.VLAN}, fallbacks[:3]
    assert len(kinds) <= 36


def test_a_flood_entry_with_many_members_is_encoded_exactly_and_not_kept():
    """A VLAN's flood entry (one set-field and one resubmit per member) is never a
    shape: it is encoded, byte for byte as the general encoder, and not cached."""
    from ryu_apps.core.flowspec import ApplyActions, Output, PopVlan, Resubmit, SetField

    def flood(members):
        actions = [Output(1), PopVlan()]
        for member in members:
            actions += [SetField("metadata", 0x1010000000000 + member), Resubmit(5)]
        return FlowSpec(0x1201, 4, 30000, (("eth_dst", ("01:00:00:00:00:00",
                                                        "01:00:00:00:00:00")),
                                           ("vlan_vid", 4196)),
                        (ApplyActions(tuple(actions)),), 0xD920064000001064)

    openflow_bytes._ENCODED.clear()
    for count in (prerendered.MAX_ACTIONS, 40, 41, 200, 40):
        spec = flood(range(count))
        assert prerendered.flow_add(spec) == openflow_bytes._encode_flow_add(spec)
        assert prerendered.flow_add(spec) == openflow_bytes._ryu_bytes(
            openflow_bytes.flow_add(openflow_bytes._StubDatapath, spec))
    assert not openflow_bytes._ENCODED   # long entries are not kept
