"""The policy trace and the rule labels on real OVS: for every ordered pair of hosts of the
datacenter bed (its eight VMs and the outside host) over IPv4, and a few VMs over IPv6, and
a few protocols, the trace's verdict (the packet and its answer) agrees with real traffic,
``ofproto/trace`` on the bridges agrees with the desired flows (no drift), ``dynprov flows``
names each ACL flow's rule, and a VM is traced by its OVSDB iface-id.

Topology (datacenter): s11: web1, db2; s12: web3, mgmt4 (access a1); s21: web5, db6;
s22: web7, mgmt8 (access a2); the edge device e1 with the outside host out1 (192.0.2.10,
template 'outside', the edge firewall) on the fabric. Library: the default one, where web
and database also guard IPv6 (``bind_ipv6: link_local``), web allows tcp/443, udp/53 and
ICMPv6 both ways (stateless) and the database is stateful and takes udp/53 and ICMPv6 from
link-local addresses (:func:`_dual_stack_library`). The VMs know each other's link-local
neighbours (static entries): the trace models the packet, not neighbour discovery.
"""

import itertools
import re
import shutil
import sys
import time

import pytest
import yaml

from ryu_apps.cli import trace
from ryu_apps.core.ipv6_guard import link_local
from ryu_apps.lab import testbed as lab
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix
from tests.integration.test_ipv6 import enable_ipv6, wait_for_link_local

pytestmark = pytest.mark.integration

#: Every host of the bed, probed over IPv4 (listeners on each): every ordered pair.
HOSTS = ("web1", "db2", "web3", "mgmt4", "web5", "db6", "web7", "mgmt8", "out1")
PORTS = (5432, 22)
PROBES = ("icmp",) + tuple(f"tcp/{p}" for p in PORTS)
#: Probes no pair of the bed may make: management VMs take SSH from 10.0.30.0/24, but no
#: template lets a VM open it (management only lets replies from port 22 out).
BLOCKED_EVERYWHERE = ("tcp/22",)
#: Seconds each IPv4 probe waits for its answer; every probe of one source runs at once
#: (24 of them), so a source costs one timeout. Measured (from the probes' start, the
#: helper's process start not counted): the slowest allowed one took 0.171 s at load 3.1
#: and 0.073 s at load 2.0 on the 2-core machine; about x3.5. A probe that found blocked
#: what the trace allows is probed once more with RECHECK_TIMEOUT_S, so a loaded machine
#: slows the test instead of failing it; a real disagreement still fails.
PROBE_MANY_TIMEOUT_S = 0.6
RECHECK_TIMEOUT_S = 5.0
#: IPv6 in these (same server, same access switch, across the fabric, another VLAN).
VMS6 = ("web1", "db2", "mgmt4", "web5")
#: Probed over IPv6 (listeners on every VM of VMS6).
TCP6, UDP6 = (443,), (53,)
PROBES6 = ("icmpv6", "tcp/443", "udp/53")
#: Pairs probed over IPv6: every pair of VLAN 100's VMs, and one across VLANs (each
#: blocked probe costs its timeout).
PAIRS6 = tuple(itertools.permutations(("web1", "db2", "web5"), 2)) + (("web1", "mgmt4"),)
#: Seconds a blocked probe waits for its answer (measured: the slowest allowed one took
#: 0.36 s at load 7.9 and 0.56 s at load 5.7 on the 2-core machine, its Python process's
#: start included, which the timeout does not count; about x3).
PROBE_TIMEOUT_S = 1.5

WEB_IPV6_RULES = [
    {"action": "allow", "direction": "from_vm", "protocol": "tcp", "dst_port": 443},
    {"action": "allow", "direction": "to_vm", "protocol": "tcp", "src_port": 443,
     "dst_port": "1024-65535"},
    {"action": "allow", "direction": "from_vm", "protocol": "udp", "dst_port": 53},
    {"action": "allow", "direction": "to_vm", "protocol": "udp", "src_port": 53},
    {"action": "allow", "direction": "to_vm", "protocol": "udp", "dst_port": 53},
    {"action": "allow", "direction": "from_vm", "protocol": "udp", "src_port": 53},
    {"action": "allow", "direction": "to_vm", "protocol": "icmpv6"},
    {"action": "allow", "direction": "from_vm", "protocol": "icmpv6"},
]
DB_IPV6_RULES = [
    {"action": "allow", "direction": "to_vm", "protocol": "udp", "src": "fe80::/10",
     "dst_port": 53},
    {"action": "allow", "direction": "to_vm", "protocol": "icmpv6", "src": "fe80::/10"},
]


