"""IPv6 inside a sweep VM: its address and static neighbours on, or off for a move.

An IPv6 seed's VMs get ``sweep_library.ip6_of`` their IPv4 address, on-link in the
seed's /48, with no link-local address, no router solicitation and no duplicate
address detection (``nodad``), and a permanent neighbour entry for every other
VM: as with IPv4's static ARP entries, no neighbour discovery enters the probes.
The lab's live migration (``guest_switchover``) gives the guest back its IPv4
state only, and an interface coming up with IPv6 on would send multicast
listener reports, which would announce a VM whose move shape is ``none``; so a
moving VM's IPv6 is switched off before the move and put back once the move
converged, as the guest's memory would have kept it.
"""

from __future__ import annotations

from ryu_apps.lab.sweep_library import SweepCase, VmPlan, ip6_of


def ipv6_on(host, vm: VmPlan, case: SweepCase) -> None:
    """Give ``host`` (VM ``vm`` of ``case``) its IPv6 address and neighbours."""
    intf = host.defaultIntf()
    conf = f"net.ipv6.conf.{intf}"
    commands = [f"sysctl -qw {conf}.addr_gen_mode=1 {conf}.accept_ra=0 "
                f"{conf}.router_solicitations=0 {conf}.accept_dad=0 {conf}.disable_ipv6=0",
                f"ip -6 addr replace {ip6_of(vm.ip)}/48 dev {intf} nodad"]
    commands += [f"ip -6 neigh replace {ip6_of(other.ip)} lladdr {other.mac} dev {intf} "
                 "nud permanent" for other in case.vms if other.name != vm.name]
    out = host.cmd(" && ".join(commands) + " && echo ipv6-ready")
    if "ipv6-ready" not in out:
        raise RuntimeError(f"seed {case.seed}: IPv6 setup of {vm.name} on {intf} failed: "
                           f"{out.strip()}")


def ipv6_off(host) -> None:
    """Switch IPv6 off on ``host``'s interface (its addresses and neighbours go)."""
    host.cmd(f"sysctl -qw net.ipv6.conf.{host.defaultIntf()}.disable_ipv6=1")
