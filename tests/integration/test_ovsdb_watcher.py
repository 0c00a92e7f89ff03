"""The OVSDB watcher on real Open vSwitch: silent VMs found from attached-mac.

Bridges (``zw<pid>b<n>``) and veths (``zw<pid>v<n>a``/``b``) are created per
test and deleted by name; private ovsdb-servers run from a temporary directory
and are stopped by PID. Detection latencies are printed (run with ``-s``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.core.attachments import AttachmentEvent, EventKind
from ryu_apps.app.ovsdb_watcher import OvsdbWatcher, default_schema_path

pytestmark = pytest.mark.integration

ATTACH, DETACH = EventKind.ATTACH, EventKind.DETACH
WEB = "00:fa:00:00:00:01"
DB = "00:fc:00:00:00:02"
PREFIX = "zw%04d" % (os.getpid() % 10000)
DPID_BASE = (0x7A77 << 48) | ((os.getpid() & 0xFFFFFF) << 8)
LOG = logging.getLogger("test.ovsdb_watcher")


def run(*command: str) -> str:
    """Run a command; fail the test with its stderr if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
    return done.stdout.strip()


def vsctl(*args: str) -> str:
    return run("ovs-vsctl", "--timeout=10", *args)


class Bridges:
    """Bridges and veths made by one test, removed by name afterwards."""

    def __init__(self) -> None:
        self.bridges: list[str] = []
        self.veths: list[str] = []

    def bridge(self, internal_macs: tuple = (), dpid: int = 0) -> tuple[str, int]:
        """A userspace bridge; one internal port per MAC, with attached-mac set."""
        number = len(self.bridges) + 1
        name, dpid = f"{PREFIX}b{number}", dpid or DPID_BASE | number
        self.bridges.append(name)
        command = ["add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
                   "fail_mode=secure", f"other-config:datapath-id={dpid:016x}"]
        for index, mac in enumerate(internal_macs, 1):
            port = f"{name}i{index}"
            command += ["--", "add-port", name, port, "--", "set", "Interface", port,
                        "type=internal", f"external_ids:attached-mac={mac}"]
        vsctl(*command)
        return name, dpid

    def veth(self, create: bool = True) -> str:
        """The OVS-side name of a veth pair (created now unless ``create`` is False)."""
        name = f"{PREFIX}v{len(self.veths) + 1}"
        self.veths.append(name)
        if create:
            self.create_veth(name)
        return f"{name}a"

    @staticmethod
    def create_veth(name: str) -> None:
        run("ip", "link", "add", f"{name}a", "type", "veth", "peer", "name", f"{name}b")

    def remove_all(self) -> None:
        for name in self.bridges:
            subprocess.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", name],
                           capture_output=True, check=False)
        for name in self.veths:
            subprocess.run(["ip", "link", "del", f"{name}a"], capture_output=True, check=False)


@pytest.fixture
def bridges():
    made = Bridges()
    try:
        yield made
    finally:
        made.remove_all()


class Recorder:
    """Callbacks that keep what they were told about some bridges, with the time."""

    def __init__(self, dpids) -> None:
        self.dpids = set(dpids)
        self.calls: list[tuple] = []

    def on_attach(self, dpid: int, ofport: int, mac: str) -> None:
        self._keep(ATTACH, dpid, ofport, mac)

    def on_detach(self, dpid: int, ofport: int, mac: str) -> None:
        self._keep(DETACH, dpid, ofport, mac)

    def _keep(self, kind, dpid, ofport, mac) -> None:
        if dpid in self.dpids:
            self.calls.append((AttachmentEvent(kind, dpid, ofport, mac), time.monotonic()))

    def events(self) -> list[AttachmentEvent]:
        return [event for event, _ in self.calls]


def watcher_for(recorder: Recorder, remote: str = "unix:/var/run/openvswitch/db.sock",
                **options) -> OvsdbWatcher:
    return OvsdbWatcher(remote, recorder.on_attach, recorder.on_detach, LOG, **options)


