"""Live migration across access switches on real OVS, probed at 1 ms.

Default library and topology with the edge device: web1 moves between s11
(access a1) and s21 (access a2) while web5 and the outside host probe it.
"""

import re
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send
from ryu_apps.core.pipeline import BINDING_METER_BASE
from ryu_apps.lab.migration import live_migrate
from tests.support.datacenter import migration_datacenter

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

#: Probes lost at 1 ms that a migration may cost, the VM's own switchover
#: included (docs/migration.md), per prober. This module runs alone (serial phase);
#: measured so, 5 runs of it (10 figures per case, `-s` prints each; 2026-12-05
#: 03:15-03:17 UTC, load 0.8-1.1, with the OVSDB watcher woken by the server): with a
#: notice 0-2 lost, once 15 and 17; without one (qemu RARPs, one gratuitous ARP, no
#: announcement) 0-1, once each 9-13 and 19-20: a 10-20 ms stall of the userspace
#: datapath now and then, the destination being pre-provisioned. Bound: 3x the worst
#: (the bounds of 2026-12-03, 45 and 800, were set beside six other test runs).
MAX_LOST_WITH_NOTICE = 51     # 3 x 17
MAX_LOST_PROBES = 60          # 3 x 20
#: Seconds between the destination port's creation and the switchover in the
#: first-announcement test: a live migration's memory copy (seconds in real moves;
#: 0.2 s as in the migration benchmark and the sweep), so the test is about the
#: pre-provisioned path. A VM that resumes before its row is read is the next test's.
PRECOPY_S = 0.2


@pytest.fixture(scope="module")
def dc():
    with migration_datacenter("g", ovsdb=True) as running:
        yield running


def _binding_cookies(bridge, mac):
    return {m for m in re.findall(r"cookie=(0x[0-9a-f]+).*dl_src=" + mac,
                                  lab.dump_flows(bridge))}


def _entries_of(bridge, cookie, binding_id):
    flows = [line for line in lab.dump_flows(bridge).splitlines() if f"cookie={cookie}," in line]
    meters = [line for line in lab.run_ofctl("dump-meters", bridge).splitlines()
              if line.startswith(f"meter={BINDING_METER_BASE + binding_id} ")]
    return flows, meters


def _migrate(dc, source, destination, notify, announce):
    controller, net, vms, switches = dc
    web1 = vms["web1"]
    old_cookie = next(iter(_binding_cookies(switches[source].name, web1.MAC())))
    old_flows, _ = _entries_of(switches[source].name, old_cookie, int(old_cookie, 16) & 0xFFFFFF)
    probers = [lab.ProberRun(vms["web5"], web1), lab.ProberRun(vms["out1"], web1)]
    time.sleep(0.3)

    def tell():
        status, answer = send(controller.rest_target(),
                              {"event": "migrating", "mac": web1.MAC(),
                               "server": switches[destination].name})
        assert status == 200, answer

    live_migrate(net, web1, switches[destination], announce=announce,
                 before_switchover=tell if notify else None)
    time.sleep(0.4 if announce == "qemu" else 1.2)
    reports = [p.stop() for p in probers]
    for report in reports:
        print(f"\n{source}->{destination} notify={notify} announce={announce}: "
              f"{report.summary()}")
        assert report.recovered, controller.log_tail()
        assert report.lost <= (MAX_LOST_WITH_NOTICE if notify else MAX_LOST_PROBES)
    # The source holds nothing of the VM any more ...
    flows, meters = _entries_of(switches[source].name, old_cookie,
                                int(old_cookie, 16) & 0xFFFFFF)
    assert flows == [] and meters == []
    assert web1.MAC() not in lab.dump_flows(switches[source].name)
    # ... and the destination holds its whole template.
    new_cookie = next(iter(_binding_cookies(switches[destination].name, web1.MAC())))
    new_flows, new_meters = _entries_of(switches[destination].name, new_cookie,
                                        int(new_cookie, 16) & 0xFFFFFF)
    assert len(new_flows) >= len(old_flows) - 2 and new_meters
    return reports


def test_migration_with_a_notification(dc):
    _migrate(dc, "s11", "s21", notify=True, announce="qemu")


def test_migration_without_a_notification_hypervisor_style(dc):
    _migrate(dc, "s21", "s11", notify=False, announce="qemu")


def test_silent_move_with_one_gratuitous_arp(dc):
    _migrate(dc, "s11", "s21", notify=False, announce="garp")


def test_move_with_no_announcement_recovers(dc):
    _migrate(dc, "s21", "s11", notify=False, announce="none")


def test_the_first_announcement_at_the_destination_is_not_lost(dc):
    """One gratuitous ARP, sent the instant the new interface is up, reaches a peer."""
    _first_announcement_reaches_a_peer(dc, attached_mac=True)


def test_an_announcement_before_the_hypervisors_row_is_not_lost(dc):
    """The destination port's OVSDB row names no VM (a hypervisor that writes it late).
    Whether the VM's GARP or its old port's loss reaches the controller first is up to
    OVS. GARP first: it is a conflict with the old port's row, refused and held, and
    re-sent when the old port's loss settles the move. Without the hold it was lost:
    this test failed 3 of 8 runs alone then, and passed 8 of 8 with it (2026-12-05)."""
    _first_announcement_reaches_a_peer(dc, attached_mac=False)


def _first_announcement_reaches_a_peer(dc, attached_mac):
    controller, net, vms, switches = dc
    web1, web5 = vms["web1"], vms["web5"]
    source = "s11" if web1.defaultIntf().link.intf2.node is switches["s11"] else "s21"
    destination = "s21" if source == "s11" else "s11"
    capture = f"/tmp/dynprov-garp-{web5.name}.txt"
    # tcpdump is known to listen before the move and outlives it (it stops at its first
    # capture). It had a 5 s limit from its start and a fixed 1 s to start listening:
    # twice in session 11 its capture was empty, which a slow start or a slow move
    # explains as well as a lost announcement; now only the last can fail the test.
    tcpdump = web5.cmd(f"timeout 60 tcpdump -l -n -i {web5.defaultIntf()} -c 1 "
                       f"'arp and ether src {web1.MAC()}' > {capture} 2>{capture}.err "
                       "& echo $!").split()[-1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "listening" not in web5.cmd(f"cat {capture}.err"):
        time.sleep(0.1)
    try:
        live_migrate(net, web1, switches[destination], announce="garp",
                     before_switchover=lambda: time.sleep(PRECOPY_S),
                     attached_mac=attached_mac)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "ARP" not in web5.cmd(f"cat {capture}"):
            time.sleep(0.1)
        assert f"Request who-has {web1.IP()}" in web5.cmd(f"cat {capture}"), \
            controller.log_tail()
    finally:
        web5.cmd(f"kill {tcpdump} 2>/dev/null; rm -f {capture}.err")
