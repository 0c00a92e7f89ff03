"""The policy trace and the rule labels on real OVS: for every pair of a few VMs of the
datacenter bed and a few protocols, the trace's verdict (the packet and its answer) agrees
with real traffic, ``ofproto/trace`` on the bridges agrees with the desired flows (no
drift), and ``dynprov flows`` names each ACL flow's rule.

Topology (datacenter, default library): s11: web1, db2; s12: web3, mgmt4 (access a1);
s21: web5, db6; s22: web7, mgmt8 (access a2).
"""

import itertools
import re

import pytest

from ryu_apps.cli import trace
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix

pytestmark = pytest.mark.integration

#: Same server, same access switch, across the fabric, another VLAN.
VMS = ("web1", "db2", "mgmt4", "web5")
PORTS = (5432, 22)


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, "r" + unique_prefix()[1:])
    vms = {re.sub(r"^r\d{3}", "", h.name): h for h in net.hosts}
    for name in VMS:
        lab.start_listener(vms[name], *PORTS)
    yield controller, net, vms
    stop_datacenter(controller, net)


def _trace(controller, src, dst, probe):
    status, answer = controller.rest("GET", f"/dynprov/trace?src={src.MAC()}&dst={dst.MAC()}"
                                            f"&proto={probe}&src_ip={src.IP()}"
                                            f"&dst_ip={dst.IP()}", role="reader")
    assert status == 200, answer
    return answer


def _really(src, dst, probe) -> bool:
    if probe == "icmp":
        return ping(src, dst, count=1)
    return lab.tcp_open(src, dst, int(probe.split("/")[1]), timeout=1)


def test_the_trace_agrees_with_real_traffic_for_every_pair(dc):
    controller, _, vms = dc
    seen = set()
    for a, b in itertools.permutations(VMS, 2):
        for probe in ("icmp",) + tuple(f"tcp/{p}" for p in PORTS):
            answer = _trace(controller, vms[a], vms[b], probe)
            really = _really(vms[a], vms[b], probe)
            assert answer["connects"] == really, (a, b, probe, answer)
            seen.add(really)
    assert seen == {True, False}


def test_the_switches_agree_with_the_trace_and_the_cli_prints_the_rule(dc, capsys):
    controller, _, vms = dc
    web1, db2, web5 = vms["web1"], vms["db2"], vms["web5"]
    for src, dst, probe in ((web5, db2, "tcp/5432"), (db2, web1, "tcp/22")):
        answer = _trace(controller, src, dst, probe)
        assert trace.cross_check(answer) == [], answer
    args = ["trace", web5.MAC(), db2.IP(), "tcp/5432", "--src-ip", web5.IP(),
            *controller.rest_cli_args("reader")]
    assert _cli(args) == 0
    out = capsys.readouterr().out
    assert ": ALLOWED" in out and "switches: agree with the desired flows" in out
    assert "decided by: 'database' virtual_switch acl[2] (to_vm)" in out
    assert re.search(r"database\.yaml:13: allow to_vm", out)
    assert _cli(["trace", web5.MAC(), "00:fa:00:00:99:99", "icmp",
                 *controller.rest_cli_args("reader")]) == 2
    assert "dst: no provisioned VM has MAC or IPv4" in capsys.readouterr().err


def test_flows_names_each_acl_flow_s_rule(dc, capsys):
    controller, net, _ = dc
    server = next(s.name for s in net.switches if s.name.endswith("s11"))
    assert _cli(["flows", server, *controller.rest_cli_args("reader")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"table=5, .*# template 252 \(shared\); rule 'database' virtual_switch "
                     r"acl\[2\] \(to_vm\) \S*database\.yaml:13: allow to_vm", out), out


def _cli(argv) -> int:
    from ryu_apps.cli.main import build_parser
    args = build_parser().parse_args(argv)
    return args.func(args)

