"""Run the real parts together: a ryu-manager controller and a Mininet topology.

Shared by the demo and the integration tests. Everything started here is
stopped by PID, and every bridge is deleted by name: nothing else on the
machine is touched (Mininet's machine-wide clean-up is never called).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    from ryu_apps.tls.pki import Pki

TOPOLOGY_RELATIVE = Path("topologies") / "dynprov_topo.py"


def find_project_root() -> Path:
    """The dynprov checkout: the working directory or a parent holding topologies/ and
    templates/, else the tree this package sits in (importing never fails; a missing
    file is reported where it is opened)."""
    package_tree = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd(), *Path.cwd().parents, package_tree):
        if (candidate / TOPOLOGY_RELATIVE).is_file() and (candidate / "templates").is_dir():
            return candidate
    return package_tree


REPO_ROOT = find_project_root()
TOPOLOGY_FILE = REPO_ROOT / TOPOLOGY_RELATIVE
DEFAULT_TEMPLATES = REPO_ROOT / "templates"


def free_tcp_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ryu_manager_command() -> str:
    """The ryu-manager beside the running interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "ryu-manager"
    if beside.exists():
        return str(beside)
    found = shutil.which("ryu-manager")
    if not found:
        raise RuntimeError("ryu-manager not found: run scripts/setup.sh first")
    return found


def lab_pki(directory: Optional[Path] = None) -> Pki:
    """The PKI the lab's controllers and switches use, made if missing (idempotent)."""
    from ryu_apps.tls import pki

    return pki.init(directory)


def ovsdb_ssl_options(pki, trusts: tuple = ("controller",)) -> str:
    """``[dynprov]`` lines for a controller's ssl: OVSDB remotes (store: the controller CA;
    servers' OVSDB: the switch CA; both: both)."""
    from ryu_apps.tls.ovsdb_ssl import controller_files

    files = controller_files(pki, trusts)
    return (f"ovsdb_ssl_private_key = {files.private_key}\n"
            f"ovsdb_ssl_certificate = {files.certificate}\n"
            f"ovsdb_ssl_ca_cert = {files.ca_cert}\n")


