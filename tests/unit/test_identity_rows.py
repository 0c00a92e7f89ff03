"""OVSDB rows that name a VM where the controller already has it (found on real OVS).

A VM provisioned from its packets whose hypervisor then writes its
``attached-mac`` row on that same port (a row written after the VM spoke, OVSDB
watching switched on, a controller restart that rebuilt the binding from the
flows before the watcher read the database) was refused as "port already bound
to VM <itself>: spoofed source MAC" and quarantined on its own port: a drop
above its own flow, so it could no longer send anything.
"""

import pytest

from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.identity import IdentityPolicy
from tests.unit.test_engine import LIBRARY, LINKS, S11, S21, SWITCHES
from tests.unit.test_identity import PEER, VICTIM, Lab


@pytest.fixture
def lab():
    lab = Lab(IdentityPolicy.AUTO)
    lab.frame(S11, 1, VICTIM, ip="10.0.100.1")
    lab.frame(S21, 1, PEER, ip="10.0.100.2")
    return lab


def _talks(lab):
    return lab.reached(S11, 1, VICTIM, PEER) == {(S21, 1)} and \
        lab.reached(S21, 1, PEER, VICTIM) == {(S11, 1)}


def test_a_row_naming_a_vm_on_the_port_it_is_bound_to_changes_nothing(lab):
    assert _talks(lab)
    verdict = lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now)
    lab.apply(verdict.plan)
    assert verdict.refusal is None and lab.engine.refused == {}
    assert lab.where(VICTIM) == (S11, 1) and _talks(lab)
    # ... and the hypervisor's word holds from now on: the port takes no other MAC
    assert lab.frame(S11, 1, "00:fa:00:00:00:09").refusal is not None


def test_after_a_restart_the_rows_read_again_leave_every_vm_talking(lab):
    lab.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16), None,
                                    identity=IdentityPolicy.AUTO)
    for dpid, role, name in SWITCHES:
        lab.apply(lab.engine.switch_up(dpid, role, name, lab.switches.entries(dpid),
                                       now=lab.now))
    for a, b in LINKS:
        lab.apply(lab.engine.link_seen(PortRef(*a), PortRef(*b), now=lab.now))
    for dpid, port, mac in ((S11, 1, VICTIM), (S21, 1, PEER)):
        verdict = lab.engine.vm_attached(dpid, port, mac, now=lab.now)
        lab.apply(verdict.plan)
        assert verdict.refusal is None, verdict.refusal
    assert _talks(lab)


def test_a_row_on_a_switch_this_controller_does_not_manage_moves_nothing(lab):
    lab.apply(lab.engine.vm_attached(0xABCDEF, 4, VICTIM, now=lab.now).plan)
    assert VICTIM not in lab.engine.incoming
    lab.apply(lab.engine.port_down(S11, 1, deleted=True, now=lab.now))
    assert lab.where(VICTIM) is None


@pytest.mark.parametrize("junk", ["", "not-a-mac", "00:fa:00:00:00", "00:fa:00:00:00:01:02"])
def test_a_mac_that_is_no_mac_is_ignored_at_the_engines_door_with_a_warning(lab, junk):
    """Every MAC entering the engine is normalised once, at its facade: junk from an
    OVSDB row, a store row or a frame changes nothing and says where it came from."""
    before = dict(lab.engine.bindings)
    verdict = lab.engine.vm_attached(S11, 4, junk, now=lab.now)
    assert not verdict.plan.flow_count() and verdict.refusal is None
    assert any("OVSDB row for" in w and "attached-mac" in w for w in verdict.plan.warnings)
    plan = lab.engine.vm_detached(S11, 1, junk, now=lab.now)
    assert not plan.flow_count() and plan.warnings
    for call in (lab.engine.handing_over, lab.engine.stop_handing_over, lab.engine.cede):
        assert call(junk).warnings
    assert lab.engine.expect_ip(junk, "10.0.100.9").warnings
    assert lab.engine.bindings == before and _talks(lab)


def test_a_mac_in_any_spelling_is_the_same_vm(lab):
    plan = lab.engine.vm_detached(S11, 1, "00-FA-00-00-00-01", now=lab.now)
    lab.apply(plan)
    assert lab.where(VICTIM) is None, "the row for VICTIM, spelled otherwise, went away"
