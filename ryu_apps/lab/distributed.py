"""Several controller processes over one store, on one Mininet network.

:class:`DistributedLab` starts a store (a 3-member Raft cluster by default),
loads the template library into it with the store's own write, starts one
``ryu-manager`` per access switch (process ``p1`` manages access switch
``a1`` and its servers, ``p2`` manages ``a2`` ...), each with its own
OpenFlow port and ``[dynprov] store = ...``, and builds the datacenter
topology with each switch pointed at its own process. The fabric switch is
left to no process: it is a plain learning bridge (OVS standalone mode), the
shared L2 fabric between the pods, and each process finds its access switch's
uplink to it from the other processes' beacons. Everything is stopped by PID
and bridge name.

With ``tls``, every control channel is authenticated and encrypted with the
lab PKI: OpenFlow over mutual TLS, the store's members serve ``pssl:`` (Raft
over ``ssl:``), and the controllers and this lab reach them with a controller
certificate.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional

from ryu_apps.lab import testbed as lab
from ryu_apps.tls.ovsdb_ssl import SslFiles, controller_files
from ryu_apps.store.admin import AdminSession
from ryu_apps.store.library_rows import rows_from_files
from ryu_apps.store.server import CLUSTER, STANDALONE, Store
from ryu_apps.store.writes import put_library

LOCAL_OVSDB = "unix:/var/run/openvswitch/db.sock"


def load_templates(remote: str, path: Path, domain: str = "",
                   ssl: Optional[SslFiles] = None) -> int:
    """Validate the library at ``path`` and write it to the store; its generation."""
    with AdminSession(remote, ssl=ssl) as session:
        return session.apply(put_library(rows_from_files(path, domain)))


class DistributedLab:
    """A store, one controller process per access switch, and the network."""

    def __init__(self, access: int = 2, servers: int = 2, vms: int = 2,
                 cluster: bool = True, templates: Path = lab.DEFAULT_TEMPLATES,
                 prefix: str = "", dpid_base: int = 0,
                 workdir: Optional[Path] = None, ovsdb: bool = False,
                 tls: bool = False) -> None:
        self.access, self.servers, self.vms = access, servers, vms
        self.tls = tls
        #: The store's and this lab's OVSDB SSL files (None: plain TCP).
        self.ssl = controller_files(lab.lab_pki()) if tls else None
        self.mode = CLUSTER if cluster else STANDALONE
        self.templates = Path(templates)
        self.prefix, self.dpid_base = prefix, dpid_base
        #: Watch the servers' OVSDB (every process, the machine's one database).
        self.ovsdb_option = f"ovsdb = {LOCAL_OVSDB}\n" if ovsdb else ""
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dynprov-dist-"))
        self.store: Optional[Store] = None
        self.controllers: List[lab.ControllerProcess] = []
        self.net: Any = None   # a started Mininet network

    # -- starting ------------------------------------------------------------------
    def start(self) -> "DistributedLab":
        try:
            self.store = Store.create(self.workdir / "store", self.mode, ssl=self.ssl).start()
            load_templates(self.store.remote, self.templates, ssl=self.ssl)
            self.controllers = [self._controller(k) for k in range(1, self.access + 1)]
            for controller in self.controllers:
                controller.start()
            self.net = self._network()
            self.wait_for_pods()
        except BaseException:
            self.stop()
            raise
        return self

    def _controller(self, number: int) -> lab.ControllerProcess:
        (self.workdir / f"p{number}").mkdir(parents=True, exist_ok=True)
        return lab.ControllerProcess(
            templates=self.templates, workdir=self.workdir / f"p{number}", tls=self.tls,
            extra_options=(f"store = {self.started_store.remote}\nprocess_name = p{number}\n"
                           "reconcile_grace = 2.0\n" + self.ovsdb_option
                           + self._ssl_option()))

    @property
    def started_store(self) -> Store:
        """The store :meth:`start` started (RuntimeError before)."""
        if self.store is None:
            raise RuntimeError(f"{self.workdir}: the lab's store is not started")
        return self.store

    @property
    def started_net(self) -> Any:
        """The Mininet network :meth:`start` built (RuntimeError before)."""
        if self.net is None:
            raise RuntimeError(f"{self.workdir}: the lab's network is not started")
        return self.net

    def _ssl_option(self) -> str:
        """The controllers' ``[dynprov] ovsdb_ssl_*`` lines for the store (or none)."""
        return lab.ovsdb_ssl_options(lab.lab_pki()) if self.tls else ""

    def restart_controller(self, number: int) -> lab.ControllerProcess:
        """Start process ``p<number>`` again (same name, ports and config)."""
        old = self.controllers[number - 1]
        (self.workdir / f"p{number}-again").mkdir(parents=True, exist_ok=True)
        again = lab.ControllerProcess(templates=self.templates, of_port=old.of_port,
                                      wsapi_port=old.wsapi_port,
                                      workdir=self.workdir / f"p{number}-again",
                                      tls=self.tls,
                                      extra_options=(f"store = {self.started_store.remote}\n"
                                                     f"process_name = p{number}\n"
                                                     "reconcile_grace = 2.0\n"
                                                     + self.ovsdb_option
                                                     + self._ssl_option()))
        self.controllers[number - 1] = again.start()
        return again

    def _network(self):
        from mininet.net import Mininet  # needs root and Mininet

        topo_module = lab.load_topology_module()
        topo = topo_module.DatacenterTopo(access=self.access, servers=self.servers,
                                          vms=self.vms, prefix=self.prefix,
                                          dpid_base=self.dpid_base, edge=0,
                                          shared_fabric=1)
        net = Mininet(topo=topo, controller=None, autoSetMacs=False, build=False,
                      waitConnected=False)
        for number, controller in enumerate(self.controllers, start=1):
            net.addController(f"c{number}", controller=topo_module.DynprovController,
                              ip="127.0.0.1", port=controller.of_port,
                              **lab.controller_tls(self.tls))
        net.build()
        for controller in net.controllers:
            controller.start()
        for switch in net.switches:
            pod = self.pod_of(switch.name)
            switch.start([net.controllers[pod - 1]] if pod else [])
        for switch_class in {type(switch) for switch in net.switches}:
            if hasattr(switch_class, "batchStartup"):  # Mininet queues OVS commands
                switch_class.batchStartup([s for s in net.switches if type(s) is switch_class])
        return net

    def pod_of(self, switch_name: str) -> Optional[int]:
        """The process number that manages a switch (None for the fabric switch)."""
        name = switch_name[len(self.prefix):]
        if name[0] in "as" and name[1:2].isdigit():
            return int(name[1])
        return None

    def wait_for_pods(self, timeout: float = 30.0) -> None:
        """Wait until each process has discovered its pod's server links and, with
        more than one pod, its uplink to the shared fabric."""
        for controller in self.controllers:
            if not controller.wait_for_log("link 0", timeout=timeout, count=self.servers):
                raise RuntimeError(f"{controller.workdir}: pod links not discovered:\n"
                                   + controller.log()[-3000:])
            if self.access > 1 and not controller.wait_for_log("reaches the shared fabric",
                                                               timeout=timeout):
                raise RuntimeError(f"{controller.workdir}: no uplink to the shared fabric "
                                   "found:\n" + controller.log()[-3000:])

    def announce_all(self, timeout: float = 20.0) -> None:
        """Every VM announces itself; wait until each process provisioned its own and
        its warm start is over (a move that races a process's end of grace is not
        what a test or demo means to show: see :meth:`wait_for_warm_start`)."""
        for vm in self.started_net.hosts:
            lab.announce(vm)
        for controller in self.controllers:
            if not controller.wait_for_log("provisioned VM", timeout=timeout,
                                           count=self.servers * self.vms):
                raise RuntimeError(f"{controller.workdir}: VMs not provisioned:\n"
                                   + controller.log_tail())
        self.wait_for_warm_start(timeout)

    def wait_for_warm_start(self, timeout: float = 20.0) -> None:
        """Wait until every process has read back each of its switches at the end of
        its warm-start grace (two lines per switch: the read-back and its outcome).

        At that moment a process restores its bindings from the store and reconciles
        every switch; a VM whose destination port appears just then may be asked
        for only after it moved, and the move takes the packets-only path."""
        switches = 1 + self.servers   # a pod's access switch and its servers
        for controller in self.controllers:
            if not controller.wait_for_log("warm start over", timeout=timeout,
                                           count=2 * switches):
                raise RuntimeError(f"{controller.workdir}: warm start not over after "
                                   f"{timeout:.0f} s:\n" + controller.log_tail())

    def bindings(self) -> List[dict]:
        """The store's Binding rows."""
        with AdminSession(self.started_store.remote, ssl=self.ssl) as session:
            return session.rows("Binding")

    def processes(self) -> List[dict]:
        with AdminSession(self.started_store.remote, ssl=self.ssl) as session:
            return session.rows("Process")

    def wait_for_store(self, condition, timeout: float = 15.0, table: str = "Binding"):
        """Poll the store until ``condition(rows)`` holds; the rows."""
        deadline = time.monotonic() + timeout
        with AdminSession(self.started_store.remote, ssl=self.ssl) as session:
            while True:
                rows = session.rows(table)
                if condition(rows) or time.monotonic() > deadline:
                    return rows
                time.sleep(0.05)

    # -- stopping --------------------------------------------------------------------
    def stop(self) -> None:
        if self.net is not None:
            lab.stop_network(self.net)
            self.net = None
        for controller in self.controllers:
            controller.stop()
        if self.store is not None:
            self.store.destroy()
            self.store = None
        shutil.rmtree(self.workdir, ignore_errors=True)
