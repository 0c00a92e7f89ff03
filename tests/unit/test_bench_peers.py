"""The FAUCET peer's configuration and the template-change benchmark's edit (no root)."""

import yaml

from benchmarks.peers.faucet import LEARNING_VLAN, SPARE_PORTS, host_ports, topology_config
from benchmarks.template_change import MARK, web_yaml
from ryu_apps.lab.testbed import DEFAULT_TEMPLATES, load_topology_module


def _topo():
    return load_topology_module().DatacenterTopo(prefix="x", dpid_base=0x5000000, edge=1)


def test_every_bridge_is_a_faucet_dp_with_its_dpid_and_spare_ports():
    topo = _topo()
    config = topology_config(topo)
    assert set(config["dps"]) == set(topo.switches())
    s11 = config["dps"]["xs11"]
    assert s11["dp_id"] == 0x5000000 + 0x1101
    assert len(s11["interfaces"]) == SPARE_PORTS
    assert {i["native_vlan"] for i in s11["interfaces"].values()} == {LEARNING_VLAN}


def test_acls_go_on_the_named_hosts_ports_only():
    topo = _topo()
    where = host_ports(topo, {"xweb1", "xweb5"})
    assert sorted(s for s, _ in where) == ["xs11", "xs21"]
    acls = {"web-in": [{"rule": {"actions": {"allow": 1}}}]}
    config = topology_config(topo, acls, {key: ["web-in"] for key in where})
    with_acl = [(dp, n) for dp, c in config["dps"].items()
                for n, i in c["interfaces"].items() if "acls_in" in i]
    assert sorted(with_acl) == sorted(where)
    assert yaml.safe_load(yaml.safe_dump(config))["acls"] == acls


def test_the_benchmark_rule_replaces_itself_in_the_web_template():
    original = (DEFAULT_TEMPLATES / "web.yaml").read_text()
    once = web_yaml(8080, original)
    twice = web_yaml(8081, once)
    assert once.count(MARK) == twice.count(MARK) == 1
    assert "dst_port: 8081}" in twice and "dst_port: 8080}" not in twice
    template = yaml.safe_load(twice)["templates"][0]
    assert template["virtual_switch"]["acl"][0] == {
        "action": "deny", "direction": "to_vm", "protocol": "tcp", "dst_port": 8081}
