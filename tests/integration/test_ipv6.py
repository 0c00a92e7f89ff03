"""IPv6 on real OVS with dual-stack Mininet hosts: pings per template in both families,
and the IPv6 guard (spoofed sources, neighbour advertisements for another VM's address,
router advertisements from a non-router) dropping what it must and nothing else, and
logging each refusal once per VM and kind; the link-layer option of a VM's own NS and
NA leaves with its MAC (rewritten by the switch, checksum and all).

Topology (datacenter): s11: web1, db2; s12: web3, mgmt4 (access a1); s21: web5, db6;
s22: web7, mgmt8 (access a2). Library tests/integration/libraries/ipv6: every template
guards IPv6 (``bind_ipv6: link_local``); the database takes no ICMPv6 echo requests
and is the DHCP server (the rogue-server guard drops the others' answers); web VMs may
send from 2001:db8:100::/64 (``allowed_addresses``) and from what a DHCPv6 server
leases them (``bind_ipv6: dhcpv6``); management is a router whose
VMs are bound to the first global address they send from (``bind_ipv6: first_seen``).
"""

from __future__ import annotations

import re
import struct
import sys
import time

import pytest

from ryu_apps.app.switch_events import with_article
from ryu_apps.core import ipv6_guard
from ryu_apps.core.ipv6_frames import parse_ipv6
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from ryu_apps.lab.vmtools import forge
from ryu_apps.lab.vmtools.forge import read_pcap
from ryu_apps.lab.vmtools.forge6 import MARKER
from ryu_apps.lab.vmtools.prober import checksum
from tests.integration.attack_support import Capture, hosts_by_name
from tests.integration.conftest import LIBRARIES, start_datacenter, stop_datacenter, \
    unique_prefix

pytestmark = pytest.mark.integration

#: Forged frames of each kind per check; every one of the VM's own must arrive.
FRAMES = 10
#: The guard's punts share a meter of 10 frames/s (burst 10): a check waits this long
#: first, so the frames of the check before it cannot keep its own from the log.
METER_REFILL_S = 1.0 + FRAMES / 10
#: A rogue DHCP server's answers per family in the rogue-server check: both families'
#: punts must fit the guard meter's burst at once (2 x 4 <= 10). With 10 of each, the
#: DHCPv6 kind's log depended on the meter refilling while forge6 started after the
#: DHCP burst emptied it (0.11-0.15 s measured: 1 to 1.5 frames at 10/s), and failed
#: about once in 13 runs.
ROGUE_FRAMES = 4
#: Every second the app reads every switch's flows back and reconciles them.
AUDIT_S = 1.0


def enable_ipv6(vm) -> None:
    intf = vm.defaultIntf()
    vm.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=0 "
           f"net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.{intf}.disable_ipv6=0")


def wait_for_link_local(vm, timeout: float = 10.0) -> str:
    """The VM's link-local address once duplicate address detection is over."""
    deadline = time.monotonic() + timeout
    while True:
        out = vm.cmd(f"ip -6 addr show dev {vm.defaultIntf()} scope link")
        found = re.search(r"inet6 (fe80::[0-9a-f:]+)/64", out)
        if found and "tentative" not in out:
            return found.group(1)
        assert time.monotonic() < deadline, f"{vm.name}: no link-local address: {out}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def dc():
    prefix = "v" + unique_prefix()[1:]
    controller, net = start_datacenter(LIBRARIES / "ipv6", prefix,
                                       extra_options=f"audit_interval = {AUDIT_S}\n"
                                                     "reconcile_grace = 1.0\n")
    vms = hosts_by_name(net, prefix)
    try:
        for vm in vms.values():
            enable_ipv6(vm)
        for vm in vms.values():
            vm.link_local = wait_for_link_local(vm)
    except BaseException:
        stop_datacenter(controller, net)
        raise
    yield controller, net, vms
    stop_datacenter(controller, net)


def ping6(src, dst, count: int = 2) -> bool:
    out = src.cmd(f"ping -6 -c{count} -W1 -i0.2 {dst.link_local}%{src.defaultIntf()}")
    return bool(re.search(r" [1-9]\d* received", out))