def poll_until(watcher: OvsdbWatcher, recorder: Recorder, count: int,
               timeout: float = 10.0, settle: float = 0.0) -> list[AttachmentEvent]:
    """Poll until the recorder holds ``count`` calls (then ``settle`` s more)."""
    deadline = time.monotonic() + timeout
    while len(recorder.calls) < count and time.monotonic() < deadline:
        watcher.poll_once()
        time.sleep(0.002)
    settle_end = time.monotonic() + settle
    while time.monotonic() < settle_end:
        watcher.poll_once()
        time.sleep(0.01)
    return recorder.events()


def synced(watcher: OvsdbWatcher, timeout: float = 10.0) -> OvsdbWatcher:
    """Poll until the watcher has read the database once."""
    deadline = time.monotonic() + timeout
    while watcher._seqno is None:
        assert time.monotonic() < deadline, f"{watcher.remote}: database never read"
        watcher.poll_once()
        time.sleep(0.005)
    return watcher


def ofport_of(interface: str, db: str = "") -> int:
    return int(vsctl(*([f"--db={db}"] if db else []), "get", "Interface", interface, "ofport"))


# -- the system's OVSDB, real bridges ----------------------------------------

def test_initial_load_reports_every_attachment_present(bridges):
    name, dpid = bridges.bridge(internal_macs=(WEB, DB.upper()))
    ports = [ofport_of(f"{name}i1"), ofport_of(f"{name}i2")]
    recorder = Recorder([dpid])
    watcher = synced(watcher_for(recorder))
    try:
        events = poll_until(watcher, recorder, 2, settle=0.2)
    finally:
        watcher.stop()
    assert sorted(events) == sorted([AttachmentEvent(ATTACH, dpid, ports[0], WEB),
                                     AttachmentEvent(ATTACH, dpid, ports[1], DB)])


def test_attach_mac_change_and_removal_on_a_veth_port(bridges):
    name, dpid = bridges.bridge()
    veth = bridges.veth()
    vsctl("add-port", name, veth)
    port = ofport_of(veth)
    recorder = Recorder([dpid])
    watcher = synced(watcher_for(recorder))
    latencies = []

    def step(*args: str, expect: list) -> None:
        before = len(recorder.calls)
        vsctl(*args)
        returned = time.monotonic()
        poll_until(watcher, recorder, before + len(expect), settle=0.1)
        assert recorder.events()[before:] == expect
        latencies.append(recorder.calls[-1][1] - returned)

    try:
        step("set", "Interface", veth, f"external_ids:attached-mac={WEB}",
             expect=[AttachmentEvent(ATTACH, dpid, port, WEB)])
        step("set", "Interface", veth, f"external_ids:attached-mac={DB}",
             expect=[AttachmentEvent(DETACH, dpid, port, WEB),
                     AttachmentEvent(ATTACH, dpid, port, DB)])
        step("remove", "Interface", veth, "external_ids", "attached-mac",
             expect=[AttachmentEvent(DETACH, dpid, port, DB)])
        step("set", "Interface", veth, f"external_ids:attached-mac={WEB}",
             expect=[AttachmentEvent(ATTACH, dpid, port, WEB)])
        step("del-port", name, veth, expect=[AttachmentEvent(DETACH, dpid, port, WEB)])
    finally:
        watcher.stop()
    print("\n[ovsdb] poll_once every 2 ms: detection after ovs-vsctl returned: "
          + ", ".join(f"{1000 * t:.1f}" for t in latencies) + " ms")
    assert max(latencies) < 5.0


