"""FAUCET as a peer controller on the demo topology, in its own virtual environment.

``ensure_venv()`` creates ``.venv-faucet`` at the repository root from
``/usr/bin/python3`` and installs ``faucet==1.10.12`` into it (``DEBINSTALL=1``
so its setup does not write ``/etc/faucet``). ``FaucetProcess`` writes a
``faucet.yaml`` for a Mininet ``DatacenterTopo``, starts FAUCET on its own
OpenFlow port (its launcher runs ``osken-manager``, looked up on PATH, so the
venv's ``bin`` goes first), reloads it with SIGHUP and stops it by PID.

FAUCET configuration: every bridge of the topology is one FAUCET datapath with
the same datapath id, and every port, the inter-switch links included, is an
untagged member of one learning VLAN. The topology is a tree, so each
datapath learns MACs on its own, as independent learning switches would
(FAUCET's stacking is for fabrics with redundant links and a root election;
a loop-free tree needs none of it). Ports a migration creates later must be
declared in advance (FAUCET leaves undeclared ports down), so every datapath
declares ``SPARE_PORTS`` ports.

Run by hand: ``python -m benchmarks.peers.faucet`` starts FAUCET and the demo
topology, pings across it and stops both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import yaml

from ryu_apps.lab import testbed as lab

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = REPO_ROOT / ".venv-faucet"
FAUCET_VERSION = "1.10.12"
#: Ports declared on every datapath (the topology's own ports and the ones a
#: migration adds with the next free number).
SPARE_PORTS = 24
LEARNING_VLAN = 100


class FaucetUnavailable(RuntimeError):
    """FAUCET could not be installed (e.g. the package index is unreachable)."""


def ensure_venv(venv: Path = VENV) -> Path:
    """The FAUCET venv, created and installed on first use; its ``faucet`` launcher."""
    launcher = venv / "bin" / "faucet"
    if launcher.exists() and (venv / "bin" / "osken-manager").exists():
        return launcher
    env = dict(os.environ, DEBINSTALL="1")
    if not (venv / "bin" / "python3").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, env=env)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                           f"faucet=={FAUCET_VERSION}"], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode or not launcher.exists():
        raise FaucetUnavailable(f"pip install faucet=={FAUCET_VERSION} into {venv} failed: "
                                f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return launcher


def topology_config(topo, acls: Optional[dict] = None,
                    port_acls: Optional[dict] = None) -> dict:
    """``faucet.yaml`` content for a Mininet Topo: its switches, one learning VLAN.

    ``acls`` maps ACL names to FAUCET rule lists; ``port_acls`` maps
    (switch name, port number) to the ACL names applied to that port's input.
    """
    port_acls = port_acls or {}
    dps = {}
    for name in topo.switches():
        info = topo.nodeInfo(name)
        ports = set(topo.ports.get(name, {}).keys())
        count = max([SPARE_PORTS, *ports])
        interfaces = {}
        for number in range(1, count + 1):
            interface = {"native_vlan": LEARNING_VLAN, "description": f"{name}-eth{number}"}
            if (name, number) in port_acls:
                interface["acls_in"] = list(port_acls[(name, number)])
            interfaces[number] = interface
        dps[name] = {"dp_id": int(info["dpid"], 16), "hardware": "Open vSwitch",
                     "interfaces": interfaces}
    config = {"vlans": {"learning": {"vid": LEARNING_VLAN,
                                     "description": "every host, one L2 segment"}},
              "dps": dps}
    if acls:
        config["acls"] = acls
    return config


def free_tcp_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FaucetProcess:
    """One FAUCET controller, its config file and logs in a private directory."""

    def __init__(self, config: dict, of_port: Optional[int] = None,
                 workdir: Optional[Path] = None) -> None:
        self.launcher = ensure_venv()
        self.of_port = of_port or free_tcp_port()
        self.prometheus_port = free_tcp_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dynprov-faucet-"))
        self.config_file = self.workdir / "faucet.yaml"
        self.log_file = self.workdir / "faucet.log"
        self.output_file = self.workdir / "faucet.out"
        self.write_config(config)
        self.process: Optional[subprocess.Popen] = None
        self.topo = None
        self.port_acls: dict = {}

    def write_config(self, config: dict) -> None:
        """Replace the config file (atomically: FAUCET may read it at any time)."""
        staging = self.config_file.with_suffix(".tmp")
        staging.write_text(yaml.safe_dump(config, sort_keys=False))
        staging.replace(self.config_file)

    def command(self) -> list:
        """The launch command."""
        return [str(self.launcher), "--ryu-ofp-tcp-listen-port", str(self.of_port)]

    def environment(self) -> dict:
        """PATH with the venv first (the launcher runs osken-manager); FAUCET's files."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.update(
            PATH=f"{self.launcher.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            FAUCET_CONFIG=str(self.config_file), FAUCET_LOG=str(self.log_file),
            FAUCET_EXCEPTION_LOG=str(self.workdir / "faucet_exception.log"),
            FAUCET_PROMETHEUS_PORT=str(self.prometheus_port),
            FAUCET_PROMETHEUS_ADDR="127.0.0.1", FAUCET_EVENT_SOCK="",
            DEBINSTALL="1", PYTHONWARNINGS="ignore")
        return env

    def start(self, timeout: float = 30.0) -> "FaucetProcess":
        """Start FAUCET and wait until its OpenFlow port accepts connections."""
        with open(self.output_file, "wb") as out:
            self.process = subprocess.Popen(self.command(), stdout=out,
                                            stderr=subprocess.STDOUT, cwd=str(self.workdir),
                                            env=self.environment(), start_new_session=True)
        lab.wait_until_listening(self.process, self.of_port, timeout, "FAUCET", self.log)
        return self

    def log(self) -> str:
        """FAUCET's log and its launcher's output."""
        parts = []
        for path in (self.output_file, self.log_file):
            try:
                parts.append(path.read_text(errors="replace"))
            except FileNotFoundError:
                pass
        return "\n".join(parts)

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 30.0) -> bool:
        """Wait until ``text`` appears ``count`` times in FAUCET's log."""
        return lab.wait_for_text(self.log, text, count, timeout)

    def reconfigure(self, acls: dict) -> None:
        """Write the config again with other ACL contents (same ports) and SIGHUP."""
        self.write_config(topology_config(self.topo, acls, self.port_acls))
        self.reload()

    def reload(self) -> None:
        """SIGHUP: FAUCET re-reads its config and applies the difference."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("FAUCET is not running")
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, by PID."""
        lab.stop_process(self.process)


