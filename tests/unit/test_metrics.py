"""Prometheus metrics (ryu_apps.app.metrics): gauges from the engine's state at scrape
time, counters and histograms from the recording API, on the REST tests' fake app."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ryu_apps.app.metrics import (
    Metrics,
    MeteredTimes,
    iface_id_conflicts,
    reconciliation_reason,
)
from ryu_apps.core.port_state import PortState
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.identifiers import PrefixScheme
from tests.unit import test_rest_status
from tests.unit.test_rest_views import (
    A1, DB1, F1, LIBRARY, S11, S12, UPLINK, WEB1, WEB2,
)

#: A fourth VM of WEB1's template (the MAC's first two bytes choose it).
NEW_VM = WEB1[:-2] + "7e"


def samples(metrics: Metrics) -> dict:
    """{(name, sorted labels): value} of one scrape."""
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def make_app():
    """The REST tests' fake app (three VMs on s11 and s12) with metrics."""
    app = test_rest_status.FakeApp(_engine())
    app.metrics = Metrics(app)
    return app


def _engine() -> ProvisioningEngine:
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    for dpid, role, name in ((F1, Role.FABRIC, "f1"), (A1, Role.ACCESS, "a1"),
                             (S11, Role.SERVER, "s11"), (S12, Role.SERVER, "s12")):
        engine.switch_up(dpid, role, name, [], now=0.0)
    for a, b in (((A1, 1), (F1, 1)), ((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3))):
        engine.link_seen(PortRef(*a), PortRef(*b), now=0.0)
    for dpid, port, mac in ((S11, 1, WEB1), (S11, 2, DB1), (S12, 1, WEB2)):
        assert engine.packet_in(dpid, port, mac, b"", now=1.0).provisioned
    return engine


def per_server(metrics: Metrics) -> dict:
    counts: dict = {}
    for (name, labels), value in samples(metrics).items():
        if name == "dynprov_bindings":
            server = dict(labels)["server"]
            counts[server] = counts.get(server, 0) + value
    return counts


def test_bindings_are_counted_by_template_state_and_device_at_scrape_time():
    app = make_app()
    found = samples(app.metrics)
    assert per_server(app.metrics) == {"s11": 2, "s12": 1}
    web1 = app.engine.bindings[WEB1]
    assert found[("dynprov_bindings", (("device", "a1"), ("server", "s11"),
                                       ("state", web1.state.value),
                                       ("template", web1.template_name),
                                       ("template_id", str(web1.template_id))))] >= 1
    assert app.engine.packet_in(S12, 2, NEW_VM, b"", now=2.0).provisioned
    assert per_server(app.metrics) == {"s11": 2, "s12": 2}   # no update call: a scrape
    assert found[("dynprov_switches_known", ())] == 4
    assert found[("dynprov_quarantined_macs", ())] == 0
    assert found[("dynprov_blocked_ports", ())] == 0


def test_a_refused_mac_shows_in_the_quarantine_gauge():
    app = make_app()
    verdict = app.engine.packet_in(S11, 1, "00:fa:00:00:00:99", b"", now=3.0)  # spoof
    assert verdict.refusal is not None
    assert samples(app.metrics)[("dynprov_quarantined_macs", ())] == 1


def test_provisioning_latency_and_migration_are_told_apart():
    app = make_app()
    times = MeteredTimes(app.metrics, lambda: app.engine)
    times.detected(WEB1, 1_000_000)
    times.confirmed([WEB1], 4_000_000)           # 3 ms, a new VM
    times.confirmed([WEB1], 9_000_000)           # confirmed twice: counted once
    found = samples(app.metrics)
    assert found[("dynprov_provisioning_latency_seconds_count", ())] == 1
    assert found[("dynprov_provisioning_latency_seconds_sum", ())] == 0.003
    app.metrics.detected(DB1, S11, "packet")
    app.metrics.detected(DB1, S12, "ovsdb")      # last seen at s11: it moved
    app.metrics.confirmed(DB1, 0.02)
    found = samples(app.metrics)
    assert found[("dynprov_migrations_total", (("mode", "ovsdb"),))] == 1
    assert found[("dynprov_migration_activation_seconds_count", (("mode", "ovsdb"),))] == 1
    assert found[("dynprov_provisioning_latency_seconds_count", ())] == 1


