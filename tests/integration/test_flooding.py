"""A VLAN's broadcasts on a server in FLOOD chunks, on real OVS.

Topology: one access switch, two servers with ten VMs each (web, db, web, mgmt ...).
On s11 the uplink is port 1 and the VMs ports 2..11, so the eight VMs of VLAN 100
(web and db) lie in two chunks (ports 0..5 and 6..11). From web1:

- an ARP request reaches every other VM of VLAN 100 on both servers (every default
  template takes ARP), no mgmt VM (VLAN 300), and not web1 itself;
- a broadcast TCP segment to 10.0.200.255:5432 reaches the db VMs only: the db
  template takes PostgreSQL from 10.0.100.0/24, the web template does not;

then web7 (port 8, inside the second chunk) leaves: only its chunk's flow changes
and only its copy is gone; a reconnect of s11 reads table 8 back and changes nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ryu_apps.core.cookies import vlan_owner
from ryu_apps.lab import testbed as lab
from tests.integration.conftest import start_datacenter, stop_datacenter
from tests.support.reconnect import reconnect

pytestmark = pytest.mark.integration

#: The ARP request's target (no VM has it) and the TCP segment's ports: the receivers
#: count only these frames.
TARGET_IP = "10.0.100.222"
TCP_SRC, TCP_DST = 44444, 5432
FRAMES = 3

SENDER = """
import socket, struct, sys
intf, mac, ip, what, count = sys.argv[1:6]
src = bytes.fromhex(mac.replace(":", ""))
sip = socket.inet_aton(ip)
if what == "arp":
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src, sip, bytes(6),
                       socket.inet_aton("%(target)s"))
    frame = b"\\xff" * 6 + src + b"\\x08\\x06" + body
else:
    # valid checksums: a stateful template's connection tracker drops a bad one (+inv)
    def csum(data):
        data += bytes(len(data) %% 2)
        total = sum(struct.unpack("!%%dH" %% (len(data) // 2), data))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return ~total & 0xFFFF
    dip = socket.inet_aton("10.0.200.255")
    tcp = struct.pack("!HHIIBBHHH", %(sport)d, %(dport)d, 1, 0, 5 << 4, 2, 1024, 0, 0)
    pseudo = sip + dip + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, sip, dip)
    head = head[:10] + struct.pack("!H", csum(head)) + head[12:]
    frame = b"\\xff" * 6 + src + b"\\x08\\x00" + head + tcp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((intf, 0))
for _ in range(int(count)):
    s.send(frame)
""" % {"target": TARGET_IP, "sport": TCP_SRC, "dport": TCP_DST}

#: Counts the marked frames a VM receives (not those it sends) until a stop file
#: appears; writes "<arp> <tcp> <sources>" to its result file.
RECEIVER = """
import os, socket, struct, sys, time
intf, result, stop = sys.argv[1:4]
deadline = time.monotonic() + 120   # never outlive a failed test for long
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((intf, 0))
s.settimeout(0.1)
open(result + ".ready", "w").close()
arp = tcp = 0
sources = set()
while not os.path.exists(stop) and time.monotonic() < deadline:
    try:
        frame, address = s.recvfrom(2048)
    except socket.timeout:
        continue
    if address[2] == socket.PACKET_OUTGOING:
        continue
    kind = frame[12:14]
    if kind == b"\\x08\\x06" and frame[38:42] == socket.inet_aton("%(target)s"):
        arp += 1
    elif kind == b"\\x08\\x00" and frame[23] == 6 and \\
            struct.unpack("!HH", frame[34:38]) == (%(sport)d, %(dport)d):
        tcp += 1
    else:
        continue
    sources.add(frame[6:12].hex())
with open(result + ".tmp", "w") as out:
    out.write("%%d %%d %%s" %% (arp, tcp, ",".join(sorted(sources)) or "-"))
os.rename(result + ".tmp", result)
""" % {"target": TARGET_IP, "sport": TCP_SRC, "dport": TCP_DST}


@pytest.fixture(scope="module")
def bed():
    prefix = "f%02d" % (os.getpid() % 100)
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, prefix, access=1, servers=2,
                                       vms=10)
    vms = {h.name[len(prefix):]: h for h in net.hosts}
    switches = {s.name[len(prefix):]: s for s in net.switches}
    try:
        yield controller, net, vms, switches
    finally:
        stop_datacenter(controller, net)


def _run_script(host, text: str, args: str, workdir: Path, background: bool = False) -> str:
    script = workdir / f"script-{abs(hash(text))}.py"
    if not script.exists():
        script.write_text(text)
    return host.cmd(f"python3 {script} {args}" + (" > /dev/null 2>&1 &" if background
                                                   else "; echo rc=$?"))


def _wait_files(paths: List[Path], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _received(vms: Dict[str, Any], sender, what: str) -> Dict[str, int]:
    """How many of the ``FRAMES`` marked frames ``sender`` broadcasts each VM receives
    (only VMs that received any)."""
    with tempfile.TemporaryDirectory(prefix="dynprov-flood-") as tmp:
        workdir, stop = Path(tmp), Path(tmp) / "stop"
        results = {name: workdir / f"{name}.count" for name in vms}
        for name, vm in vms.items():
            _run_script(vm, RECEIVER, f"{vm.defaultIntf()} {results[name]} {stop}", workdir,
                        background=True)
        try:
            ready = [Path(f"{path}.ready") for path in results.values()]
            assert _wait_files(ready, 60), "receivers did not start"
            out = _run_script(sender, SENDER, f"{sender.defaultIntf()} {sender.MAC()} "
                              f"{sender.IP()} {what} {FRAMES}", workdir)
            assert "rc=0" in out, out
            time.sleep(1.0)
        finally:
            stop.touch()
            finished = _wait_files(list(results.values()), 30)
        assert finished, "receivers did not finish"
        counts = {name: path.read_text().split() for name, path in results.items()}
    got = {name: int(arp if what == "arp" else tcp)
           for name, (arp, tcp, _) in counts.items()}
    sources = {name: found for name, (_, _, found) in counts.items() if found != "-"}
    assert set(sources.values()) <= {sender.MAC().replace(":", "")}, sources
    return {name: n for name, n in got.items() if n}


def _flood_flows(bridge: str) -> List[str]:
    """VLAN 100's FLOOD flows on a bridge."""
    cookie = f"cookie={vlan_owner(100).cookie:#x},"
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows",
                          bridge, "table=8"], capture_output=True, text=True, check=True)
    return sorted(line.strip() for line in out.stdout.splitlines() if cookie in line)