def test_interface_is_reported_once_it_gets_an_ofport(bridges):
    name, dpid = bridges.bridge()
    veth = bridges.veth(create=False)  # the port exists in OVSDB before its device
    subprocess.run(["ovs-vsctl", "--timeout=10", "add-port", name, veth, "--", "set",
                    "Interface", veth, f"external_ids:attached-mac={WEB}"],
                   capture_output=True, check=False)  # "could not open network device"
    assert ofport_of(veth) == -1
    recorder = Recorder([dpid])
    watcher = synced(watcher_for(recorder))
    try:
        assert poll_until(watcher, recorder, 1, timeout=0.5) == []
        Bridges.create_veth(veth[:-1])
        events = poll_until(watcher, recorder, 1, timeout=15)
    finally:
        watcher.stop()
    assert events == [AttachmentEvent(ATTACH, dpid, ofport_of(veth), WEB)]


def test_malformed_mac_is_ignored_with_a_warning_naming_the_interface(bridges, caplog):
    name, dpid = bridges.bridge(internal_macs=("not-a-mac",))
    interface = f"{name}i1"
    recorder = Recorder([dpid])
    watcher = synced(watcher_for(recorder))
    try:
        assert poll_until(watcher, recorder, 1, timeout=0.3) == []
        vsctl("set", "Interface", interface, f"external_ids:attached-mac={WEB}")
        events = poll_until(watcher, recorder, 1)
    finally:
        watcher.stop()
    assert events == [AttachmentEvent(ATTACH, dpid, ofport_of(interface), WEB)]
    assert f"bridge {name} interface {interface}: attached-mac='not-a-mac'" in caplog.text


def test_dpid_change_and_bridge_removal(bridges):
    name, dpid = bridges.bridge(internal_macs=(WEB,))
    port = ofport_of(f"{name}i1")
    new_dpid = dpid | 0x80
    recorder = Recorder([dpid, new_dpid])
    watcher = synced(watcher_for(recorder))
    try:
        poll_until(watcher, recorder, 1)
        vsctl("set", "bridge", name, f"other-config:datapath-id={new_dpid:016x}")
        poll_until(watcher, recorder, 3)
        vsctl("del-br", name)
        events = poll_until(watcher, recorder, 4, settle=0.2)
    finally:
        watcher.stop()
    assert events == [AttachmentEvent(ATTACH, dpid, port, WEB),
                      AttachmentEvent(DETACH, dpid, port, WEB),
                      AttachmentEvent(ATTACH, new_dpid, port, WEB),
                      AttachmentEvent(DETACH, new_dpid, port, WEB)]


def test_bridges_sharing_a_dpid_are_both_reported_with_a_warning(bridges, caplog):
    first, dpid = bridges.bridge(internal_macs=(WEB,))
    second, _ = bridges.bridge(internal_macs=(DB,), dpid=dpid)
    ports = ofport_of(f"{first}i1"), ofport_of(f"{second}i1")
    recorder = Recorder([dpid])
    watcher = synced(watcher_for(recorder))
    try:
        events = poll_until(watcher, recorder, 2, settle=0.2)
    finally:
        watcher.stop()
    assert sorted(events) == sorted([AttachmentEvent(ATTACH, dpid, ports[0], WEB),
                                     AttachmentEvent(ATTACH, dpid, ports[1], DB)])
    assert f"bridges {first} and {second} have the same datapath id {dpid:016x}" in caplog.text


# -- a private ovsdb-server: TCP remote, ofports by hand, restarts ------------

