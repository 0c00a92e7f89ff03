"""Mininet topologies for dynprov: servers' virtual switches, access switches, a fabric.

Self-contained (imports only Mininet), so it works both from dynprov's demo
and tests and from Mininet's own CLI::

    sudo mn --custom topologies/dynprov_topo.py --topo datacenter \
            --controller dynprov,port=6653

Every bridge is an Open vSwitch bridge on the userspace datapath speaking
OpenFlow 1.3, and declares its role in its OpenFlow description
(``dynprov:server:<name>``, ``dynprov:access:<name>`` ...), which is how the
controller tells a server's virtual switch from an access or fabric switch.
Nothing else about the wiring is written down: the controller discovers the
links with LLDP.

Shape of ``datacenter`` (defaults: 2 access switches, 2 servers each, 2 VMs
per server, and an edge device)::

        outside host out1 -- edge e1 -- fabric f1
                                 /                   \\
                           access a1               access a2
                           /       \\               /       \\
                     server s11  server s12   server s21  server s22
                       VM  VM      VM  VM       VM  VM      VM  VM

The outside host sits in 192.0.2.0/24 and its MAC carries template 242
('outside'), whose ACL is the edge firewall; VMs reach it over one L2
segment through on-link routes.

VMs are Mininet hosts. Each VM's MAC carries its configuration template id in
its top 16 bits (identifier scheme ``prefix/16``): the VM named ``web1`` has
MAC ``00:fa:00:00:00:01`` and so selects template 250 (0x00FA).

OpenFlow over TLS: ``--controller dynprov,port=6653,protocol=ssl`` points every
bridge at ``ssl:127.0.0.1:6653`` and makes sure this host's Open vSwitch SSL
settings (``ovs-vsctl set-ssl``: one key, certificate and CA for the whole
host) name the switch files of a dynprov PKI directory (``pki=DIR``, default
/var/lib/dynprov/pki, made by ``dynprov pki init``). It never replaces SSL
settings that name other files, and never removes them.
"""

import os
import socket
import subprocess

from mininet.node import Host, OVSSwitch, RemoteController
from mininet.topo import Topo

#: Templates the default VMs cycle through: (template id, short name, IPv4 /24).
DEFAULT_VM_TEMPLATES = (
    (0x00FA, "web", "10.0.100"),
    (0x00FC, "db", "10.0.200"),
    (0x00FA, "web", "10.0.100"),
    (0x00FE, "mgmt", "10.0.30"),
)
#: The outside host: template 242 ('outside'), in TEST-NET-1.
OUTSIDE_TEMPLATE = 0x00F2
OUTSIDE_IP = "192.0.2.10/24"
OUTSIDE_NETWORK = "192.0.2.0/24"
VM_NETWORK = "10.0.0.0/16"
#: The L3 prefix length every VM uses: wide enough that VMs of different
#: templates would reach each other over one flat L2 network, so isolation
#: between them is the VLANs' doing, not IP routing's.
VM_PREFIX_LENGTH = 16


def vm_mac(template_id, unique_id):
    """MAC of a VM under identifier scheme prefix/16."""
    value = (template_id << 32) | unique_id
    return ":".join("%02x" % ((value >> shift) & 0xFF) for shift in range(40, -8, -8))


class DynprovBridge(OVSSwitch):
    """OVS bridge on the userspace datapath that declares its dynprov role."""

    def __init__(self, name, role="server", **params):
        params.setdefault("datapath", "user")
        params.setdefault("protocols", "OpenFlow13")
        params.setdefault("failMode", "secure")
        super().__init__(name, **params)
        self.role = role

    def bridgeOpts(self):  # noqa: N802 (Mininet's API name)
        """Mininet's options, with the dynprov role in the OpenFlow description."""
        opts = super().bridgeOpts()
        return opts.replace("other-config:dp-desc=%s" % self.name,
                            "other-config:dp-desc=dynprov:%s:%s" % (self.role, self.name))


class VmHost(Host):
    """A Mininet host playing a VM; transmit checksum offload off so TCP works.

    With userspace-datapath bridges on veth links, TCP SYNs from a host with tx
    offload on never arrive; ping works regardless.
    """

    def config(self, routes=(), **params):
        result = super().config(**params)
        for intf in self.intfList():
            self.cmd("ethtool -K %s tx off >/dev/null 2>&1" % intf)
        self.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        for network in routes:
            self.cmd("ip route add %s dev %s" % (network, self.defaultIntf()))
        return result


#: A dynprov PKI directory (``dynprov pki init``) and the files a switch host uses.
DEFAULT_PKI = "/var/lib/dynprov/pki"
SWITCH_SSL_FILES = ("switch-privkey.pem", "switch-cert.pem", "controllerca-cert.pem")


def switch_ssl_settings():
    """This host's Open vSwitch SSL settings: (private key, certificate, CA) or None."""
    out = subprocess.run(["ovs-vsctl", "--timeout=10", "get-ssl"], capture_output=True,
                         text=True, check=True).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    found = (fields.get("Private key"), fields.get("Certificate"),
             fields.get("CA Certificate"))
    return found if any(found) else None


