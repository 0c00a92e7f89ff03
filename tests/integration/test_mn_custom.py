"""The topology works from Mininet's own CLI: ``mn --custom ... --topo datacenter``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab

pytestmark = pytest.mark.integration

OPEN_LIBRARY = Path(__file__).parent / "libraries" / "open"


def test_mn_custom_topology_provisions_and_isolates(tmp_path):
    prefix = "m%03d" % (os.getpid() % 1000)
    announce = (f"sh env PYTHONPATH={lab.REPO_ROOT} {sys.executable} "
                "-m ryu_apps.lab.vmtools.announce")
    hosts = [f"{prefix}web1", f"{prefix}db2", f"{prefix}web3", f"{prefix}mgmt4"]
    # Mininet's CLI reads commands from standard input, as an operator types them.
    script = ("sh sleep 3\n"
              + "".join(f"{announce.replace('sh ', h + ' ', 1)} {h}-eth0\n" for h in hosts)
              + "sh sleep 1\npingall\nexit\n")
    controller = lab.ControllerProcess(templates=OPEN_LIBRARY, workdir=tmp_path).start()
    try:
        out = subprocess.run(
            ["mn", "--custom", str(lab.TOPOLOGY_FILE),
             "--topo", f"datacenter,1,2,2,prefix={prefix},edge=0",
             "--controller", f"dynprov,port={controller.of_port}"],
            input=script, capture_output=True, text=True, timeout=180)
    finally:
        controller.stop()
    text = out.stdout + out.stderr
    # web1 and web3 share a template on two servers; every other pair is isolated.
    assert "Results: 83% dropped (2/12 received)" in text, text
    assert f"{prefix}web1 -> X X {prefix}web3" in text, text
    assert not {f"{prefix}s11", f"{prefix}a1"} & lab.ovs_bridges()


def test_a_vm_moves_from_the_mininet_cli(tmp_path):
    """The documented command: `py __import__('ryu_apps.lab.migration')...live_migrate(...)`."""
    p = "k%03d" % (os.getpid() % 1000)
    script = "\n".join([
        "sh sleep 3",
        f"{p}web1 python3 -m ryu_apps.lab.vmtools.announce {p}web1-eth0",
        f"{p}web3 python3 -m ryu_apps.lab.vmtools.announce {p}web3-eth0",
        "sh sleep 1",
        f"{p}web1 ping -c1 -W1 {p}web3",
        f"py __import__('ryu_apps.lab.migration').lab.migration.live_migrate("
        f"net, '{p}web1', '{p}s21')",
        "sh sleep 1",
        f"{p}web3 ping -c2 -W1 {p}web1",
        f"sh ovs-vsctl list-ports {p}s11",
        "exit", ""])
    controller = lab.ControllerProcess(templates=OPEN_LIBRARY, workdir=tmp_path).start()
    try:
        out = subprocess.run(
            ["mn", "--custom", str(lab.TOPOLOGY_FILE),
             "--topo", f"datacenter,2,1,2,prefix={p},edge=0",
             "--controller", f"dynprov,port={controller.of_port}"],
            input=script, capture_output=True, text=True, timeout=180,
            env=dict(os.environ, PYTHONPATH=str(lab.REPO_ROOT)), cwd=str(lab.REPO_ROOT))
    finally:
        controller.stop()
    text = out.stdout + out.stderr
    assert text.count(" 0% packet loss") == 2, text
    assert f"{p}s11-eth2" not in text.split("list-ports")[-1]
    assert controller.log().count("provisioned VM 00:fa:00:00:00:01") >= 2, controller.log()