def forge6(vm, *args: str, count: int = FRAMES) -> None:
    command = (f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} "
               f"-m ryu_apps.lab.vmtools.forge6 {vm.defaultIntf()} --count {count} "
               + " ".join(args))
    out = vm.cmd(command)
    assert f"sent {count}" in out, f"{vm.name}: {command}: {out}"


def _captured(receiver, bpf: str, send, forged, expected: int, timeout: float) -> list:
    """``forged(frames)`` of what ``receiver`` captured (``bpf``) while ``send()`` ran,
    once ``expected`` of them arrived or ``timeout`` passed."""
    capture = Capture(receiver, bpf)
    try:
        send()
        deadline = time.monotonic() + timeout
        while len(forged(read_pcap(str(capture.file)))) < expected \
                and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        frames = capture.stop()
    return forged(frames)


def arrivals(receiver, sender, send, expected: int = FRAMES, timeout: float = 10.0) -> list:
    """The frames ``sender`` forged (parsed) that ``receiver`` got, once ``expected`` of
    them arrived or ``timeout`` passed. Every check sends the frames that must be
    dropped first and ``expected`` that must pass last, on the same path: when the
    last arrive, the first had their chance (the receiver's own echo replies carry
    the marker too, hence the source MAC)."""
    sender_mac = bytes.fromhex(sender.MAC().replace(":", ""))

    def forged(frames) -> list:
        return [parse_ipv6(f) for f in frames if MARKER in f and f[6:12] == sender_mac]

    return _captured(receiver, "ip6", send, forged, expected, timeout)


def logged_once(controller, kind: str, vm, guard: str = "IPv6") -> None:
    """The guard's refusal of ``kind`` from ``vm`` is in the log, once (though several
    frames of it were dropped)."""
    line = f"{guard} guard dropped {with_article(kind)} from VM {vm.MAC()} "
    assert controller.wait_for_log(line, timeout=5), controller.log()[-3000:]
    time.sleep(0.3)
    assert controller.log().count(line) == 1, controller.log()[-3000:]


def test_every_vm_s_link_local_address_is_the_one_the_guard_allows(dc):
    _, _, vms = dc
    for vm in vms.values():
        assert vm.link_local == ipv6_guard.link_local(vm.MAC()), vm.name


def test_dual_stack_pings_follow_each_template(dc):
    _, _, vms = dc
    assert ping6(vms["web1"], vms["web5"])      # across access switches
    assert ping6(vms["web3"], vms["web1"])
    assert ping(vms["web1"], vms["db2"])        # the database takes IPv4 pings ...
    assert not ping6(vms["web1"], vms["db2"], count=1)   # ... but no ICMPv6 echo request
    assert ping6(vms["db2"], vms["web5"])       # its own go out, and their replies in
    assert ping6(vms["mgmt4"], vms["mgmt8"])
    assert not ping6(vms["mgmt4"], vms["web3"], count=1)   # VLANs still separate


def test_a_spoofed_ipv6_source_is_dropped(dc):
    _, _, vms = dc
    web1, web5 = vms["web1"], vms["web5"]
    to_web5 = ("--kind", "echo", "--dst", web5.link_local, "--dst-mac", web5.MAC())
    time.sleep(METER_REFILL_S)
    got = arrivals(web5, web1, lambda: (
        forge6(web1, "--src", "fe80::99", *to_web5),
        forge6(web1, "--src", vms["web3"].link_local, *to_web5),
        forge6(web1, "--src", "2001:db8::1", *to_web5),
        forge6(web1, "--src", web1.link_local, *to_web5)))
    assert [info.src for info in got] == [web1.link_local] * FRAMES, got
    logged_once(dc[0], "spoofed source", web1)


def icmpv6_checksum_ok(frame: bytes) -> bool:
    """Whether an untagged IPv6 frame's ICMPv6 checksum is right (its sum checks to 0)."""
    ip = frame[14:]
    message = ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
    pseudo = ip[8:40] + struct.pack("!I3xB", len(message), 58)
    return checksum(pseudo + message) == 0


