"""Render core flow specs into Ryu OpenFlow 1.3 messages, and read them back.

Ryu's message classes come from :mod:`ryu_apps.app.framework`; the fast path
that encodes specs straight to bytes is :mod:`ryu_apps.app.openflow_bytes`.
"""

from __future__ import annotations

from typing import List

from ryu_apps.app.framework import ofproto_v1_3 as ofp
from ryu_apps.app.framework import ofproto_v1_3_parser as parser

from ryu_apps.core.cookies import APP_ID, APP_SELECT_MASK, APP_SHIFT
from ryu_apps.core.flowspec import (
    OFPP_TABLE,
    ApplyActions,
    FlowSpec,
    GotoTable,
    Meter,
    MeterSpec,
    Move,
    Output,
    OutputField,
    PopVlan,
    PushVlan,
    Resubmit,
    Conntrack,
    SetField,
    WriteMetadata,
    match_from_mapping,
)
from ryu_apps.core.flow_plan import SwitchChanges
from ryu_apps.core.pipeline import is_dynprov_meter

FULL_COOKIE_MASK = 0xFFFFFFFFFFFFFFFF
#: "The packet's own in_port" in Nicira's resubmit action (OpenFlow 1.0 numbering).
OFPP_IN_PORT_NX = 0xFFF8
#: Nicira's ct action: the commit flag, and "no recirculation".
NX_CT_F_COMMIT = 1
NX_CT_RECIRC_NONE = 0xFF
#: Open vSwitch answers a move with Nicira (NXM) field names: their OXM names.
_NXM_NAMES = {"eth_src_nxm": "eth_src", "eth_dst_nxm": "eth_dst", "nd_sll": "ipv6_nd_sll",
              "nd_tll": "ipv6_nd_tll"}


def _render_action(action):
    if isinstance(action, Output):
        return parser.OFPActionOutput(action.port, action.max_len)
    if isinstance(action, PushVlan):
        return parser.OFPActionPushVlan(action.ethertype)
    if isinstance(action, PopVlan):
        return parser.OFPActionPopVlan()
    if isinstance(action, SetField):
        return parser.OFPActionSetField(**{action.name: action.value})
    if isinstance(action, Resubmit):
        return parser.NXActionResubmitTable(in_port=OFPP_IN_PORT_NX, table_id=action.table_id)
    if isinstance(action, Conntrack):
        return parser.NXActionCT(
            flags=NX_CT_F_COMMIT if action.commit else 0, zone_src="", zone_ofs_nbits=action.zone,
            recirc_table=NX_CT_RECIRC_NONE if action.table is None else action.table,
            alg=0, actions=[])
    if isinstance(action, Move):
        return parser.NXActionRegMove(src_field=action.src, dst_field=action.dst,
                                      n_bits=action.n_bits)
    if isinstance(action, OutputField):
        return parser.NXActionOutputReg(ofs_nbits=(action.start << 6) | (action.n_bits - 1),
                                        src=action.field, max_len=0)
    raise TypeError(f"cannot render action {action!r}")


def _render_instruction(instruction):
    if isinstance(instruction, ApplyActions):
        return parser.OFPInstructionActions(
            ofp.OFPIT_APPLY_ACTIONS, [_render_action(a) for a in instruction.actions])
    if isinstance(instruction, GotoTable):
        return parser.OFPInstructionGotoTable(instruction.table_id)
    if isinstance(instruction, Meter):
        return parser.OFPInstructionMeter(instruction.meter_id)
    if isinstance(instruction, WriteMetadata):
        return parser.OFPInstructionWriteMetadata(instruction.value, instruction.mask)
    raise TypeError(f"cannot render instruction {instruction!r}")


def flow_add(datapath, spec: FlowSpec):
    """OFPFC_ADD for a spec (replaces an entry with the same match and priority)."""
    return parser.OFPFlowMod(
        datapath, cookie=spec.cookie, table_id=spec.table_id, command=ofp.OFPFC_ADD,
        idle_timeout=spec.idle_timeout, hard_timeout=spec.hard_timeout,
        priority=spec.priority, flags=ofp.OFPFF_SEND_FLOW_REM if spec.idle_timeout else 0,
        match=parser.OFPMatch(**spec.match_dict()),
        instructions=[_render_instruction(i) for i in spec.instructions])


def flow_delete(datapath, spec: FlowSpec):
    """OFPFC_DELETE_STRICT of exactly this entry, only if it carries its cookie."""
    return parser.OFPFlowMod(
        datapath, cookie=spec.cookie, cookie_mask=FULL_COOKIE_MASK,
        table_id=spec.table_id, command=ofp.OFPFC_DELETE_STRICT,
        priority=spec.priority, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(**spec.match_dict()))


def our_flows_request(datapath):
    """Flow stats request for every table, filtered to dynprov's cookies."""
    return parser.OFPFlowStatsRequest(
        datapath, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
        APP_ID << APP_SHIFT, APP_SELECT_MASK, parser.OFPMatch())


