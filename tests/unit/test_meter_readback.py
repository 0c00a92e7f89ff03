"""Meters read back from a switch: what dynprov can have made, and what it cannot."""

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_apps.app import openflow
from ryu_apps.core.cookies import binding_owner
from ryu_apps.core.flow_plan import DesiredFlows, Plan
from ryu_apps.core.flowspec import MeterSpec
from ryu_apps.core.pipeline import BINDING_METER_BASE, PACKET_IN_METER

OURS = BINDING_METER_BASE + 7
TWO_BANDS = [parser.OFPMeterBandDrop(rate=1000, burst_size=100),
             parser.OFPMeterBandDrop(rate=2000, burst_size=200)]
REMARK = [parser.OFPMeterBandDscpRemark(rate=1000, burst_size=100, prec_level=1)]


def _stats(meter_id, bands, flags=ofp.OFPMF_KBPS | ofp.OFPMF_BURST):
    return parser.OFPMeterConfigStats(flags=flags, meter_id=meter_id, bands=bands)


def test_a_single_drop_band_reads_back_as_the_meter_dynprov_sends():
    band = [parser.OFPMeterBandDrop(rate=200, burst_size=50)]
    packets = _stats(PACKET_IN_METER, band, ofp.OFPMF_PKTPS | ofp.OFPMF_BURST)
    assert openflow.meter_from_stats(1, packets) == MeterSpec(1, PACKET_IN_METER, 200, 50,
                                                              packets=True)
    assert openflow.meter_from_stats(1, _stats(5, band)) == MeterSpec(1, 5, 200, 50)


def test_another_shape_outside_dynprovs_block_is_never_dynprovs():
    assert openflow.meter_from_stats(1, _stats(5, TWO_BANDS)) is None
    assert openflow.meter_from_stats(1, _stats(5, REMARK)) is None


def test_another_shape_on_an_id_dynprov_wants_is_replaced_not_added_again():
    read = [openflow.meter_from_stats(1, _stats(OURS, bands)) for bands in (TWO_BANDS, REMARK)]
    assert read == [MeterSpec(1, OURS, 0, 0)] * 2
    owner = binding_owner(7, 250)
    wanted = MeterSpec(1, OURS, 1000, 100, cookie=owner.cookie)
    desired = DesiredFlows()
    desired.replace(owner, {wanted}, Plan())
    plan = Plan()
    desired.reconcile(1, read[:1], plan)
    assert plan.changes[1].adds == [wanted] and plan.changes[1].replaces(wanted)
    stale = Plan()
    DesiredFlows().reconcile(1, read[:1], stale)
    assert stale.changes[1].deletes == [MeterSpec(1, OURS, 0, 0)]
