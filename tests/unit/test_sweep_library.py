"""The conformance sweep's generator: seeded, valid, and varied where it matters."""

import ipaddress

from ryu_apps.core.identifiers import scheme_from_spec
from ryu_apps.core.template_validation import build_library
from ryu_apps.lab.sweep_library import generate, id_of, ip6_of, redraw
from ryu_apps.lab.sweep_sources6 import allowed6, guard6, spoof_network6
from ryu_apps.lab.sweep_sources import source_address, spoof_network

SEEDS = range(1, 41)


def test_a_seed_always_draws_the_same_case():
    assert generate(7) == generate(7)
    assert generate(7) != generate(8)


def test_every_library_validates_and_every_vm_mac_selects_its_template():
    schemes = set()
    for seed in SEEDS:
        case = generate(seed)
        library = build_library([("sweep.yaml", case.library)])
        assert 3 <= len(list(library)) <= 5
        scheme = scheme_from_spec(case.scheme)
        schemes.add(case.scheme)
        for vm in case.vms:
            assert scheme.decode(vm.mac) == vm.template_id
            assert library.get(vm.template_id) is not None
        for stray in case.strays:   # a MAC that selects no template of the library
            assert scheme.decode(stray.mac) == stray.template_id
            assert library.get(stray.template_id) is None
        assert bool(case.strays) == (case.scheme != "prefix/16")
        assert 1 <= case.access <= 3 and 1 <= case.servers <= 2
    assert schemes == {"prefix/16", "prefix/12", "interleave"}


def test_the_seeds_cover_shared_vlans_stateful_sides_and_port_ranges():
    shared = stateful = ranges = 0
    for seed in SEEDS:
        templates = generate(seed).library["templates"]
        vlans = [t["vlan"] for t in templates]
        shared += len(set(vlans)) < len(vlans)
        stateful += any(t["virtual_switch"].get("stateful") for t in templates)
        ranges += any("-" in str(r.get("dst_port", "")) for t in templates
                      for side in ("virtual_switch", "access_port")
                      for r in t[side].get("acl", ()))
    assert shared > 20 and stateful > 10 and ranges > 10


def test_a_reload_keeps_the_templates_and_vms_and_redraws_the_rest():
    for seed in range(1, 11):
        case = generate(seed)
        again = redraw(case)
        build_library([("sweep.yaml", again.library)])
        assert again.vms == case.vms and redraw(case) == again
        assert [id_of(t) for t in again.library["templates"]] == [
            id_of(t) for t in case.library["templates"]]
        assert again.library != case.library


def test_source_ports_are_unique_and_never_a_port_any_phase_listens_on():
    from ryu_apps.lab.sweep_probes import listened_ports, plan_probes, plan_targets

    for seed in range(1, 21):
        case = generate(seed)
        phases = [case, redraw(case)]
        targets = [plan_targets(c, 24, n) for n, c in enumerate(phases)]
        listened = listened_ports(*targets)
        avoid = listened_ports(*targets)
        used: dict = {}
        for number, phase in enumerate(phases):
            for src, _, probe in plan_probes(phase, targets[number], avoid, number):
                if probe.source_port is None:
                    continue
                assert probe.source_port not in listened.get(src, set())
                assert probe.source_port not in used.setdefault(src, set())
                used[src].add(probe.source_port)


def test_about_half_the_seeds_have_ipv6_addresses_and_ipv6_rules_that_validate():
    from ryu_apps.lab.sweep_library import ip6_of
    from ryu_apps.lab.sweep_oracle import rule_families

    assert ip6_of("10.200.17.12") == "fd00:0:c8:11::c"
    cases = [generate(seed) for seed in SEEDS]
    with_ipv6 = [c for c in cases if c.ipv6]
    assert 10 < len(with_ipv6) < 30
    for case in with_ipv6:
        for library in (case.library, redraw(case).library):
            build_library([("sweep.yaml", library)])
        rules = [r for t in case.library["templates"] for side in ("virtual_switch", "access_port")
                 for r in t[side].get("acl", ())]
        assert any(rule_families(r) == (6,) for r in rules), case.seed
    assert not any(rule_families(r) == (6,) for c in cases if not c.ipv6
                   for t in c.library["templates"] for side in ("virtual_switch", "access_port")
                   for r in t[side].get("acl", ()))


def test_sources_seeds_allow_addresses_that_validate_and_no_vm_or_spoof_address_holds():
    allowed = unbound = 0
    for seed in SEEDS:
        case = generate(seed)
        for phase in (case, redraw(case)):
            build_library([("sweep.yaml", phase.library)])
        sides = [dict(t["virtual_switch"], allowed_addresses=[
            p for p in t["virtual_switch"].get("allowed_addresses") or () if ":" not in p])
            for t in case.library["templates"]]
        if not case.sources:
            assert not any(s["allowed_addresses"] or s.get("bind_ip") is False for s in sides)
            continue
        allowed += any(s["allowed_addresses"] for s in sides)
        unbound += any(s.get("bind_ip") is False for s in sides)
        spoof = spoof_network(case.network)
        for vm in case.vms:
            outside = ipaddress.ip_address(source_address(case, vm.name, "outside"))
            assert outside in spoof and str(outside) not in {v.ip for v in case.vms}
            inside = source_address(case, vm.name, "inside")
            prefixes = [p for p in case.template(vm.template_id)["virtual_switch"].get(
                "allowed_addresses") or () if ":" not in p]
            if inside is None:
                assert not prefixes
            else:
                assert ipaddress.ip_address(inside) in ipaddress.ip_network(prefixes[0])
                assert inside not in {v.ip for v in case.vms}
    assert allowed >= 8 and unbound >= 5


def test_sources6_seeds_guard_ipv6_allow_ipv6_prefixes_that_validate_and_keep_them():
    modes: set = set()
    inside = 0
    for seed in SEEDS:
        case = generate(seed)
        sides = [t["virtual_switch"] for t in case.library["templates"]]
        if not case.sources6:
            assert not any("bind_ipv6" in s or allowed6(s) for s in sides), seed
            continue
        assert case.ipv6, seed
        reloaded = redraw(case)
        for old, new in zip(sides, [t["virtual_switch"] for t in reloaded.library["templates"]]):
            assert old.get("bind_ipv6") == new.get("bind_ipv6") and allowed6(old) == allowed6(new)
        modes |= {guard6(s) for s in sides}
        spoof = spoof_network6(case.network)
        for vm in case.vms:
            outside = ipaddress.ip_address(source_address(case, vm.name, "outside6"))
            assert outside in spoof and str(outside) != ip6_of(vm.ip)
            address = source_address(case, vm.name, "inside6")
            prefixes = allowed6(case.template(vm.template_id)["virtual_switch"])
            assert (address is None) == (not prefixes)
            if address is not None:
                inside += 1
                assert ipaddress.ip_address(address) in prefixes[0]
                assert address not in {ip6_of(v.ip) for v in case.vms}
    assert modes == {None, "link_local", "first_seen"} and inside >= 10
