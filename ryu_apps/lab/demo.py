"""The demo: the default topology and library, VMs provisioned from their MACs.

Starts ``ryu-manager ryu_apps.provisioner``, builds the ``datacenter`` Mininet
topology, lets every VM speak, and shows what the controller did: each VM's
MAC, the template it selected and the VLAN it got; reachability between VMs of
one template on different servers; isolation between templates; and the flow
tables of a server's virtual switch and an access switch, annotated by owner.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.request

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.flow_listing import annotated_flows
from ryu_apps.cli.trace import show_trace

_PROVISIONED = re.compile(
    r"provisioned VM (\S+) on switch (\S+) port (\d+): template (\d+) '([^']*)', "
    r"vlan (\d+)")


def _banner(text: str) -> None:
    print(f"\n=== {text}")


def ping(src, dst, count: int = 2) -> bool:
    """True when ``src`` gets an answer from ``dst``."""
    out = src.cmd(f"ping -c{count} -W1 -i0.2 {dst.IP()}")
    return bool(re.search(r" [1-9]\d* received", out))


#: (source, destination, check, expected, why) on the default topology and library.
#: ``tcp/PORT<SOURCE``: from that source port; ``tcp6/PORT``: to the IPv6 address.
CHECKS = (
    ("web1", "web3", "ping", True, "web allows ICMP; same access switch"),
    ("web1", "web7", "ping", True, "across access switches and the fabric"),
    ("web3", "db2", "tcp/5432", True, "database accepts PostgreSQL from the web tier; "
                                      "stateful web: its replies pass, no mirror rule"),
    ("db6", "web1", "tcp/8080<5432", False, "... and a reply-looking SYN from port 5432 "
                                            "(the database's mirror rule lets it out) "
                                            "with no connection behind it is dropped"),
    ("web3", "db2", "tcp/22", False, "database allows nothing else"),
    ("db6", "db2", "ping", False, "database allows ICMP only from the web tier"),
    ("web3", "db2", "tcp6/5432", True, "IPv6: database accepts PostgreSQL from the "
                                       "web prefix fd00:0:0:100::/64"),
    ("db6", "db2", "tcp6/5432", False, "... and from no other tier's"),
    ("mgmt4", "mgmt8", "ping", True, "management allows ICMP from its network"),
    ("mgmt4", "web3", "ping", False, "different VLANs, same server"),
    ("out1", "web5", "ping", True, "the edge firewall lets the outside ping the web tier"),
    ("out1", "web1", "tcp/80", True, "... and reach HTTP on it"),
    ("out1", "db2", "tcp/5432", False, "... but not the database"),
)
#: IPv6 in the demo: each VM's global address in its tier's prefix, the other tier's
#: prefix on-link (web and database share VLAN 100; the templates allow the prefixes).
IPV6_PREFIX = {"web": "fd00:0:0:100::", "db": "fd00:0:0:200::"}


def ipv6_address(vm) -> str:
    """The demo's global IPv6 address of a web or database VM: its tier's prefix and
    the number in its name (web3: fd00:0:0:100::3)."""
    tier = vm.name.rstrip("0123456789")
    return f"{IPV6_PREFIX[tier]}{vm.name[len(tier):]}"


def enable_ipv6(vms) -> None:
    """Give web and database VMs IPv6: their global address (no duplicate address
    detection, so usable at once) and both tiers' prefixes on-link."""
    for vm in vms:
        intf = vm.defaultIntf()
        vm.cmd(f"sysctl -qw net.ipv6.conf.{intf}.accept_dad=0 "
               f"net.ipv6.conf.{intf}.disable_ipv6=0")
        vm.cmd(f"ip -6 addr add {ipv6_address(vm)}/64 dev {intf} nodad")
        for prefix in IPV6_PREFIX.values():
            vm.cmd(f"ip -6 route replace {prefix}/64 dev {intf}")


