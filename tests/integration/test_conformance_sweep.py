"""The conformance sweep on three fixed seeds: generated libraries and topologies on real
OVS, every probe's outcome compared with the documentation's oracle, VMs live-migrated.

Each seed draws its own template ids, VLANs (shared between templates), ACLs
(stateful sides, port ranges, access-port rules), topology size and VMs
(``ryu_apps.lab.sweep_library``), and its moves (``ryu_apps.lab.sweep_moves``: a
detection mode, a move shape, 1-3 VMs to other servers); ``ryu_apps.lab.sweep``
plugs the VMs in and probes (over IPv6 too in seeds 10 and 41), live-migrates
the moved VMs, checks each move converged with nothing left behind, that TCP
connections opened before the moves still carry data, and probes their pairs
again, then reloads a redrawn library (new VLANs and rules, the same templates)
through the REST API and probes again.
The seeds were picked for what they cover: 10 (template id 15, hex-string ids, a
library split into files, a stateful side, the template merge on a server; packets
only, hypervisor RARPs, three moves across access switches), 42 (3x2 servers,
template id 8, four stateful templates, the merge; notice only, RARPs, a move
behind the same access switch and one across), 41 (8 VMs on one server: more than
one flood chunk, the merge; OVSDB watched, one gratuitous ARP, two moves across).
Seeds 10 and 42 also send UDP from allowed and from spoofed addresses (``allowed_addresses``,
``bind_ip`` true, first_seen and false: ``ryu_apps.lab.sweep_sources``), seed 10 over IPv6
too (``bind_ipv6`` link_local and first_seen, an IPv6 allowed prefix:
``ryu_apps.lab.sweep_sources6``); seed 42 runs the ``interleave`` identifier scheme with a
stray VM whose MAC selects no template (``ryu_apps.lab.sweep_schemes``); seed 33, without
moves or reload and in the serial phase (it measures rates), checks a 1 Mbit/s VM's
bandwidth and that a 1 Gbit/s one is not throttled (``ryu_apps.lab.sweep_bandwidth``).
A wider run is ``python -m ryu_apps.lab.sweep --seeds 1-40`` (docs/operator-guide.md).
"""

import pytest

from ryu_apps.lab.sweep import run_seed
from tests.integration.conftest import unique_prefix

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seed, mode", [(10, "packets"), (42, "notice"), (41, "ovsdb")])
def test_generated_library_and_topology_behave_as_documented(seed, mode, tmp_path):
    result = run_seed(seed, "c" + unique_prefix()[1:], out_dir=tmp_path)
    expected = [o.verdict.passes for o in result.outcomes]
    assert any(expected) and not all(expected), result.summary   # the seed tests both ways
    assert result.plan is not None and result.plan.mode == mode, result.summary
    assert result.moves and any(o.phase == 2 for o in result.outcomes), result.summary
    sources = {o.verdict.forward for o in result.outcomes if o.probe.source_ip}
    assert sources == ({True, False} if seed != 41 else set()), result.summary
    sources6 = {o.verdict.forward for o in result.outcomes if ":" in (o.probe.source_ip or "")}
    assert sources6 == ({True, False} if seed == 10 else set()), result.summary
    assert len(result.strays) == (1 if seed == 42 else 0), result.summary
    evidence = result.evidence.read_text() if result.evidence else ""
    assert not result.failed, "\n".join(
        [result.summary] + [o.describe() for o in result.mismatches] + result.move_problems
        + [evidence])


@pytest.mark.serial
def test_a_limited_vm_sends_at_its_rate_and_a_high_rate_one_is_not_throttled(tmp_path):
    result = run_seed(33, "c" + unique_prefix()[1:], out_dir=tmp_path, reload=False,
                      moves=False)
    assert sorted(rate.limit_kbps for rate in result.rates) == [1000, 1_000_000], result.summary
    assert not result.failed, "\n".join(
        [result.summary] + [rate.describe() for rate in result.rates]
        + [o.describe() for o in result.mismatches])