def _of_vlan(vms, *kinds: str) -> set:
    return {name for name in vms if name.startswith(kinds)}


def test_broadcasts_reach_exactly_the_members_their_templates_allow(bed):
    controller, net, vms, switches = bed
    s11 = switches["s11"]
    on_s11 = {name for name, vm in vms.items() if vm.defaultIntf().link.intf2.node is s11}
    assert on_s11 == {name for name in vms if int(re.sub(r"\D", "", name)) <= 10}
    assert len(_flood_flows(s11.name)) == 3, "two chunks and their group"
    web1 = vms["web1"]
    arp = _received(vms, web1, "arp")
    assert arp == {name: FRAMES for name in _of_vlan(vms, "web", "db") - {"web1"}}
    tcp = _received(vms, web1, "tcp")
    assert tcp == {name: FRAMES for name in _of_vlan(vms, "db")}


def test_a_vm_leaving_changes_only_its_chunk_and_loses_only_its_copy(bed):
    controller, net, vms, switches = bed
    s11 = switches["s11"]
    web7 = vms["web7"]
    before = _flood_flows(s11.name)
    subprocess.run(["ovs-vsctl", "del-port", s11.name, web7.defaultIntf().link.intf2.name],
                   check=True)
    assert controller.wait_for_log(f"deprovisioned VM {web7.MAC()}", timeout=15), \
        controller.log()[-3000:]
    deadline = time.monotonic() + 10
    while _flood_flows(s11.name) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = _flood_flows(s11.name)
    changed = set(before) ^ set(after)
    assert len(changed) == 2, f"one chunk flow rewritten: {sorted(changed)}"
    assert {re.search(r"metadata=(\S+?)[ ,]", line).group(1) for line in changed} == \
        {"0x64000000001"}, "chunk 1 of VLAN 100"
    others = {n: v for n, v in vms.items() if n != "web7"}
    arp = _received(others, vms["web1"], "arp")
    assert arp == {name: FRAMES for name in _of_vlan(others, "web", "db") - {"web1"}}
    assert "differed from what dynprov wants" not in controller.log()


def test_a_reconnect_finds_the_flood_flows_intact(bed):
    """Read back from OVS, table 8's chunk and group flows equal what dynprov wants."""
    controller, net, vms, switches = bed
    bridge = switches["s11"].name
    reconnect(controller, bridge)
    last = [line for line in controller.log().splitlines() if f"up: server {bridge}" in line][-1]
    assert last.endswith(", 0 changes"), last
    assert _flood_flows(bridge), "VLAN 100's FLOOD flows are there"