def _rule_line(path, text: str) -> int:
    """The line (1-based) of the only line of ``path`` that holds ``text``."""
    (number,) = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


#: The database's acl[2] (PostgreSQL from the web tier), where the trace must place it
#: (the dual-stack copy keeps every existing rule on its line).
DB_RULE_2_LINE = _rule_line(lab.DEFAULT_TEMPLATES / "database.yaml",
                            "src: 10.0.100.0/24, dst_port: 5432")


def _dual_stack_library(directory):
    """The default library, with web and database guarding and allowing some IPv6 (their
    existing rules keep their index and line)."""
    shutil.copytree(lab.DEFAULT_TEMPLATES, directory)
    for name, rules, extra in (("web", WEB_IPV6_RULES, {}),
                               ("database", DB_IPV6_RULES, {"stateful": True})):
        path = directory / f"{name}.yaml"
        document = yaml.safe_load(path.read_text())
        (template,) = document["templates"]
        side = template["virtual_switch"]
        wanted = {k: v for k, v in {"bind_ipv6": "link_local", **extra}.items()
                  if side.get(k) != v}
        assert not set(wanted) & set(side), f"{path}: {sorted(wanted)} set otherwise"
        side.update(wanted)
        side["acl"] += rules
        acl = "\n".join(f"        - {yaml.safe_dump(r, default_flow_style=True).strip()}"
                        for r in rules)
        text = path.read_text()
        anchor = "      bandwidth:\n" if "      bandwidth:\n" in text else None
        assert anchor, path
        options = "".join(f"      {k}: {yaml.safe_dump(v).splitlines()[0]}\n"
                          for k, v in wanted.items())
        first, rest = text.split(anchor, 1)   # the virtual switch's bandwidth ends its ACL
        path.write_text(first + acl + "\n" + options + anchor + rest)
        assert yaml.safe_load(path.read_text()) == document, path.read_text()
    return directory


def _listen6(vm) -> None:
    command = (f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m "
               f"ryu_apps.lab.vmtools.probe6 listen --tcp {' '.join(map(str, TCP6))} "
               f"--udp {' '.join(map(str, UDP6))} > /tmp/dynprov-probe6-{vm.name}.log 2>&1 &")
    vm.cmd(command)
    deadline = time.monotonic() + 5
    while not all(f":{p} " in vm.cmd("ss -6ltn") for p in TCP6):
        assert time.monotonic() < deadline, f"{vm.name}: IPv6 listeners did not start"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    library = _dual_stack_library(tmp_path_factory.mktemp("trace") / "templates")
    controller, net = start_datacenter(library, "r" + unique_prefix()[1:], edge=1)
    try:
        vms = {re.sub(r"^r\d{3}", "", h.name): h for h in net.hosts}
        assert sorted(vms) == sorted(HOSTS), sorted(vms)
        for name in HOSTS:
            lab.start_listener(vms[name], *PORTS)
        for name in VMS6:
            enable_ipv6(vms[name])
        for name in VMS6:
            assert wait_for_link_local(vms[name]) == link_local(vms[name].MAC())
            _listen6(vms[name])
            for other in VMS6:
                if other != name:
                    vms[name].cmd(f"ip -6 neigh replace {link_local(vms[other].MAC())} "
                                  f"lladdr {vms[other].MAC()} dev {vms[name].defaultIntf()} "
                                  "nud permanent")
    except BaseException:
        stop_datacenter(controller, net)
        raise
    yield controller, net, vms
    stop_datacenter(controller, net)


def _trace(controller, src, dst, probe):
    status, answer = controller.rest("GET", f"/dynprov/trace?src={src.MAC()}&dst={dst.MAC()}"
                                            f"&proto={probe}&src_ip={src.IP()}"
                                            f"&dst_ip={dst.IP()}", role="reader")
    assert status == 200, answer
    return answer


def _target(dst, probe) -> str:
    if probe == "icmp":
        return f"icmp:{dst.IP()}"
    return f"tcp:{dst.IP()}:{probe.split('/')[1]}"


