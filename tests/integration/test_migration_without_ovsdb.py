"""Live migration across access switches on real OVS with the controller NOT watching
the servers' OVSDB, probed at 1 ms (docs/migration.md, detection modes).

(a) A migration notice alone pre-provisions the destination: the hypervisor's new
    port is picked without OVSDB, the VM's first frame there is forwarded at once
    (a peer receives it) and the move costs about what it costs with OVSDB watched.
(b) A move with no announcement at all recovers by the controller's probe: an ARP
    request for the VM's address out of the port that came up, answered by the VM.
"""

import time

import pytest

from ryu_apps.cli.notify import send
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.migration import live_migrate
from tests.support.datacenter import migration_datacenter, reachable

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

#: Probes lost at 1 ms per prober at the move (:func:`_lost_at_move`). This module runs
#: alone (serial phase); measured so, 5 runs (10 figures per case, `-s` prints each;
#: 2026-12-05 03:15-03:17 UTC, load 0.8-1.1): notice only, hypervisor-style: 0-2 lost;
#: no announcement, found by the probe: 13-15. Pre-provisioned moves of
#: test_migration.py in the same runs met 10-20 ms stalls of the userspace datapath now
#: and then. Bounds: the notice 3x 20 (the worst stall seen on a pre-provisioned move);
#: the probe 3x 15. (The bounds of 2026-12-04, 2,700 and 1,900, were set beside four
#: other helpers' tests at load 5-6, before this module ran alone.) What fails when
#: the mechanisms fail is asserted apart: the destination's entries before the
#: switchover (notice), the probe's finding and the VM reachable afterwards (probe).
MAX_LOST_NOTICE_ONLY = 60       # 3 x 20
MAX_LOST_PROBE_RECOVERY = 45    # 3 x 15
#: How long after the old port went a loss run still counts as the move's.
MOVE_WINDOW_NS = 300_000_000
#: How long before its creation was stamped the destination port was being added
#: (an ovs-vsctl add-port took up to 300 ms under that load).
PORT_CREATION_NS = 500_000_000


@pytest.fixture(scope="module")
def dc():
    with migration_datacenter("n", ovsdb=False) as running:
        yield running


def _where(dc, vm_name):
    """(source, destination) server names for moving the VM across access switches."""
    _, _, vms, switches = dc
    on_s11 = vms[vm_name].defaultIntf().link.intf2.node is switches["s11"]
    return ("s11", "s21") if on_s11 else ("s21", "s11")


def _tell(dc, destination, seen=None):
    """The hook that sends the notice once the destination port exists; with ``seen``
    (a list), it appends the destination bridge's flows for the VM's MAC as the
    notice's answer left them (the answer comes after the switches confirmed)."""
    controller, _, vms, switches = dc
    mac = vms["web1"].MAC()

    def tell():
        status, answer = send(controller.rest_target(),
                              {"event": "migrating", "mac": mac,
                               "server": switches[destination].name})
        assert status == 200, answer
        if seen is not None:
            seen.extend(line for line in lab.dump_flows(switches[destination].name)
                        .splitlines() if f"dl_src={mac}" in line)
    return tell


def _move(dc, notify, announce, settle, seen=None):
    controller, net, vms, switches = dc
    web1 = vms["web1"]
    source, destination = _where(dc, "web1")
    probers = [lab.ProberRun(vms["web5"], web1), lab.ProberRun(vms["out1"], web1)]
    time.sleep(0.3)
    times = live_migrate(net, web1, switches[destination], announce=announce,
                         before_switchover=_tell(dc, destination, seen) if notify else None)
    time.sleep(settle)
    reports = [p.stop() for p in probers]
    for report in reports:
        print(f"\nno OVSDB {source}->{destination} notify={notify} announce={announce}: "
              f"{report.summary()}; lost at the move {_lost_at_move(report, times)}")
    return reports, times


def _lost_at_move(report, times) -> int:
    """Probes lost in the loss runs that began from the destination port's creation
    (adding a port to a userspace bridge stalls its datapath for a moment; the
    notice follows the creation) until shortly after the old port went: the move's cost,
    without the datapath stalls elsewhere in the run (docs/benchmarks-history.md: 100-590 ms
    with no move at all)."""
    start = times.port_created_ns - PORT_CREATION_NS
    end = max(times.source_port_removed_ns, times.old_deleted_ns) + MOVE_WINDOW_NS
    return sum(run.count for run in report.runs if start <= run.start_ns <= end)


def test_a_notice_alone_pre_provisions_and_the_move_costs_little(dc):
    controller, _, vms, _ = dc
    mark, seen = len(controller.log()), []
    reports, times = _move(dc, notify=True, announce="qemu", settle=1.5, seen=seen)
    log = controller.log()[mark:]
    assert f"pre-provisioned VM {vms['web1'].MAC()}" in log and "no OVSDB row" in log, \
        controller.log_tail()
    # before the VM switched over, its destination port was ready: its classification
    # (which copies its first frame to the controller) and the rest of its entries
    assert any("CONTROLLER" in line for line in seen), seen
    assert all(reachable(vms[peer], vms["web1"]) for peer in ("web5", "out1")), \
        controller.log_tail()
    for report in reports:
        assert _lost_at_move(report, times) <= MAX_LOST_NOTICE_ONLY, report.summary()


def test_with_a_notice_alone_the_first_frame_at_the_destination_is_not_lost(dc):
    """One gratuitous ARP, sent the instant the new interface is up, reaches a peer."""
    controller, net, vms, switches = dc
    web1, web5 = vms["web1"], vms["web5"]
    _, destination = _where(dc, "web1")
    capture = f"/tmp/dynprov-notice-garp-{web5.name}.txt"
    # every ARP from web1 (it also revalidates its neighbours now and then): the
    # gratuitous one asks for its own address
    pid = web5.cmd(f"timeout 60 tcpdump -l -n -i {web5.defaultIntf()} "
                   f"'arp and ether src {web1.MAC()}' > {capture} 2>/dev/null & echo $!")
    garp = f"Request who-has {web1.IP()}"
    try:
        time.sleep(1.0)   # tcpdump is listening
        live_migrate(net, web1, switches[destination], announce="garp",
                     before_switchover=_tell(dc, destination))
        deadline = time.monotonic() + 15   # the loaded machine's datapath stalls for seconds
        while time.monotonic() < deadline and garp not in web5.cmd(f"cat {capture}"):
            time.sleep(0.1)
        assert garp in web5.cmd(f"cat {capture}"), controller.log_tail()
    finally:
        web5.cmd(f"kill {pid.strip().split()[-1]}")


def test_a_move_with_no_announcement_recovers_by_the_controllers_probe(dc):
    controller, _, vms, _ = dc
    mark = len(controller.log())
    reports, times = _move(dc, notify=False, announce="none", settle=2.5)
    assert f"VM {vms['web1'].MAC()} found by the probe" in controller.log()[mark:], \
        controller.log_tail()
    assert all(reachable(vms[peer], vms["web1"]) for peer in ("web5", "out1")), \
        controller.log_tail()
    for report in reports:
        assert _lost_at_move(report, times) <= MAX_LOST_PROBE_RECOVERY, report.summary()
