"""VM identity under attack on real OVS: the hypervisor's word, and the liveness probe.

Two small controllers, each on one access switch and two servers s11 and s12:

- identity policy ``auto`` with the machine's OVSDB watched, where the victim's
  port carries ``external_ids:attached-mac``: a spoofer on another server is
  refused at once, without probing the victim. That OVSDB is every lab's on the
  machine, so its VMs carry MACs only this run uses (``run_mac``);
- identity policy ``packets`` with a short ``move_hold`` (s11: web1 (2), db2 (3);
  s12: web3 (2), mgmt4 (3)): a VM that went silent
  at its old port (the port still there) moves to where its MAC speaks, but only
  after the liveness probe went unanswered for the hold time.

The same attack without OVSDB (``auto``), and migrations under the guard, are in
test_attacks.py.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.core.identity import PROBE_MAC
from tests.integration.attack_support import (
    QUIET_LOSS_BOUND,
    Capture,
    binding,
    bound_port,
    hosts_by_name,
    log_lines,
    port_of,
    run_mac,
    spoof,
    switches_by_name,
)
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

#: Seconds the old location must stay silent (``move_hold``): short, so the test is.
MOVE_HOLD = 1.5


def _small_datacenter(letter: str, seed: int, vms: int = 2, **options):
    prefix = letter + unique_prefix()[1:]
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, prefix, access=1, servers=2,
                                       vms=vms, dpid_base=((os.getpid() + seed) % 4096) << 24,
                                       **options)
    return controller, net, prefix


@pytest.fixture(scope="module")
def watched():
    """``auto`` policy, the local OVSDB watched; no VMs yet (the test plugs its own)."""
    controller, net, prefix = _small_datacenter("w", 11, vms=0, ovsdb=True)
    yield controller, net, hosts_by_name(net, prefix), switches_by_name(net, prefix), prefix
    stop_datacenter(controller, net)


@pytest.fixture(scope="module")
def guarded():
    """``packets`` policy, a short move_hold."""
    controller, net, prefix = _small_datacenter(
        "p", 13, extra_options=f"identity_policy = packets\nmove_hold = {MOVE_HOLD}\n")
    yield controller, net, hosts_by_name(net, prefix), switches_by_name(net, prefix), prefix
    stop_datacenter(controller, net)


def _interface_on_bridge(host) -> str:
    intf = host.defaultIntf()
    return (intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1).name


def test_a_spoofed_garp_is_refused_where_ovsdb_names_the_victim(watched):
    controller, net, _, sw, prefix = watched
    victim = lab.add_vm(net, sw["s11"], f"{prefix}vic", run_mac(0x00FA, 11), "10.0.100.50/16")
    peer = lab.add_vm(net, sw["s12"], f"{prefix}peer", run_mac(0x00FA, 12), "10.0.100.51/16")
    for vm in (victim, peer):
        lab.announce(vm)
        assert controller.wait_for_log(f"provisioned VM {vm.MAC()}", timeout=10), \
            controller.log()[-2000:]
    victim_place = bound_port(controller, victim.MAC())
    subprocess.run(["ovs-vsctl", "set", "Interface", _interface_on_bridge(victim),
                    f'external_ids:attached-mac="{victim.MAC()}"'], check=True)
    server, port = port_of(victim)
    assert controller.wait_for_log(f"VM {victim.MAC()} attached to switch {server.dpid} "
                                   f"port {port}", timeout=10), controller.log()[-2000:]
    attacker = lab.add_vm(net, sw["s12"], f"{prefix}spy", run_mac(0x00FA, 13),
                          "10.0.100.101/16")
    _, attacker_port = port_of(attacker)
    baseline = lab.ProberRun(peer, victim)
    time.sleep(3.0)
    baseline = baseline.stop()
    capture = Capture(attacker)
    probes_to_victim = Capture(victim, f"ether src {PROBE_MAC}")
    prober = lab.ProberRun(peer, victim)
    try:
        sent = spoof(attacker, victim, peer, seconds=3.0)
        time.sleep(1.0)   # a quiet tail: recovery from any stall shows
    finally:
        report = prober.stop()
        frames = capture.stop()
        liveness = probes_to_victim.stop()
    print(f"\nOVSDB watched: baseline {baseline.summary()}\nduring {sent} spoofed frames: "
          f"{report.summary()}")
    assert report.recovered and report.lost <= max(QUIET_LOSS_BOUND, 2 * baseline.lost), \
        report.summary()
    to_victim = [f for f in frames if f[:6] == bytes.fromhex(victim.MAC().replace(":", ""))]
    assert to_victim == [], f"the attacker captured {len(to_victim)} frames to the victim"
    assert bound_port(controller, victim.MAC()) == victim_place
    refused = log_lines(controller, f"quarantined VM MAC {victim.MAC()} on switch "
                        f"{sw['s12'].dpid} port {attacker_port}",
                        "the hypervisor (OVSDB attached-mac) places VM")
    assert len(refused) == 1, controller.log()[-3000:]
    assert liveness == [], "the hypervisor's word needs no liveness probe"
    assert "raised" not in controller.log()


def test_a_vm_silent_at_its_old_port_moves_after_the_hold(guarded):
    controller, net, vms, sw, prefix = guarded
    old, peer = vms["web1"], vms["web3"]
    old_place = bound_port(controller, old.MAC())
    status, security = controller.rest("GET", "/dynprov/security", role="reader")
    assert security["identity_policy"] == "packets"
    # The VM stops answering at its old port, which stays up (a paused or hung guest).
    old.cmd(f"ip link set dev {old.defaultIntf()} arp off")
    link_state = subprocess.run(["ovs-vsctl", "get", "Interface", _interface_on_bridge(old),
                                 "link_state"], capture_output=True, text=True).stdout.strip()
    assert link_state == "up"
    probes = Capture(old, f"ether src {PROBE_MAC}")
    # Its MAC and IP speak from another server (the guest resumed there).
    new = lab.add_vm(net, sw["s12"], f"{prefix}web1b", old.MAC(), f"{old.IP()}/16")
    server, port = port_of(new)
    started = time.time()
    lab.announce(new)
    moved = f"VM {old.MAC()} moved to {server.name} port {port}: silent"
    try:
        assert controller.wait_for_log(moved, timeout=MOVE_HOLD + 5), controller.log()[-3000:]
    finally:
        asked = probes.stop()
    after = binding(controller, old.MAC())
    held = after["since_unix"] - started
    print(f"\nmove accepted {held:.2f} s after the first frame at the new port "
          f"(move_hold {MOVE_HOLD} s); liveness probes seen at the old port: {len(asked)}")
    assert log_lines(controller, f"quarantined VM MAC {old.MAC()} on switch {server.dpid} "
                     f"port {port}", "conflict, not a move")
    assert (after["server"]["dpid"], after["server"]["port"]) == (server.dpid, port)
    assert (server.dpid, port) != old_place
    assert held >= MOVE_HOLD, "accepted before the hold time"
    assert asked, "the old location was not probed"
    assert after["ip"] == old.IP(), "the bound IP follows an accepted move"
    prober = lab.ProberRun(peer, new)
    time.sleep(1.0)
    report = prober.stop()
    assert report.answered > 0 and report.recovered, report.summary()