def test_the_trace_agrees_with_real_traffic_for_every_pair(dc):
    controller, _, vms = dc
    seen, slowest, disagree, rechecked = set(), 0.0, [], []
    for a in HOSTS:
        cases = [(b, probe) for b in HOSTS if b != a for probe in PROBES]
        results = lab.probe_many(vms[a], [_target(vms[b], p) for b, p in cases],
                                 PROBE_MANY_TIMEOUT_S)
        for (b, probe), result in zip(cases, results):
            answer = _trace(controller, vms[a], vms[b], probe)
            if result["open"]:
                slowest = max(slowest, result["seconds"])
            if answer["connects"] and not result["open"]:
                (result,) = lab.probe_many(vms[a], [_target(vms[b], probe)],
                                           RECHECK_TIMEOUT_S)
                rechecked.append((a, b, probe, result))
            if answer["connects"] != result["open"]:
                disagree.append((a, b, probe, answer))
            seen.add((probe, result["open"]))
    print(f"{len(HOSTS) * (len(HOSTS) - 1)} pairs x {PROBES}; "
          f"slowest allowed IPv4 probe: {slowest:.3f} s; rechecked: {rechecked}")
    assert not disagree, disagree
    assert seen == {(p, r) for p in PROBES for r in (True, False)
                    if r is False or p not in BLOCKED_EVERYWHERE}, seen


def _trace6(controller, src, dst, probe):
    status, answer = controller.rest("GET", f"/dynprov/trace?src={src.MAC()}&dst="
                                            f"{dst.MAC()}&proto={probe}&family=6",
                                     role="reader")
    assert status == 200, answer
    return answer


def _really6(src, dst, probe) -> bool:
    address = f"{link_local(dst.MAC())}%{src.defaultIntf()}"
    if probe == "icmpv6":
        return bool(re.search(r" 1 received", src.cmd(f"ping -6 -c1 -W{PROBE_TIMEOUT_S:g} "
                                                       f"{address}")))
    proto, port = probe.split("/")
    out = src.cmd(f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m "
                  f"ryu_apps.lab.vmtools.probe6 {proto} {address} {port} "
                  f"--timeout {PROBE_TIMEOUT_S}")
    return out.strip().endswith("open")


def test_the_trace_over_ipv6_agrees_with_real_traffic_for_every_pair(dc):
    controller, _, vms = dc
    seen, slowest = set(), 0.0
    for a, b in PAIRS6:
        for probe in PROBES6:
            answer = _trace6(controller, vms[a], vms[b], probe)
            assert answer["family"] == 6 and answer["src"]["ipv6"] == link_local(vms[a].MAC())
            started = time.monotonic()
            really = _really6(vms[a], vms[b], probe)
            if really:
                slowest = max(slowest, time.monotonic() - started)
            assert answer["connects"] == really, (a, b, probe, answer)
            seen.add((probe, really))
    assert {(p, r) for p in PROBES6 for r in (True, False)} <= seen, seen
    print(f"slowest allowed IPv6 probe (with its process start): {slowest:.3f} s")


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
    assert re.search(rf"database\.yaml:{DB_RULE_2_LINE}: allow to_vm", out)
    for src, dst, probe in ((web5, db2, "udp/53"), (web1, web5, "tcp/443")):
        assert trace.cross_check(_trace6(controller, src, dst, probe)) == [], (src, probe)
    assert _cli(["trace", web5.MAC(), link_local(db2.MAC()), "udp/53", "--no-check",
                 *controller.rest_cli_args("reader")]) == 0
    out = capsys.readouterr().out
    assert f"({link_local(db2.MAC())}, 'database') udp/53 over IPv6: ALLOWED" in out, out
    assert _cli(["trace", web5.MAC(), db2.MAC(), "icmp", "--family", "6",
                 *controller.rest_cli_args("reader")]) == 2
    assert "icmp is not an IPv6 protocol" in capsys.readouterr().err
    assert _cli(["trace", web5.MAC(), "00:fa:00:00:99:99", "icmp",
                 *controller.rest_cli_args("reader")]) == 2
    assert "dst: no provisioned VM has MAC, IPv4, IPv6 or OVSDB iface-id" in capsys.readouterr().err


def test_flows_names_each_acl_flow_s_rule(dc, capsys):
    controller, net, _ = dc
    server = next(s.name for s in net.switches if s.name.endswith("s11"))
    assert _cli(["flows", server, *controller.rest_cli_args("reader")]) == 0
    out = capsys.readouterr().out
    rule = (r"table=5, .*# template 252 \(shared\); rule 'database' virtual_switch "
            rf"acl\[2\] \(to_vm\) \S*database\.yaml:{DB_RULE_2_LINE}: allow to_vm")
    assert re.search(rule, out), out


def _cli(argv) -> int:
    from ryu_apps.cli.main import build_parser
    args = build_parser().parse_args(argv)
    return args.func(args)

