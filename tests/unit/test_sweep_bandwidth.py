"""The conformance sweep's bandwidth seeds: limits where a UDP path is, judged by rate."""

from ryu_apps.lab.sweep_bandwidth import HIGH_RATE, LOW_RATES, TOLERANCE, RateCheck
from ryu_apps.lab.sweep_library import generate, id_of
from ryu_apps.lab.sweep_oracle import Oracle
from ryu_apps.lab.sweep_bandwidth import _senders
from ryu_apps.lab.sweep import endpoints
from ryu_apps.lab.sweep_probes import SPARE_PORTS


def test_a_few_seeds_limit_one_template_low_and_some_another_high():
    limited = high = 0
    for seed in range(1, 41):
        rates = [t["virtual_switch"].get("bandwidth", {}).get("rate_kbps")
                 for t in generate(seed).library["templates"]]
        low = [r for r in rates if r in LOW_RATES]
        assert len(low) <= 1 and all(r in LOW_RATES + (HIGH_RATE, None) for r in rates)
        limited += bool(low)
        high += HIGH_RATE in rates
    assert 3 <= limited <= 15 and high >= 1


def test_a_limited_rate_must_lie_near_its_limit_and_an_unlimited_one_arrive_whole():
    assert RateCheck("v1", "v2", 1000, 4000, 1095).ok            # rate + rate/10 of burst
    assert not RateCheck("v1", "v2", 1000, 4000, 1000 * (1 + TOLERANCE) + 1).ok
    assert not RateCheck("v1", "v2", 1000, 4000, 3990).ok        # not throttled at all
    assert RateCheck("v1", "v2", None, 4000, 3990).ok
    assert RateCheck("v1", "v2", HIGH_RATE, 4000, 3990).ok
    assert not RateCheck("v1", "v2", HIGH_RATE, 4000, 1100).ok    # throttled: wrong
    assert not set(SPARE_PORTS) & set(range(20000, 20200))   # blast ports: no probe port


def test_some_seeds_limit_an_access_port_with_a_path_through_it():
    # docs/templates.md: access_port.bandwidth is an aggregate limit at the server's
    # access port; the check needs a VM whose path to a peer crosses it
    limited = 0
    for seed in range(1, 41):
        case = generate(seed)
        ids = [t["access_port"].get("bandwidth", {}).get("rate_kbps") for t in
               case.library["templates"]]
        if not any(ids):
            continue
        limited += 1
        assert all(r in LOW_RATES + (None,) for r in ids)
        crossing = _senders(Oracle(case.library, endpoints(case)), endpoints(case), True)
        template = next(t for t, r in zip(case.library["templates"], ids) if r)
        assert id_of(template) in crossing
    assert limited >= 2
