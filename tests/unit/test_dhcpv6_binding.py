"""Addresses bound from DHCPv6 (``bind_ipv6: dhcpv6``, core/ipv6_binding.py) on fake
switches: a Reply from an allowed server (a ``dhcp_server`` VM, or the uplink) binds the
addresses it leases the VM; one from any other VM binds nothing; a Release unbinds."""

from __future__ import annotations

import pytest

from ryu_apps.core import ipv6_guard
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.template_validation import build_library
from tests.support.invariants import dhcpv6_reply, ipv6_from
from tests.support.small_fabric import UPLINK
from tests.unit.test_dhcpv6 import ia_na, iaaddr, message, udp6_frame
from tests.unit.test_ipv6_binding import _template, learn, outputs
from tests.unit.test_ipv6_guard import v6
from tests.unit.test_shared_pipeline import S11, S12, Lab

LEASED, SERVER, FIRST = 0xC0, 0xC1, 0xC2
VM = "00:c0:00:00:00:01"
DHCP = "00:c1:00:00:00:01"
ROGUE = "00:c2:00:00:00:01"    # first_seen, no DHCP server
PEER = "00:c0:00:00:00:02"
LEASE, OTHER = "2001:db8::50", "2001:db8::51"

LIBRARY = build_library([("lab.yaml", {"templates": [
    _template(LEASED, "leased", bind_ipv6="dhcpv6"),
    _template(SERVER, "server", bind_ipv6="link_local", dhcp_server=True),
    _template(FIRST, "first", bind_ipv6="first_seen"),
]})])


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, VM, "10.0.0.1")
    lab.vm(S11, 2, DHCP, "10.0.0.2")
    lab.vm(S11, 3, ROGUE, "10.0.0.3")
    lab.vm(S12, 4, PEER, "10.0.0.4")
    return lab


def snoop(lab: Lab, dpid: int, port: int, data: bytes, now: float = 0.0):
    plan = lab.engine.dhcpv6_snooped(dpid, port, data, now=now)
    if plan is not None:
        lab.apply(plan)
    return plan


def sends(lab: Lab, source: str) -> set:
    return outputs(lab, S11, 1, v6(VM, source, PEER, "2001:db8::99"))


def test_a_reply_from_an_allowed_server_binds_the_leased_address(lab):
    assert sends(lab, LEASE) == {(S11, OFPP_CONTROLLER)}    # not its own yet: the guard's
    for trusted in (2, UPLINK):
        plan = snoop(lab, S11, trusted, dhcpv6_reply(VM, LEASE))
        assert lab.engine.bindings[VM].ipv6 == (LEASE,)
        assert (S12, 4) in sends(lab, LEASE) and sends(lab, OTHER) == {(S11, OFPP_CONTROLLER)}
        if trusted == 2:
            assert f"VM {VM} bound to IPv6 {LEASE} (leased by DHCPv6)" in plan.notes
        release = udp6_frame(message(8, ia_na(1, iaaddr(LEASE))), ports=(546, 547),
                             src=ipv6_guard.link_local(VM), dst="ff02::1:2",
                             dst_mac="33:33:00:01:00:02", src_mac=VM)
        snoop(lab, S11, 2, release)                          # not the VM's port: ignored
        assert lab.engine.bindings[VM].ipv6 == (LEASE,)
        snoop(lab, S11, 1, release)
        assert lab.engine.bindings[VM].ipv6 == ()            # released
        assert sends(lab, LEASE) == {(S11, OFPP_CONTROLLER)}


def test_a_reply_from_any_other_vm_binds_nothing(lab):
    plan = snoop(lab, S11, 3, dhcpv6_reply(VM, LEASE))
    assert lab.engine.bindings[VM].ipv6 == ()
    assert any("not an allowed server: ignored" in w for w in plan.warnings)
    # a reply to a VM whose template does not lease by DHCPv6 changes nothing either
    snoop(lab, S11, 2, dhcpv6_reply(ROGUE, LEASE))
    assert lab.engine.bindings[ROGUE].ipv6 == ()


def test_a_lease_of_an_address_another_vm_holds_is_not_bound(lab):
    learn(lab, S11, 3, ROGUE, ipv6_from(ROGUE, LEASE))
    assert lab.engine.bindings[ROGUE].ipv6 == (LEASE,)
    plan = snoop(lab, S11, 2, dhcpv6_reply(VM, LEASE))
    assert lab.engine.bindings[VM].ipv6 == ()
    assert any(f"bound to VM {ROGUE}: not bound" in w for w in plan.warnings)


def test_a_withdrawn_lease_unbinds_and_non_dhcpv6_frames_are_not_snooped(lab):
    snoop(lab, S11, 2, dhcpv6_reply(VM, LEASE))
    withdraw = message(7, ia_na(1, iaaddr(LEASE, 0, 0), iaaddr(OTHER)))
    frame = udp6_frame(withdraw, dst_mac=VM)
    snoop(lab, S11, 2, frame)
    assert lab.engine.bindings[VM].ipv6 == (OTHER,)
    assert lab.engine.dhcpv6_snooped(S11, 2, ipv6_from(VM, LEASE), now=0.0) is None
    assert lab.engine.dhcpv6_snooped(S11, 2, udp6_frame(message(7), ports=(53, 546)),
                                     now=0.0) is None
    assert lab.engine.dhcpv6_snooped(S11, 2, b"\x00" * 20, now=0.0) is None


