"""Signed LLDP probes out, verified probes in: the edge of link discovery.

Makes every probe and beacon with the deployment's secret (a random nonce
each), and checks every LLDP frame that reaches the controller before the
engine hears of it (:mod:`ryu_apps.core.probe_auth`). A frame that fails is
logged once per port and reason and counted; a port that sends one nobody
signed has its LLDP dropped for a while. Beacons count only with a shared
store, and only from another process registered there.

The secret: in store mode the store's (the first process writes one); else
the file ``[dynprov] topology_secret_file`` (created, mode 0600, if missing);
else a random secret for this process's lifetime, which is all one process
needs (it verifies only its own probes).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ryu_apps.app import openflow_bytes
from ryu_apps.app.plan_sender import next_xid
from ryu_apps.core.fabric import Fabric, PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.probe_auth import ProbeSigner, ProbeVerifier, RejectReason, Rejection

#: Source MAC of every probe (locally administered, dynprov's).
LLDP_SOURCE_MAC = bytes.fromhex("0e00d9000001")
SECRET_BYTES = 32
#: Rejections that only a forger produces: the port's LLDP is dropped for a while.
_FORGED = (RejectReason.UNSIGNED, RejectReason.BAD_SIGNATURE, RejectReason.MALFORMED)
#: Distinct (switch, port, reason) log lines remembered before the memory is reset.
_LOGGED_LIMIT = 4096


class SecretError(RuntimeError):
    """The topology secret file cannot be used; says which file and why."""


def load_or_create_secret(path: str) -> bytes:
    """The secret in ``path`` (hex), written there first if the file does not exist.

    Refuses a file others may read, or one that holds no valid secret.
    """
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(SECRET_BYTES) + "\n")
    if file.stat().st_mode & 0o077:
        raise SecretError(f"{file}: topology secret readable by others (mode "
                          f"{file.stat().st_mode & 0o777:o}); chmod 600 it")
    text = file.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise SecretError(f"{file}: expected the topology secret as hex digits") from None
    if len(secret) < 16:
        raise SecretError(f"{file}: topology secret too short ({len(secret)} bytes; "
                          "expected at least 16)")
    return secret


class LinkDiscovery:
    """Signs outgoing probes and judges incoming ones for the app."""

    def __init__(self, secret: bytes, process: str, logger, max_age: float,
                 store_sync=None) -> None:
        self.process = process
        self.signer = ProbeSigner(secret, process)
        self.verifier = ProbeVerifier(secret, max_age=max_age)
        self.logger = logger
        self.store_sync = store_sync
        self._logged: Set[Tuple[int, int, str]] = set()
        #: Beacons ignored, by why.
        self.ignored_beacons: Dict[str, int] = {}

    def frames(self, dpid: int, ports: List[int], beacon_ports: Set[int],
               now: float) -> List[Tuple[int, bytes]]:
        """(port, frame) for a probe out of each port and a beacon out of each of
        ``beacon_ports``."""
        frames = []
        for port in ports:
            frames.append((port, self.signer.probe(dpid, port, LLDP_SOURCE_MAC, now,
                                                   secrets.token_bytes(8))))
            if port in beacon_ports:
                frames.append((port, self.signer.probe(dpid, port, LLDP_SOURCE_MAC, now,
                                                       secrets.token_bytes(8), beacon=True)))
        return frames

    def send_probes(self, datapath, ports: Iterable[int], fabric: Fabric, now: float) -> None:
        """One signed probe out of each port and (store mode) a beacon after it out of
        each port of a switch without VMs that leads to no managed switch; one write."""
        dpid, ports = datapath.id, list(ports)
        if not ports:
            return
        beacons = {port for port in ports if self._may_reach_shared_fabric(fabric, dpid, port)}
        datapath.send(b"".join(
            openflow_bytes.with_xid(openflow_bytes.encoded_packet_out(OFPP_CONTROLLER, port, frame),
                              next_xid(datapath))
            for port, frame in self.frames(dpid, ports, beacons, now)))

    def probe_free_ports(self, datapath, ports: Iterable[int], engine, now: float) -> None:
        """Probe the ports without a VM behind them (a link there would first take the
        port down, which drops the VM and probes the port again)."""
        dpid = datapath.id
        self.send_probes(datapath, [port for port in sorted(ports)
                                    if not engine.hosts_vm(dpid, port)], engine.fabric, now)

    def _may_reach_shared_fabric(self, fabric: Fabric, dpid: int, port: int) -> bool:
        if self.store_sync is None:
            return False   # without a store there is no other process to reach
        role = fabric.role(dpid)
        if role is None or role.hosts_vms:
            return False
        end = PortRef(dpid, port)
        return fabric.peer(end) is None or fabric.is_shared_uplink(end)

    def received(self, engine, dpid: int, in_port: int, data: bytes, now: float) -> Plan:
        """An LLDP frame reached the controller from (dpid, in_port): what it changes."""
        probe = self.verifier.verify(data, now, at=(dpid, in_port))
        if isinstance(probe, Rejection):
            self._log_once(dpid, in_port, probe.reason.value,
                           "LLDP frame on switch %016x port %d dropped: %s: %s",
                           dpid, in_port, probe.reason.value, probe.detail)
            if probe.reason in _FORGED:
                return engine.probe_refused(dpid, in_port, now)
            return Plan()
        origin = PortRef(probe.dpid, probe.port)
        if not probe.beacon:
            return engine.link_seen(origin, PortRef(dpid, in_port), now=now)
        why = self._beacon_ignored(probe.process)
        if why is not None:
            self.ignored_beacons[why] = self.ignored_beacons.get(why, 0) + 1
            self._log_once(dpid, in_port, "beacon:" + why,
                           "beacon on switch %016x port %d ignored: %s", dpid, in_port, why)
            return Plan()
        return engine.shared_uplink_seen(
            PortRef(dpid, in_port),
            f"process {probe.process} switch {probe.dpid:016x} port {probe.port}", now=now)

    def _beacon_ignored(self, process: str) -> Optional[str]:
        if self.store_sync is None:
            return "no shared store is configured (beacons count only in store mode)"
        if process == self.process:
            return "this process's own beacon came back"
        if not self.store_sync.is_registered(process):
            return f"process {process!r} is not registered in the store"
        return None

    def counters(self) -> dict:
        """What was accepted and dropped so far (the REST API and benchmarks show it)."""
        return {"accepted": self.verifier.accepted,
                "rejected": {r.value: n for r, n in self.verifier.rejected.items()},
                "beacons_ignored": dict(self.ignored_beacons)}

    def _log_once(self, dpid: int, port: int, reason: str, message: str, *args) -> None:
        key = (dpid, port, reason)
        if key in self._logged:
            return
        if len(self._logged) >= _LOGGED_LIMIT:
            self._logged.clear()
        self._logged.add(key)
        self.logger.warning(message, *args)
