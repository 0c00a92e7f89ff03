"""TLS on every control channel, on real Open vSwitch: OpenFlow, the OVSDB watcher, the store.

The controller serves OpenFlow over mutual TLS with the lab PKI (``dynprov pki
init``); the datacenter topology's bridges connect to ``ssl:`` targets with
this host's switch certificate (``ovs-vsctl set-ssl``, set once per host and
never removed). The controller watches the machine's OVSDB through an
``ovsdb-server`` relay of our own that serves it on ``pssl:`` with the switch
certificate, as a server's OVSDB would. Strangers (no certificate, another
CA's, a controller's, plain TCP) are refused while the switches keep working.
Bridges, relays and stores are ours, named per PID, and removed by name/PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.tls import ovsdb_ssl
from ryu_apps.tls import pki
from ryu_apps.cli.main import main as dynprov
from ryu_apps.lab.demo import ping
from ryu_apps.store.admin import AdminSession
from ryu_apps.store.client import StoreClient
from ryu_apps.store.server import STANDALONE, Store
from ryu_apps.store.writes import BindingRecord, claim_binding
from tests.integration.conftest import OPEN_LIBRARY

pytestmark = pytest.mark.integration

PREFIX = "tl%02d" % (os.getpid() % 100)
DPID_BASE = ((os.getpid() + 29) % 4096) << 24
OPENFLOW_HELLO = bytes.fromhex("0400000800000001")


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True)
    assert not check or done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
    return done


def wait_until(condition, timeout: float = 15.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class OvsdbRelay:
    """Our own ovsdb-server relaying this host's Open_vSwitch database on ``pssl:``,
    served with the switch certificate like a server's OVSDB set up with set-ssl."""

    def __init__(self, lab_pki: pki.Pki) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dynprov-relay-"))
        self.port = lab.free_tcp_port()
        self.files = ovsdb_ssl.SslFiles(str(lab_pki.key("switch")), str(lab_pki.cert("switch")),
                                        str(lab_pki.controller_ca))

    @property
    def remote(self) -> str:
        return f"ssl:127.0.0.1:{self.port}"

    def start(self) -> "OvsdbRelay":
        run("ovsdb-server", "--detach", "--no-chdir", f"--pidfile={self.dir}/pid",
            f"--unixctl={self.dir}/ctl", f"--log-file={self.dir}/log",
            f"--remote=pssl:{self.port}:127.0.0.1", *self.files.server_options(),
            "relay:Open_vSwitch:unix:/var/run/openvswitch/db.sock")
        return self

    def stop(self) -> None:
        try:
            os.kill(int((self.dir / "pid").read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def lab_pki():
    return lab.lab_pki()


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory):
    return pki.init(tmp_path_factory.mktemp("foreign-pki"))


@pytest.fixture(scope="module")
def tls_dc(lab_pki):
    """Controller (TLS, watching OVSDB over ssl:) and datacenter (7 bridges, 8 VMs) over TLS."""
    relay = OvsdbRelay(lab_pki).start()
    controller = lab.ControllerProcess(
        templates=OPEN_LIBRARY, tls=True,
        extra_options=f"ovsdb = {relay.remote}\n" + lab.ovsdb_ssl_options(lab_pki, ("switch",)))
    net = None
    try:
        controller.start()
        net = lab.build_network(controller.of_port, prefix=PREFIX, tls=True, edge=0,
                                dpid_base=DPID_BASE)
        lab.wait_for_fabric(controller, net)
        for vm in net.hosts:
            lab.announce(vm)
        assert controller.wait_for_log("provisioned VM", timeout=20, count=len(net.hosts)), \
            controller.log()[-3000:]
        yield controller, net, relay
    finally:
        if net is not None:
            lab.stop_network(net)
        controller.stop()
        relay.stop()


def vms(net) -> dict:
    return {host.name[len(PREFIX):]: host for host in net.hosts}


def controller_connected(bridge: str) -> tuple[str, bool]:
    """(target, is_connected) of a bridge's one controller."""
    uuid = run("ovs-vsctl", "get", "Bridge", bridge, "controller").stdout.strip("[]\n ")
    target = run("ovs-vsctl", "get", "Controller", uuid, "target").stdout.strip().strip('"')
    connected = run("ovs-vsctl", "get", "Controller", uuid, "is_connected").stdout.strip()
    return target, connected == "true"


def controller_status(bridge: str) -> str:
    """The ``status`` column of a bridge's one controller (last_error, state ...)."""
    uuid = run("ovs-vsctl", "get", "Bridge", bridge, "controller").stdout.strip("[]\n ")
    return run("ovs-vsctl", "get", "Controller", uuid, "status").stdout.strip()


def refusals(controller) -> list[str]:
    return [line for line in controller.log().splitlines() if "OpenFlow TLS: refused" in line]


def tls_peer(port: int, trusts: Path, cert: Path | None = None, key: Path | None = None) -> bytes:
    """A TLS client playing a switch: what the controller sends after a HELLO (b'' if refused)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(trusts))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                tls.sendall(OPENFLOW_HELLO)
                return tls.recv(8)
        except (ssl.SSLError, OSError):
            return b""


# -- OpenFlow over TLS -----------------------------------------------------------

def test_every_switch_connects_over_tls_verified_by_the_switch_ca(tls_dc):
    controller, net, _ = tls_dc
    target = f"ssl:127.0.0.1:{controller.of_port}"
    for switch in net.switches:   # OVS refreshes is_connected every few seconds
        assert wait_until(lambda name=switch.name: controller_connected(name) == (target, True)), \
            (switch.name, controller_connected(switch.name))
    assert lab.tls_verified(controller) >= len(net.switches) == 7
    assert "commonName=switch" in controller.log()
    assert "--ofp-tcp-listen-port" not in controller.command()


def test_vms_provisioned_through_tls_switches_ping_per_their_templates(tls_dc):
    _, net, _ = tls_dc
    vm = vms(net)
    expected = [("web1", "web7", True),     # same template, across access switches
                ("db2", "db6", True),
                ("mgmt4", "mgmt8", True),
                ("web1", "db2", False),     # other template, same server
                ("web3", "mgmt8", False)]
    assert [(a, b, ping(vm[a], vm[b])) for a, b, _ in expected] == expected


def test_strangers_are_refused_and_the_switches_keep_working(tls_dc, lab_pki, foreign_pki):
    controller, net, _ = tls_dc
    before = len(refusals(controller))
    port = controller.of_port
    answers = {
        "no certificate": tls_peer(port, lab_pki.controller_ca),
        "another CA's switch": tls_peer(port, lab_pki.controller_ca,
                                        foreign_pki.cert("switch"), foreign_pki.key("switch")),
        "our controller's (not a switch)": tls_peer(port, lab_pki.controller_ca,
                                                    lab_pki.cert("controller"),
                                                    lab_pki.key("controller")),
    }
    assert answers == dict.fromkeys(answers, b"")
    assert wait_until(lambda: len(refusals(controller)) >= before + 3), refusals(controller)
    reasons = "\n".join(refusals(controller)[before:])
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reasons
    assert reasons.count("certificate verify failed") >= 2
    # the switches are still there and the controller still provisions
    assert wait_until(lambda: all(controller_connected(s.name)[1] for s in net.switches))
    s22 = next(s for s in net.switches if s.name.endswith("s22"))
    newcomer = lab.add_vm(net, s22, PREFIX + "web9", "00:fa:00:00:00:09", "10.0.100.9/16")
    lab.announce(newcomer)
    assert controller.wait_for_log("provisioned VM 00:fa:00:00:00:09", timeout=10)
    assert ping(newcomer, vms(net)["web1"])


def test_plain_tcp_to_the_tls_port_gets_no_openflow(tls_dc):
    controller, _, _ = tls_dc
    before = len(refusals(controller))
    with socket.create_connection(("127.0.0.1", controller.of_port), timeout=5) as raw:
        raw.sendall(OPENFLOW_HELLO)
        answer = b""
        while True:
            try:
                chunk = raw.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    assert not answer.startswith(b"\x04"), answer   # at most a TLS alert, then closed
    assert wait_until(lambda: len(refusals(controller)) > before)
    assert "WRONG_VERSION_NUMBER" in refusals(controller)[-1]
    # a real bridge with a plain tcp: target never gets through either
    bridge = PREFIX + "plain"
    run("ovs-vsctl", "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
        "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13",
        f"other-config:datapath-id={DPID_BASE | 0xEEE:016x}")
    try:
        run("ovs-vsctl", "set-controller", bridge, f"tcp:127.0.0.1:{controller.of_port}")
        assert wait_until(lambda: "last_error" in controller_status(bridge)), \
            controller_status(bridge)
        assert controller_connected(bridge) == (f"tcp:127.0.0.1:{controller.of_port}", False)
        assert f"{DPID_BASE | 0xEEE:016x}" not in controller.log()
    finally:
        run("ovs-vsctl", "--if-exists", "del-br", bridge, check=False)


def test_a_switch_refuses_a_controller_signed_by_another_ca(foreign_pki):
    impostor = lab.ControllerProcess(templates=OPEN_LIBRARY, tls=True,
                                     pki_dir=foreign_pki.directory).start()
    bridge = PREFIX + "wary"
    try:
        run("ovs-vsctl", "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
            "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13",
            f"other-config:datapath-id={DPID_BASE | 0xEEF:016x}")
        run("ovs-vsctl", "set-controller", bridge, f"ssl:127.0.0.1:{impostor.of_port}")
        # the switch checks the controller's certificate first and sends "unknown CA"
        assert wait_until(lambda: "TLSV1_ALERT_UNKNOWN_CA" in impostor.log()), \
            impostor.log()[-2000:]
        assert controller_connected(bridge)[1] is False
        assert lab.tls_verified(impostor) == 0
    finally:
        run("ovs-vsctl", "--if-exists", "del-br", bridge, check=False)
        impostor.stop()


def test_mn_custom_bridges_use_ssl_targets(tmp_path, lab_pki):
    """Mininet's own CLI: ``--controller dynprov,port=P,protocol=ssl,pki=DIR``."""
    p = "tm%02d" % (os.getpid() % 100)
    announce = f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m ryu_apps.lab.vmtools.announce"
    script = (f"sh sleep 3\n{p}web1 {announce} {p}web1-eth0\n{p}web3 {announce} {p}web3-eth0\n"
              f"sh sleep 1\n{p}web1 ping -c1 -W1 {p}web3\nsh ovs-vsctl get-controller {p}s12\n"
              "exit\n")
    controller = lab.ControllerProcess(templates=OPEN_LIBRARY, workdir=tmp_path, tls=True).start()
    try:
        out = subprocess.run(
            ["mn", "--custom", str(lab.TOPOLOGY_FILE),
             "--topo", f"datacenter,1,2,2,prefix={p},edge=0",
             "--controller", f"dynprov,port={controller.of_port},protocol=ssl,"
                             f"pki={lab_pki.directory}"],
            input=script, capture_output=True, text=True, timeout=180)
    finally:
        controller.stop()
    text = out.stdout + out.stderr
    assert f"ssl:127.0.0.1:{controller.of_port}" in text, text
    assert " 0% packet loss" in text, text
    assert lab.tls_verified(controller) == 4, controller.log()[-3000:]   # f1, a1, s11, s12
    assert not {f"{p}s11", f"{p}a1"} & lab.ovs_bridges()


# -- the OVSDB watcher over ssl: -------------------------------------------------

def test_a_silent_vm_is_found_through_ovsdb_over_ssl(tls_dc):
    controller, net, relay = tls_dc
    assert controller.wait_for_log(f"ovsdb {relay.remote}: database read", timeout=10), \
        controller.log()[-2000:]
    s12 = next(s for s in net.switches if s.name.endswith("s12"))
    silent = lab.add_vm(net, s12, PREFIX + "quiet", "00:fa:00:00:00:77", "10.0.100.77/16")
    port_name = silent.defaultIntf().link.intf2.name
    run("ovs-vsctl", "set", "Interface", port_name, "external_ids:attached-mac=00:fa:00:00:00:77")
    assert controller.wait_for_log(f"ovsdb {relay.remote}: bridge {s12.name} interface "
                                   f"{port_name}: VM 00:fa:00:00:00:77 attached", timeout=10), \
        controller.log()[-2000:]
    assert controller.wait_for_log("provisioned VM 00:fa:00:00:00:77", timeout=10)
    assert ping(vms(net)["web1"], silent)


def test_an_ssl_ovsdb_remote_without_files_is_refused_with_the_reason():
    with pytest.raises(ovsdb_ssl.SslConfigError,
                       match=r"ovsdb ssl:127.0.0.1:1: cannot use SSL: ovsdb_ssl_private_key "
                             r"is not set; ovsdb_ssl_certificate is not set; "
                             r"ovsdb_ssl_ca_cert is not set"):
        ovsdb_ssl.configure("ssl:127.0.0.1:1", None, "ovsdb")


# -- the store over ssl: ---------------------------------------------------------

@pytest.fixture
def ssl_store(tmp_path, lab_pki):
    store = Store.create(tmp_path / "store", STANDALONE,
                         ssl=ovsdb_ssl.controller_files(lab_pki)).start()
    yield store
    store.destroy()


def test_store_client_writes_and_reads_back_over_ssl(ssl_store, lab_pki):
    files = ovsdb_ssl.controller_files(lab_pki)
    assert ssl_store.remote.startswith("ssl:127.0.0.1:")
    record = BindingRecord("00:fa:00:00:5e:01", 250, "", "s11", 7, None, "active")
    client = StoreClient(ssl_store.remote, lambda changes: None, ssl=files).start()
    try:
        assert client.synced.wait() is True
        result = client.submit(claim_binding(record, "p1")).wait(timeout=10)
        assert result is not None and result.ok, result
    finally:
        client.stop()
    with AdminSession(ssl_store.remote, ssl=files) as session:
        rows = session.rows("Binding")
    assert [(row["mac"], row["owner"], row["server"]) for row in rows] == [
        ("00:fa:00:00:5e:01", "p1", "s11")]


def test_store_refuses_clients_without_a_controller_certificate(ssl_store, lab_pki):
    member = ssl_store.members[0]
    allowed = run("ovsdb-client", "--timeout=5", "-p", str(lab_pki.key("controller")),
                  "-c", str(lab_pki.cert("controller")), "-C", str(lab_pki.controller_ca),
                  "list-dbs", member.remote, check=False)
    assert allowed.returncode == 0 and "Dynprov" in allowed.stdout, allowed.stderr
    switch_cert = run("ovsdb-client", "--timeout=5", "-p", str(lab_pki.key("switch")),
                      "-c", str(lab_pki.cert("switch")), "-C", str(lab_pki.controller_ca),
                      "list-dbs", member.remote, check=False)
    plain = run("ovsdb-client", "--timeout=5", "list-dbs",
                f"tcp:127.0.0.1:{member.client_port}", check=False)
    assert switch_cert.returncode != 0 and "Dynprov" not in switch_cert.stdout
    assert plain.returncode != 0 and "Dynprov" not in plain.stdout
    assert "certificate verify failed" in member.log_file.read_text()


def test_cli_runs_a_cluster_over_ssl_and_feeds_it(tmp_path, lab_pki, capsys):
    directory = tmp_path / "c"
    assert dynprov(["store", "start", "--cluster", "--ssl", "--pki", str(lab_pki.directory),
                    "--dir", str(directory)]) == 0
    try:
        out = capsys.readouterr().out
        assert "remote ssl:127.0.0.1:" in out and "clients need a certificate signed by" in out
        store = Store.open(directory)
        assert [line["role"] for line in store.status()].count("leader") == 1
        raft = run("ovs-appctl", "-t", str(store.members[0].control), "cluster/status",
                   "Dynprov").stdout
        assert "Address: ssl:127.0.0.1:" in raft
        assert dynprov(["store", "load-templates", "templates", "--dir", str(directory)]) == 0
        assert "library generation 1" in capsys.readouterr().out
        assert dynprov(["store", "dump", "--table", "Library", "--remote", store.remote]) == 1
        assert "an ssl: remote needs --ssl" in capsys.readouterr().err
        assert dynprov(["store", "dump", "--table", "Library", "--remote", store.remote,
                        "--pki", str(lab_pki.directory)]) == 0
        assert '"generation": 1' in capsys.readouterr().out
    finally:
        assert dynprov(["store", "stop", "--destroy", "--dir", str(directory)]) == 0
