"""The 1 ms prober between two Mininet hosts on one standalone OVS bridge.

Also measures how well it sees a cut: a drop flow held for about 200 ms.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.outage import analyse, probes_from_document
from ryu_apps.lab.migration import REPO_ROOT, standalone_network

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

MS = 1_000_000
CUT_FLOW = "priority=65535"
#: The measured outage must lie within the cut as bracketed by the two
#: ovs-ofctl commands (cut surely on from the end of add-flow to the start of
#: del-flows, possibly from the start of one to the end of the other), less
#: one interval, plus this allowance: the userspace datapath applies a flow
#: change when its revalidator next runs. Measured here (3 runs): cut 200.1 ms
#: inner, 219-227 ms outer; outage 210-213 ms.
ALLOWANCE_NS = 30 * MS


@pytest.fixture(scope="module")
def pair():
    prefix = "q%03d" % (os.getpid() % 1000)
    net = standalone_network(prefix, 1, [(prefix + "h1", 1, "10.77.0.1/24"),
                                         (prefix + "h2", 1, "10.77.0.2/24")])
    h1, h2 = net.hosts
    assert "1 received" in h1.cmd("ping -c1 -W2 10.77.0.2")  # ARP resolved
    yield h1, h2, net.switches[0].name
    lab.stop_network(net)


class Probing:
    """``prober probe`` for a fixed duration from a host, in the background."""

    def __init__(self, src, target: str, duration_s: float, *options: str) -> None:
        self.output = f"/tmp/dynprov-prober-test-{os.getpid()}-{src.name}.json"
        self.process = src.popen(
            [sys.executable, "-m", "ryu_apps.lab.vmtools.prober", "probe", target,
             "--output", self.output, "--duration-s", str(duration_s), *options],
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), text=True)
        line = self.process.stdout.readline()
        assert line.startswith("started"), line + self.process.stderr.read()
        self.start_ns = int(line.split()[1])

    def report(self, timeout: float = 10):
        _, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err
        with open(self.output) as stream:
            document = json.load(stream)
        os.unlink(self.output)
        return document, analyse(*reversed(probes_from_document(document)))


def _ofctl(*args: str) -> tuple:
    """Run ovs-ofctl; (monotonic ns before, after)."""
    before = time.monotonic_ns()
    subprocess.run(["ovs-ofctl", *args], check=True, capture_output=True)
    return before, time.monotonic_ns()


def _sleep_until(deadline_ns: int) -> None:
    time.sleep(max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9))


def test_a_clean_path_answers_nearly_every_probe_on_schedule(pair):
    h1, h2, _ = pair
    document, report = Probing(h1, h2.IP(), 1.0).report()
    print(f"\nclean, 1 ms for 1 s: {report.summary()}")
    assert document["mode"] == "icmp" and document["interval_ns"] == MS
    assert document["target"] == h2.IP() and (document["ident"] >> 8) == 0xD9
    assert report.sent == 1000
    assert report.answered >= 990
    assert report.expected_probes <= 1010  # the last probe went out on time
    assert report.max_latency_ns < 100 * MS


def test_udp_echo_mode(pair):
    h1, h2, _ = pair
    responder = h2.popen([sys.executable, "-m", "ryu_apps.lab.vmtools.prober", "echo",
                          "--port", "7007"],
                         env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), text=True)
    try:
        assert responder.stdout.readline().strip() == "listening"
        document, report = Probing(h1, h2.IP(), 0.5, "--udp-port", "7007").report()
    finally:
        responder.kill()
        responder.wait()
    print(f"\nudp, 1 ms for 0.5 s: {report.summary()}")
    assert document["mode"] == "udp"
    assert report.sent == 500 and report.answered >= 495


def test_a_200_ms_cut_is_measured_within_the_band(pair):
    h1, h2, bridge = pair
    probing = Probing(h1, h2.IP(), 1.2)
    try:
        _sleep_until(probing.start_ns + 400 * MS)
        add_start, add_end = _ofctl("add-flow", bridge, f"{CUT_FLOW},actions=drop")
        _sleep_until(add_end + 200 * MS)
        del_start, del_end = _ofctl("--strict", "del-flows", bridge, CUT_FLOW)
    finally:
        subprocess.run(["ovs-ofctl", "--strict", "del-flows", bridge, CUT_FLOW],
                       capture_output=True, check=False)
    _, report = probing.report()
    inner, outer = del_start - add_end, del_end - add_start
    print(f"\ncut held {inner / MS:.1f}-{outer / MS:.1f} ms: {report.summary()}")
    assert report.recovered
    assert inner - MS <= report.outage_ns <= outer + ALLOWANCE_NS
    assert report.outage_run.start_ns >= add_start - MS
    assert abs(report.sent - 1200) <= 1 and report.expected_probes <= 1210
    # Kept sending while nothing came back: one probe per interval inside the
    # cut (a prober that waited for answers would lose a handful, not ~200).
    # Not the largest gap between sends: a loaded machine can stall the whole
    # prober for tens of ms (86.7 ms once in CI, answers late as long), after
    # which it catches up on its schedule.
    assert report.outage_run.count >= 0.9 * report.outage_ns / MS
    assert report.lost <= report.outage_ns // MS + 10  # no other loss worth the name