class PrivateOvsdb:
    """An ovsdb-server of our own on a temporary database (no ovs-vswitchd)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dynprov-ovsdb-"))
        self.db_file = self.dir / "conf.db"
        self.socket = self.dir / "db.sock"
        self.tcp_port = lab.free_tcp_port()
        self.process = None
        run("ovsdb-tool", "create", str(self.db_file), str(default_schema_path()))

    @property
    def unix(self) -> str:
        return f"unix:{self.socket}"

    @property
    def tcp(self) -> str:
        return f"tcp:127.0.0.1:{self.tcp_port}"

    def start(self) -> "PrivateOvsdb":
        self.process = subprocess.Popen(
            ["ovsdb-server", str(self.db_file), f"--remote=p{self.unix}",
             f"--remote=ptcp:{self.tcp_port}:127.0.0.1", f"--unixctl={self.dir}/ctl",
             f"--log-file={self.dir}/ovsdb.log", "--no-chdir"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["ovs-vsctl", f"--db={self.unix}", "--timeout=1", "--no-wait",
                              "show"], capture_output=True).returncode:
            assert time.monotonic() < deadline, "private ovsdb-server did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=5)

    def vsctl(self, *args: str) -> str:
        return vsctl(f"--db={self.unix}", "--no-wait", *args)


@pytest.fixture
def private_ovsdb():
    server = PrivateOvsdb().start()
    try:
        server.vsctl("init")
        server.vsctl("add-br", "br0", "--", "set", "Bridge", "br0",
                     "datapath_id=00000000000000aa", "--", "add-port", "br0", "vm0")
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def test_tcp_remote_ofport_lifecycle(private_ovsdb):
    recorder = Recorder([0xAA])
    watcher = synced(watcher_for(recorder, private_ovsdb.tcp))
    try:
        private_ovsdb.vsctl("set", "Interface", "vm0", f"external_ids:attached-mac={WEB}")
        assert poll_until(watcher, recorder, 1, timeout=0.3) == []  # no ofport yet
        private_ovsdb.vsctl("set", "Interface", "vm0", "ofport=5")
        poll_until(watcher, recorder, 1)
        private_ovsdb.vsctl("set", "Interface", "vm0", "ofport=-1")
        events = poll_until(watcher, recorder, 2, settle=0.2)
    finally:
        watcher.stop()
    assert events == [AttachmentEvent(ATTACH, 0xAA, 5, WEB), AttachmentEvent(DETACH, 0xAA, 5, WEB)]


def test_server_restart_keeps_attachments_and_reports_what_changed(private_ovsdb, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    private_ovsdb.vsctl("set", "Interface", "vm0", "ofport=5",
                        f"external_ids:attached-mac={WEB}")
    recorder = Recorder([0xAA])
    watcher = synced(watcher_for(recorder, private_ovsdb.unix))
    try:
        poll_until(watcher, recorder, 1)
        private_ovsdb.stop()
        assert poll_until(watcher, recorder, 2, timeout=0.5) == [
            AttachmentEvent(ATTACH, 0xAA, 5, WEB)]
        assert "connection lost" in caplog.text
        run("ovsdb-tool", "transact", str(private_ovsdb.db_file), json.dumps(
            ["Open_vSwitch", {"op": "update", "table": "Interface",
                              "where": [["name", "==", "vm0"]], "row": {"ofport": 6}}]))
        private_ovsdb.start()  # Bridge.datapath_id is ephemeral: empty from now on
        events = poll_until(watcher, recorder, 3, timeout=20, settle=0.2)
        assert private_ovsdb.vsctl("get", "Bridge", "br0", "datapath_id") == "[]"
    finally:
        watcher.stop()
    assert events[1:] == [AttachmentEvent(DETACH, 0xAA, 5, WEB),
                          AttachmentEvent(ATTACH, 0xAA, 6, WEB)]
    assert caplog.text.count("database read") == 2


def test_green_thread_survives_errors_and_handler_failures(private_ovsdb, caplog):
    from ryu.lib import hub

    private_ovsdb.vsctl("set", "Interface", "vm0", "ofport=5",
                        f"external_ids:attached-mac={WEB}")
    recorder = Recorder([0xAA])
    failures = {"poll": 2, "handler": 1}

    def flaky_attach(dpid, ofport, mac):
        if failures["handler"]:
            failures["handler"] -= 1
            raise RuntimeError("engine exploded")
        recorder.on_attach(dpid, ofport, mac)

    watcher = OvsdbWatcher(private_ovsdb.unix, flaky_attach, recorder.on_detach, LOG,
                           interval=0.01)
    real_poll = watcher.poll_once

    def flaky_poll():
        if failures["poll"]:
            failures["poll"] -= 1
            raise OSError("simulated")
        return real_poll()

    watcher.poll_once = flaky_poll
    watcher.start()
    try:
        private_ovsdb.vsctl("add-port", "br0", "vm1", "--", "set", "Interface", "vm1",
                            "ofport=6", f"external_ids:attached-mac={DB}")
        deadline = time.monotonic() + 10
        while not recorder.calls and time.monotonic() < deadline:
            hub.sleep(0.01)
    finally:
        watcher.stop()
    assert recorder.events() == [AttachmentEvent(ATTACH, 0xAA, 6, DB)]
    assert caplog.text.count(f"ovsdb {private_ovsdb.unix}: watcher error") == 2
    assert "attach handler failed for VM 00:fa:00:00:00:01" in caplog.text


# -- inside ryu-manager's green world ------------------------------------------

GREEN_SCRIPT = r"""
import json, random, subprocess, sys, time
from ryu.lib import hub
hub.patch(thread=False)  # exactly what ryu-manager does before loading apps
import logging
from ryu_apps.app.ovsdb_watcher import OvsdbWatcher

