"""The attacks of issue 11, replayed from inside VMs on real OVS and Mininet: each fails.

One controller (identity policy ``auto``, no OVSDB watched, the default
library) and the datacenter topology with the edge device::

    s11: web1 (2), db2 (3)   s12: web3 (2), mgmt4 (3)      (access a1)
    s21: web5 (2), db6 (3)   s22: web7 (2), mgmt8 (3)      (access a2)
    e1: out1                 f1: the fabric

Attackers are a provisioned VM (web3, VLAN 100) and fresh VMs that never
announce themselves, plugged into other servers; the spoofing victim, which
then migrates, is a web VM on s11 with a MAC only this run uses. The tests run
in file order; the last two restart the engine (a handler exception) and stop
the controller. docs/attack-tests.md has the figures the bounds come from.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send
from ryu_apps.lab.demo import ping
from ryu_apps.lab.migration import live_migrate
from ryu_apps.lab.vmtools import flow_monitor
from tests.integration.attack_support import (
    QUIET_LOSS_BOUND,
    Capture,
    bound_port,
    controller_links,
    flow_packets,
    flows,
    forge,
    hosts_by_name,
    is_quarantine,
    log_lines,
    marked,
    not_quarantine,
    port_of,
    provisioning_seconds,
    real_links,
    run_mac,
    spoof,
    switches_by_name,
    wait_for_links,
)
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix
from tests.support.datacenter import reachable

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

PREFIX = "k" + unique_prefix()[1:]
#: A web VM plugged in by the handler-exception test: packet-in handling raises
#: for its frames (``fault_injection_mac``).
FAULTY_MAC = "00:fa:00:00:0f:01"
#: Seconds from a new VM's announcement command (starting the announcer in the
#: VM, ~70 ms, and polling the log every 0.1 s included) to its "provisioned" log
#: line while or after an attack ran. Measured: 60-310 ms in 6 runs with other
#: tests loading both cores. Bound: 4 s, ~13x the worst (the issue's failure:
#: 5.5 s during a tagged storm; no VM at all within 15 s after a bad LLDP port).
PROVISION_BOUND_S = 4.0
#: Seconds to wait for the controller's next LLDP probe on a port: three rounds of
#: ``lldp_interval`` (1 s); one is enough on a quiet machine.
PROBE_ROUNDS_S = 3.0


def _between(frame: bytes, a, b) -> bool:
    """Whether a captured frame is an IPv4 packet between VMs ``a`` and ``b`` (tagged or
    not). Broadcast ARP requests reach every VM of a VLAN by design and are not counted."""
    offset = 12
    while frame[offset:offset + 2] in (b"\x81\x00", b"\x88\xa8"):
        offset += 4
    if frame[offset:offset + 2] != b"\x08\x00":
        return False
    ends = {frame[offset + 14:offset + 18], frame[offset + 18:offset + 22]}
    return ends == {socket.inet_aton(a.IP()), socket.inet_aton(b.IP())}


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(
        lab.DEFAULT_TEMPLATES, PREFIX, edge=1,
        dpid_base=((os.getpid() + 7) % 4096) << 24,
        extra_options=f"fault_injection_mac = {FAULTY_MAC}\n")
    yield controller, net, hosts_by_name(net, PREFIX), switches_by_name(net, PREFIX)
    stop_datacenter(controller, net)


_fresh_numbers = itertools.count(1)


def _fresh_vm(net, server):
    """A web VM that is plugged in but never announces itself (never provisioned)."""
    number = next(_fresh_numbers)
    return lab.add_vm(net, server, f"{PREFIX}x{number}", f"00:fa:00:00:0a:{number:02x}",
                      f"10.0.100.{100 + number}/16")


def _new_vm_is_provisioned(controller, net, server, name: str, number: int) -> float:
    vm = lab.add_vm(net, server, f"{PREFIX}{name}", f"00:fa:00:00:0b:{number:02x}",
                    f"10.0.100.{200 + number}/16")
    seconds = provisioning_seconds(controller, vm, PROVISION_BOUND_S)
    assert seconds is not None, (f"new VM {vm.MAC()} on {server.name} not provisioned "
                                 f"within {PROVISION_BOUND_S} s:\n{controller.log()[-3000:]}")
    print(f"\nnew VM {vm.MAC()} on {server.name} provisioned {seconds * 1000:.0f} ms after "
          "its announcement command")
    return seconds


# -- 1. forged LLDP ----------------------------------------------------------------------
def test_forged_lldp_from_vms_changes_no_link_and_captures_nothing(dc):
    controller, net, vms, sw = dc
    wait_for_links(controller, net)
    links = real_links(net)
    transit = {n: flows(s.name) for n, s in sw.items() if not n.startswith("s")}
    servers = {n: flows(s.name, not_quarantine) for n, s in sw.items() if n.startswith("s")}
    a1, a2 = sw["a1"], sw["a2"]
    a1_to_s11 = a1.ports[sw["s11"].connectionsTo(a1)[0][1]]
    a2_to_s21 = a2.ports[sw["s21"].connectionsTo(a2)[0][1]]
    spy = vms["web3"]                                   # provisioned, s12, VLAN 100
    _, spy_port = port_of(spy)
    fresh = {kind: _fresh_vm(net, sw[server]) for kind, server in (
        ("unsigned", "s21"), ("garbage", "s21"), ("bad-port", "s22"), ("self", "s22"),
        ("burst", "s21"), ("capture", "s21"), ("wormhole", "s12"), ("replay", "s22"))}
    time.sleep(1.5)                     # a probe round reaches the fresh VMs' ports
    captures = {vm.name: Capture(vm) for vm in (spy, *fresh.values())}
    victims = {vm.name: Capture(vm) for vm in (vms["mgmt4"], vms["mgmt8"])}
    drops_before = flow_packets(sw["s12"].name, "table=1,", "dl_type=0x88cc", "actions=drop")
    log_start = len(controller.log())
    monitors = flow_monitor.watch([s.name for s in sw.values()], initial=False)
    prober = lab.ProberRun(vms["web5"], vms["out1"])
    sent = {}
    try:
        # The provisioned VM: every forgery, then a burst.
        for args in ((a1.dpid, a1_to_s11, "none"), (a1.dpid, a1_to_s11, "garbage"),
                     (a1.dpid, -5, "none"), (a1.dpid, 0, "none"),
                     (a1.dpid, 99999999999999999999, "none"),
                     (sw["s12"].dpid, 1, "none"), (sw["s12"].dpid, spy_port, "none")):
            sent[args] = forge(spy, "lldp", str(spy.defaultIntf()), "--chassis", args[0],
                               "--port", str(args[1]), "--signature", args[2], "--count", "20")
        spy_burst = forge(spy, "lldp", str(spy.defaultIntf()), "--chassis", a1.dpid,
                          "--port", "9", "--count", "2000", "--rate", "10000")
        # Fresh VMs on other servers, one kind of forgery each.
        forge(fresh["unsigned"], "lldp", str(fresh["unsigned"].defaultIntf()), "--chassis",
              a2.dpid, "--port", str(a2_to_s21), "--count", "20")
        forge(fresh["garbage"], "lldp", str(fresh["garbage"].defaultIntf()), "--chassis",
              a2.dpid, "--port", str(a2_to_s21), "--signature", "garbage", "--count", "20")
        for port in ("-5", "0", "99999999999999999999"):
            forge(fresh["bad-port"], "lldp", str(fresh["bad-port"].defaultIntf()),
                  "--chassis", a2.dpid, "--port", port, "--count", "5")
        self_server, self_port = port_of(fresh["self"])
        forge(fresh["self"], "lldp", str(fresh["self"].defaultIntf()), "--chassis",
              self_server.dpid, "--port", str(self_port), "--count", "5")
        fresh_burst = forge(fresh["burst"], "lldp", str(fresh["burst"].defaultIntf()),
                            "--chassis", a2.dpid, "--port", "9", "--count", "2000",
                            "--rate", "10000")
        # Real probes, signed by the controller: relayed to another server (a wormhole)
        # and replayed on the port they came out of (a signed self-link), well within
        # their 10 s of validity.
        genuine = Capture(fresh["capture"], "ether proto 0x88cc")
        own_probe = Capture(fresh["replay"], "ether proto 0x88cc")
        for capture in (genuine, own_probe):     # a probe round (lldp_interval 1 s)
            capture.wait_for_frame(PROBE_ROUNDS_S)
        relayed = genuine.stop(keep=True)
        mine = own_probe.stop(keep=True)
        assert relayed and mine, "the controller probes ports without a VM"
        for vm, capture in ((fresh["wormhole"], genuine), (fresh["replay"], own_probe)):
            forge(vm, "replay", str(vm.defaultIntf()), "--pcap", str(capture.file),
                  "--count", "3")
            capture.discard()
        # VLAN 300 (management) frames injected by a VLAN 100 VM.
        for target in (vms["mgmt4"], vms["mgmt8"]):
            for source in (spy, fresh["unsigned"]):
                forge(source, "tagged", str(source.defaultIntf()), "--vlans", "300",
                      "--dst-mac", target.MAC(), "--dst-ip", target.IP(), "--count", "20")
        time.sleep(2.5)                 # two probe rounds: what the forgeries changed shows
    finally:
        report = prober.stop()
        changes = flow_monitor.stop_all(monitors)
        seen = {name: capture.stop() for name, capture in captures.items()}
        injected = {name: capture.stop() for name, capture in victims.items()}
    print(f"\nprober web5 -> out1 during the attack: {report.summary()}")
    print(f"spy web3: {sum(sent.values())} forged frames and a burst of {spy_burst}; "
          f"fresh VM burst {fresh_burst}")
    # No link changed, not even for a moment (a forged link would age out after 4
    # probe rounds), and no flow changed but the ports' quarantine drops.
    assert controller_links(controller) == links
    link_notes = [line for line in controller.log()[log_start:].splitlines()
                  if line.startswith("link ") and " refused: " not in line]
    assert link_notes == [], link_notes
    assert [e.text for e in changes if not is_quarantine(e.text)] == []
    assert [e for e in changes if is_quarantine(e.text)], "the monitors saw the port drops"
    assert {n: flows(s.name) for n, s in sw.items() if not n.startswith("s")} == transit
    assert {n: flows(s.name, not_quarantine)
            for n, s in sw.items() if n.startswith("s")} == servers
    # The attackers captured none of the traffic between web5 and out1, and the
    # traffic flowed.
    assert report.sent > 1000 and report.recovered, report.summary()
    assert report.lost <= QUIET_LOSS_BOUND, report.summary()
    for name, frames in seen.items():
        assert not [f for f in frames if _between(f, vms["web5"], vms["out1"])], name
    # No VLAN 300 frame from a VLAN 100 VM reached a management VM.
    for name, frames in injected.items():
        assert marked(frames) == [], name
    # The provisioned VM's LLDP died in its pipeline, never reaching the controller.
    dropped = flow_packets(sw["s12"].name, "table=1,", "dl_type=0x88cc", "actions=drop") \
        - drops_before
    assert dropped >= spy_burst // 2, (dropped, spy_burst)
    assert log_lines(controller, "LLDP frame", f"port {spy_port} dropped",
                     f"switch {sw['s12'].dpid}") == []
    # Each fresh VM's port: one warning, however many frames it sent.
    for kind in ("unsigned", "garbage", "bad-port", "self", "burst"):
        server, port = port_of(fresh[kind])
        lines = log_lines(controller, f"LLDP frame on switch {server.dpid} port {port} dropped")
        assert len(lines) == 1, (kind, lines)
        reason = {"garbage": "bad signature", "bad-port": "malformed"}.get(kind, "unsigned")
        assert f"dropped: {reason}:" in lines[0], lines[0]
    # Signed probes out of place: refused by the link guard, reported once.
    wormhole = log_lines(controller, "refused: both switches host VMs")
    assert len(wormhole) == 1 and sw["s12"].name in wormhole[0], wormhole
    self_links = log_lines(controller, "refused: self-link")
    assert len(self_links) == 1 and sw["s22"].name in self_links[0], self_links
    status, security = controller.rest("GET", "/dynprov/security", role="reader")
    assert status == 200
    rejected = security["lldp_probes"]["rejected"]
    print(f"security counters: {security['lldp_probes']}, refused {security['links_refused']}")
    assert rejected["unsigned"] >= 3 and rejected["bad signature"] >= 1 \
        and rejected["malformed"] >= 1
    # ~2,070 forged frames from fresh ports reach the controller only through the
    # switch-wide LLDP meter until each port's LLDP drop is in: measured 45-60
    # rejections in all in 5 runs; bound 200, ~3x (unmetered, all would arrive).
    assert sum(rejected.values()) <= 200, rejected
    # Nothing raised, no fresh VM was provisioned, new VMs still are.
    assert "raised" not in controller.log() and "Traceback" not in controller.log()
    for vm in fresh.values():
        assert f"provisioned VM {vm.MAC()}" not in controller.log()
    for number, server in enumerate(("s21", "s22", "s12"), start=1):
        _new_vm_is_provisioned(controller, net, sw[server], f"n{number}", number)


# -- 2. a spoofed GARP from another server -------------------------------------------------
#: The migrations' probers may lose this many probes at 1 ms. Measured with the
#: attackers running, the module alone (as in the serial phase): 2 runs on
#: 2026-12-04 (load 0.5-0.9), 0 with a notice, 17-35 without (the move's own
#: outage); 3 runs on 2026-12-05 (load 0.5-0.8), 0-1 with a notice, 7-19 without.
#: Bound: 3x the worst (was 150, when this module ran beside others).
MIGRATION_LOSS_BOUND = 105     # 3 x 35


@pytest.fixture(scope="module")
def victim(dc):
    """A web VM on s11 with a MAC only this run uses (it is migrated below, and a
    migration writes its MAC into the machine's shared OVSDB)."""
    controller, net, _, sw = dc
    vm = lab.add_vm(net, sw["s11"], f"{PREFIX}vic", run_mac(0x00FA, 1), "10.0.100.50/16")
    vm.cmd(f"ip route add 192.0.2.0/24 dev {vm.defaultIntf()}")   # out1 probes it too
    assert provisioning_seconds(controller, vm, PROVISION_BOUND_S) is not None, \
        controller.log()[-3000:]
    return vm


def test_a_spoofed_garp_from_another_server_moves_nothing(dc, victim):
    controller, net, vms, sw = dc
    peer = vms["web5"]
    victim_place = bound_port(controller, victim.MAC())
    attacker = _fresh_vm(net, sw["s22"])
    _, attacker_port = port_of(attacker)
    baseline = lab.ProberRun(peer, victim)
    time.sleep(3.0)
    baseline = baseline.stop()
    capture = Capture(attacker)
    prober = lab.ProberRun(peer, victim)
    try:
        sent = spoof(attacker, victim, peer, seconds=3.0)
        time.sleep(1.0)   # a quiet tail: recovery from any stall shows
    finally:
        report = prober.stop()
        frames = capture.stop()
    print(f"\nbaseline {peer.name} -> {victim.name}: {baseline.summary()}\n"
          f"during {sent} spoofed frames: {report.summary()}")
    bound = max(QUIET_LOSS_BOUND, 2 * baseline.lost)
    assert report.recovered and report.lost <= bound, report.summary()
    to_victim = [f for f in frames if f[:6] == bytes.fromhex(victim.MAC().replace(":", ""))]
    assert to_victim == [], f"the attacker captured {len(to_victim)} frames to the victim"
    assert bound_port(controller, victim.MAC()) == victim_place
    conflict = log_lines(controller, f"quarantined VM MAC {victim.MAC()} on switch "
                         f"{sw['s22'].dpid} port {attacker_port}", "conflict, not a move")
    assert len(conflict) == 1, controller.log()[-3000:]
    assert log_lines(controller, f"VM {victim.MAC()} answered the liveness probe",
                     "was spoofed")
    status, security = controller.rest("GET", "/dynprov/security", role="reader")
    assert security["identity_policy"] == "auto"
    assert security["moves"]["conflicts"] >= 1 and security["moves"]["refuted"] >= 1
    assert security["moves"]["accepted"] == 0


def _migrate(dc, victim, destination: str, notify: bool) -> None:
    controller, net, vms, sw = dc
    before = bound_port(controller, victim.MAC())
    probers = [lab.ProberRun(vms["web7"], victim), lab.ProberRun(vms["out1"], victim)]

    def tell():
        status, answer = send(controller.rest_target(),
                              {"event": "migrating", "mac": victim.MAC(),
                               "server": sw[destination].name})
        assert status == 200, answer

    try:
        time.sleep(0.3)
        live_migrate(net, victim, sw[destination], announce="qemu",
                     before_switchover=tell if notify else None)
        time.sleep(1.0)
    finally:
        reports = [p.stop() for p in probers]
    for source, report in zip(("web7", "out1"), reports):
        print(f"\n{victim.name} -> {destination} notice={notify}: {report.summary()}")
        assert report.lost <= MIGRATION_LOSS_BOUND, \
            f"{report.summary()}\n{controller.log_tail()}"
        # Recovered: the prober's last probes answered, or, when its run ended inside one
        # of the loaded datapath's stalls (2026-12-04: a notice move's last 105 probes
        # lost, the VM answering again in the next test), the VM answers it afterwards.
        assert report.recovered or reachable(vms[source], victim), \
            f"{report.summary()}\n{controller.log_tail()}"
    after = bound_port(controller, victim.MAC())
    assert after is not None and after != before and after[0] == sw[destination].dpid


def test_a_migration_with_a_notice_still_moves_the_victim(dc, victim):
    _migrate(dc, victim, "s21", notify=True)


def test_a_hypervisor_migration_without_a_notice_still_moves_the_victim(dc, victim):
    """No notice: the VM's first frame on the new port is a conflict until the
    hypervisor deletes the old port, which accepts the move (or, when the old port
    is gone first, that frame provisions it afresh)."""
    _migrate(dc, victim, "s11", notify=False)


# -- 3. a tagged storm from a bound VM port ------------------------------------------------
#: (outer TPID, VLANs outermost first, target, random source MACs) of each storm part.
STORM = (("0x8100", "300", "mgmt4", False),      # into management, same server
         ("0x8100", "100", "web7", False),       # its own VLAN, tagged by itself
         ("0x8100", "300,100", "mgmt8", False),  # QinQ
         ("0x88a8", "100,300", "mgmt8", False),  # 802.1ad outer tag
         ("0x8100", "300", "mgmt4", True))       # a new (management) MAC per frame
STORM_FRAMES, STORM_RATE = 4000, 10000


def test_a_tagged_storm_from_a_bound_vm_reaches_nobody(dc):
    controller, net, vms, sw = dc
    attacker = vms["web3"]                                  # bound, s12, VLAN 100
    server = sw["s12"]
    peers = [vms[name] for name in ("mgmt4", "mgmt8", "web7", "web1")]
    captures = {vm.name: Capture(vm) for vm in peers}
    drop_flows = (("table=0,", "vlan_tci=0x1000/0x1000", "actions=drop"),
                  ("table=1,", "vlan_tci=0x1000/0x1000", "actions=drop"))
    counted_before = sum(flow_packets(server.name, *match) for match in drop_flows)
    log_before = len(controller.log())
    parts = []
    for tpid, vlans, target, random_source in STORM:
        parts.append(
            f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m ryu_apps.lab.vmtools.forge "
            f"tagged {attacker.defaultIntf()} --tpid {tpid} --vlans {vlans} "
            f"--dst-mac {vms[target].MAC()} --dst-ip {vms[target].IP()} "
            f"--count {STORM_FRAMES} --rate {STORM_RATE}"
            + (" --src-prefix 00:fe" if random_source else ""))
    storm_log = f"/tmp/dynprov-storm-{attacker.name}.log"
    attacker.cmd(f"({'; '.join(parts)}) > {storm_log} 2>&1 &")
    try:
        time.sleep(0.8)                                      # the storm is on
        seconds = _new_vm_is_provisioned(controller, net, server, "n4", 4)
        storm_running = attacker.cmd(f"grep -c '^sent' {storm_log}").strip()
        assert int(storm_running or 0) < len(STORM), "the storm ended before the new VM"
        assert lab.wait_for_text(lambda: attacker.cmd(f"cat {storm_log}"), "sent ",
                                 len(STORM), timeout=30), attacker.cmd(f"cat {storm_log}")
    finally:
        frames = {name: capture.stop() for name, capture in captures.items()}
    sent = sum(int(n) for n in re.findall(r"sent (\d+)", attacker.cmd(f"cat {storm_log}")))
    os.unlink(storm_log)
    time.sleep(1.0)                        # OVS pushes datapath counters to flows
    counted = sum(flow_packets(server.name, *match) for match in drop_flows) - counted_before
    print(f"\ntagged storm: {sent} frames sent, {counted} counted by the drop flows; new VM "
          f"on the same server provisioned in {seconds * 1000:.0f} ms meanwhile")
    for name, captured in frames.items():
        assert marked(captured) == [], f"{name} received {len(marked(captured))} storm frames"
    assert counted >= sent // 2, (counted, sent)
    during = controller.log()[log_before:]
    assert "00:fe:d9:" not in during, "a storm frame reached the controller"
    assert during.count("provisioned VM ") == 1 and "raised" not in during


# -- 4. a handler exception ----------------------------------------------------------------
#: ICMP between VMs as their templates say: (source, destination, answered).
PINGS = (("web1", "web7", True), ("web3", "db6", True), ("web5", "db2", True),
         ("web7", "web3", True), ("db2", "web5", True), ("db6", "web1", True),
         ("mgmt4", "mgmt8", True), ("mgmt8", "mgmt4", True), ("out1", "web5", True),
         ("db6", "db2", False), ("mgmt4", "web3", False), ("out1", "db2", False),
         ("web7", "mgmt8", False))


def _pings_follow_the_templates(vms) -> None:
    wrong = [(src, dst, expected) for src, dst, expected in PINGS
             if ping(vms[src], vms[dst], count=2 if expected else 1) != expected]
    assert wrong == [], f"pings not as the templates say: {wrong}"


def test_the_controller_survives_a_handler_exception(dc):
    controller, net, vms, sw = dc
    faulty = lab.add_vm(net, sw["s11"], f"{PREFIX}bad", FAULTY_MAC, "10.0.100.250/16")
    lab.announce(faulty)
    assert controller.wait_for_log("raised; resynchronising", timeout=10), \
        controller.log()[-3000:]
    assert "fault injected for VM " + FAULTY_MAC in controller.log()
    # The engine is rebuilt from the switches: links by LLDP, bindings from the flows
    # read back; deletes wait reconcile_grace (5 s), then every switch is reconciled.
    wait_for_links(controller, net)
    time.sleep(6.0)
    _pings_follow_the_templates(vms)
    # The faulty VM is either provisioned with every flow of its template or absent.
    status, answer = controller.rest("GET", f"/dynprov/bindings/{FAULTY_MAC}/flows",
                                     role="reader")
    if status == 200:
        print(f"\nafter the resync the faulty VM is bound with {len(answer['flows'])} of "
              f"{answer['expected_flows']} flows")
        assert answer["expected_flows"] > 20 and not answer["silent_switches"]
        assert len(answer["flows"]) == answer["expected_flows"], answer
        assert ping(faulty, vms["web5"])
    else:
        assert status == 404, answer
        print("\nafter the resync the faulty VM is not bound")
        for switch in sw.values():
            assert FAULTY_MAC not in lab.dump_flows(switch.name), switch.name
    _new_vm_is_provisioned(controller, net, sw["s22"], "n5", 5)


# -- 5. fail-secure ----------------------------------------------------------------------
def test_with_the_controller_stopped_new_vms_reach_nothing_and_old_ones_keep_talking(dc):
    controller, net, vms, sw = dc
    for switch in sw.values():
        mode = subprocess.run(["ovs-vsctl", "get-fail-mode", switch.name],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert mode == "secure", f"{switch.name}: fail mode {mode!r}"
    baseline = lab.ProberRun(vms["web3"], vms["web7"])
    time.sleep(3.0)
    baseline = baseline.stop()
    tables = {name: flows(switch.name) for name, switch in sw.items()}
    prober = lab.ProberRun(vms["web3"], vms["web7"])
    try:
        time.sleep(0.5)
        controller.stop()
        time.sleep(2.5)
    finally:
        report = prober.stop()
    print(f"\nbaseline {baseline.summary()}\nacross the controller's stop: {report.summary()}")
    bound = max(QUIET_LOSS_BOUND, 2 * baseline.lost)
    assert report.recovered and report.lost <= bound, report.summary()
    assert {name: flows(switch.name) for name, switch in sw.items()} == tables
    # A VM that boots now is never provisioned: it reaches nobody, nobody hears it.
    newcomer = lab.add_vm(net, sw["s12"], f"{PREFIX}new", "00:fa:00:00:0c:01",
                          "10.0.100.240/16")
    peers = [vms["web3"], vms["web1"], vms["web7"]]
    captures = {vm.name: Capture(vm, f"ether src {newcomer.MAC()}") for vm in peers}
    lab.announce(newcomer, count=3, gap_ms=100)
    reached = [vm.name for vm in peers if ping(newcomer, vm, count=2)]
    heard = {name: len(capture.stop()) for name, capture in captures.items()}
    assert reached == [] and set(heard.values()) == {0}, (reached, heard)
    # The VMs provisioned before keep talking as their templates say.
    assert ping(vms["web1"], vms["web7"]) and ping(vms["mgmt4"], vms["mgmt8"])
    assert not ping(vms["mgmt4"], vms["web3"], count=1)
