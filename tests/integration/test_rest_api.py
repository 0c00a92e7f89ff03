"""The REST API and ``dynprov bindings|flows`` on a real controller and Mininet."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.lab.demo import ping

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", name="dc")
def rest_datacenter(datacenter_own_library):
    return datacenter_own_library


def call(controller, path: str, method: str = "GET"):
    """(status, decoded JSON body) of one request to the controller's REST API
    (a reader token to read, an admin token for anything else)."""
    return controller.rest(method, path, role="reader" if method == "GET" else "admin")


def get(controller, path: str):
    status, body = call(controller, path)
    assert status == 200, body
    return body


def vm(net, name: str):
    return next(h for h in net.hosts if re.fullmatch(r"r\d{3}" + name, h.name))


def switch(net, name: str):
    return next(s for s in net.switches if re.fullmatch(r"r\d{3}" + name, s.name))


def port_toward(node, peer) -> int:
    """The port number of ``node`` on its link to ``peer``."""
    for intf in node.intfList():
        link = intf.link
        if link and peer in (link.intf1.node, link.intf2.node):
            return node.ports[intf]
    raise AssertionError(f"{node.name} has no link to {peer.name}")


def send_frame_from(host, source_mac: str) -> None:
    """A gratuitous ARP from ``host`` with another source MAC (its link stays up)."""
    script = ("import socket; from ryu_apps.lab.vmtools.announce import gratuitous_arp; "
              "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); "
              f"s.bind(('{host.defaultIntf()}', 0)); "
              f"s.send(gratuitous_arp(bytes.fromhex('{source_mac.replace(':', '')}'), "
              "bytes(4)))")
    out = host.cmd(f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -c \"{script}\"; "
                   "echo rc=$?")
    assert "rc=0" in out, out


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ryu_apps.cli.main", *argv],
                          capture_output=True, text=True, cwd=str(lab.REPO_ROOT), timeout=60)


# -- bindings -----------------------------------------------------------------------
def test_binding_of_a_vm(dc):
    controller, net, _ = dc
    web1, s11, a1 = vm(net, "web1"), switch(net, "s11"), switch(net, "a1")
    bindings = get(controller, "/dynprov/bindings")
    assert len(bindings) == len(net.hosts)
    binding = next(b for b in bindings if b["mac"] == web1.MAC())
    assert (binding["template_id"], binding["template_name"], binding["vlan"]) == (
        250, "web", 100)
    assert binding["server"] == {"dpid": s11.dpid, "name": s11.name,
                                 "port": port_toward(s11, web1)}
    assert binding["access"] == {"dpid": a1.dpid, "name": a1.name,
                                 "port": port_toward(a1, s11)}
    assert (binding["state"], binding["detected_by"]) == ("active", "packet")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", binding["since"])
    assert abs(binding["since_unix"] - time.time()) < 600
    assert binding["counters"]["sent"]["packets"] >= 1, binding  # its announcement
    assert binding["counters_error"] is None
    same = get(controller, "/dynprov/bindings/" + web1.MAC().upper().replace(":", "-"))
    assert same["binding_id"] == binding["binding_id"]


def test_provisioning_times_follow_every_vm_from_detection_to_confirmation(dc):
    controller, net, _ = dc
    times = {entry["mac"]: entry for entry in get(controller, "/dynprov/provisioning-times")}
    for host in net.hosts:
        entry = times[host.MAC()]
        assert entry["confirmed_ns"] is not None, entry
        assert entry["confirmed_ns"] >= entry["detected_ns"]
        assert entry["controller_ms"] == (entry["confirmed_ns"] - entry["detected_ns"]) / 1e6


def test_counters_grow_when_the_vm_talks(dc):
    controller, net, _ = dc
    web1, web3 = vm(net, "web1"), vm(net, "web3")
    assert ping(web1, web3, count=1)  # ARP resolved: what follows is the echoes
    before = get(controller, f"/dynprov/bindings/{web1.MAC()}")["counters"]
    out = web1.cmd(f"ping -c5 -W1 -i0.2 {web3.IP()}")
    answered = int(re.search(r"(\d+) received", out).group(1))
    assert answered >= 1, out

    def grown() -> bool:
        # each answered echo: a 98-byte request sent, a reply received (tagged: 102 bytes)
        after = get(controller, f"/dynprov/bindings/{web1.MAC()}")["counters"]
        return all(after[d]["packets"] >= before[d]["packets"] + answered
                   and after[d]["bytes"] >= before[d]["bytes"] + 98 * answered
                   for d in ("sent", "received"))

    # OVS folds datapath statistics into its flow entries about once a second
    _wait(grown, timeout=5)


def test_flows_of_a_binding_are_read_from_the_switches(dc):
    controller, net, _ = dc
    web1, s11, a1, f1 = vm(net, "web1"), switch(net, "s11"), switch(net, "a1"), \
        switch(net, "f1")
    answer = get(controller, f"/dynprov/bindings/{web1.MAC()}/flows")
    binding_id = answer["binding"]["binding_id"]
    flows = answer["flows"]
    assert answer["silent_switches"] == []
    assert len(flows) == answer["expected_flows"] > 0
    for flow in flows:
        owner = decode_cookie(int(flow["cookie"], 16))
        assert (owner.kind, owner.owner_id, owner.template_id) == (
            CookieKind.BINDING, binding_id, 250), flow
        assert flow["owner"]["description"] == f"binding {binding_id} template 250"
    assert {f["switch"]["name"] for f in flows} >= {s11.name, a1.name, f1.name}
    (classify,) = [f for f in flows if f["match"].get("eth_src") == web1.MAC()]
    assert (classify["switch"]["name"], classify["table"]) == (s11.name, 0)
    assert classify["match"]["in_port"] == port_toward(s11, web1)
    assert classify["packets"] >= 1


# -- templates, library, switches, links, refused MACs -----------------------------------
def test_templates(dc):
    controller, _, _ = dc
    templates = get(controller, "/dynprov/templates")
    assert [(t["template_id"], t["name"], t["vlan"]) for t in templates] == [
        (250, "web", 100), (252, "database", 200), (254, "management", 300)]
    web = get(controller, "/dynprov/templates/0x00FA")
    assert web == templates[0]
    assert web["idle_timeout"] == 600 and web["virtual_switch"]["default_action"] == "allow"


def test_switches_and_links(dc):
    controller, net, _ = dc
    switches = get(controller, "/dynprov/switches")
    assert {s["name"] for s in switches} == {s.name for s in net.switches}
    assert all(s["connected"] for s in switches)
    assert {s["role"] for s in switches} == {"server", "access", "fabric"}
    assert sum(s["bindings"] for s in switches) == len(net.hosts)
    links = get(controller, "/dynprov/links")
    assert len(links) == lab.switch_links(net)
    s11, a1 = switch(net, "s11"), switch(net, "a1")
    assert {"a": {"dpid": a1.dpid, "name": a1.name, "port": port_toward(a1, s11)},
            "b": {"dpid": s11.dpid, "name": s11.name, "port": port_toward(s11, a1)},
            "shared_fabric": False, "on_tree": True} in links
    assert not any(link["shared_fabric"] for link in links)   # one process manages all


def test_spoofed_mac_is_listed_as_refused(dc):
    controller, net, _ = dc
    mgmt8 = vm(net, "mgmt8")
    own, spoofed = mgmt8.MAC(), "00:0b:00:00:00:08"
    send_frame_from(mgmt8, spoofed)
    assert controller.wait_for_log(f"quarantined VM MAC {spoofed}", timeout=10)
    refused = get(controller, "/dynprov/refused")
    entry = next(r for r in refused if r["mac"] == spoofed)
    assert entry["switch"]["name"] == switch(net, "s22").name
    assert "spoofed source MAC" in entry["reason"] and own in entry["reason"]


def test_errors_are_json_with_what_was_expected(dc):
    controller, _, _ = dc
    status, body = call(controller, "/dynprov/bindings/not-a-mac")
    assert status == 400 and "expected six hex octets" in body["error"]
    status, body = call(controller, "/dynprov/bindings/00:fa:00:00:0f:ff")
    assert status == 404 and "no VM with MAC 00:fa:00:00:0f:ff" in body["error"]
    status, body = call(controller, "/dynprov/templates/77")
    assert status == 404 and "no template 77" in body["error"]
    status, body = call(controller, "/dynprov/templates/web")
    assert status == 400 and "is not a template id" in body["error"]
    status, body = call(controller, "/dynprov/library/reload")
    assert status == 405 and "use POST" in body["error"]
    status, body = call(controller, "/dynprov/notifications")
    assert status == 405 and "use POST" in body["error"]
    status, body = call(controller, "/dynprov/nothing")
    assert status == 404 and "no endpoint /dynprov/nothing" in body["error"]


def test_invalid_library_is_refused_and_the_old_one_stays(dc):
    controller, _, library = dc
    source = library / "templates.yaml"
    good = source.read_text()
    source.write_text(good.replace("vlan: 100", "vlan: 5000"))
    try:
        status, body = call(controller, "/dynprov/library/reload", "POST")
        assert status == 422, body
        assert "previous library stays in force" in body["error"]
        assert any(str(source) in e and "5000" in e for e in body["errors"]), body
        assert get(controller, "/dynprov/templates/250")["vlan"] == 100
    finally:
        source.write_text(good.replace("web, all traffic allowed", "web servers"))
    status, body = call(controller, "/dynprov/library/reload", "POST")
    assert status == 200 and body["reloaded"] is True and body["templates"] == 3, body
    assert get(controller, "/dynprov/templates/250")["description"] == "web servers"


# -- the operator's commands -----------------------------------------------------------
def test_dynprov_bindings_and_flows_commands(dc):
    controller, net, _ = dc
    access = controller.rest_cli_args("reader")
    web1, s11 = vm(net, "web1"), switch(net, "s11")
    listing = cli("bindings", *access)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(web1.MAC()))
    assert row.split()[1:4] == ["250", "web", "100"]
    assert f"{s11.name}:{port_toward(s11, web1)}" in row
    flows = cli("flows", s11.name, *access)
    assert flows.returncode == 0, flows.stderr
    assert re.search(rf"dl_src={web1.MAC()} .*# binding \d+ template 250 'web' VM {web1.MAC()}",
                     flows.stdout), flows.stdout
    missing = cli("flows", "r-no-such-br", *access)
    assert missing.returncode == 1
    assert "cannot read the flow table of bridge 'r-no-such-br'" in missing.stderr


# -- last: a switch that is away does not hang the API ------------------------------------
def test_disconnected_server_bridge_reports_no_counters(dc):
    controller, net, _ = dc
    s12 = switch(net, "s12")
    real = subprocess.run(["ovs-vsctl", "get-controller", s12.name], capture_output=True,
                          text=True, check=True).stdout.split()
    ups = controller.log().count(f"up: server {s12.name}")
    subprocess.run(["ovs-vsctl", "set-controller", s12.name,
                    f"tcp:127.0.0.1:{lab.free_tcp_port()}"], check=True)
    try:
        _wait(lambda: not _connected(controller, s12.name))
        started = time.monotonic()
        bindings = get(controller, "/dynprov/bindings")
        assert time.monotonic() - started < 5
        away = [b for b in bindings if b["server"]["name"] == s12.name]
        assert len(away) == 2
        assert all(b["counters"] is None for b in away)
        assert all(b["counters_error"] == f"server bridge {s12.name}: switch not connected"
                   for b in away)
        assert all(b["counters"] for b in bindings if b not in away)
    finally:
        subprocess.run(["ovs-vsctl", "set-controller", s12.name, *real], check=True)
    assert controller.wait_for_log(f"up: server {s12.name}", timeout=15, count=ups + 1)


def _connected(controller, name: str) -> bool:
    return next(s for s in get(controller, "/dynprov/switches")
                if s["name"] == name)["connected"]


def _wait(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{condition.__name__}: not within {timeout} s"
        time.sleep(0.2)
