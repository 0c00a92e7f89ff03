"""Prometheus metrics of the controller, on their own port (``[dynprov] metrics_port``).

Two kinds. Counters and histograms of events are recorded through the small
typed API of :class:`Metrics` (``packet_in``, ``detected``/``confirmed``,
``reconciled``, ``drift_found``, ``openflow_error``, ``switch_connected``);
other parts of the app call those and nothing else. Gauges (bindings by
template, state and device; quarantined MACs; blocked ports; switches; the
store) are computed at scrape time from the engine's state by
:class:`StateCollector`: nothing is updated on the hot path for them. A
scrape runs in a green thread of the hub; it copies what it reads and never
waits on a switch, so it never blocks provisioning.

Names follow Prometheus' conventions (``dynprov_`` prefix, ``_total`` for
counters, ``_seconds`` for durations). The list is in docs/operator-guide.md
("Metrics"); etc/grafana/dynprov.json queries them.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter as Tally
from typing import Any, Dict, Iterable, Optional

import eventlet
import eventlet.wsgi
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ryu_apps.app.provisioning_times import ProvisioningTimes

LOG = logging.getLogger("dynprov.metrics")
#: Buckets of provisioning latency and migration activation delay (seconds):
#: from a fraction of a millisecond (one VM, idle machine) to seconds (a storm).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
                   1.0, 2.0, 5.0, 10.0)
#: MACs whose last server is remembered to tell a migration from a new VM (the least
#: recently seen are forgotten first: their next detection counts as a new VM).
MAX_REMEMBERED = 200_000
#: Verdict labels of ``dynprov_packet_ins_total``.
VERDICTS = ("provisioned", "refused", "known", "lldp", "guard_refused", "dhcp", "malformed")


class Metrics:
    """The controller's event counters and histograms, and the registry that serves them."""

    def __init__(self, app: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.packet_ins = Counter("dynprov_packet_ins", "Packet-ins handled, by verdict",
                                  ["verdict"], registry=r)
        self.provisioning = Histogram(
            "dynprov_provisioning_latency_seconds",
            "A new VM's first frame (or OVSDB row) to every switch's barrier reply",
            buckets=LATENCY_BUCKETS, registry=r)
        self.migrations = Counter("dynprov_migrations", "VMs that moved to another server, "
                                  "by detection mode", ["mode"], registry=r)
        self.activation = Histogram(
            "dynprov_migration_activation_seconds",
            "A moved VM's detection at its new server to its flows confirmed there",
            ["mode"], buckets=LATENCY_BUCKETS, registry=r)
        self.reconciliations = Counter("dynprov_reconciliations", "Switches read back and "
                                       "reconciled, by reason", ["reason"], registry=r)
        self.drift = Counter("dynprov_drift_entries", "Flow and meter entries a "
                             "reconciliation or audit found different from the desired "
                             "state, by kind (missing, extra, changed)", ["kind"], registry=r)
        self.audits = Counter("dynprov_audits", "Switches checked by the continuous intent "
                              "check, by result (clean, repaired, reported)", ["result"],
                              registry=r)
        self.of_errors = Counter("dynprov_openflow_errors", "OpenFlow error messages from "
                                 "switches, by error type", ["type"], registry=r)
        self.connections = Counter("dynprov_switch_connections", "Switch connections "
                                   "(handshake complete) and disconnections", ["event"],
                                   registry=r)
        self._detected: Dict[str, str] = {}   # mac -> "new" or a migration's mode
        self._where: Dict[str, int] = {}      # mac -> server dpid of its last detection
        if app is not None:
            r.register(StateCollector(app))

    # -- the recording API --------------------------------------------------------
    def packet_in(self, verdict: str) -> None:
        """One packet-in handled; ``verdict`` is one of :data:`VERDICTS`."""
        self.packet_ins.labels(verdict).inc()

    def detected(self, mac: str, dpid: int, mode: str) -> None:
        """The engine provisioned ``mac`` at server ``dpid``, found by ``mode`` (packet,
        ovsdb): a migration if it was last detected at another server."""
        previous = self._where.pop(mac, None)
        self._where[mac] = dpid   # re-inserted: the dict's order is least recently seen first
        if len(self._where) > MAX_REMEMBERED:   # bounded, whatever the churn of MACs
            del self._where[next(iter(self._where))]
        if previous is not None and previous != dpid:
            self.migrations.labels(mode).inc()
            self._detected[mac] = mode
        else:
            self._detected[mac] = ""

    def confirmed(self, mac: str, seconds: float) -> None:
        """Every switch confirmed the flows of ``mac``, ``seconds`` after its detection."""
        mode = self._detected.pop(mac, None)
        if mode is None:
            return
        if mode:
            self.activation.labels(mode).observe(seconds)
        else:
            self.provisioning.observe(seconds)

    def reconciled(self, reason: str, missing: int, extra: int) -> None:
        """A switch was read back and diffed: ``missing`` entries added, ``extra`` deleted."""
        self.reconciliations.labels(reason).inc()
        self.drift_found("missing", missing)
        self.drift_found("extra", extra)

    def drift_found(self, kind: str, count: int) -> None:
        """``count`` entries of ``kind`` (missing, extra, changed) differed from the desired
        state (the reconciliation's read-back, or the continuous audit)."""
        if count > 0:
            self.drift.labels(kind).inc(count)

    def audited(self, bridge: str, counts: Dict[str, int], repaired: bool) -> None:
        """The intent check compared one switch (the audit's recorder protocol). A
        repaired drift was counted by :meth:`reconciled` already; a reported one (the
        operator asked for report-only) is counted here."""
        drifted = any(counts.values())
        self.audits.labels("clean" if not drifted else
                           "repaired" if repaired else "reported").inc()
        if drifted and not repaired:
            for kind, count in counts.items():
                self.drift_found(kind, count)

    def openflow_error(self, error_type: int) -> None:
        """A switch answered an OpenFlow error of ``error_type``."""
        self.of_errors.labels(str(error_type)).inc()

    def switch_connected(self, up: bool) -> None:
        """A switch connected (``up``) or disconnected."""
        self.connections.labels("connect" if up else "disconnect").inc()

    def forget_unbound(self, bound: Iterable[str]) -> None:
        """Drop what is remembered of MACs no longer bound (called at scrape time)."""
        keep = set(bound)
        for mac in [m for m in self._where if m not in keep]:
            del self._where[mac]

    def wsgi_app(self):
        """The WSGI application that answers a scrape."""
        return make_wsgi_app(self.registry)


#: Reasons of ``dynprov_reconciliations_total`` (any other: "other").
REASONS = ("connected", "reconnected", "audit", "library reload", "resync",
           "warm start over", "openflow error")


def reconciliation_reason(why: str) -> str:
    """A bounded label for a reconciliation's free-text reason."""
    head = why.split(":", 1)[0].strip().lower()
    if head.startswith("openflow error"):
        return "openflow error"
    return head if head in REASONS else "other"


def plan_drift(plan) -> tuple:
    """(entries added, entries deleted) by a reconciliation's plan: what was missing
    and what was extra on the switch."""
    changes = list(plan.changes.values())
    return sum(len(c.adds) for c in changes), sum(len(c.deletes) for c in changes)


class MeteredTimes(ProvisioningTimes):
    """:class:`ProvisioningTimes` that also feeds the latency histograms of ``metrics``."""

    def __init__(self, metrics: Metrics, engine_of) -> None:
        super().__init__()
        self.metrics, self._engine_of = metrics, engine_of

    def detected(self, mac: str, when_ns: int) -> None:
        super().detected(mac, when_ns)
        binding = self._engine_of().bindings.get(mac)
        if binding is not None:
            self.metrics.detected(mac, binding.dpid, binding.detected_by.value)

    def confirmed(self, macs: Iterable[str], when_ns: int) -> None:
        macs = list(macs)
        for mac in macs:
            entry = self._times.get(mac)
            if entry is not None and "confirmed_ns" not in entry:
                self.metrics.confirmed(mac, (when_ns - entry["detected_ns"]) / 1e9)
        super().confirmed(macs, when_ns)


class StateCollector(Collector):
    """Gauges computed from the app's state when Prometheus scrapes."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self):
        return []   # computed at scrape time; no samples at registration

    def collect(self):
        engine = self.app.engine
        bindings = list(engine.bindings.values())
        switches = dict(engine.fabric.switches)
        names = {dpid: info.name or f"{dpid:016x}" for dpid, info in switches.items()}
        yield _bindings_family(bindings, names)
        quarantine = engine.quarantine
        yield _gauge("dynprov_quarantined_macs", "MACs refused and quarantined now",
                     len(quarantine.refused))
        yield _gauge("dynprov_blocked_ports", "Ports that stopped reaching the controller "
                     "after too many refused MACs", len(quarantine.blocked_ports()))
        yield _gauge("dynprov_switches_connected", "Switches connected and reconciled",
                     len(self.app.datapaths))
        yield _gauge("dynprov_switches_known", "Switches in the discovered fabric",
                     len(switches))
        yield _gauge("dynprov_iface_id_conflicts", "MACs whose OVSDB rows carry different "
                     "iface-ids (docs/hypervisors.md)", iface_id_conflicts(engine.state.ports))
        yield _gauge("dynprov_templates", "Templates in the main library in force",
                     len(engine.library))
        yield from _store_families(getattr(self.app, "store_sync", None))
        metrics = getattr(self.app, "metrics", None)
        if metrics is not None:
            metrics.forget_unbound(b.mac for b in bindings)


def iface_id_conflicts(ports) -> int:
    """MACs attached (OVSDB) at several ports whose rows name different iface-ids."""
    found = 0
    for places in list(ports.attached_at.values()):
        ids = {ports.iface_ids.get(p) for p in places} - {None}
        found += len(ids) > 1
    return found


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _bindings_family(bindings, names: Dict[int, str]) -> GaugeMetricFamily:
    family = GaugeMetricFamily("dynprov_bindings", "VM bindings by template, state, server "
                               "bridge and network device (access switch)",
                               labels=["template", "template_id", "state", "server",
                                       "device"])
    tally = Tally((b.template_name, str(b.template_id), b.state.value, _name(names, b.dpid),
                   "" if b.device is None else _name(names, b.device)) for b in bindings)
    for labels, count in sorted(tally.items()):
        family.add_metric(list(labels), count)
    return family


def _name(names: Dict[int, str], dpid: int) -> str:
    return names.get(dpid, f"{dpid:016x}")


def _store_families(store_sync) -> Iterable[Metric]:
    """The distributed mode's client: connected, queued writes, their age, failovers."""
    client = getattr(store_sync, "client", None)
    if client is None:
        return
    yield _gauge("dynprov_store_connected", "1 while the store client replicates",
                 1.0 if client.connected() else 0.0)
    yield _gauge("dynprov_store_queued_writes", "Store writes not yet committed",
                 len(client.queued()))
    yield _gauge("dynprov_store_replication_lag_seconds", "Age of the oldest store write "
                 "not yet committed (0 when none waits)", client.oldest_queued_age())
    yield CounterMetricFamily("dynprov_store_failovers", "Times the store client "
                              "reconnected after losing its server",
                              value=client.reconnections)


def serve(metrics: Metrics, host: str, port: int, spawn, logger=LOG) -> Optional[Any]:
    """Serve ``metrics`` on ``host:port`` in a green thread (``spawn``: hub.spawn); None
    with an error logged when it cannot listen (the controller runs on without them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = eventlet.listen((host, port), family=family)
    except OSError as error:
        logger.error("metrics: cannot listen on %s:%d ([dynprov] metrics_host, "
                     "metrics_port): %s; running without metrics", host, port,
                     error.strerror or error)
        return None
    logger.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    return spawn(eventlet.wsgi.server, listener, metrics.wsgi_app(), log=logger,
                 log_output=False, debug=False, max_size=16)
