"""A bridge without connection tracking (core/datapath_support.py): a VM of a stateful
template is refused there with a located reason, never given half a pipeline; a reload
that would make a template stateful while such a bridge hosts its VMs is refused and the
library in force stays; the app's probe (app/datapath_features.py) on a fake datapath."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from ryu_apps.core.flowspec import ApplyActions, Conntrack, FlowSpec
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.template_validation import build_library
from tests.support.fake_switches import FakeSwitches
from tests.unit.test_conntrack import CLIENT, CLIENT_A, IP_CLIENT, WEB, WEB_A, WEB_SIDE, \
    _template
from tests.unit.test_shared_pipeline import S11, S12, Lab

WEB_ON_S12 = "00:b0:00:00:00:02"
NO_CT = "its datapath refused a ct action: NXBAC_CT_DATAPATH_SUPPORT"


def _library(stateful: bool):
    side = {**WEB_SIDE, "stateful": stateful}
    if not stateful:   # a stateless web template needs its replies' mirror rule
        side["acl"] = side["acl"] + [{"action": "allow", "direction": "to_vm",
                                      "protocol": "tcp", "src_port": 5432}]
    return build_library([("lab.yaml", {"templates": [
        _template(WEB, "web", side),
        _template(CLIENT, "client", {"default_action": "allow", "bind_ip": True}),
    ]})])


def _uses_conntrack(spec: FlowSpec) -> bool:
    if any(name == "ct_state" for name, _ in spec.match):
        return True
    return any(isinstance(action, Conntrack) for instruction in spec.instructions
               if isinstance(instruction, ApplyActions) for action in instruction.actions)


class NoConntrackSwitches(FakeSwitches):
    """Fake switches of which some have a datapath without connection tracking: like
    Open vSwitch's, it refuses any flow that sends to ``ct`` or matches ``ct_state``."""

    def __init__(self, holding: FakeSwitches, without: set) -> None:
        super().__init__()
        self.tables, self.meters, self.conntrack = (holding.tables, holding.meters,
                                                    holding.conntrack)
        self.without = without

    def apply(self, plan: Plan) -> None:
        for dpid in self.without & set(plan.changes):
            refused = [spec for spec in plan.changes[dpid].adds
                       if isinstance(spec, FlowSpec) and _uses_conntrack(spec)]
            assert not refused, f"switch {dpid:x} (no ct) refused {refused[0]}"
        super().apply(plan)


def _lab(stateful: bool = True) -> Lab:
    lab = Lab(_library(stateful))
    lab.switches = NoConntrackSwitches(lab.switches, {S11})
    assert lab.engine.conntrack_found(S11, False, NO_CT)
    return lab


def _bridge(lab: Lab) -> str:
    return lab.engine.state.name(S11)


def test_a_stateful_vm_is_refused_on_a_bridge_without_ct_with_a_located_reason():
    lab = _lab()
    verdict = lab.engine.packet_in(S11, 1, WEB_A, b"x", now=0.0)
    lab.apply(verdict.plan)
    assert WEB_A not in lab.engine.bindings and verdict.provisioned is None
    reason = verdict.refusal.reason
    for part in ("lab.yaml: template 176 'web'", "virtual_switch.stateful: true",
                 "needs connection tracking", f"bridge {_bridge(lab)} has none",
                 "NXBAC_CT_DATAPATH_SUPPORT"):
        assert part in reason, reason
    assert verdict.first_refusal and lab.engine.refused[(WEB_A, S11, 1)].template_id == WEB
    assert not [f for f in lab.switches.flows(S11) if _uses_conntrack(f)]


def test_the_same_bridge_takes_stateless_vms_and_other_bridges_stateful_ones():
    lab = _lab()
    lab.vm(S11, 2, CLIENT_A, IP_CLIENT)            # stateless template: provisioned
    lab.vm(S12, 3, WEB_ON_S12, "10.0.0.2")         # stateful, bridge with ct
    assert {CLIENT_A, WEB_ON_S12} <= set(lab.engine.bindings)
    assert [f for f in lab.switches.flows(S12) if _uses_conntrack(f)]


def test_a_probe_that_finds_ct_again_lifts_the_refusal_for_the_next_packet():
    lab = _lab()
    lab.apply(lab.engine.packet_in(S11, 1, WEB_A, b"x", now=0.0).plan)
    assert lab.engine.conntrack_found(S11, True)
    assert not lab.engine.conntrack_found(S11, True)     # nothing new
    lab.switches.without.clear()
    lab.apply(lab.engine.tick(now=10_000.0))              # the quarantine expires
    lab.vm(S11, 1, WEB_A)
    assert WEB_A in lab.engine.bindings


def test_what_is_missing_survives_a_resynchronisation():
    lab = _lab()
    lab.engine.reset()
    assert lab.engine.conntrack_missing(S11) == NO_CT
    assert lab.engine.conntrack_missing(S12) is None


