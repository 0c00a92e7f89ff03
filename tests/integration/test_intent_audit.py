"""The continuous intent check on real OVS: flows changed, deleted and added behind
dynprov's back are reported by VM and template (``dynprov audit``, GET /dynprov/audit),
then repaired by the audit; or, with ``audit_report_only``, reported and left.

Two small beds (one access switch, one server, two VMs), one per mode, shared by
the module's tests; audits every second.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from ryu_apps.lab import testbed as lab
from tests.integration.conftest import OPEN_LIBRARY, start_datacenter, stop_datacenter

# serial: asserts that something happens within a bounded time (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

AUDIT_S = 1.0
#: The audit must repair within a few periods (factor 5) and the grace.
REPAIR_WITHIN_S = 5 * AUDIT_S + 2.0
#: A stray flow with dynprov's infrastructure cookie, which dynprov never installs.
STRAY_COOKIE = 0xD9F0000000000000
STRAY = f"cookie={STRAY_COOKIE:#x},table=0,priority=7,dl_src=02:00:00:00:00:99,actions=drop"
STATS = re.compile(r"(cookie|duration|n_packets|n_bytes|idle_age|hard_age|idle_timeout|"
                   r"reset_counts)=[^,]*,\s*")


def _bed(letter: str, extra: str):
    prefix = "%s%03d" % (letter, os.getpid() % 1000)
    controller, net = start_datacenter(
        OPEN_LIBRARY, prefix, access=1, servers=1, vms=2,
        extra_options=f"audit_interval = {AUDIT_S}\nreconcile_grace = 1.0\n{extra}")
    return controller, net, prefix


@pytest.fixture(scope="module")
def repairing():
    bed = _bed("q", "")
    yield bed
    stop_datacenter(*bed[:2])


@pytest.fixture(scope="module")
def reporting():
    bed = _bed("r", "audit_report_only = true\n")
    yield bed
    stop_datacenter(*bed[:2])


def _vm_lines(bridge: str, mac: str) -> list:
    """The VM's own flows on its server (those with its binding's cookie)."""
    lines = lab.dump_flows(bridge).splitlines()
    first = next(line for line in lines if f"dl_src={mac}" in line)
    cookie = re.search(r"cookie=(0x[0-9a-f]+)", first).group(1)
    return sorted(line for line in lines if f"cookie={cookie}," in line)


def _strict(line: str) -> str:
    """A dump-flows line's table, priority and match (for --strict mod/del)."""
    fields = STATS.sub("", line.strip()).split(" actions=")[0].replace("send_flow_rem", "")
    return ",".join(f.strip() for f in fields.replace(" ", ",").split(",") if f.strip())


def _tamper(bridge: str, mac: str) -> tuple:
    """Change one of the VM's flows, delete another, add a stray one; (changed, deleted)."""
    lines = _vm_lines(bridge, mac)
    assert len(lines) >= 2, lines
    changed, deleted = _strict(lines[0]), _strict(lines[1])
    ofctl = ["ovs-ofctl", "-O", "OpenFlow13"]
    subprocess.run(ofctl + ["mod-flows", "--strict", bridge, changed + ",actions=drop"],
                   check=True)
    subprocess.run(ofctl + ["del-flows", "--strict", bridge, deleted], check=True)
    subprocess.run(ofctl + ["add-flow", bridge, STRAY], check=True)
    return changed, deleted


def _audit_cli(controller, bridge: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ryu_apps.cli.main", "audit", bridge,
                           *controller.rest_cli_args("reader")],
                          capture_output=True, text=True, timeout=60)


def _server(net, prefix):
    vm = net.get(prefix + "web1")
    return vm, vm.defaultIntf().link.intf2.node.name


def _assert_reported(answer: dict, bridge: str, mac: str) -> None:
    (switch,) = answer["switches"]
    assert switch["name"] == bridge and not switch["clean"], switch
    assert switch["counts"] == {"missing": 1, "extra": 1, "changed": 1}, switch
    by_kind = {d["kind"]: d for d in switch["drifts"]}
    assert by_kind["missing"]["vm"] == by_kind["changed"]["vm"] == mac
    assert by_kind["changed"]["found"]["instructions"] == []
    assert by_kind["extra"]["entry"]["cookie"] == f"0x{STRAY_COOKIE:016x}"
    assert by_kind["missing"]["template_id"] == int(mac.replace(":", "")[:4], 16)


def test_drift_is_found_counted_and_repaired_by_the_audit(repairing):
    controller, net, prefix = repairing
    vm, bridge = _server(net, prefix)
    time.sleep(1.5)   # past the reconcile grace
    before = _vm_lines(bridge, vm.MAC())
    _tamper(bridge, vm.MAC())   # the audit may find it in one check or several
    deadline = time.monotonic() + REPAIR_WITHIN_S
    while time.monotonic() < deadline and (
            [_strict(x) for x in _vm_lines(bridge, vm.MAC())] != [_strict(x) for x in before]
            or "priority=7,dl_src=02:00:00:00:00:99" in lab.dump_flows(bridge)):
        time.sleep(0.1)
    assert [_strict(x) for x in _vm_lines(bridge, vm.MAC())] == \
        [_strict(x) for x in before], controller.log()[-2000:]
    assert "dl_src=02:00:00:00:00:99" not in lab.dump_flows(bridge)
    clean = _audit_cli(controller, bridge)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"{bridge} (" in clean.stdout and ": clean" in clean.stdout
    status, answer = controller.rest("GET", "/dynprov/audit", role="reader")
    assert status == 200 and answer["mode"] == "repair" and not answer["drift"], answer
    assert {s["name"] for s in answer["switches"]} == {n.name for n in net.switches}
    assert answer["counters"]["repaired"] >= 1, answer["counters"]
    assert all(n >= 1 for n in answer["counters"]["drifts"].values()), answer["counters"]
    assert f"({bridge}) differs from what dynprov wants" in controller.log()


def test_report_only_reports_the_drift_and_leaves_it(reporting):
    controller, net, prefix = reporting
    vm, bridge = _server(net, prefix)
    time.sleep(1.5)
    changed, deleted = _tamper(bridge, vm.MAC())
    found = _audit_cli(controller, bridge)
    print(found.stdout)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "1 missing, 1 extra, 1 changed; not repaired" in found.stdout, found.stdout
    assert f"VM {vm.MAC()}" in found.stdout
    logged = controller.log().count("report only, left as it is")
    assert controller.wait_for_log("report only, left as it is", timeout=10,
                                   count=logged + 3), controller.log()[-2000:]
    flows = lab.dump_flows(bridge)
    assert "dl_src=02:00:00:00:00:99" in flows
    assert _strict(deleted) not in [_strict(x) for x in flows.splitlines()]
    status, answer = controller.rest("GET", f"/dynprov/audit?bridge={bridge}", role="reader")
    assert status == 200 and answer["mode"] == "report-only", answer
    _assert_reported(answer, bridge, vm.MAC())
    assert not answer["switches"][0]["repaired"]


def test_an_unmanaged_bridge_is_an_error_with_a_hint(reporting):
    controller, net, prefix = reporting
    _, bridge = _server(net, prefix)
    status, answer = controller.rest("GET", "/dynprov/audit?bridge=" + bridge + "x",
                                     role="reader")
    assert status == 404 and "not managed by dynprov" in answer["error"], answer
    assert f"did you mean '{bridge}'" in answer["error"]
    refused = _audit_cli(controller, "nosuchbridge")
    assert refused.returncode == 2 and "404" in refused.stderr, refused.stderr
