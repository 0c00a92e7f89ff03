"""A library reload touches exactly the flows of the VMs whose template changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ryu_apps.core.cookies import CookieKind, decode_cookie, template_owner
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.template_model import Action
from ryu_apps.loaders.library_files import load_library
from ryu_apps.loaders.library_keeper import LibraryKeeper
from tests.support.fake_switches import FakeSwitches

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
F1, A1, A2 = 0x100, 0x201, 0x202
SERVERS = (0x1101, 0x1102, 0x2101)
WEB = ["00:fa:00:00:00:0%d" % i for i in range(1, 4)]
DB = ["00:fc:00:00:00:0%d" % i for i in range(1, 3)]
MGMT = ["00:fe:00:00:00:01"]


@pytest.fixture
def lab():
    library = load_library(TEMPLATES)
    engine = ProvisioningEngine(library, PrefixScheme(16))
    switches = FakeSwitches()
    for dpid, role in ((F1, Role.FABRIC), (A1, Role.ACCESS), (A2, Role.ACCESS)):
        switches.apply(engine.switch_up(dpid, role, hex(dpid), [], now=0.0))
    for dpid in SERVERS:
        switches.apply(engine.switch_up(dpid, Role.SERVER, hex(dpid), [], now=0.0))
    for a, b in (((A1, 1), (F1, 1)), ((A2, 1), (F1, 2)), ((SERVERS[0], 9), (A1, 2)),
                 ((SERVERS[1], 9), (A1, 3)), ((SERVERS[2], 9), (A2, 2))):
        switches.apply(engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))
    port = 1
    for index, mac in enumerate(WEB + DB + MGMT):
        verdict = engine.packet_in(SERVERS[index % 3], port + index, mac, b"x", now=0.0)
        switches.apply(verdict.plan)
        engine.confirm(verdict.plan.confirms)
    return engine, switches, library


def _with_vswitch_default(library, template_id, action):
    template = library.get(template_id)
    changed = dataclasses.replace(template, virtual_switch=dataclasses.replace(
        template.virtual_switch, default_action=action))
    return dataclasses.replace(library, templates={**library.templates, template_id: changed})


def _touched_owners(plan):
    return {decode_cookie(spec.cookie) for changes in plan.changes.values()
            for spec in changes.adds + changes.deletes}


def test_reloading_an_equal_library_plans_nothing(lab):
    engine, _, _ = lab
    plan = engine.set_library(load_library(TEMPLATES))   # new objects, same content
    assert plan.is_empty()
    assert plan.flow_count() == 0


def test_changing_one_templates_acl_touches_only_its_shared_flows(lab):
    engine, switches, library = lab
    # the ACL is shared by the template's VMs on each server: their own flows stay
    db_owners = {engine.bindings[mac].owner for mac in DB} | {template_owner(252)}
    before = {owner: engine.desired.flows_of(owner) for owner in db_owners}
    plan = engine.set_library(_with_vswitch_default(library, 252, Action.ALLOW))
    assert plan.flow_count() > 0
    assert _touched_owners(plan) == {template_owner(252)}
    # exactly the entries whose actions changed: each database VM's default rules
    after = {owner: engine.desired.flows_of(owner) for owner in db_owners}
    expected = sum(len(after[o] - before[o]) + len({f.key for f in before[o]}
                                                   - {f.key for f in after[o]})
                   for o in db_owners)
    assert plan.flow_count() == expected
    switches.apply(plan)
    for dpid in engine.fabric.switches:
        assert switches.entries(dpid) == engine.desired.on_switch(dpid)


def test_a_template_that_left_the_library_deprovisions_only_its_vms(lab):
    engine, _, library = lab
    templates = {k: v for k, v in library.templates.items() if k != 254}
    plan = engine.set_library(dataclasses.replace(library, templates=templates))
    owners = _touched_owners(plan)
    assert {o.kind for o in owners} <= {CookieKind.BINDING, CookieKind.VLAN,
                                        CookieKind.PORT_GROUP, CookieKind.TEMPLATE}
    assert {o.template_id for o in owners if o.kind is CookieKind.BINDING} == {254}
    assert {o.template_id for o in owners if o.kind is CookieKind.TEMPLATE} == {254}
    assert not any(decode_cookie(f.cookie).template_id == 254
                   for dpid in engine.fabric.switches for f in engine.desired.on_switch(dpid)
                   if decode_cookie(f.cookie) is not None)
    assert MGMT[0] not in engine.bindings
    assert all(mac in engine.bindings for mac in WEB + DB)


def test_keeper_reload_of_unchanged_files_returns_the_library_in_force(tmp_path):
    (tmp_path / "web.yaml").write_text((TEMPLATES / "web.yaml").read_text())
    keeper = LibraryKeeper(tmp_path)
    assert keeper.reload() is keeper.current
    text = (tmp_path / "web.yaml").read_text().replace("vlan: 100", "vlan: 101", 1)
    (tmp_path / "web.yaml").write_text(text)
    reloaded = keeper.reload()
    assert reloaded.get(250).vlan == 101
    (tmp_path / "web.yaml").write_text("templates: [")
    with pytest.raises(ValueError, match="invalid YAML"):
        keeper.reload()
    assert keeper.current is reloaded


def test_keeper_reload_checks_uniqueness_across_unchanged_files(tmp_path):
    (tmp_path / "web.yaml").write_text((TEMPLATES / "web.yaml").read_text())
    (tmp_path / "db.yaml").write_text((TEMPLATES / "database.yaml").read_text())
    keeper = LibraryKeeper(tmp_path)
    web = keeper.current.get(250)
    text = (tmp_path / "db.yaml").read_text().replace("vlan: 100", "vlan: 102", 1)
    (tmp_path / "db.yaml").write_text(text)
    reloaded = keeper.reload()
    assert reloaded.get(252).vlan == 102
    assert reloaded.get(250) is web          # the unchanged file was not checked again
    (tmp_path / "db.yaml").write_text(text.replace('"0x00FC"', '"0x00FA"'))
    with pytest.raises(ValueError, match="duplicate template id 250"):
        keeper.reload()
    assert keeper.current is reloaded