class ControllerProcess:
    """``ryu-manager ryu_apps.provisioner`` in a subprocess, logging to a file.

    ``tls``: OpenFlow over mutual TLS on ``of_port`` with the lab PKI
    (``pki_dir``, default that of ``dynprov pki init``); Ryu then listens for
    nothing else. ``framework`` (``ryu``, ``os-ken``): launch with
    ``dynprov controller --framework`` and the same flags instead.
    """

    def __init__(self, templates: Path = DEFAULT_TEMPLATES,
                 scheme: str = "prefix/16", of_port: Optional[int] = None,
                 wsapi_port: Optional[int] = None, workdir: Optional[Path] = None,
                 extra_options: str = "", verbose: bool = True,
                 rest_https: bool = False, tls: bool = False,
                 pki_dir: Optional[Path] = None, framework: Optional[str] = None) -> None:
        self.pki = lab_pki(pki_dir) if tls else None
        self.framework = framework
        self.of_port = of_port or free_tcp_port()
        self.wsapi_port = wsapi_port or free_tcp_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dynprov-"))
        self.config_file = self.workdir / "dynprov.conf"
        self.log_file = self.workdir / "controller.log"
        self.verbose = verbose
        rest_options = self._rest_security(rest_https)
        self.config_file.write_text(
            "[DEFAULT]\n"
            "wsapi_host = 127.0.0.1\n"
            "ofp_listen_host = 127.0.0.1\n"
            "[dynprov]\n"
            f"templates = {templates}\n"
            f"identifier_scheme = {scheme}\n"
            "lldp_interval = 1.0\n" + rest_options + extra_options)
        self.process: Optional[subprocess.Popen] = None

    # -- the REST API: tokens (admin and reader), HTTPS if asked ----------------------
    def _rest_security(self, https: bool) -> str:
        """Write the REST tokens file (and a self-signed certificate); their options."""
        from ryu_apps.rest.auth import new_secret

        self.tokens = {role: new_secret() for role in ("admin", "reader")}
        self.tokens_file = self.workdir / "rest-tokens"
        descriptor = os.open(self.tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.writelines(f"{role} lab-{role} {token}\n" for role, token in self.tokens.items())
        os.chmod(self.tokens_file, 0o600)
        options = f"rest_tokens = {self.tokens_file}\n"
        self.rest_cert: Optional[Path] = None
        if https:
            self.rest_cert, key = self.self_signed_certificate(self.workdir, "rest")
            options += f"rest_cert = {self.rest_cert}\nrest_key = {key}\n"
        return options

    @staticmethod
    def self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
        """A self-signed certificate for 127.0.0.1 and localhost (openssl): (cert, key)."""
        cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", f"/CN=dynprov {name}",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        return cert, key

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API (https when started with ``rest_https``)."""
        scheme = "https" if self.rest_cert else "http"
        return f"{scheme}://127.0.0.1:{self.wsapi_port}"

    def rest_target(self, role: str = "admin"):
        """URL, ``role``'s token and CA of the REST API, for ``ryu_apps.cli.rest_client``
        and ``ryu_apps.cli.notify.send``."""
        from ryu_apps.cli.rest_client import RestTarget

        return RestTarget(self.rest_url, self.tokens[role],
                          str(self.rest_cert) if self.rest_cert else None)

    def rest_headers(self, role: str = "admin") -> dict:
        """The Authorization header of ``role``'s token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def rest(self, method: str, path: str, body=None, role: str = "admin",
             timeout: float = 20.0):
        """(status, decoded JSON answer) of one REST call with ``role``'s token."""
        from ryu_apps.cli.rest_client import call

        return call(self.rest_target(role), method, path, body, timeout)

    def rest_cli_args(self, role: str = "admin") -> list[str]:
        """``dynprov`` options that reach this controller with ``role``'s token."""
        token_file = self.workdir / f"token-{role}"
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(self.tokens[role] + "\n")
        args = ["--controller", self.rest_url, "--token-file", str(token_file)]
        return args + (["--ca-cert", str(self.rest_cert)] if self.rest_cert else [])

    def command(self) -> list[str]:
        """The exact launch command, as an operator would type it."""
        launcher = [ryu_manager_command()] if self.framework is None else [
            str(Path(ryu_manager_command()).parent / "dynprov"), "controller",
            "--framework", self.framework]
        return [*launcher, "--config-file", str(self.config_file),
                *self.openflow_options(),
                "--wsapi-port", str(self.wsapi_port),
                *(["--verbose"] if self.verbose else []), "ryu_apps.provisioner"]

    def openflow_options(self) -> list[str]:
        """Where and how ryu-manager listens for switches (TLS: with the PKI's files)."""
        if self.pki is None:
            return ["--ofp-tcp-listen-port", str(self.of_port)]
        return ["--ofp-ssl-listen-port", str(self.of_port),
                "--ctl-privkey", str(self.pki.key("controller")),
                "--ctl-cert", str(self.pki.cert("controller")),
                "--ca-certs", str(self.pki.switch_ca)]

    def start(self, timeout: float = 20.0) -> "ControllerProcess":
        """Start and wait until the OpenFlow port accepts connections."""
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONWARNINGS="ignore")
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                cwd=str(REPO_ROOT), env=env, start_new_session=True)
        wait_until_listening(self.process, self.of_port, timeout, "controller", self.log)
        return self

    def log(self) -> str:
        """Everything the controller printed so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 15.0, count: int = 1) -> bool:
        """Wait until ``text`` appears ``count`` times in the log."""
        return wait_for_text(self.log, text, count, timeout)

    def stop(self) -> None:
        """Stop the controller (SIGTERM, then SIGKILL) by its PID."""
        stop_process(self.process)


def wait_for_text(read: Callable[[], str], text: str, count: int, timeout: float) -> bool:
    """Whether ``text`` appears ``count`` times in what ``read`` returns within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read().count(text) >= count:
            return True
        time.sleep(0.1)
    return False


