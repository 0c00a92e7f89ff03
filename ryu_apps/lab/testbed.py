"""Run the real parts together: a ryu-manager controller and a Mininet topology.

Shared by the demo and the integration tests, which use it as one namespace
(``from ryu_apps.lab import testbed as lab``; ``lab.ControllerProcess``,
``lab.running_datacenter``, ...). Each part lives in its own module:
``project`` (paths), ``processes`` (start, wait, stop by PID),
``controller_process`` (the controller), ``network`` (the Mininet network) and
``host_traffic`` (traffic from inside hosts). Everything started here is
stopped by PID, and every bridge is deleted by name: nothing else on the
machine is touched (Mininet's machine-wide clean-up is never called).
"""

from __future__ import annotations

from ryu_apps.lab.controller_process import (ControllerProcess, lab_pki, ovsdb_ssl_options,
                                             tls_verified)
from ryu_apps.lab.host_traffic import (PingStream, ProberRun, announce, probe_many,
                                       start_listener, tcp_open)
from ryu_apps.lab.network import (add_vm, build_network, controller_tls, datapath_settled,
                                  dump_flows, ovs_bridges, run_ofctl, running_datacenter,
                                  stop_network, switch_links, wait_for_fabric)
from ryu_apps.lab.processes import (free_tcp_port, ryu_manager_command, stop_process,
                                    wait_for_text, wait_until_listening)
from ryu_apps.lab.project import (DEFAULT_TEMPLATES, REPO_ROOT, TOPOLOGY_FILE,
                                  TOPOLOGY_RELATIVE, find_project_root, load_topology_module)

__all__ = [
    "ControllerProcess", "lab_pki", "ovsdb_ssl_options", "tls_verified",
    "PingStream", "ProberRun", "announce", "probe_many", "start_listener", "tcp_open",
    "add_vm", "build_network", "controller_tls", "datapath_settled", "dump_flows",
    "ovs_bridges", "run_ofctl",
    "running_datacenter", "stop_network", "switch_links", "wait_for_fabric",
    "free_tcp_port", "ryu_manager_command", "stop_process", "wait_for_text",
    "wait_until_listening",
    "DEFAULT_TEMPLATES", "REPO_ROOT", "TOPOLOGY_FILE", "TOPOLOGY_RELATIVE",
    "find_project_root", "load_topology_module",
]
