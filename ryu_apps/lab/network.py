"""The datacenter topology in Mininet on our controller: build, grow, inspect, stop by name."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Optional

from ryu_apps.lab.controller_process import ControllerProcess, lab_pki, tls_verified
from ryu_apps.lab.project import load_topology_module


@contextlib.contextmanager
def running_datacenter(extra_options: str = "", tls: bool = False, **topo_params):
    """A started controller and datacenter topology with the links discovered.

    ``tls``: OpenFlow over mutual TLS. Yields (controller, net); stops both on
    the way out, by PID and bridge name.
    """
    controller = ControllerProcess(extra_options=extra_options, tls=tls).start()
    print("controller:", " ".join(controller.command()), flush=True)
    net = None
    try:
        net = build_network(controller.of_port, tls=tls, **topo_params)
        print("\n=== waiting for the controller to discover the fabric (LLDP)", flush=True)
        wait_for_fabric(controller, net)
        if controller.pki is not None:   # tls
            print(f"=== OpenFlow over mutual TLS: {tls_verified(controller)} switch connections "
                  f"verified against {controller.pki.switch_ca}", flush=True)
        yield controller, net
    finally:
        if net is not None:
            stop_network(net)
        controller.stop()


def build_network(controller_port: int, prefix: str = "", tls: bool = False,
                  pki_dir: Optional[Path] = None, **topo_params):
    """A started Mininet network of the datacenter topology, on our controller.

    ``tls``: every bridge connects to ``ssl:127.0.0.1:PORT`` with the lab PKI's
    switch certificate (this host's ``ovs-vsctl set-ssl``, see the topology).
    """
    from mininet.net import Mininet  # imported here: needs root and Mininet

    topo_module = load_topology_module()
    topo = topo_module.DatacenterTopo(prefix=prefix, **topo_params)
    net = Mininet(topo=topo, controller=None, autoSetMacs=False, build=False,
                  waitConnected=False)
    net.addController("c0", controller=topo_module.DynprovController,
                      ip="127.0.0.1", port=controller_port,
                      **controller_tls(tls, pki_dir))
    net.build()
    net.start()
    return net


def controller_tls(tls: bool, pki_dir: Optional[Path] = None) -> dict:
    """The topology's DynprovController parameters for OpenFlow over TLS (or none)."""
    if not tls:
        return {}
    return {"protocol": "ssl", "pki": str(lab_pki(pki_dir).directory)}


def add_vm(net, server, name: str, mac: str, ip: str):
    """Plug a new VM into a running network's server bridge (like a VM boot)."""
    topo_module = load_topology_module()
    host = net.addHost(name, cls=topo_module.VmHost, mac=mac, ip=ip)
    # Silent until told otherwise: no IPv6 router solicitation or DAD at link-up.
    host.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
             "net.ipv6.conf.default.disable_ipv6=1")
    link = net.addLink(host, server)
    server.attach(link.intf2)
    host.configDefault()
    return host


def switch_links(net) -> int:
    """Number of links between two switches of a Mininet network."""
    return sum(1 for link in net.links
               if link.intf1.node in net.switches and link.intf2.node in net.switches)


def wait_for_fabric(controller: ControllerProcess, net, timeout: float = 30) -> None:
    """Wait until the controller has discovered every switch-to-switch link."""
    links = switch_links(net)
    if not controller.wait_for_log("link ", timeout=timeout, count=links):
        raise RuntimeError(f"controller discovered fewer than {links} links:\n"
                           + controller.log()[-3000:])


def ovs_bridges() -> set[str]:
    """Names of every OVS bridge on the machine."""
    out = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True,
                         check=False).stdout
    return set(out.split())


def stop_network(net) -> None:
    """Stop a Mininet network and delete exactly the bridges it created."""
    names = [s.name for s in net.switches]
    try:
        net.stop()
    finally:
        for name in names:
            subprocess.run(["ovs-vsctl", "--if-exists", "del-br", name],
                           capture_output=True, check=False)


def run_ofctl(command: str, bridge: str, *args: str) -> str:
    """``ovs-ofctl -O OpenFlow13 COMMAND BRIDGE ARGS`` output."""
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", command, bridge, *args],
                          capture_output=True, text=True, check=True).stdout


def dump_flows(bridge: str) -> str:
    """``ovs-ofctl -O OpenFlow13 dump-flows BRIDGE`` output."""
    return run_ofctl("dump-flows", bridge)


def datapath_settled(timeout: float = 30.0) -> None:
    """Wait until OVS's revalidators have finished a round (``ovs-appctl revalidator/wait``).

    A barrier reply says the OpenFlow tables changed; the datapath's cached flows
    (megaflows) built from the old tables are revalidated afterwards, asynchronously
    (up to hundreds of ms on this loaded machine), and forward meanwhile as before.
    """
    subprocess.run(["ovs-appctl", "revalidator/wait"], capture_output=True, check=True,
                   timeout=timeout)