def test_neighbour_discovery_claims_only_its_own_address_and_leaves_with_its_own_mac(dc):
    """An NA for another VM's address is dropped (and logged); the link-layer option of
    the VM's own NS and NA is rewritten to its MAC by the switch (another VM's MAC
    in it arrives as its own; no option arrives as none), with a valid checksum."""
    _, _, vms = dc
    web1, web5, db2 = vms["web1"], vms["web5"], vms["db2"]
    time.sleep(METER_REFILL_S)
    to_web5 = ("--src", web1.link_local, "--dst", web5.link_local, "--dst-mac", web5.MAC(),
               "--target")
    advert, solicit = ("--kind", "na") + to_web5, ("--kind", "ns") + to_web5
    sender = bytes.fromhex(web1.MAC().replace(":", ""))
    frames = _captured(web5, "ip6", lambda: (
        forge6(web1, *advert, db2.link_local, "--lladdr", web1.MAC()),    # dropped
        forge6(web1, *advert, web1.link_local, "--lladdr", db2.MAC()),    # -> its own MAC
        forge6(web1, *solicit, web5.link_local, "--lladdr", db2.MAC()),   # -> its own MAC
        forge6(web1, *advert, web1.link_local)),                          # no option: none
        lambda captured: [f for f in captured if MARKER in f and f[6:12] == sender],
        3 * FRAMES, timeout=10.0)
    got = sorted((i.icmp_type, i.nd_target, i.nd_lladdr or "none")
                 for i in map(parse_ipv6, frames))
    assert got == sorted([(136, web1.link_local, web1.MAC())] * FRAMES
                         + [(135, web5.link_local, web1.MAC())] * FRAMES
                         + [(136, web1.link_local, "none")] * FRAMES), got
    assert all(icmpv6_checksum_ok(f) for f in frames)
    logged_once(dc[0], "neighbour advertisement", web1)


def test_router_advertisements_pass_only_from_a_router(dc):
    controller, _, vms = dc
    web1, web3 = vms["web1"], vms["web3"]
    control = ("--kind", "echo", "--src", web1.link_local)
    for kind, refused in (("ra", "router advertisement"), ("redirect", "redirect")):
        # one kind at a time (METER_REFILL_S)
        time.sleep(METER_REFILL_S)
        refused_frames = ("--kind", kind, "--src", web1.link_local, "--lladdr", web1.MAC(),
                          "--target", web1.link_local)
        got = arrivals(web3, web1, lambda frames=refused_frames: (
            forge6(web1, *frames), forge6(web1, *control)))
        assert [i.icmp_type for i in got] == [128] * FRAMES, (kind, got)
        logged_once(controller, refused, web1)
    mgmt4, mgmt8 = vms["mgmt4"], vms["mgmt8"]
    got = arrivals(mgmt8, mgmt4, lambda: forge6(mgmt4, "--kind", "ra", "--src",
                                                mgmt4.link_local, "--lladdr", mgmt4.MAC()))
    assert [(i.src, i.icmp_type) for i in got] == [(mgmt4.link_local, 134)] * FRAMES


def test_an_allowed_global_prefix_passes_and_another_global_source_is_dropped(dc):
    _, _, vms = dc
    web1, web5, db2 = vms["web1"], vms["web5"], vms["db2"]
    to_web5 = ("--kind", "echo", "--dst", web5.link_local, "--dst-mac", web5.MAC())
    time.sleep(METER_REFILL_S)
    got = arrivals(web5, web1, lambda: (
        forge6(web1, "--src", "2001:db8:200::1", *to_web5),
        forge6(web1, "--src", "2001:db8:100::7", *to_web5)))
    assert [info.src for info in got] == ["2001:db8:100::7"] * FRAMES, got
    # the database's template allows no global prefix
    got = arrivals(web5, db2, lambda: (
        forge6(db2, "--src", "2001:db8:100::8", *to_web5),
        forge6(db2, "--src", db2.link_local, *to_web5)))
    assert [info.src for info in got] == [db2.link_local] * FRAMES, got


