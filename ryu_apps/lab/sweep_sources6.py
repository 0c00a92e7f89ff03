"""The conformance sweep's IPv6 sources: ``bind_ipv6`` and IPv6 ``allowed_addresses``.

In an IPv6 seed that draws it (``SweepCase.sources6``, drawn apart so the rest of a
seed is the same either way) about two thirds of the templates get ``bind_ipv6``
(``link_local`` or, twice as often, ``first_seen``; some others an explicit
``false``), and about two thirds of the guarded ones an IPv6 ``allowed_addresses``
prefix (a /64 to /120 of a /64 of the VMs' /48 that no template uses), sometimes
with a ``to_vm`` rule on it.
Probes send UDP over IPv6 from an address ``inside6`` the VM's allowed prefix and
from one ``outside6`` every prefix (``spoof_network6``). What docs/templates.md
and docs/security.md ("IPv6 anti-spoofing") say, and the oracle applies: a
guarded VM sends IPv6 only from its link-local address (sweep VMs have none), its
bound global address (``first_seen``: the first it sends from, which
``bind_first_seen`` makes its own before any probe) and its allowed prefixes;
anything else is dropped whatever the rules say; without the guard the rules
judge every source.
"""

from __future__ import annotations

import ipaddress
import random
import subprocess
import time
from typing import TYPE_CHECKING, Dict, List, Optional

if TYPE_CHECKING:
    from ryu_apps.lab.sweep_library import SweepCase, VmPlan

GUARDED = ("link_local", "first_seen")


def name_in_an_acl(rng, templates: list, prefix: str) -> None:
    """A rule of a random template's ACL (either side, anywhere in it) names ``prefix``
    as its source, so an allowed address also meets ACLs that name it."""
    other = rng.choice(templates)
    where = rng.choice(("virtual_switch", "access_port"))
    acl = other[where].setdefault("acl", [])
    acl.insert(rng.randint(0, len(acl)), {
        "action": rng.choice(("allow", "deny")), "direction": "to_vm",
        "src": prefix, **({"protocol": "udp"} if rng.random() < 0.5 else {})})


def net6(network: str) -> ipaddress.IPv6Network:
    """The /64 (of a /24) or /48 (of a /16) an IPv4 network maps to (``ip6_of``)."""
    net = ipaddress.IPv4Network(network)
    _, a, b, _ = net.network_address.packed
    return ipaddress.IPv6Network((f"fd00:0:{a:x}:{b:x}::", 64 if net.prefixlen == 24 else 48))


def spoof_network6(network: str) -> ipaddress.IPv6Network:
    """The /64 of the VMs' /48 that no template uses or allows: ``outside6`` sources."""
    return net6(str(list(ipaddress.IPv4Network(network).subnets(new_prefix=24))[255]))


def guard6(side: dict) -> Optional[str]:
    """A ``virtual_switch`` side's IPv6 guard mode, or None without one."""
    mode = side.get("bind_ipv6", False)
    return None if mode in (False, "false", None) else str(mode)


def allowed6(side: dict) -> List[ipaddress.IPv6Network]:
    return [ipaddress.IPv6Network(str(p)) for p in side.get("allowed_addresses") or ()
            if ":" in str(p)]


def add_ipv6_guard(rng: random.Random, library: dict, network: str,
                   subnets: List[str]) -> None:
    """A sources6 seed's templates (module docstring)."""
    free = [str(n) for n in list(ipaddress.IPv4Network(network).subnets(new_prefix=24))[1:255]
            if str(n) not in subnets]
    rng.shuffle(free)
    templates = library["templates"]
    for template in templates:
        side = template["virtual_switch"]
        draw = rng.random()
        if draw < 0.35:
            if draw < 0.12:
                side["bind_ipv6"] = False
            continue
        side["bind_ipv6"] = rng.choice(GUARDED + ("first_seen",))   # own IPv6 works
        if rng.random() < 0.65:
            block = net6(free.pop())
            prefix = next(block.subnets(new_prefix=rng.choice((64, 80, 96, 120))))
            side.setdefault("allowed_addresses", []).append(str(prefix))
            if rng.random() < 0.5:
                name_in_an_acl(rng, templates, str(prefix))


def keep_ipv6_guard(old: dict, new: dict) -> None:
    """A reload keeps a side's IPv6 guard and IPv6 allowed prefixes (after IPv4's)."""
    if "bind_ipv6" in old:
        new["bind_ipv6"] = old["bind_ipv6"]
    kept = [str(p) for p in allowed6(old)]
    if kept:
        new["allowed_addresses"] = list(new.get("allowed_addresses") or []) + kept


def source_address6(case: "SweepCase", vm: "VmPlan", index: int, peers: List[str],
                    kind: str) -> Optional[str]:
    """VM ``vm``'s ``inside6`` (its first IPv6 allowed prefix, None without one) or
    ``outside6`` address; ``index`` its place among the VMs, ``peers`` its template's."""
    if kind == "outside6":
        return str(spoof_network6(case.network).network_address + 1 + index)
    allowed = allowed6(case.template(vm.template_id)["virtual_switch"])
    if not allowed:
        return None
    return str(allowed[0].network_address + 1 + peers.index(vm.name))


def _bound(controller, vm: "VmPlan") -> List[str]:
    """The global IPv6 addresses the controller lists bound to ``vm``."""
    status, answer = controller.rest("GET", f"/dynprov/bindings/{vm.mac}")
    view = answer.get("binding", answer) if isinstance(answer, dict) else {}
    return list(view.get("ipv6_bound") or ()) if status == 200 else []


def still_bound(case: "SweepCase", vm: "VmPlan", controller) -> Optional[str]:
    """After ``vm`` moved: a problem line if its template is ``first_seen`` and its own
    IPv6 address is no longer bound (docs/templates.md: bound addresses move with it)."""
    from ryu_apps.lab.sweep_library import ip6_of

    if guard6(case.template(vm.template_id)["virtual_switch"]) != "first_seen":
        return None
    bound = _bound(controller, vm)
    if ip6_of(vm.ip) in bound:
        return None
    return (f"its first_seen IPv6 address {ip6_of(vm.ip)} is no longer bound after the move "
            f"(bound: {bound or 'none'}; docs/templates.md: bound addresses move with it)")


def bind_first_seen(case: "SweepCase", hosts: Dict[str, object], controller,
                    timeout: float = 10.0) -> None:
    """Have every VM of a ``first_seen`` template send from its own IPv6 address (one
    echo request to a peer) and wait until the controller lists it bound, so no
    probe's other source is the first one seen."""
    from ryu_apps.lab.sweep_library import ip6_of

    waiting = {vm.mac: vm for vm in case.vms
               if guard6(case.template(vm.template_id)["virtual_switch"]) == "first_seen"}
    deadline = time.monotonic() + timeout
    while waiting:
        pings = []
        for vm in waiting.values():
            peer = next(o for o in case.vms if o.name != vm.name)
            pings.append(hosts[vm.name].popen(   # type: ignore[attr-defined]
                ["ping", "-6", "-c", "1", "-W", "1", ip6_of(peer.ip)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for process in pings:
            process.wait()
        for mac, vm in list(waiting.items()):
            if ip6_of(vm.ip) in _bound(controller, vm):
                del waiting[mac]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"seed {case.seed}: first_seen IPv6 not bound for "
                               + ", ".join(f"{vm.name} {ip6_of(vm.ip)}"
                                           for vm in waiting.values()))