def build_network(controller_port: int, topo):
    """A started Mininet network of ``topo`` whose bridges use the controller port."""
    from mininet.net import Mininet

    from ryu_apps.lab.testbed import load_topology_module

    topo_module = load_topology_module()
    net = Mininet(topo=topo, controller=None, autoSetMacs=False, build=False,
                  waitConnected=False)
    net.addController("c0", controller=topo_module.DynprovController, ip="127.0.0.1",
                      port=controller_port)
    net.build()
    net.start()
    return net


def host_ports(topo, hosts) -> dict:
    """{(switch, port): host} for the named hosts of a Topo (their switch side)."""
    found = {}
    for a, b in topo.links():
        for host, switch in ((a, b), (b, a)):
            if host in hosts and topo.isSwitch(switch):
                found[(switch, topo.port(host, switch)[1])] = host
    return found


def running_faucet_datacenter(prefix: str, dpid_base: int, acls=None, acl_hosts=None,
                              **topo_params):
    """(FaucetProcess, net) on the datacenter topology; every DP configured.

    ``acl_hosts`` maps host names (without the prefix) to the ACL names applied
    to their switch ports. The process keeps ``topo`` and ``port_acls`` so a
    caller can write a changed config (``reconfigure``) and SIGHUP it.
    """
    from ryu_apps.lab.testbed import load_topology_module, stop_network

    topo = load_topology_module().DatacenterTopo(prefix=prefix, dpid_base=dpid_base,
                                                 **topo_params)
    named = {prefix + name: acl for name, acl in (acl_hosts or {}).items()}
    port_acls = {where: named[host] for where, host in host_ports(topo, set(named)).items()}
    faucet = FaucetProcess(topology_config(topo, acls, port_acls)).start()
    faucet.topo, faucet.port_acls = topo, port_acls
    net = None
    try:
        net = build_network(faucet.of_port, topo)
        if not faucet.wait_for_log("Cold start configuring DP", count=len(topo.switches()),
                                   timeout=60):
            raise RuntimeError("FAUCET did not configure every datapath:\n"
                               + faucet.log()[-3000:])
    except BaseException:
        if net is not None:
            stop_network(net)
        faucet.stop()
        raise
    return faucet, net


def main() -> int:
    """Start FAUCET on the demo topology, ping every host pair once, stop."""
    from ryu_apps.lab.testbed import stop_network

    faucet, net = running_faucet_datacenter("fz", (os.getpid() % 4096) << 24)
    try:
        print("FAUCET:", " ".join(faucet.command()), "config", faucet.config_file)
        loss = net.pingAll(timeout=1)
        print(f"ping loss {loss}%")
        return 0 if loss == 0 else 1
    finally:
        stop_network(net)
        faucet.stop()


if __name__ == "__main__":
    sys.exit(main())
