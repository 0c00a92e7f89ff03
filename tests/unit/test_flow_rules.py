"""``dynprov flows`` labels each ACL flow with its template rule (side, index, file:line),
from the controller's ``/dynprov/rule-origins``; the rows agree with the compiled flows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ryu_apps.cli import flow_listing
from ryu_apps.cli.flow_listing import OwnerNames, annotate_line
from ryu_apps.core.cookies import decode_cookie, port_group_owner, template_owner
from ryu_apps.core.trace_engine import port_groups
from ryu_apps.core.pipeline import Table
from ryu_apps.core.rule_origin import ACL_TABLES, flow_origin, origin_index, origin_rows
from tests.unit.test_cli_inspect import (  # noqa: F401 (fixtures)
    SWITCHES,
    TEMPLATES,
    canned_controller,
    no_outside_settings,
    run,
)
from tests.unit.test_shared_pipeline import LIBRARY, Lab
from tests.support.small_fabric import A1, S11

WEB = template_owner(250).cookie
RULES = origin_index(json.loads(json.dumps(origin_rows(LIBRARY))))   # as over REST
NAMES = OwnerNames(templates={250: "web"}, rules=RULES)


def _line(cookie: int, table: int, priority: int, rest: str = "actions=drop") -> str:
    return (f" cookie={cookie:#x}, table={table}, priority={priority},"
            f"metadata=0x1fa00000000/0x1ffff00000000 {rest}")


def test_a_template_acl_flow_is_labelled_with_side_index_and_line():
    line = annotate_line(_line(WEB, Table.TO_VM_ACL, 39998, "actions=goto_table:6"), NAMES)
    assert line.endswith("# template 250 (shared); rule 'web' virtual_switch acl[3] (to_vm) "
                         "templates/web.yaml:24: allow to_vm ethertype=ipv4,ipv6 "
                         "protocol=tcp dst_port=443")
    assert "dst_port: 443" in Path("templates/web.yaml").read_text().splitlines()[23]


def test_a_default_and_an_access_port_flow_are_labelled():
    default = annotate_line(_line(WEB, Table.FROM_VM_ACL, 1000), NAMES)
    assert default.endswith("rule 'web' virtual_switch default (from_vm) templates/web.yaml: "
                            "default deny")
    # access switch A1 port 2: web's port side in VLAN 100, none known in VLAN 300
    groups = {(A1, 2, 100): LIBRARY.by_name("web")}
    names = replace(NAMES, dpid=f"{A1:016x}",
                    rules=origin_index(json.loads(json.dumps(origin_rows(LIBRARY, groups)))))
    port = annotate_line(_line(port_group_owner(2, 100).cookie, Table.TO_VM_PORT_ACL, 40000),
                         names)
    assert port.endswith("# access port 2 vlan 100; rule 'web' access_port acl[0] (to_vm) "
                         "templates/web.yaml:42: deny to_vm ethertype=ipv4 protocol=tcp "
                         "src=192.0.2.0/24 dst_port=22")
    other = annotate_line(_line(port_group_owner(2, 300).cookie, Table.TO_VM_PORT_ACL, 1000),
                          names)
    assert other.endswith("# access port 2 vlan 300")


def test_flows_that_are_not_acl_rules_get_no_rule():
    for table, priority in ((Table.CLASSIFY, 40000), (Table.FROM_VM_PORT_ACL, 50000),
                            (Table.TO_VM_ACL, 20)):
        assert "rule" not in annotate_line(_line(WEB, table, priority), NAMES)


def test_every_compiled_acl_flow_of_a_lab_has_its_rule():
    lab = Lab()
    lab.vm(S11, 1, "00:fa:00:00:00:05", "10.0.100.5")
    lab.vm(S11, 2, "00:fe:00:00:00:06", "10.0.30.6")
    seen = set()
    groups = port_groups(lab.engine)
    assert set(groups) == {(A1, 2, 100), (A1, 2, 300)}
    for dpid in (S11, A1):
        for spec in lab.switches.flows(dpid):
            if spec.table_id not in ACL_TABLES or spec.priority > 40000:
                continue
            owner = decode_cookie(spec.cookie)
            port, vlan = divmod(owner.owner_id, 1 << 12)
            behind = groups.get((dpid, port, vlan))
            origin = flow_origin(LIBRARY, owner, spec.table_id, spec.priority,
                                 [behind] if behind else [])
            assert origin is not None, spec
            seen.add((origin.template, origin.side))
            if origin.index is not None:
                text = Path(origin.source).read_text().splitlines()[origin.line - 1]
                assert f"direction: {origin.direction}" in text
    assert {("web", "virtual_switch"), ("management", "virtual_switch"),
            ("management", "access_port")} <= seen


def test_the_flows_command_reads_the_rules_from_the_controller(controller, monkeypatch,
                                                               capsys):
    url, routes = controller
    routes["/dynprov/rule-origins"] = (200, {"origins": origin_rows(LIBRARY)})
    dump = _line(WEB, Table.TO_VM_ACL, 39998, "actions=goto_table:6")
    monkeypatch.setattr(flow_listing, "_run", lambda argv: (
        0, '"0000000000001101"\n' if argv[0] == "ovs-vsctl" else dump + "\n", ""))
    assert run("flows", "s11", "--controller", url) == 0
    out, err = capsys.readouterr()
    assert "rule 'web' virtual_switch acl[3] (to_vm) templates/web.yaml:24" in out
    assert err == "" and SWITCHES and TEMPLATES
    del routes["/dynprov/rule-origins"]
    assert run("flows", "s11", "--controller", url) == 0
    out, err = capsys.readouterr()
    assert "# template 250 (shared)\n" in out
    assert "warning: no template rules from the controller" in err
