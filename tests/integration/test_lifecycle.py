"""Library reload, controller restart and server re-cabling, with traffic flowing.

Library: a temporary copy of libraries/open (every template allows all
traffic), so a test can change it and send SIGHUP.
"""

import shutil
import signal
import re
import time

import pytest
import yaml

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from tests.integration.conftest import LIBRARIES, start_datacenter, stop_datacenter, unique_prefix

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]


@pytest.fixture
def dc(tmp_path):
    library = tmp_path / "library"
    shutil.copytree(LIBRARIES / "open", library)
    controller, net = start_datacenter(library, "l" + unique_prefix()[1:])
    vms = {h.name[4:]: h for h in net.hosts}
    switches = {s.name[4:]: s for s in net.switches}
    yield controller, net, vms, switches, library
    stop_datacenter(controller, net)


def _edit_web_template(library, **changes):
    path = library / "templates.yaml"
    document = yaml.safe_load(path.read_text())
    web = next(t for t in document["templates"] if t["name"] == "web")
    web.update(changes)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_reload_by_sighup_keeps_allowed_traffic_flowing(dc):
    controller, _, vms, _, library = dc
    web1, web3 = vms["web1"], vms["web3"]
    lab.start_listener(web1, 8080)
    assert lab.tcp_open(web3, web1, 8080)
    stream = lab.PingStream(web3, web1, interval=0.01, count=300)
    time.sleep(0.5)
    _edit_web_template(library, virtual_switch={
        "default_action": "deny",
        "acl": [{"action": "allow", "direction": "to_vm", "ethertype": "arp"},
                {"action": "allow", "direction": "from_vm", "ethertype": "arp"},
                {"action": "allow", "direction": "to_vm", "protocol": "icmp"},
                {"action": "allow", "direction": "from_vm", "protocol": "icmp"},
                {"action": "allow", "direction": "from_vm", "protocol": "tcp"}]})
    controller.process.send_signal(signal.SIGHUP)
    assert controller.wait_for_log("library reloaded", timeout=10), controller.log()[-2000:]
    sent, received = stream.result()
    print(f"\nreload under a 10 ms ping stream: {sent - received} of {sent} lost")
    assert sent == received
    assert "re-provisioned VM" in controller.log()
    assert not lab.tcp_open(web3, web1, 8080, timeout=1)   # the new template denies it


def test_invalid_library_is_refused_and_the_old_one_stays(dc):
    controller, _, vms, _, library = dc
    (library / "templates.yaml").write_text("templates:\n  - id: 250\n    vlna: 7\n")
    controller.process.send_signal(signal.SIGHUP)
    assert controller.wait_for_log("library reload refused", timeout=10)
    assert "unknown key 'vlna'" in controller.log()
    assert ping(vms["web1"], vms["web5"])


_COUNTERS = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?")


_SOFT_STATE = {CookieKind.QUARANTINE, CookieKind.LIVENESS}


def _dynprov_flows(bridge: str) -> set:
    """The bridge's dynprov flows, without their counters, soft state left out: a
    restart forgets quarantines and liveness probes (a MAC refused before is refused
    again when it sends again)."""
    flows = set()
    for line in lab.dump_flows(bridge).splitlines():
        cookie = re.search(r"cookie=(0xd9[0-9a-f]+)", line)
        if cookie and decode_cookie(int(cookie.group(1), 16)).kind not in _SOFT_STATE:
            flows.add(_COUNTERS.sub("", line.strip()))
    return flows


def test_restart_reconciles_without_losing_traffic(dc):
    controller, net, vms, switches, library = dc
    web1, web5 = vms["web1"], vms["web5"]
    assert ping(web1, web5)
    before = {name: _dynprov_flows(sw.name) for name, sw in switches.items()}
    stream = lab.PingStream(web1, web5, interval=0.01, count=800)
    controller.stop()
    time.sleep(1.5)   # the dataplane forwards on its own meanwhile
    restarted = lab.ControllerProcess(templates=library, of_port=controller.of_port).start()
    try:
        assert restarted.wait_for_log("switch ", timeout=20, count=len(switches))
        sent, received = stream.result()
        print(f"\nrestart under a 10 ms ping stream: {sent - received} of {sent} lost")
        assert sent == received
        assert restarted.wait_for_log(f"restored VM {web1.MAC()}", timeout=10)
        time.sleep(6)   # past the warm-start grace: full reconciliation has run
        after = {name: _dynprov_flows(sw.name) for name, sw in switches.items()}
        differ = {name: {"lost": sorted(before[name] - after[name]),
                         "new": sorted(after[name] - before[name])}
                  for name in before if before[name] != after[name]}
        assert not differ, (differ, restarted.log()[-3000:])
        assert ping(web1, web5)
    finally:
        restarted.stop()


def test_recabled_server_is_reprovisioned_behind_its_new_access_switch(dc):
    controller, net, vms, switches, _ = dc
    web3, web5, web1 = vms["web3"], vms["web5"], vms["web1"]
    s12, a1, a2 = switches["s12"], switches["a1"], switches["a2"]
    assert ping(web5, web3)
    old_port = a1.ports[s12.connectionsTo(a1)[0][1]]
    net.delLinkBetween(s12, a1)
    link = net.addLink(s12, a2)
    s12.attach(link.intf1)
    a2.attach(link.intf2)
    assert controller.wait_for_log("link ", timeout=15,
                                   count=lab.switch_links(net) + 1), controller.log()[-2000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not ping(web5, web3, count=1):
        time.sleep(0.2)
    assert ping(web5, web3)
    assert ping(web1, web3)
    new_port = a2.ports[link.intf2]
    assert f"in_port={new_port},dl_vlan=100" in lab.dump_flows(a2.name)
    assert f"in_port={old_port}," not in lab.dump_flows(a1.name)
    assert f"metadata=0x{old_port:x}," not in lab.dump_flows(a1.name)