def test_counters_of_the_recording_api():
    metrics = Metrics()
    metrics.packet_in("provisioned")
    metrics.packet_in("refused")
    metrics.packet_in("refused")
    metrics.reconciled("audit", missing=2, extra=1)
    metrics.drift_found("changed", 3)
    metrics.drift_found("changed", 0)
    metrics.openflow_error(5)
    metrics.switch_connected(True)
    found = samples(metrics)
    assert found[("dynprov_packet_ins_total", (("verdict", "refused"),))] == 2
    assert found[("dynprov_reconciliations_total", (("reason", "audit"),))] == 1
    assert found[("dynprov_drift_entries_total", (("kind", "missing"),))] == 2
    assert found[("dynprov_drift_entries_total", (("kind", "extra"),))] == 1
    assert found[("dynprov_drift_entries_total", (("kind", "changed"),))] == 3
    assert found[("dynprov_openflow_errors_total", (("type", "5"),))] == 1
    assert found[("dynprov_switch_connections_total", (("event", "connect"),))] == 1


def test_reconciliation_reasons_are_a_bounded_set():
    assert reconciliation_reason("connected") == "connected"
    assert reconciliation_reason("resync: handler _packet_in raised") == "resync"
    assert reconciliation_reason("OpenFlow error type 5 code 2") == "openflow error"
    assert reconciliation_reason("anything else, 0x1234") == "other"


def test_iface_id_conflicts_count_macs_whose_rows_disagree():
    ports = PortState()
    ports.attach(S11, 1, WEB1, "vm-a")
    ports.attach(S12, 1, WEB1, "vm-a")            # a migration: same iface-id
    assert iface_id_conflicts(ports) == 0
    ports.attach(S12, 2, DB1, "vm-b")
    ports.attach(S11, 2, DB1, "vm-c")             # two VMs with one MAC
    assert iface_id_conflicts(ports) == 1


# -- the Grafana dashboard ---------------------------------------------------------------
DASHBOARD = Path(__file__).resolve().parents[2] / "etc" / "grafana" / "dynprov.json"


def exported_names(text: str) -> set:
    """Every series name a scrape's text exposes (a family's samples, even when no
    labelled child exists yet: its HELP and TYPE lines count)."""
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


def dashboard_metric_names(dashboard: dict) -> dict:
    """{expression: the dynprov_ metric names it queries} of every panel target."""
    found = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found[target["expr"]] = set(re.findall(r"\bdynprov_[a-zA-Z0-9_:]*", target["expr"]))
    return found


def test_every_dashboard_query_names_an_exported_metric():
    app = make_app()
    app.store_sync = SimpleNamespace(client=SimpleNamespace(
        connected=lambda: True, queued=lambda: [], oldest_queued_age=lambda: 0.0,
        reconnections=0))
    exported = exported_names(generate_latest(app.metrics.registry).decode())
    queries = dashboard_metric_names(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 15
    for expression, names in queries.items():
        assert names, f"query names no dynprov metric: {expression}"
        assert names <= exported, f"{expression}: not exported: {names - exported}"


def test_the_store_client_is_read_at_scrape_time_in_distributed_mode():
    app = make_app()
    assert ("dynprov_store_connected", ()) not in samples(app.metrics)   # embedded mode
    app.store_sync = SimpleNamespace(client=SimpleNamespace(
        connected=lambda: False, queued=lambda: [1, 2, 3], oldest_queued_age=lambda: 1.5,
        reconnections=2))
    found = samples(app.metrics)
    assert found[("dynprov_store_connected", ())] == 0
    assert found[("dynprov_store_queued_writes", ())] == 3
    assert found[("dynprov_store_replication_lag_seconds", ())] == 1.5
    assert found[("dynprov_store_failovers_total", ())] == 2


def test_the_store_clients_lag_is_the_age_of_its_oldest_uncommitted_write():
    from collections import deque

    from ryu_apps.store.client import StoreClient
    from ryu_apps.store.pending_writes import PendingWrite

    client = StoreClient.__new__(StoreClient)   # no connection: only the queue is read
    client._queue, client._in_flight = deque(), None
    assert client.oldest_queued_age() == 0.0
    now = time.monotonic()
    client._in_flight = (None, [PendingWrite(None, None, now + 5, submitted=now - 2.0)])
    client._queue.append(PendingWrite(None, None, now + 5, submitted=now - 0.5))
    assert len(client.queued()) == 2
    assert 2.0 <= client.oldest_queued_age() < 60.0