def dhcp_answers(vm, receiver, count: int = FRAMES) -> None:
    """``count`` DHCP server answers (udp 67 -> 68) from ``vm``'s own addresses."""
    command = (f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m ryu_apps.lab.vmtools.forge "
               f"spoof {vm.defaultIntf()} --count {count} --kind udp --mac {vm.MAC()} "
               f"--ip {vm.IP()} --dst-mac {receiver.MAC()} --dst-ip {receiver.IP()} "
               "--sport 67 --dport 68")
    out = vm.cmd(command)
    assert f"sent {count}" in out, f"{vm.name}: {command}: {out}"


def udp_arrivals(receiver, send, expected: int = FRAMES, timeout: float = 10.0) -> list:
    """(source MAC, family) of the forged UDP frames ``receiver`` got, once ``expected``
    arrived or ``timeout`` passed (the frames that must pass are sent last)."""
    def forged(frames) -> list:
        return [(f[6:12].hex(":"), "ipv6" if f[12:14] == b"\x86\xdd" else "ipv4")
                for f in frames if MARKER in f or forge.MARKER in f]

    return _captured(receiver, "udp", send, forged, expected, timeout)


def test_a_rogue_dhcp_server_is_dropped_and_logged_once_and_the_real_one_answers(dc):
    controller, _, vms = dc
    web1, web5, db2 = vms["web1"], vms["web5"], vms["db2"]
    dhcpv6 = ("--kind", "udp", "--sport", "547", "--dport", "546", "--dst", web5.link_local,
              "--dst-mac", web5.MAC())
    time.sleep(METER_REFILL_S)
    got = udp_arrivals(web5, lambda: (
        dhcp_answers(web1, web5, count=ROGUE_FRAMES),
        forge6(web1, "--src", web1.link_local, *dhcpv6, count=ROGUE_FRAMES),
        dhcp_answers(db2, web5),
        forge6(db2, "--src", db2.link_local, *dhcpv6)), expected=2 * FRAMES)
    assert sorted(got) == sorted([(db2.MAC(), "ipv4")] * FRAMES
                                 + [(db2.MAC(), "ipv6")] * FRAMES), got
    logged_once(controller, "DHCP server message", web1, guard="DHCP")
    logged_once(controller, "DHCPv6 server message", web1, guard="DHCP")
    assert f"server message from VM {db2.MAC()}" not in controller.log()


def add_global(vm, address: str) -> None:
    vm.cmd(f"ip -6 addr add {address}/64 dev {vm.defaultIntf()} nodad")


def ping6_to(src, address: str, count: int = 2) -> bool:
    out = src.cmd(f"ping -6 -c{count} -W1 -i0.2 {address}")
    return bool(re.search(r" [1-9]\d* received", out))


MGMT4_GLOBAL, MGMT8_GLOBAL = "2001:db8:300::4", "2001:db8:300::8"


def test_first_seen_binds_each_vm_s_first_global_address_and_it_reaches_its_peer(dc):
    controller, _, vms = dc
    mgmt4, mgmt8 = vms["mgmt4"], vms["mgmt8"]
    add_global(mgmt4, MGMT4_GLOBAL)
    add_global(mgmt8, MGMT8_GLOBAL)
    # the first solicitation from each global address reaches the controller, which
    # binds it and passes the packet on: the ping's first probes may be that late
    assert ping6_to(mgmt4, MGMT8_GLOBAL, count=4)
    for vm, address in ((mgmt4, MGMT4_GLOBAL), (mgmt8, MGMT8_GLOBAL)):
        assert controller.wait_for_log(f"VM {vm.MAC()} bound to IPv6 {address}", timeout=5), \
            controller.log()[-3000:]
    assert ping6_to(mgmt8, MGMT4_GLOBAL)
    assert not ping6_to(vms["web3"], MGMT4_GLOBAL, count=1)   # another VLAN still


