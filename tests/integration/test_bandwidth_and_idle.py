"""Bandwidth meters and idle timeouts on real OVS (library: libraries/metered).

Topology: access a1 with servers s11 (VM "metered1", template 250: 5 Mbit/s,
idle timeout 4 s) and s12 (VM "unmetered2", template 252: no limit), one VLAN.
"""

import json
import re
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.pipeline import BINDING_METER_BASE
from ryu_apps.lab.demo import ping
from tests.integration.conftest import LIBRARIES, start_datacenter, stop_datacenter, unique_prefix

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

RATE_KBPS = 5000
TOLERANCE = 0.30


@pytest.fixture(scope="module")
def pair():
    controller, net = start_datacenter(LIBRARIES / "metered", "b" + unique_prefix()[1:],
                                       access=1, servers=2, vms=1)
    metered, unmetered = sorted(net.hosts, key=lambda h: h.name)[0], None
    for host in net.hosts:
        if host.MAC().startswith("00:fa"):
            metered = host
        else:
            unmetered = host
    yield controller, net, metered, unmetered
    stop_datacenter(controller, net)


OFFERED_MBPS = 15


def _iperf_mbps(client, server) -> float:
    """Mbit/s that arrive when ``client`` offers UDP at OFFERED_MBPS for 3 s.

    UDP at a fixed offered rate measures a policer exactly; TCP's back-off
    through a drop meter would measure TCP instead.
    """
    server.cmd("iperf3 -s -1 -D -p 5201 > /dev/null 2>&1")
    time.sleep(0.3)
    out = client.cmd(f"iperf3 -c {server.IP()} -p 5201 -u -b {OFFERED_MBPS}M -t 3 -J")
    total = json.loads(out)["end"]["sum"]
    return total["bits_per_second"] * (1 - total["lost_percent"] / 100) / 1e6


def test_vm_bandwidth_is_limited_by_its_template_meter(pair):
    _, _, metered, unmetered = pair
    assert ping(metered, unmetered)
    limited = _iperf_mbps(metered, unmetered)
    free = _iperf_mbps(unmetered, metered)
    print(f"\nmetered VM sends at {limited:.2f} Mbit/s (meter {RATE_KBPS / 1000} Mbit/s); "
          f"unmetered VM sends at {free:.1f} Mbit/s")
    assert abs(limited - RATE_KBPS / 1000) <= TOLERANCE * RATE_KBPS / 1000
    assert free > 0.9 * OFFERED_MBPS


def _binding_entries(bridges, mac):
    """Flows on the bridges whose cookie is the binding of ``mac`` (by its MAC flow)."""
    cookies = set()
    for bridge in bridges:
        for line in lab.dump_flows(bridge).splitlines():
            if f"dl_src={mac}" in line:
                cookies.add(re.search(r"cookie=(0x[0-9a-f]+)", line).group(1))
    return cookies


def test_silent_vm_is_deprovisioned_after_its_idle_timeout(pair):
    controller, net, metered, unmetered = pair
    bridges = [s.name for s in net.switches]
    assert ping(unmetered, metered)
    cookies = _binding_entries(bridges, metered.MAC())
    assert len(cookies) == 1
    cookie = next(iter(cookies))
    owner = decode_cookie(int(cookie, 16))
    assert owner.kind is CookieKind.BINDING
    s11 = next(s.name for s in net.switches if s.name.endswith("s11"))
    meter = f"meter={BINDING_METER_BASE + owner.owner_id} "
    assert meter in lab.run_ofctl("dump-meters", s11)
    assert controller.wait_for_log(f"deprovisioned VM {metered.MAC()}", timeout=15), \
        controller.log()[-2000:]
    assert "idle timeout" in controller.log()
    time.sleep(0.5)
    for bridge in bridges:
        assert f"cookie={cookie}," not in lab.dump_flows(bridge), bridge
    assert meter not in lab.run_ofctl("dump-meters", s11)
    # Its next packet provisions it again.
    assert ping(metered, unmetered)
    assert controller.log().count(f"provisioned VM {metered.MAC()}") >= 2