# -- a reload ------------------------------------------------------------------------------
def test_a_reload_making_a_hosted_template_stateful_is_refused_with_its_place():
    lab = _lab(stateful=False)
    lab.vm(S11, 1, WEB_A, "10.0.0.1")
    errors = lab.engine.reload_conflicts(_library(True))
    assert errors == [
        "lab.yaml: template 176 'web': virtual_switch.stateful: expected false while "
        f"bridge {_bridge(lab)} hosts its VMs ({WEB_A}) and has no connection tracking ({NO_CT}); "
        "got true"]
    assert lab.engine.reload_conflicts(_library(False)) == []


def test_a_reload_is_free_when_the_bridge_without_ct_hosts_none_of_the_template():
    lab = _lab(stateful=False)
    lab.vm(S11, 2, CLIENT_A, IP_CLIENT)
    lab.vm(S12, 1, WEB_ON_S12, "10.0.0.2")
    assert lab.engine.reload_conflicts(_library(True)) == []


def test_the_app_refuses_such_a_reload_and_keeps_the_library_in_force(caplog):
    requests = pytest.importorskip("ryu_apps.app.requests")
    lab = _lab(stateful=False)
    lab.vm(S11, 1, WEB_A, "10.0.0.1")
    before = lab.engine.library
    accepted = []
    app = SimpleNamespace(engine=lab.engine, logger=logging.getLogger("test.ct"),
                          library_keeper=SimpleNamespace(accept=accepted.append),
                          domain_keepers={}, send_plan=lambda plan: None)
    with caplog.at_level(logging.ERROR):
        (ok, message), changed = requests.Requests(app)._put_in_force(_library(True), {})
    assert not ok and changed == [] and accepted == []
    assert lab.engine.library is before
    assert "virtual_switch.stateful: expected false" in message
    assert f"bridge {_bridge(lab)} " in message
    assert "library reload refused, previous library stays" in caplog.text


# -- the probe -----------------------------------------------------------------------------
class FakeDatapath:
    def __init__(self, dpid: int) -> None:
        self.id, self.sent, self._xid = dpid, [], 100
        features = pytest.importorskip("ryu_apps.app.datapath_features")
        self.ofproto = features.ofp

    def set_xid(self, msg) -> None:
        self._xid += 1
        msg.xid = self._xid

    def send_msg(self, msg) -> None:
        self.sent.append(msg)


def _probed():
    features = pytest.importorskip("ryu_apps.app.datapath_features")
    answers = []
    probes = features.ConntrackProbes(lambda *answer: answers.append(answer))
    datapath = FakeDatapath(S11)
    probes.probe(datapath)
    return features, probes, datapath, answers


def test_the_probe_is_a_modify_strict_ct_flow_that_no_flow_can_match_then_a_barrier():
    features, _, datapath, _ = _probed()
    probe, barrier = datapath.sent
    ofp = features.ofp
    assert probe.command == ofp.OFPFC_MODIFY_STRICT
    assert probe.cookie == features.PROBE_COOKIE and probe.cookie_mask == 2**64 - 1
    assert probe.cookie >> 56 != 0xD9                     # not a dynprov cookie
    (instruction,) = probe.instructions
    assert type(instruction.actions[0]).__name__ == "NXActionCT"
    assert type(barrier).__name__ == "OFPBarrierRequest" and barrier.xid > probe.xid


def test_an_error_to_the_probe_means_no_ct_and_is_named():
    features, probes, datapath, answers = _probed()
    probe, barrier = datapath.sent
    error = SimpleNamespace(datapath=datapath, xid=probe.xid, type=features.ofp.OFPET_EXPERIMENTER,
                            code=0, experimenter=features.NX_EXPERIMENTER, exp_type=42)
    other = SimpleNamespace(datapath=datapath, xid=probe.xid + 50, type=1, code=2)
    assert probes.error(error) and not probes.error(other)
    assert answers == []                                   # decided at the barrier
    assert probes.barrier(SimpleNamespace(datapath=datapath, xid=barrier.xid))
    assert answers == [(S11, False, NO_CT)]
    assert not probes.barrier(SimpleNamespace(datapath=datapath, xid=barrier.xid))


def test_a_barrier_alone_means_ct_and_other_barriers_are_not_the_probes():
    _, probes, datapath, answers = _probed()
    _, barrier = datapath.sent
    assert not probes.barrier(SimpleNamespace(datapath=datapath, xid=barrier.xid + 1))
    assert probes.barrier(SimpleNamespace(datapath=datapath, xid=barrier.xid))
    assert answers == [(S11, True, "")]


def test_an_error_in_other_words_is_reported_by_its_numbers():
    features, probes, datapath, answers = _probed()
    probe, barrier = datapath.sent
    probes.error(SimpleNamespace(datapath=datapath, xid=probe.xid, type=2, code=8))
    probes.barrier(SimpleNamespace(datapath=datapath, xid=barrier.xid))
    assert answers == [(S11, False, "its datapath refused a ct action: "
                                    "OpenFlow error type 2 code 8")]