def test_the_pipeline_copies_replies_to_the_vm_and_its_client_messages(lab):
    reply = v6(DHCP, ipv6_guard.link_local(DHCP), VM, ipv6_guard.link_local(VM),
               udp_src=547, udp_dst=546)
    assert outputs(lab, S11, 2, reply) == {(S11, 1), (S11, OFPP_CONTROLLER)}
    # a first_seen VM's replies are not copied
    to_rogue = v6(DHCP, ipv6_guard.link_local(DHCP), ROGUE, ipv6_guard.link_local(ROGUE),
                  udp_src=547, udp_dst=546)
    assert outputs(lab, S11, 2, to_rogue) == {(S11, 3)}
    solicit = v6(VM, ipv6_guard.link_local(VM), "33:33:00:01:00:02", "ff02::1:2",
                 udp_src=546, udp_dst=547)
    assert (S11, OFPP_CONTROLLER) in outputs(lab, S11, 1, solicit)
    assert (S11, 2) in outputs(lab, S11, 1, solicit)
    # ... from its own link-local only
    spoofed = v6(VM, "fe80::99", "33:33:00:01:00:02", "ff02::1:2", udp_src=546, udp_dst=547)
    assert outputs(lab, S11, 1, spoofed) == {(S11, OFPP_CONTROLLER)}   # the guard's punt


def test_a_snooped_release_from_a_spoofed_source_unbinds_nothing(lab):
    snoop(lab, S11, 2, dhcpv6_reply(VM, LEASE))
    release = udp6_frame(message(8, ia_na(1, iaaddr(LEASE))), ports=(546, 547),
                         src="fe80::99", dst="ff02::1:2", dst_mac="33:33:00:01:00:02",
                         src_mac=VM)
    snoop(lab, S11, 1, release)
    assert lab.engine.bindings[VM].ipv6 == (LEASE,)


# -- the lease's valid lifetime --------------------------------------------------------------
def reply(*leases: bytes) -> bytes:
    """A server's Reply to VM leasing IAADDR options ``leases``."""
    return udp6_frame(message(7, ia_na(1, *leases)), dst_mac=VM)


def tick(lab: Lab, now: float):
    plan = lab.engine.tick(now)
    lab.apply(plan)
    return plan


def test_a_lease_ends_with_its_valid_lifetime_and_a_renewal_extends_it(lab):
    snoop(lab, S11, 2, reply(iaaddr(LEASE, 600, 1000)), now=100.0)
    tick(lab, 1099.0)
    assert lab.engine.bindings[VM].ipv6 == (LEASE,)
    snoop(lab, S11, 2, reply(iaaddr(LEASE, 600, 1000)), now=1000.0)   # renewed: to 2000
    tick(lab, 1999.0)
    assert lab.engine.bindings[VM].ipv6 == (LEASE,)
    assert (S12, 4) in sends(lab, LEASE)
    plan = tick(lab, 2000.0)
    assert lab.engine.bindings[VM].ipv6 == ()
    assert f"VM {VM} released IPv6 {LEASE} (its DHCPv6 lease ended)" in plan.notes
    assert sends(lab, LEASE) == {(S11, OFPP_CONTROLLER)}     # the guard's again
    assert not lab.engine.state.ports.leases6
    snoop(lab, S11, 2, reply(iaaddr(LEASE, 600, 1000)), now=3000.0)   # leased again
    assert lab.engine.bindings[VM].ipv6 == (LEASE,)


def test_each_address_ends_on_its_own_and_an_infinite_one_never(lab):
    snoop(lab, S11, 2, reply(iaaddr(LEASE, 100, 500), iaaddr(OTHER, 0xFFFFFFFF, 0xFFFFFFFF)),
          now=0.0)
    assert lab.engine.bindings[VM].ipv6 == (LEASE, OTHER)
    tick(lab, 500.0)
    assert lab.engine.bindings[VM].ipv6 == (OTHER,)
    tick(lab, 10.0 ** 9)
    assert lab.engine.bindings[VM].ipv6 == (OTHER,)


def test_a_released_lease_leaves_no_timer_and_a_gone_vm_none_either(lab):
    snoop(lab, S11, 2, reply(iaaddr(LEASE)), now=0.0)
    release = udp6_frame(message(8, ia_na(1, iaaddr(LEASE))), ports=(546, 547),
                         src=ipv6_guard.link_local(VM), dst="ff02::1:2",
                         dst_mac="33:33:00:01:00:02", src_mac=VM)
    snoop(lab, S11, 1, release, now=10.0)
    assert lab.engine.bindings[VM].ipv6 == () and not lab.engine.state.ports.leases6
    snoop(lab, S11, 2, reply(iaaddr(LEASE)), now=20.0)
    lab.apply(lab.engine.port_down(S11, 1, now=30.0))        # the VM is gone
    assert VM not in lab.engine.bindings
    tick(lab, 10000.0)
    assert not lab.engine.state.ports.leases6


def test_a_reply_says_when_each_lease_ends():
    from ryu_apps.core import dhcpv6
    parsed = dhcpv6.parse(message(7, ia_na(1, iaaddr(LEASE, 10, 100), iaaddr(OTHER, 0, 0)),
                                  ia_na(2, iaaddr(LEASE, 10, 300),
                                        iaaddr("2001:db8::52", 1, 0xFFFFFFFF))))
    assert parsed.ends(50.0) == {LEASE: 350.0, "2001:db8::52": None}