def wait_until_listening(process: subprocess.Popen, port: int, timeout: float, what: str,
                         log: Callable[[], str]) -> None:
    """Wait until ``process`` accepts TCP connections on loopback ``port``.

    Stops it and raises RuntimeError (with the end of its log) if it exits or
    does not listen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g} s:\n"
                       f"{log()[-3000:]}")


def stop_process(process: Optional[subprocess.Popen]) -> None:
    """SIGTERM, then SIGKILL after 5 s, a process this program started (by PID)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def load_topology_module():
    """Import topologies/dynprov_topo.py the way ``mn --custom`` would."""
    spec = importlib.util.spec_from_file_location("dynprov_topo", TOPOLOGY_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"{TOPOLOGY_FILE}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def tls_verified(controller: ControllerProcess) -> int:
    """How many switch connections the controller accepted over TLS so far."""
    return len(re.findall(r"OpenFlow TLS: \S+ verified: ", controller.log()))


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


def announce(host, rarp: bool = False, count: int = 1, gap_ms: float = 0,
             mac_prefix: str | None = None) -> None:
    """Make a Mininet host announce itself (gratuitous ARP, or RARP) like a VM.

    With ``mac_prefix``, each frame comes from a different MAC with that prefix.
    """
    options = f"{'--rarp ' if rarp else ''}--count {count} --gap-ms {gap_ms}"
    if mac_prefix:
        options += f" --mac-prefix {mac_prefix}"
    out = host.cmd(f"{_vmtool('announce')} {host.defaultIntf()} {options}; echo rc=$?")
    if "rc=0" not in out:
        raise RuntimeError(f"announce from {host.name} failed: {out}")


def _vmtool(module: str) -> str:
    return f"env PYTHONPATH={REPO_ROOT} {sys.executable} -m ryu_apps.lab.vmtools.{module}"


def start_listener(host, *ports: int) -> None:
    """Start TCP listeners on a Mininet host (killed when the host stops)."""
    host.cmd(f"{_vmtool('tcp_probe')} listen {' '.join(map(str, ports))} "
             f"> /tmp/dynprov-listen-{host.name}.log 2>&1 &")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(f":{p} " in host.cmd("ss -ltn") for p in ports):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{host.name}: TCP listener on {ports} did not start")


def tcp_open(src, dst, port: int, timeout: float = 2.0) -> bool:
    """True when ``src`` completes a TCP connection to ``dst``:``port``."""
    out = src.cmd(f"{_vmtool('tcp_probe')} connect {dst.IP()} {port} --timeout {timeout}")
    return out.strip().endswith("open")


class PingStream:
    """A background ``ping -i INTERVAL`` from one host to another, counted at the end.

    iputils ping slows to about one probe per 10 ms after a miss, so this
    counts loss, not outage duration (the migration benchmark has a prober).
    """

    def __init__(self, src, dst, interval: float = 0.01, count: int = 500) -> None:
        self.src = src
        self.output = Path(tempfile.mkstemp(prefix=f"dynprov-ping-{src.name}-")[1])
        src.cmd(f"ping -n -i {interval} -c {count} {dst.IP()} > {self.output} 2>&1 &")
        self.pid = src.cmd("echo $!").strip()

    def result(self, timeout: float = 30) -> tuple[int, int]:
        """Wait for the stream to end; (transmitted, received)."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(r"(\d+) packets transmitted, (\d+) received")
        while time.monotonic() < deadline:
            found = pattern.search(self.output.read_text())
            if found:
                self.output.unlink()
                return int(found.group(1)), int(found.group(2))
            time.sleep(0.1)
        self.src.cmd(f"kill {self.pid}")
        raise RuntimeError(f"ping stream from {self.src.name} did not finish")


class ProberRun:
    """ryu_apps.lab.vmtools.prober probing from one host to another, in the background."""

    def __init__(self, src, dst, interval_ms: float = 1.0) -> None:
        self.src = src
        workdir = Path(tempfile.mkdtemp(prefix=f"dynprov-probe-{src.name}-"))
        self.output, self.stop_file = workdir / "probes.json", workdir / "stop"
        out = src.cmd(f"{_vmtool('prober')} probe {dst.IP()} --output {self.output} "
                      f"--interval-ms {interval_ms} --stop-file {self.stop_file} "
                      f"> {workdir / 'prober.log'} 2>&1 & echo $!")
        self.pid = out.strip().split()[-1]
        self.log = workdir / "prober.log"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.log.exists() and "started" in self.log.read_text():
                return
            time.sleep(0.01)
        raise RuntimeError(f"prober on {src.name} did not start")

    def stop(self, timeout: float = 10):
        """Stop probing; the OutageReport of the run."""
        from ryu_apps.lab.outage import analyse, probes_from_document

        self.stop_file.touch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "done" in self.log.read_text() and self.output.exists():
                interval_ns, probes = probes_from_document(json.loads(self.output.read_text()))
                return analyse(probes, interval_ns)
            time.sleep(0.05)
        self.src.cmd(f"kill {self.pid}")
        raise RuntimeError(f"prober on {self.src.name} did not finish: {self.log.read_text()}")


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
