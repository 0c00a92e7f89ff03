"""Two controller processes (one per access switch) over a 3-member Raft store.

Real ryu-manager processes, real ovsdb-servers, real OVS bridges. The tests
run in order on one lab: bindings, a template change, a controller killed and
restarted, VM migrations across processes without and with a notice.
"""

import os
import shutil
import signal
import time

import pytest

from ryu_apps.core import lldp
from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send
from ryu_apps.lab.distributed import load_templates
from ryu_apps.lab.migration import live_migrate
from tests.integration.conftest import start_distributed

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

WEB1_MAC = "00:fa:00:00:00:01"


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    library = tmp_path_factory.mktemp("library") / "templates"
    shutil.copytree(lab.DEFAULT_TEMPLATES, library)
    setup = start_distributed("d%03d" % (os.getpid() % 1000), 7, templates=library)
    setup.library = library
    yield setup
    _keep_logs(setup)
    setup.stop()


def _keep_logs(setup) -> None:
    """Diagnostics: with DYNPROV_DIST_LOGS=DIR, each controller's log is copied there."""
    keep = os.environ.get("DYNPROV_DIST_LOGS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for number, controller in enumerate(setup.controllers, start=1):
            with open(os.path.join(keep, f"p{number}.log"), "w") as out:
                out.write(controller.log())


def _owners(rows):
    return {row["mac"]: (row["owner"], row["server"]) for row in rows}


def test_each_process_claims_the_vms_of_its_own_pod(dist):
    rows = dist.wait_for_store(lambda rows: len(rows) == len(dist.vms))
    owners = _owners(rows)
    for name, vm in dist.vms.items():
        owner, server = owners[vm.MAC()]
        assert server == dist.switches[server[len(dist.prefix):]]
        expected = "p1" if server[len(dist.prefix):].startswith("s1") else "p2"
        assert owner == expected, (name, owners)


def test_vms_in_different_pods_reach_each_other_across_the_shared_fabric(dist):
    web1, web5, web7 = dist.vms["web1"], dist.vms["web5"], dist.vms["web7"]
    for peer in (web5, web7, dist.vms["db6"]):   # VLAN 100 (web and database)
        assert " 0% packet loss" in web1.cmd(f"ping -c 3 -i 0.2 -W 1 {peer.IP()}"), peer.name
    mgmt4, mgmt8 = dist.vms["mgmt4"], dist.vms["mgmt8"]     # VLAN 300
    assert " 0% packet loss" in mgmt4.cmd(f"ping -c 2 -W 1 {mgmt8.IP()}")
    # templates still isolate across pods: by ACL (database to database) and by VLAN
    assert " 100% packet loss" in dist.vms["db6"].cmd(f"ping -c 2 -W 1 {dist.vms['db2'].IP()}")
    assert " 100% packet loss" in web1.cmd(f"ping -c 2 -W 1 {mgmt8.IP()}")
    for controller, access in zip(dist.controllers, ("a1", "a2")):
        links = _rest(controller, "/dynprov/links")
        shared = [link["a"] for link in links if link["shared_fabric"]]
        assert [(end["name"], end["port"]) for end in shared] == \
            [(dist.switches[access], 1)], links


def _rest(controller, path):
    status, answer = controller.rest("GET", path, role="reader", timeout=5)
    assert status == 200, answer
    return answer


def test_a_template_change_in_the_store_reaches_every_process(dist):
    web = dist.library / "web.yaml"
    web.write_text(web.read_text().replace("vlan: 100", "vlan: 150", 1))
    generation = load_templates(dist.store.remote, dist.library)
    assert generation == 2
    rows = dist.wait_for_store(
        lambda rows: len(rows) == 2 and all(r["library_generation"] == 2 for r in rows),
        table="Process")
    assert sorted(r["library_generation"] for r in rows) == [2, 2]
    for controller in dist.controllers:
        assert controller.wait_for_log("store library generation 2 of domain main in force")
    # both pods re-provisioned their web VMs in place on VLAN 150 (vid 0x1096)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        flows = [lab.dump_flows(dist.switches[s]) for s in ("s11", "s21")]
        if all("4246->vlan_vid" in f or "vlan_vid=0x1096" in f for f in flows):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("VLAN 150 not in both pods' flows")
    assert dist.vms["web1"].cmd("ping -c 2 -W 1 " + dist.vms["web3"].IP()).count(" 0% packet loss")


def test_a_dead_controller_process_costs_no_traffic_and_reconciles_on_return(dist):
    web1 = dist.vms["web1"]
    # within p1's pod, and across the shared fabric to p2's pod (600 probes: past
    # the restarted process's full reconciliation)
    streams = {peer: lab.PingStream(web1, dist.vms[peer], interval=0.01, count=600)
               for peer in ("web3", "web5")}
    time.sleep(0.5)
    p1 = dist.controllers[0]
    os.kill(p1.process.pid, signal.SIGKILL)
    p1.process.wait(timeout=5)
    time.sleep(1.5)
    again = dist.restart_controller(1)
    assert again.wait_for_log("store reconcile: 4 bindings restored, 0 stale rows released",
                              timeout=20), again.log()[-3000:]
    assert "restored shared uplink" in again.log()
    for peer, stream in streams.items():
        sent, received = stream.result(timeout=30)
        assert sent >= 500 and received == sent, (peer, sent, received)
    owners = _owners(dist.bindings())
    assert [owners[dist.vms[n].MAC()][0] for n in ("web1", "db2", "web3", "mgmt4")] == \
        ["p1"] * 4


def test_a_vm_that_left_a_dead_process_stays_with_its_new_owner(dist):
    mgmt4 = dist.vms["mgmt4"]
    p1 = dist.controllers[0]
    os.kill(p1.process.pid, signal.SIGKILL)
    p1.process.wait(timeout=5)
    # the VM moves to p2's server while p1 is down: p2 takes over a row it could not see
    live_migrate(dist.net, mgmt4, dist.switches["s22"])
    rows = dist.wait_for_store(lambda rows: _owners(rows)[mgmt4.MAC()][0] == "p2")
    assert _owners(rows)[mgmt4.MAC()] == ("p2", dist.switches["s22"])
    again = dist.restart_controller(1)
    assert again.wait_for_log(f"VM {mgmt4.MAC()} is another process's now; deprovisioned "
                              "here", timeout=20), again.log()[-3000:]
    _wait_until(lambda: mgmt4.MAC() not in lab.dump_flows(dist.switches["s12"]),
                "p1 removed the flows of the VM that left while it was down")
    time.sleep(1.0)
    assert _owners(dist.bindings())[mgmt4.MAC()] == ("p2", dist.switches["s22"])


def test_a_store_member_dying_during_provisioning_loses_no_binding(dist):
    server = dist.net.get(dist.switches["s22"])
    new_vms = [lab.add_vm(dist.net, server, f"{dist.prefix}n{i}", f"00:fa:00:00:01:{i:02x}",
                          f"10.0.100.{100 + i}/16") for i in range(1, 7)]
    leader = dist.store.leader()
    for number, vm in enumerate(new_vms):
        if number == 3:
            dist.store.kill_member(leader, signal.SIGKILL)
        lab.announce(vm)
    try:
        rows = dist.wait_for_store(lambda rows: all(
            _owners(rows).get(vm.MAC(), ("", ""))[0] == "p2" for vm in new_vms), timeout=20)
        owners = _owners(rows)
        assert all(owners[vm.MAC()] == ("p2", dist.switches["s22"]) for vm in new_vms), owners
        assert len(rows) == len(dist.vms) + len(new_vms)
    finally:
        dist.store.start_member(leader)


def test_a_vm_moving_to_another_process_without_notice_is_claimed_there(dist):
    _move_probed(dist, "s21", "from p1 to p2 without a notice")
    rows = dist.wait_for_store(lambda rows: _owners(rows)[WEB1_MAC][0] == "p2")
    assert _owners(rows)[WEB1_MAC] == ("p2", dist.switches["s21"])
    _wait_until(lambda: WEB1_MAC not in lab.dump_flows(dist.switches["s11"]),
                "the source process cleaned up web1's flows on s11")
    assert WEB1_MAC in lab.dump_flows(dist.switches["s21"])
    # web1 now talks to its new pod's web VM
    assert " 0% packet loss" in dist.vms["web1"].cmd(
        "ping -c 2 -W 1 " + dist.vms["web5"].IP())


def test_a_migration_notice_names_the_destination_process_in_the_store(dist):
    p2 = dist.controllers[1]
    status, answer = send(p2.rest_target(),
                          {"event": "migrating", "mac": WEB1_MAC,
                           "server": dist.switches["s12"]})
    assert status == 200, answer
    assert "process p1" in answer["acknowledged"]
    rows = dist.wait_for_store(lambda rows: any(
        r["mac"] == WEB1_MAC and r["requested_owner"] == "p1" for r in rows))
    row = [r for r in rows if r["mac"] == WEB1_MAC][0]
    assert row["owner"] == "p2" and row["state"] == "migrating"
    assert row["requested_server"] == dist.switches["s12"]
    p1 = dist.controllers[0]
    assert p1.wait_for_log(f"hand-off of VM {WEB1_MAC} to server {dist.switches['s12']}")
    _move_probed(dist, "s12", "from p2 to p1 with a notice")
    rows = dist.wait_for_store(lambda rows: _owners(rows)[WEB1_MAC][0] == "p1")
    assert _owners(rows)[WEB1_MAC] == ("p1", dist.switches["s12"])
    _wait_until(lambda: WEB1_MAC not in lab.dump_flows(dist.switches["s21"]),
                "the source process cleaned up web1's flows on s21")
    assert " 0% packet loss" in dist.vms["web1"].cmd(
        "ping -c 2 -W 1 " + dist.vms["web3"].IP())


#: Probes (10 ms apart) a peer may lose while a VM moves between processes. The
#: benchmark (benchmarks.store_migration) reports the real figures. Measured
#: (3 runs of this module, 2 moves, 2 peers each; 2026-12-03, loaded machine):
#: 1-4 lost. Bound: 3x the worst. It fails when the source keeps delivering to
#: the VM's old port until it goes away (~800 ms, 80 probes).
LOSS_BOUND = 12     # 3 x 4


def _move_probed(dist, destination, how):
    """Live-migrate web1 to ``destination`` while a peer in each pod pings it every 10 ms."""
    web1 = dist.vms["web1"]
    streams = {peer: lab.PingStream(dist.vms[peer], web1, interval=0.01, count=300)
               for peer in ("web3", "web7")}   # one peer in each pod
    started = time.time()
    time.sleep(0.5)
    moved = live_migrate(dist.net, web1, dist.switches[destination])
    _keep_fabric_table(dist, f"{how}: after the move (streams started at {started:.6f}, "
                             f"moved {moved}, wall-monotonic {time.time() - time.monotonic():.6f})")
    lost = {}
    for peer, stream in streams.items():
        _keep_stream(stream, f"{how} {peer}")
        sent, received = stream.result(timeout=30)
        lost[peer] = (sent, sent - received)
    print(f"probes lost while web1 moved {how}: {lost}")
    assert all(sent >= 250 and lost_count <= LOSS_BOUND
               for sent, lost_count in lost.values()), lost


def _keep_fabric_table(dist, what) -> None:
    """Diagnostics (DYNPROV_DIST_LOGS): the shared fabric's learnt MACs, with ``what``."""
    keep = os.environ.get("DYNPROV_DIST_LOGS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(keep, "fabric.txt"), "a") as out:
            for switch in dist.net.switches:
                if dist.pod_of(switch.name) is None:
                    table = switch.cmd("ovs-appctl fdb/show", switch.name)
                    out.write(f"{time.time():.6f} {what}\n{table}\n")


def _keep_stream(stream, what) -> None:
    """Diagnostics (DYNPROV_DIST_LOGS): a ping stream's output, once it ended."""
    keep = os.environ.get("DYNPROV_DIST_LOGS")
    if not keep:
        return
    deadline = time.monotonic() + 30
    while "transmitted" not in stream.output.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    with open(os.path.join(keep, "pings.txt"), "a") as out:
        out.write(f"== {what}\n{stream.output.read_text()}\n")


def _wait_until(condition, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not so after {timeout} s: {what}")
        time.sleep(0.1)


def _fabric_port_toward(dist, pod: int) -> tuple:
    """(fabric switch, its port number toward the access switch of process ``pod``)."""
    fabric = next(s for s in dist.net.switches if dist.pod_of(s.name) is None)
    access = dist.net.get(dist.switches[f"a{pod}"])
    link = dist.net.linksBetween(fabric, access)[0]
    intf = link.intf1 if link.intf1.node is fabric else link.intf2
    return fabric, fabric.ports[intf]


def _fabric_ports(fabric, mac: str) -> dict:
    """VLAN -> the port where the shared fabric has learnt ``mac`` on it."""
    ports = {}
    for line in fabric.cmd("ovs-appctl fdb/show", fabric.name).splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2].lower() == mac:
            ports[int(fields[1])] = int(fields[0])
    return ports


def test_a_stale_frame_from_the_pod_a_vm_left_is_undone_by_the_announcement_rounds(dist):
    """After web1 moves to p2's pod, one frame from its MAC enters the learning fabric
    from p1's pod (as a frame it sent at its old port just before the switchover
    can): the fabric learns the old way back, and p1's VMs would lose every frame
    to web1 while web1 talks only inside its pod. p2 announces web1 again in the
    next rounds (within about 1 s of its arrival): the fabric follows it back."""
    p2, web1 = dist.controllers[1], dist.vms["web1"]
    announced = f"VM {WEB1_MAC} announced to the shared fabric by"
    before = p2.log().count(announced)
    live_migrate(dist.net, web1, dist.switches["s22"], announce="garp",
                 wait_announcements=False)
    assert p2.wait_for_log(announced, timeout=5, count=before + 1)
    fabric, toward_p1 = _fabric_port_toward(dist, 1)
    _, toward_p2 = _fabric_port_toward(dist, 2)
    _wait_until(lambda: toward_p2 in _fabric_ports(fabric, WEB1_MAC).values(),
                "the fabric learnt web1 behind p2's pod", timeout=2)
    vlan = next(v for v, port in _fabric_ports(fabric, WEB1_MAC).items() if port == toward_p2)
    stale = lldp.build_announcement(WEB1_MAC, vlan).hex()
    lab.run_ofctl("packet-out", fabric.name, f"in_port={toward_p1},packet={stale},"
                                             "actions=NORMAL")
    # (it takes at once, as a scratch bridge shows; the next round may already have
    # undone it by the time the table could be read, so that is not asserted)
    _wait_until(lambda: _fabric_ports(fabric, WEB1_MAC)[vlan] == toward_p2,
                "the announcement rounds moved web1 back behind p2's pod", timeout=2)
    assert " 0% packet loss" in dist.vms["web3"].cmd(f"ping -c 2 -W 1 {web1.IP()}")


def test_no_process_logged_a_store_client_error(dist):
    for controller in dist.controllers:
        log = controller.log()
        assert "client error" not in log and "Traceback" not in log, log[-3000:]