def ensure_switch_ssl(pki=DEFAULT_PKI):
    """Make this host's bridges use the PKI's switch key and certificate, trusting its
    controller CA (``ovs-vsctl set-ssl``, once per host); the files, or an error.

    Settings that already name these files are left alone; settings that name
    other files are never overwritten (another user of this host relies on them).
    """
    wanted = tuple(os.path.join(os.path.abspath(pki), name) for name in SWITCH_SSL_FILES)
    missing = [path for path in wanted if not os.path.isfile(path)]
    if missing:
        raise RuntimeError("switch SSL files missing: %s (make them with: dynprov pki init "
                           "--dir %s)" % (", ".join(missing), pki))
    current = switch_ssl_settings()
    if current == wanted:
        return wanted
    if current is not None:
        raise RuntimeError(
            "this host's Open vSwitch SSL settings (ovs-vsctl get-ssl) name %s, not the PKI "
            "at %s: OVS has one SSL setting per host and something else may rely on it; "
            "use pki=<the directory of those files>, or clear them with ovs-vsctl del-ssl if "
            "nothing does" % (", ".join(current), pki))
    subprocess.run(["ovs-vsctl", "--timeout=10", "set-ssl", *wanted], capture_output=True,
                   text=True, check=True)
    return wanted


class DynprovController(RemoteController):
    """RemoteController whose start-up check does not choke on OpenFlow bytes.

    ``protocol='ssl'`` (OpenFlow over TLS) also sets this host's switch SSL
    files from the PKI directory ``pki`` (see :func:`ensure_switch_ssl`).
    """

    def __init__(self, name, pki=DEFAULT_PKI, **kwargs):
        if kwargs.get("protocol") == "ssl":
            ensure_switch_ssl(pki)
        self.pki = pki
        super().__init__(name, **kwargs)

    def checkListening(self):  # noqa: N802 (Mininet's API name)
        """Warn, without telnet, if nothing listens on the controller port."""
        port = self.port or 6653
        self.port = port
        try:
            with socket.create_connection((self.ip, port), timeout=1):
                pass
        except OSError:
            print("*** warning: no controller listening at %s:%d" % (self.ip, port))


class DatacenterTopo(Topo):
    """Fabric, access switches, servers' virtual switches and VMs.

    Parameters (all optional, usable as ``--topo datacenter,2,2,2,prefix=t1``):
      access: number of access switches; servers: servers per access switch;
      vms: VMs per server; prefix: prepended to every node name, so several
      topologies can share one machine; dpid_base: added to every datapath id;
      edge: 1 (default) adds the edge device and the outside host, 0 leaves them out;
      shared_fabric: 1 makes the fabric switch a plain learning bridge that no
      controller manages (the shared L2 fabric between pods run by separate
      controller processes), 0 (default) leaves it to the controller.
    """

    def build(self, access=2, servers=2, vms=2, prefix="", dpid_base=0, edge=1,
              shared_fabric=0):
        bridge = {"cls": DynprovBridge}
        learning = {"failMode": "standalone"} if int(shared_fabric) else {}
        fabric = self.addSwitch(prefix + "f1", role="fabric",
                                dpid="%016x" % (dpid_base + 0x100), **bridge, **learning)
        if int(edge):
            edge_switch = self.addSwitch(prefix + "e1", role="edge",
                                         dpid="%016x" % (dpid_base + 0x300), **bridge)
            self.addLink(edge_switch, fabric)
            outside = self.addHost(prefix + "out1", cls=VmHost,
                                   mac=vm_mac(OUTSIDE_TEMPLATE, 1), ip=OUTSIDE_IP,
                                   routes=(VM_NETWORK,))
            self.addLink(outside, edge_switch)
        vm_count = 0
        for a in range(1, access + 1):
            access_switch = self.addSwitch(
                "%sa%d" % (prefix, a), role="access",
                dpid="%016x" % (dpid_base + 0x200 + a), **bridge)
            self.addLink(access_switch, fabric)
            for s in range(1, servers + 1):
                server = self.addSwitch(
                    "%ss%d%d" % (prefix, a, s), role="server",
                    dpid="%016x" % (dpid_base + 0x1000 + a * 0x100 + s), **bridge)
                self.addLink(server, access_switch)
                for _ in range(vms):
                    vm_count += 1
                    self._add_vm(server, vm_count, prefix)

    def _add_vm(self, server, number, prefix):
        template_id, short_name, subnet = DEFAULT_VM_TEMPLATES[
            (number - 1) % len(DEFAULT_VM_TEMPLATES)]
        vm = self.addHost(
            "%s%s%d" % (prefix, short_name, number), cls=VmHost,
            mac=vm_mac(template_id, number),
            ip="%s.%d/%d" % (subnet, number, VM_PREFIX_LENGTH), routes=(OUTSIDE_NETWORK,))
        self.addLink(vm, server)


topos = {"datacenter": DatacenterTopo}
controllers = {"dynprov": DynprovController}
