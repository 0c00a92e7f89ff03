"""The conformance sweep's other sources: addresses a VM sends from besides its own.

In a *sources* seed (``SweepCase.sources``, about 60% of seeds, drawn apart so the
rest of a seed is the same either way) the templates spell ``bind_ip`` every way
(``true``, ``first_seen``, an explicit ``false``), about half the bound ones get
``allowed_addresses`` (a /24 to /27 of a /24 of the VMs' /16 that no template
uses, sometimes a plain address too), and some sides a ``to_vm`` rule on such a
prefix. Probes then send UDP from an address ``inside`` the VM's allowed prefix
and from one ``outside`` every prefix (``spoof_network``): docs/templates.md
says a bound VM sends only from its bound address and its allowed ones, and a
VM without ``bind_ip`` from any.
"""

from __future__ import annotations

import ipaddress
import random
from typing import TYPE_CHECKING, List, Optional

from ryu_apps.lab.sweep_sources6 import name_in_an_acl, source_address6

if TYPE_CHECKING:
    from ryu_apps.lab.sweep_library import SweepCase


def spoof_network(network: str) -> ipaddress.IPv4Network:
    """The /24 of the VMs' /16 that no template uses or allows: ``outside`` sources."""
    return list(ipaddress.IPv4Network(network).subnets(new_prefix=24))[255]


def source_address(case: "SweepCase", name: str, kind: str) -> Optional[str]:
    """The address VM ``name`` sends ``kind`` probes from: ``inside`` its template's first
    IPv4 ``allowed_addresses`` prefix (None if it has none), or ``outside`` every prefix
    (in ``spoof_network``); one per VM, never another VM's. ``inside6`` and ``outside6``:
    the same over IPv6 (``sweep_sources6``)."""
    vm = next(v for v in case.vms if v.name == name)
    index = [v.name for v in case.vms].index(name)
    peers = [v.name for v in case.vms if v.template_id == vm.template_id]
    if kind.endswith("6"):
        return source_address6(case, vm, index, peers, kind)
    if kind == "outside":
        return str(spoof_network(case.network).network_address + 1 + index)
    allowed = [p for p in case.template(vm.template_id)["virtual_switch"].get(
        "allowed_addresses") or [] if ":" not in str(p)]
    if not allowed:
        return None
    prefix = ipaddress.IPv4Network(allowed[0])
    return str(prefix.network_address + 1 + peers.index(name))


def add_allowed_addresses(rng: random.Random, library: dict, network: ipaddress.IPv4Network,
                           subnets: List[ipaddress.IPv4Network]) -> None:
    """A sources seed's templates: ``bind_ip`` spelt ``true``, ``first_seen`` or (off)
    ``false``; about half of the bound ones get ``allowed_addresses`` (a /24 to /27 of an
    unused /24 of the VMs' /16, sometimes a plain address too), and some sides a rule
    on that prefix (so the ACL must judge the allowed source, not the bound one)."""
    free = [n for n in list(network.subnets(new_prefix=24))[1:255] if n not in subnets]
    rng.shuffle(free)
    templates = library["templates"]
    for template in templates:
        side = template["virtual_switch"]
        if not side.get("bind_ip"):
            if rng.random() < 0.4:
                side["bind_ip"] = False
            continue
        if rng.random() < 0.4:
            side["bind_ip"] = "first_seen"
        if rng.random() < 0.55:
            block = free.pop()
            prefix = list(block.subnets(new_prefix=rng.choice((24, 25, 26, 27))))[0]
            allowed = [str(prefix)]
            if rng.random() < 0.3:
                allowed.append(str(free.pop().network_address + 7))
            side["allowed_addresses"] = allowed
            if rng.random() < 0.5:
                name_in_an_acl(rng, templates, str(prefix))