dpid, interface, rounds, mac = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
calls, ticks = [], []

def keep(kind):
    return lambda d, p, m: calls.append((kind, p, m, time.monotonic())) if d == dpid else None

def ticker():
    while True:
        ticks.append(time.monotonic())
        hub.sleep(0.01)

def wait_calls(count):
    deadline = time.monotonic() + 10
    while len(calls) < count and time.monotonic() < deadline:
        hub.sleep(0.001)
    return len(calls) >= count

hub.spawn(ticker)
watcher = OvsdbWatcher("unix:/var/run/openvswitch/db.sock", keep("attach"),
                       keep("detach"), logging.getLogger("w"))
watcher.start()
hub.sleep(0.5)
result = {"from_return": [], "from_start": [], "calls": []}
commands = (["set", "Interface", interface, "external_ids:attached-mac=" + mac],
            ["remove", "Interface", interface, "external_ids", "attached-mac"])
for n in range(2 * rounds):
    hub.sleep(random.uniform(0, 0.1))  # no phase lock with the 50 ms poll
    started = time.monotonic()
    subprocess.run(["ovs-vsctl", "--timeout=10"] + commands[n % 2], check=True)
    returned = time.monotonic()
    if not wait_calls(n + 1):
        break
    result["from_return"].append(calls[-1][3] - returned)
    result["from_start"].append(calls[-1][3] - started)
watcher.stop()
result["calls"] = [c[:3] for c in calls]
result["max_tick_gap"] = max(b - a for a, b in zip(ticks, ticks[1:]))
result["ticks"] = len(ticks)
print(json.dumps(result))
"""


def _spread(seconds: list) -> str:
    ms = sorted(1000 * s for s in seconds)
    return (f"min {ms[0]:.1f} / median {statistics.median(ms):.1f} / "
            f"max {ms[-1]:.1f} ms")


def test_green_thread_under_monkey_patching_does_not_block_the_hub(bridges):
    rounds = 20
    name, dpid = bridges.bridge()
    veth = bridges.veth()
    vsctl("add-port", name, veth)
    port = ofport_of(veth)
    env = dict(os.environ, PYTHONPATH=str(lab.REPO_ROOT), PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-c", GREEN_SCRIPT, str(dpid), veth,
                           str(rounds), WEB], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["calls"] == [["attach", port, WEB], ["detach", port, WEB]] * rounds
    assert result["max_tick_gap"] < 0.5, "the watcher blocked the hub"
    after, total = result["from_return"], result["from_start"]
    print(f"\n[ovsdb] green thread, interval 50 ms, {len(after)} changes: "
          f"after ovs-vsctl returned {_spread(after)}; from ovs-vsctl start "
          f"{_spread(total)}; hub ticks {result['ticks']}, max gap "
          f"{1000 * result['max_tick_gap']:.1f} ms")
    assert max(total) < 5.0
