"""Whether a connecting switch's datapath has connection tracking: asked over OpenFlow.

Each switch that connects gets a probe before its read-back: a MODIFY_STRICT
flow-mod whose action is ``ct(zone=0)`` in the stateful ACL table, with a cookie
no flow carries (so it can never change one, and OpenFlow 1.3 adds nothing for
a modify that matches nothing), then a barrier. Open vSwitch checks a flow-mod's
actions against its datapath whether or not it matches a flow, so a datapath
without ``ct`` answers the probe with an error (``NXBAC_CT_DATAPATH_SUPPORT``)
before the barrier reply; one with ``ct`` answers only the barrier. Measured on
OVS 3.1's userspace datapath with ``ovs-appctl dpif/set-dp-features BR ct_state
false`` (tests/integration/test_datapath_features.py).

Why OpenFlow rather than OVSDB's ``Datapath`` table (``capabilities: ct_state``):
the probe asks the very switch and connection that will receive the ct flows,
needs no OVSDB connection (dynprov runs without one), works the same on Ryu and
os-ken, and sees what ``set-dp-features`` switches off, which OVSDB's
boot-time capabilities do not. The decision on what the answer means is pure
(ryu_apps/core/datapath_support.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from ryu_apps.app.framework import ofproto_v1_3 as ofp
from ryu_apps.app.framework import ofproto_v1_3_parser as parser

from ryu_apps.app.openflow import FULL_COOKIE_MASK, NX_CT_RECIRC_NONE
from ryu_apps.core.pipeline import Table
from ryu_apps.core.template_model import ETH_IPV4

#: The probe's cookie: not dynprov's (no 0xD9 app byte) and carried by no flow.
PROBE_COOKIE = 0x00C7_0000_0000_C7C7
PROBE_TABLE = Table.TO_VM_ACL
#: Nicira's error for "ct action not supported by the datapath": an OpenFlow 1.2+
#: experimenter error of experimenter 0x2320, type 42 (what OVS 3.1 answered the probe).
NX_EXPERIMENTER = 0x00002320
NX_CT_ERRORS = {42: "NXBAC_CT_DATAPATH_SUPPORT"}


@dataclass
class Probe:
    """One switch's probe in flight."""

    datapath: Any
    probe_xid: int
    barrier_xid: int
    refused: Optional[str] = None


class ConntrackProbes:
    """The probes in flight; ``answered(dpid, supported, detail)`` gets each outcome."""

    def __init__(self, answered: Callable[[int, bool, str], None]) -> None:
        self.answered = answered
        self._pending: Dict[int, Probe] = {}

    def probe(self, datapath) -> None:
        """Send the probe and its barrier (before the switch's read-back)."""
        probe = probe_message(datapath)
        datapath.set_xid(probe)
        barrier = parser.OFPBarrierRequest(datapath)
        datapath.set_xid(barrier)
        self._pending[datapath.id] = Probe(datapath, probe.xid, barrier.xid)
        datapath.send_msg(probe)
        datapath.send_msg(barrier)

    def forget(self, dpid: int) -> None:
        """The switch disconnected: its probe will never be answered."""
        self._pending.pop(dpid, None)

    def error(self, msg) -> bool:
        """Whether an error message answers a probe (it is then consumed here)."""
        probe = self._pending.get(msg.datapath.id)
        if probe is None or probe.datapath is not msg.datapath or msg.xid != probe.probe_xid:
            return False
        probe.refused = describe_error(msg)
        return True

    def barrier(self, msg) -> bool:
        """Whether a barrier reply ends a probe (its outcome is then reported)."""
        dpid = msg.datapath.id
        probe = self._pending.get(dpid)
        if probe is None or probe.datapath is not msg.datapath or msg.xid != probe.barrier_xid:
            return False
        del self._pending[dpid]
        if probe.refused is None:
            self.answered(dpid, True, "")
        else:
            self.answered(dpid, False, f"its datapath refused a ct action: {probe.refused}")
        return True


def probe_message(datapath):
    """MODIFY_STRICT of a flow no switch holds, with a ct action: refused by a
    datapath without connection tracking, a no-op on any other."""
    return parser.OFPFlowMod(
        datapath, cookie=PROBE_COOKIE, cookie_mask=FULL_COOKIE_MASK, table_id=PROBE_TABLE,
        command=ofp.OFPFC_MODIFY_STRICT, priority=1,
        match=parser.OFPMatch(eth_type=ETH_IPV4),
        instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
            parser.NXActionCT(flags=0, zone_src="", zone_ofs_nbits=0,
                              recirc_table=NX_CT_RECIRC_NONE, alg=0, actions=[])])])


def describe_error(msg) -> str:
    """An OpenFlow error in words: Nicira's ct errors by name, others by numbers."""
    if msg.type == ofp.OFPET_EXPERIMENTER:
        experimenter = getattr(msg, "experimenter", None)
        exp_type = getattr(msg, "exp_type", None)
        if experimenter == NX_EXPERIMENTER and exp_type in NX_CT_ERRORS:
            return NX_CT_ERRORS[exp_type]
        return f"OpenFlow experimenter error {experimenter} type {exp_type}"
    return f"OpenFlow error type {msg.type} code {msg.code}"
