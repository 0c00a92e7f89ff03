"""The packet-in fuzzer against a real controller: hostile PACKET_INs change nothing they must not.

A smoke run of ``benchmarks.packet_in_fuzz`` (every malformation, forged and
replayed LLDP, beacons, hostile frames) with a short probe lifetime so that
"too late" replays happen within it; and the fuzzer's own bookkeeping.
"""

import asyncio
import os

import pytest

from benchmarks import packet_in_fuzz
from benchmarks.hostile import controller_watch, packet_ins
from benchmarks.hostile.fuzz_driver import FuzzConfig
from benchmarks.hostile.fuzz_switches import DropFlows
from ryu_apps.core.quarantine import QUARANTINE_MACS_PER_PORT
from ryu_apps.store.hook import default_process_name

pytestmark = pytest.mark.integration

COUNT = 30_000
PROBE_MAX_AGE = 2.0


@pytest.fixture(scope="module")
def fuzzed():
    controller, secret, started = packet_in_fuzz.start_controller(PROBE_MAX_AGE)
    config = FuzzConfig(port=controller.of_port, count=COUNT, seed=os.getpid(), secret=secret,
                        process_name=default_process_name(controller.of_port),
                        probe_max_age=PROBE_MAX_AGE, rogue_limit=10, rejected_limit=200,
                        dpid_base=(0x0C << 32) | (os.getpid() % 4096) << 16,
                        suspects_file=controller.workdir / "suspects.json")
    try:
        figures = asyncio.run(packet_in_fuzz.fuzz(controller, config, started))
        figures["log_text"] = controller.log()
    finally:
        controller.stop()
    return figures


def test_no_handler_raised_and_every_malformation_was_sent(fuzzed):
    assert fuzzed["log"]["handler_exceptions"] == 0, fuzzed["log_text"][-5000:]
    assert fuzzed["log"]["tracebacks_dynprov_handler"] == 0
    assert fuzzed["log"]["tracebacks_other"] == 0, fuzzed["log_text"][-5000:]
    sent_variants = {label.split("_", 2)[2] for label in fuzzed["sent"]["by_label"]
                     if label.startswith("openflow_")}
    assert sent_variants == set(packet_ins.VARIANTS)
    assert fuzzed["sent"]["total"] == COUNT


def test_strangers_cut_by_ryu_do_not_stop_the_controller(fuzzed):
    strangers = fuzzed["stranger_connections"]
    assert strangers.get("sent", 0) > 0
    assert strangers.get("cut_by_controller") == strangers["sent"]


def test_no_link_or_uplink_from_forged_or_replayed_probes(fuzzed):
    links = fuzzed["links"]
    assert links["before"] == links["after"] == links["expected"]
    assert links["forged_after"] == [] and links["missing_after"] == []
    assert links["forged_seen_during"] == [] and links["polls_during"] > 0
    assert links["shared_uplinks_after"] == 0
    probes = fuzzed["controller"]["security"]["lldp_probes"]
    for reason in ("unsigned", "bad signature", "malformed", "replayed", "stale"):
        assert probes["rejected"][reason] > 0, (reason, probes)
    assert sum(probes["beacons_ignored"].values()) > 0


def test_drop_flows_stay_within_the_quarantine_design(fuzzed):
    drops = fuzzed["drop_flows"]
    assert drops["added"] > 0
    assert drops["peak_on_one_port"] <= QUARANTINE_MACS_PER_PORT + 2


def test_a_fresh_vm_is_provisioned_after_the_fuzz(fuzzed):
    sentinels = fuzzed["sentinels"]
    assert sentinels["macs"] and sentinels["active"] == len(sentinels["macs"])


# -- the fuzzer's bookkeeping ----------------------------------------------------------------
def _flow_mod(command: int, cookie: int, priority: int, match: bytes,
              cookie_mask: int = 0) -> bytes:
    body = (cookie.to_bytes(8, "big") + cookie_mask.to_bytes(8, "big") + bytes([0, command])
            + bytes(4) + priority.to_bytes(2, "big") + bytes(16))
    match_tlv = (1).to_bytes(2, "big") + (4 + len(match)).to_bytes(2, "big") + match
    return bytes(8) + body + match_tlv


def test_drop_flow_accounting_follows_adds_and_strict_and_owner_deletes():
    drops = DropFlows()
    quarantine = 0xD94 << 52 | 7
    for n in range(3):
        msg = _flow_mod(0, quarantine, 55000 + n, bytes([n]) * 4)
        drops.flow_mod(1, msg, 0, len(msg))
    msg = _flow_mod(0, 0xD91 << 52 | 7, 50000, b"x")   # a binding's flow: not a drop
    drops.flow_mod(1, msg, 0, len(msg))
    assert (drops.adds, len(drops.installed), drops.peak_per_port) == (3, 3, 3)
    msg = _flow_mod(4, quarantine, 55001, bytes([1]) * 4)
    drops.flow_mod(1, msg, 0, len(msg))
    assert len(drops.installed) == 2
    msg = _flow_mod(3, quarantine, 0, b"", cookie_mask=(1 << 64) - 1)
    drops.flow_mod(1, msg, 0, len(msg))
    assert (len(drops.installed), drops.deletes, drops.peak) == (0, 3, 3)


def test_log_scan_attributes_tracebacks():
    log = "\n".join([
        "Encountered an error while parsing OpenFlow packet from switch. ...",
        "Traceback (most recent call last):", "  File x", "KeyError: 1", "",
        "During handling of the above exception, another exception occurred:", "",
        "Traceback (most recent call last):", "  File y", "KeyError: 2",
        "dynprov: _packet_in raised; resynchronising with the switches",
        "Traceback (most recent call last):", "  File z", "ValueError",
        "hub: uncaught exception: Traceback (most recent call last):",
    ])
    counts = controller_watch.scan_log(log)
    assert counts["tracebacks"] == 3
    assert (counts["tracebacks_ryu_parser"], counts["tracebacks_dynprov_handler"],
            counts["tracebacks_ryu_connection"]) == (1, 1, 1)
    assert counts["handler_exceptions"] == 1


def test_ryu_verdicts_route_malformed_packet_ins():
    frame = bytes(60)
    assert packet_ins.ryu_verdict(packet_ins.well_formed(1, 5, frame)) == packet_ins.PARSED
    no_port = packet_ins.packet_in(1, b"", frame)
    assert packet_ins.ryu_verdict(no_port) == packet_ins.PARSED
    short = packet_ins.packet_in(1, packet_ins.oxm(0, b"\0\5"), frame)
    assert packet_ins.ryu_verdict(short) == packet_ins.REJECTED
    past_end = packet_ins.packet_in(1, packet_ins.in_port_oxm(5) + packet_ins.oxm(
        4, bytes(6), length=250), frame, match_length=22)
    assert packet_ins.ryu_verdict(past_end) == packet_ins.FATAL