def _parse_action(action):
    if isinstance(action, parser.OFPActionOutput):
        return Output(action.port, action.max_len)
    if isinstance(action, parser.OFPActionPushVlan):
        return PushVlan(action.ethertype)
    if isinstance(action, parser.OFPActionPopVlan):
        return PopVlan()
    if isinstance(action, parser.OFPActionSetField):
        return SetField(action.key, action.value)
    if isinstance(action, parser.NXActionResubmitTable):
        return Resubmit(action.table_id)
    if isinstance(action, parser.NXActionCT) and not action.zone_src and not action.actions:
        return Conntrack(action.zone_ofs_nbits, bool(action.flags & NX_CT_F_COMMIT),
                         None if action.recirc_table == NX_CT_RECIRC_NONE
                         else action.recirc_table)
    if isinstance(action, parser.NXActionRegMove) and not action.src_ofs \
            and not action.dst_ofs:
        return Move(_NXM_NAMES.get(action.src_field, action.src_field),
                    _NXM_NAMES.get(action.dst_field, action.dst_field), action.n_bits)
    if isinstance(action, (parser.NXActionOutputReg, parser.NXActionOutputReg2)):
        return OutputField(action.src, action.ofs_nbits >> 6, (action.ofs_nbits & 0x3F) + 1)
    return ("unknown-action", type(action).__name__)


def _parse_instruction(instruction):
    if isinstance(instruction, parser.OFPInstructionActions):
        return ApplyActions(tuple(_parse_action(a) for a in instruction.actions))
    if isinstance(instruction, parser.OFPInstructionGotoTable):
        return GotoTable(instruction.table_id)
    if isinstance(instruction, parser.OFPInstructionMeter):
        return Meter(instruction.meter_id)
    if isinstance(instruction, parser.OFPInstructionWriteMetadata):
        return WriteMetadata(instruction.metadata, instruction.metadata_mask)
    return ("unknown-instruction", type(instruction).__name__)


def spec_from_stats(dpid: int, stats) -> FlowSpec:
    """A FlowSpec from one OFPFlowStats entry, comparable with desired specs."""
    match = match_from_mapping(dict(stats.match.items()))
    return FlowSpec(dpid, stats.table_id, stats.priority, match,
                    tuple(_parse_instruction(i) for i in stats.instructions),
                    stats.cookie, stats.idle_timeout, stats.hard_timeout)


def packet_out_to_pipeline(datapath, in_port: int, data: bytes):
    """Re-inject a packet at table 0 as if it had just arrived on ``in_port``."""
    return parser.OFPPacketOut(
        datapath, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
        actions=[parser.OFPActionOutput(OFPP_TABLE)], data=data)


def packet_out_to_port(datapath, port: int, data: bytes):
    """Send a packet the controller built out of one port."""
    return parser.OFPPacketOut(
        datapath, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port)], data=data)


def meter_mod(datapath, spec: MeterSpec, command: int):
    """OFPMeterMod adding, modifying or deleting one drop-band meter."""
    unit = ofp.OFPMF_PKTPS if spec.packets else ofp.OFPMF_KBPS
    bands = [] if command == ofp.OFPMC_DELETE else [
        parser.OFPMeterBandDrop(rate=spec.rate_kbps, burst_size=spec.burst_kbits)]
    return parser.OFPMeterMod(datapath, command=command, flags=unit | ofp.OFPMF_BURST,
                              meter_id=spec.meter_id, bands=bands)


def meters_request(datapath):
    """Meter configuration request for every meter of the switch."""
    return parser.OFPMeterConfigStatsRequest(datapath, 0, ofp.OFPM_ALL)


def meter_from_stats(dpid: int, stats) -> MeterSpec | None:
    """A MeterSpec from one meter config entry, or None when it cannot be dynprov's.

    Every meter dynprov makes has one drop band. A meter of another shape on an
    id of dynprov's block reads back with rate 0, which no meter dynprov wants
    has, so reconciliation replaces or removes it instead of failing to add its
    own on that id; elsewhere such a meter is someone else's (None).
    """
    if len(stats.bands) != 1 or not isinstance(stats.bands[0], parser.OFPMeterBandDrop):
        return MeterSpec(dpid, stats.meter_id, 0, 0) if is_dynprov_meter(stats.meter_id) \
            else None
    band = stats.bands[0]
    return MeterSpec(dpid, stats.meter_id, band.rate, band.burst_size,
                     packets=bool(stats.flags & ofp.OFPMF_PKTPS))


def messages_for(datapath, changes: SwitchChanges) -> List:
    """One switch's changes in a safe order.

    New and changed meters first (flows refer to them), then flow adds in
    descending priority, then flow deletes, then meter deletes (deleting a meter
    deletes its flows). Adds go before deletes: their keys never collide, so
    this is make-before-break.
    """
    meters = [s for s in changes.adds if isinstance(s, MeterSpec)]
    # Highest priority first: while a table changes, a packet that the old and
    # the new rules both allow never meets a new lower-priority deny first.
    flows = sorted((s for s in changes.adds if isinstance(s, FlowSpec)),
                   key=lambda s: -s.priority)
    messages = [meter_mod(datapath, m, ofp.OFPMC_MODIFY if changes.replaces(m)
                          else ofp.OFPMC_ADD) for m in meters]
    messages += [flow_add(datapath, s) for s in flows]
    messages += [flow_delete(datapath, s) for s in changes.deletes if isinstance(s, FlowSpec)]
    messages += [meter_mod(datapath, s, ofp.OFPMC_DELETE)
                 for s in changes.deletes if isinstance(s, MeterSpec)]
    return messages