def _check(vms: dict, src: str, dst: str, check: str) -> bool:
    if check == "ping":
        return ping(vms[src], vms[dst], count=2)
    kind, port = check.split("/")
    if kind == "tcp6":
        return lab.tcp_open(vms[src], vms[dst], int(port), timeout=1,
                            address=ipv6_address(vms[dst]))
    port, _, source = port.partition("<")
    return lab.tcp_open(vms[src], vms[dst], int(port), timeout=1,
                        source_port=int(source or 0))


def run_checks(controller: lab.ControllerProcess, net, vms: dict) -> int:
    """Announce every VM, show what was provisioned and the templates at work.

    Returns the number of expectations that failed.
    """
    failures = 0
    _banner("every VM boots and announces itself (gratuitous ARP)")
    for vm in net.hosts:
        lab.announce(vm)
    controller.wait_for_log("provisioned VM", timeout=10, count=len(vms))
    _banner("what the controller provisioned, from each VM's MAC")
    seen = {m.group(1): m.groups() for m in _PROVISIONED.finditer(controller.log())}
    for vm in net.hosts:
        row = seen.get(vm.MAC())
        if row:
            print(f"  {vm.name:6} MAC {vm.MAC()} -> template {row[3]} ('{row[4]}'), "
                  f"VLAN {row[5]}, bridge port {row[2]}")
        else:
            failures += 1
            print(f"  {vm.name:6} MAC {vm.MAC()} -> NOT provisioned")
    enable_ipv6([vms[name] for name in ("web3", "db2", "db6")])
    lab.start_listener(vms["db2"], 5432, 22)
    lab.start_listener(vms["db2"], 5432, ipv6=True)
    lab.start_listener(vms["web1"], 80, 8080)
    _banner("the templates at work")
    for src, dst, check, expected, why in CHECKS:
        result = _check(vms, src, dst, check)
        failures += result != expected
        verdict = "reachable" if result else "blocked"
        mark = "" if result == expected else "   <-- UNEXPECTED"
        print(f"  {src:6} -> {dst:6} {check:13} {verdict:9} ({why}){mark}")
    _banner("why: a policy trace (dynprov trace web3 db2 tcp/5432)")
    failures += show_trace(controller.rest_target("reader"), vms["web3"].MAC(),
                           vms["db2"].MAC(), "tcp/5432", vms["web3"].IP(),
                           vms["db2"].IP()) != 0
    failures += not show_operations(controller)
    return failures


def show_operations(controller: lab.ControllerProcess) -> bool:
    """Point at the metrics, the live view and the intent check; False if the
    metrics do not answer."""
    _banner("operating it: metrics, live view, intent check")
    url = f"http://127.0.0.1:{controller.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    except OSError as error:
        print(f"  metrics at {url}: no answer ({error})   <-- UNEXPECTED")
        return False
    bindings = [line for line in text.splitlines() if line.startswith("dynprov_bindings{")]
    print(f"  Prometheus metrics: {url} ({len(text.splitlines())} lines), e.g.")
    for line in bindings[:3]:
        print(f"    {line}")
    print(f"  live view: {controller.rest_url}/dynprov/view#token=<a reader token>")
    print("  intent check: dynprov audit [BRIDGE] (every switch is also checked once a minute)")
    return True


def report(failures: int) -> int:
    """Print the demo's verdict; its exit status."""
    _banner("result: " + ("every expectation held" if not failures
                          else f"{failures} expectation(s) failed"))
    return 1 if failures else 0


def needs_root() -> bool:
    """True (after saying so) when not run as root."""
    if os.geteuid() != 0:
        print("dynprov demo: needs root (Mininet and Open vSwitch)", file=sys.stderr)
        return True
    return False


def run_demo(verbose: bool = False) -> int:
    """Provisioning and templates only (``dynprov demo --no-migration``)."""
    if needs_root():
        return 2
    with lab.running_datacenter(tls=True) as (controller, net):
        failures = run_checks(controller, net, {vm.name: vm for vm in net.hosts})
        for bridge in ("s11", "a1"):
            _banner(f"flow table of {bridge}, annotated by owner")
            print(annotated_flows(bridge))
        if verbose:
            _banner("controller log")
            print(controller.log())
    return report(failures)
