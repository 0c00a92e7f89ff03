"""Faults end in the read-back reconciliation, not in a network that differs from the engine.

Open library, default topology, no audit (``audit_interval = 0``): only the
path under test can repair what the fault broke.

- A switch refuses flow-mods: every flow table of a server bridge is made full
  (OVSDB ``Flow_Table`` ``flow_limit`` with ``overflow_policy=refuse``, so an
  add of a new entry fails with OFPFMC_TABLE_FULL) before a new VM appears.
  The switch answers with OpenFlow errors; the app reads that switch back and
  reconciles it, again after each refusal (at most every 5 s, none dropped),
  so once the limit is lifted the VM's flows are all there.
- A handler raises (``fault_injection_mac``: the first frame of that VM raises
  after the engine bound it and before its flows were sent): the app
  resynchronises, rebuilds the engine from what every switch holds (so the VM
  it never provisioned is not bound), and provisions it when it speaks again.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from tests.integration.attack_support import binding, log_lines, switches_by_name
from tests.integration.conftest import OPEN_LIBRARY, start_datacenter, stop_datacenter

pytestmark = pytest.mark.integration

PREFIX = "q%03d" % (os.getpid() % 1000)
FAULTY_MAC = "00:fa:00:00:0e:01"
REFUSED_MAC = "00:fa:00:00:0e:02"
TABLES = range(7)   # ryu_apps.core.pipeline.Table
#: Seconds between two reconciliations of a switch after errors (provisioner's
#: RESYNC_MIN_INTERVAL) plus the tick that runs a postponed one, times 3.
REPAIR_WITHIN_S = 3 * (5.0 + 1.0)
GRACE_S = 1.0


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(
        OPEN_LIBRARY, PREFIX,
        extra_options=(f"audit_interval = 0\nreconcile_grace = {GRACE_S}\n"
                       f"fault_injection_mac = {FAULTY_MAC}\n"))
    yield controller, net, switches_by_name(net, PREFIX)
    stop_datacenter(controller, net)


def _vsctl(*args: str) -> None:
    subprocess.run(["ovs-vsctl", "--timeout=10", *args], check=True, capture_output=True)


def _table_counts(bridge: str) -> dict:
    counts = {table: 0 for table in TABLES}
    for line in lab.dump_flows(bridge).splitlines():
        for part in line.split(","):
            if part.strip().startswith("table="):
                table = int(part.strip()[len("table="):])
                counts[table] = counts.get(table, 0) + 1
    return counts


def _fill_every_table(bridge: str) -> None:
    """Let the bridge keep (and replace) the entries it holds, and refuse any other."""
    command = []
    for table, count in _table_counts(bridge).items():
        command += ["--", f"--id=@t{table}", "create", "Flow_Table", f"flow_limit={count}",
                    "overflow_policy=refuse", "--", "set", "Bridge", bridge,
                    f"flow_tables:{table}=@t{table}"]
    _vsctl(*command)


def _flows_complete(controller, mac: str) -> tuple[bool, dict]:
    status, answer = controller.rest("GET", f"/dynprov/bindings/{mac}/flows", role="reader")
    complete = (status == 200 and not answer["silent_switches"]
                and answer["expected_flows"] > 0
                and len(answer["flows"]) == answer["expected_flows"])
    return complete, answer


def _wait_complete(controller, mac: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    complete, answer = _flows_complete(controller, mac)
    while not complete and time.monotonic() < deadline:
        time.sleep(0.2)
        complete, answer = _flows_complete(controller, mac)
    assert complete, f"{answer}\n{controller.log()[-3000:]}"
    return answer


def test_a_switch_refusing_flow_mods_is_read_back_and_reconciled(dc):
    controller, net, sw = dc
    server = sw["s12"]
    peer = next(h for h in net.hosts if h.name == PREFIX + "web3")
    vm = lab.add_vm(net, server, PREFIX + "rf", REFUSED_MAC, "10.0.100.241/16")
    _fill_every_table(server.name)
    try:
        lab.announce(vm)
        assert controller.wait_for_log(f"provisioned VM {REFUSED_MAC}", timeout=10)
        assert controller.wait_for_log(f"switch {server.dpid} refused message", timeout=10), \
            controller.log()[-3000:]
        differed = f"switch {server.dpid} ({server.name}) differed from what dynprov wants"
        assert controller.wait_for_log(differed, timeout=10), controller.log()[-3000:]
        complete, answer = _flows_complete(controller, REFUSED_MAC)
        assert not complete, f"the full tables refused nothing: {answer}"
    finally:
        _vsctl("clear", "Bridge", server.name, "flow_tables")
    _wait_complete(controller, REFUSED_MAC, REPAIR_WITHIN_S)
    repairs = log_lines(controller, "OpenFlow error type 5 code 1: ", differed)
    assert repairs, controller.log()[-3000:]
    assert log_lines(controller, f"reconciling switch {server.dpid} (OpenFlow error type 5 "
                                 "code 1): reading it back")
    assert ping(vm, peer)


def test_a_handler_exception_rebuilds_the_engine_and_provisioning_goes_on(dc):
    controller, net, sw = dc
    hosts = {h.name[len(PREFIX):]: h for h in net.hosts}
    resyncs = controller.log().count("resynchronising every switch")
    faulty = lab.add_vm(net, sw["s21"], PREFIX + "ft", FAULTY_MAC, "10.0.100.242/16")
    lab.announce(faulty)   # one frame: bound in the engine, raises before its flows go out
    assert controller.wait_for_log("_packet_in raised; resynchronising", timeout=10), \
        controller.log()[-3000:]
    assert f"fault injected for VM {FAULTY_MAC}" in controller.log()
    assert controller.wait_for_log("resynchronising every switch", timeout=10,
                                   count=resyncs + 1)
    for switch in sw.values():   # every switch read back, and why
        assert controller.wait_for_log(f"reconciling switch {switch.dpid} (resync: "
                                       "_packet_in raised)", timeout=10), switch.name
        assert controller.wait_for_log(f"reconciling switch {switch.dpid} (warm start over)",
                                       timeout=10 + GRACE_S), switch.name
    # Rebuilt from the switches, which never got the faulty VM's flows: not bound.
    assert binding(controller, FAULTY_MAC) is None, controller.log()[-3000:]
    for name in ("web1", "web3", "web5", "web7"):   # the others came back from their flows
        _wait_complete(controller, hosts[name].MAC(), timeout=5)
    assert ping(hosts["web1"], hosts["web7"])
    # It speaks again (ARP for its peer): provisioned in full, and it works.
    assert ping(faulty, hosts["web5"], count=3)
    assert controller.wait_for_log(f"provisioned VM {FAULTY_MAC}", timeout=5)
    _wait_complete(controller, FAULTY_MAC, timeout=5)
