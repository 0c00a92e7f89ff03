"""Another application's meters on a managed bridge survive dynprov's reconciliation.

Default library and topology, `audit_interval = 1`: every second the app reads
every switch's flows and meters back and reconciles it, and a reconnect does
the same. Meters that are not dynprov's (ids outside its block, used by no
dynprov flow) must come through both untouched, with a foreign flow using one.
"""

import re
import subprocess
import time

import pytest

from ryu_apps.core.pipeline import is_dynprov_meter
from ryu_apps.lab import testbed as lab
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix
from tests.support.reconnect import bridge_dpid, reconnect

pytestmark = pytest.mark.integration

AUDIT_S = 1.0
#: Audits that must have run over the foreign meters before they are checked.
AUDITS = 3
#: Single-drop-band meters, as dynprov's own look: an id dynprov numbered its meters
#: near before it had a block of its own, a large id below the block, one above it.
FOREIGN = {
    1000: "kbps,burst,band=type=drop,rate=1000,burst_size=100",
    0x07000000: "pktps,burst,band=type=drop,rate=200,burst_size=50",
    0xF0000000: "kbps,band=type=drop,rate=5000",
}
FOREIGN_FLOW = "table=0,priority=1,cookie=0x1,dl_type=0x88b5,actions=meter:1000"


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(
        lab.DEFAULT_TEMPLATES, "m" + unique_prefix()[1:],
        extra_options=f"audit_interval = {AUDIT_S}\nreconcile_grace = 1.0\n")
    yield controller, net
    stop_datacenter(controller, net)


def _ofctl(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], check=True,
                          capture_output=True, text=True).stdout


def _meters(bridge: str) -> dict:
    """Meter id -> its configuration as ``ovs-ofctl dump-meters`` prints it."""
    text = _ofctl("dump-meters", bridge)
    return {int(m.group(1)): " ".join(m.group(2).split())
            for m in re.finditer(r"^meter=(\d+) (.*?)(?=^meter=|\Z)", text, re.M | re.S)}


def test_foreign_meters_survive_a_reconnect_and_audits(dc):
    controller, net = dc
    bridge = next(s.name for s in net.switches if s.name.endswith("s11"))
    time.sleep(2.5)   # past the reconcile grace: audits run in full
    ours = _meters(bridge)
    assert ours and all(is_dynprov_meter(i) for i in ours), ours
    audited = f"audit: switch {bridge_dpid(bridge)}"
    differed = controller.log().count(audited)
    for meter_id, config in FOREIGN.items():
        _ofctl("add-meter", bridge, f"meter={meter_id},{config}")
    _ofctl("add-flow", bridge, FOREIGN_FLOW)
    foreign = {i: c for i, c in _meters(bridge).items() if i in FOREIGN}
    assert set(foreign) == set(FOREIGN)
    reconnect(controller, bridge)
    time.sleep(AUDITS * AUDIT_S + 0.5)
    assert _meters(bridge) == {**ours, **foreign}, controller.log()[-2000:]
    assert "actions=meter:1000" in _ofctl("dump-flows", bridge, "cookie=0x1/-1")
    assert controller.log().count(audited) == differed   # no audit found anything to change