def test_a_second_global_source_of_a_bound_vm_is_dropped_and_logged_once(dc):
    controller, _, vms = dc
    mgmt4, mgmt8 = vms["mgmt4"], vms["mgmt8"]
    to_mgmt8 = ("--kind", "echo", "--dst", MGMT8_GLOBAL, "--dst-mac", mgmt8.MAC())
    time.sleep(METER_REFILL_S)
    got = arrivals(mgmt8, mgmt4, lambda: (
        forge6(mgmt4, "--src", "2001:db8:300::99", *to_mgmt8),
        forge6(mgmt4, "--src", MGMT4_GLOBAL, *to_mgmt8)))
    assert [info.src for info in got] == [MGMT4_GLOBAL] * FRAMES, got
    logged_once(controller, "spoofed source", mgmt4)


def test_a_neighbour_advertisement_for_another_vm_s_global_address_is_dropped(dc):
    controller, _, vms = dc
    mgmt4, mgmt8 = vms["mgmt4"], vms["mgmt8"]
    time.sleep(METER_REFILL_S)
    advert = ("--kind", "na", "--src", MGMT4_GLOBAL, "--dst", MGMT8_GLOBAL,
              "--dst-mac", mgmt8.MAC(), "--lladdr", mgmt4.MAC())
    got = arrivals(mgmt8, mgmt4, lambda: (
        forge6(mgmt4, *advert, "--target", MGMT8_GLOBAL),
        forge6(mgmt4, *advert, "--target", MGMT4_GLOBAL)))
    assert [(i.icmp_type, i.nd_target) for i in got] == [(136, MGMT4_GLOBAL)] * FRAMES, got
    logged_once(controller, "neighbour advertisement", mgmt4)


def dhcpv6_reply(server, client, address: str) -> None:
    """``server`` sends ``client`` one DHCPv6 Reply leasing ``address``."""
    command = (f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m tests.support.dhcpv6_peer "
               f"{server.defaultIntf()} --from {server.link_local} --to {client.link_local} "
               f"--to-mac {client.MAC()} --address {address}")
    out = server.cmd(command)
    assert "sent reply" in out, f"{server.name}: {command}: {out}"


def test_a_dhcpv6_lease_from_the_server_is_bound_and_one_from_another_vm_is_not(dc):
    controller, _, vms = dc
    web1, web3, web5, web7, db2 = (vms[n] for n in ("web1", "web3", "web5", "web7", "db2"))
    leased, rogue_lease = "2001:db8:1::3", "2001:db8:1::5"
    to_web7 = ("--kind", "echo", "--dst", web7.link_local, "--dst-mac", web7.MAC())
    dhcpv6_reply(web1, web5, rogue_lease)     # web1 is no DHCP server: dropped at its port
    dhcpv6_reply(db2, web3, leased)           # the database is
    assert controller.wait_for_log(
        f"VM {web3.MAC()} bound to IPv6 {leased} (leased by DHCPv6)", timeout=5), \
        controller.log()[-3000:]
    time.sleep(METER_REFILL_S)
    got = arrivals(web7, web3, lambda: (
        forge6(web3, "--src", "2001:db8:1::33", *to_web7),
        forge6(web3, "--src", leased, *to_web7)))
    assert [info.src for info in got] == [leased] * FRAMES, got
    got = arrivals(web7, web5, lambda: (
        forge6(web5, "--src", rogue_lease, *to_web7),
        forge6(web5, "--src", web5.link_local, *to_web7)))
    assert [info.src for info in got] == [web5.link_local] * FRAMES, got
    assert f"bound to IPv6 {rogue_lease}" not in controller.log()


def test_the_switches_took_every_guard_flow_and_read_back_the_same(dc):
    controller, _, vms = dc
    differed = controller.log().count("audit: switch")
    time.sleep(3 * AUDIT_S + 1.5)   # three audits at least, with the traffic above done
    log = controller.log()
    assert "refused message" not in log, log[-3000:]
    # An audit that finds a flow differing from the desired one (an IPv6 address or
    # an ND option read back in another form would, every time) logs it.
    assert log.count("audit: switch") == differed, log[-3000:]
    assert ping6(vms["web7"], vms["web3"])
