"""Make dynprov see a server bridge disconnect and come back (integration tests)."""

from __future__ import annotations

import subprocess

from ryu_apps.lab import testbed as lab


def bridge_dpid(bridge: str) -> str:
    """The bridge's datapath id as OVSDB shows it (hex, no quotes)."""
    return subprocess.run(["ovs-vsctl", "get", "bridge", bridge, "datapath_id"],
                          capture_output=True, text=True, check=True).stdout.strip().strip('"')


def reconnect(controller, bridge: str) -> None:
    """Point the bridge at a dead port until dynprov sees it go, then back, and wait until
    dynprov has reconciled it again."""
    real = subprocess.run(["ovs-vsctl", "get-controller", bridge], capture_output=True,
                          text=True, check=True).stdout.split()
    ups = controller.log().count(f"up: server {bridge}")
    subprocess.run(["ovs-vsctl", "set-controller", bridge,
                    f"tcp:127.0.0.1:{lab.free_tcp_port()}"], check=True)
    try:
        assert controller.wait_for_log(f"switch {bridge_dpid(bridge)} disconnected", timeout=15)
    finally:
        subprocess.run(["ovs-vsctl", "set-controller", bridge, *real], check=True)
    assert controller.wait_for_log(f"up: server {bridge}", timeout=15, count=ups + 1), \
        controller.log()[-2000:]
