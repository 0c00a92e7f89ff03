"""Operating it (issue 15 items 1, 5, 6) on real OVS: the Prometheus scrape after a
demo-like provisioning, the Grafana dashboard's queries against it, iface-id read
from OVSDB, and the OpenAPI document against the live routes. One bed: one access
switch, two servers, one VM each, the local OVSDB watched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab
from tests.integration.attack_support import hosts_by_name, switches_by_name
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix
from tests.unit.test_metrics import dashboard_metric_names, exported_names

pytestmark = pytest.mark.integration
DASHBOARD = Path(__file__).resolve().parents[2] / "etc" / "grafana" / "dynprov.json"
#: Seconds a metric may take to follow an OVSDB change (measured: well under 1 s).
FOLLOW = 10.0


@pytest.fixture(scope="module")
def bed():
    prefix = "m" + unique_prefix()[1:]
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, prefix, ovsdb=True, access=1,
                                       servers=2, vms=1,
                                       dpid_base=((os.getpid() + 29) % 4096) << 24)
    yield controller, net, prefix
    stop_datacenter(controller, net)


def scrape(controller) -> str:
    url = f"http://127.0.0.1:{controller.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return answer.read().decode()


def value(text: str, name: str, **labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(2) or "") for k, v in labels.items()):
            total += float(match.group(3))
    return total


def wait_for_metric(controller, name: str, expected: float, **labels) -> str:
    deadline = time.monotonic() + FOLLOW
    while True:
        text = scrape(controller)
        if value(text, name, **labels) == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_a_scrape_after_provisioning_shows_the_bindings_and_their_latency(bed):
    controller, net, _ = bed
    text = scrape(controller)
    assert value(text, "dynprov_bindings") == len(net.hosts)
    assert value(text, "dynprov_bindings", template="web") >= 1
    assert value(text, "dynprov_provisioning_latency_seconds_count") >= len(net.hosts)
    assert value(text, "dynprov_provisioning_latency_seconds_sum") > 0
    assert value(text, "dynprov_packet_ins_total", verdict="provisioned") >= len(net.hosts)
    assert value(text, "dynprov_switches_connected") == len(net.switches)
    assert value(text, "dynprov_reconciliations_total", reason="connected") >= 1


def test_every_dashboard_query_names_a_metric_the_live_controller_exports(bed):
    exported = exported_names(scrape(bed[0]))
    for expression, names in dashboard_metric_names(json.loads(DASHBOARD.read_text())).items():
        missing = {n for n in names - exported if not n.startswith("dynprov_store_")}
        assert names and not missing, f"{expression}: not exported: {missing}"


def test_the_openapi_document_matches_the_live_routes(bed):
    controller, net, _ = bed
    status, document = controller.rest("GET", "/dynprov/openapi.json", role="reader")
    assert status == 200 and document["openapi"].startswith("3.")
    status, index = controller.rest("GET", "/dynprov", role="reader")
    listed = {(e["method"].lower(), e["path"]) for e in index["endpoints"]}
    assert listed == {(m, p) for p, ops in document["paths"].items() for m in ops}
    values = {"mac": net.hosts[0].MAC(), "template_id": "250"}
    for path, operations in document["paths"].items():
        if path.endswith("/view/events"):
            continue   # a Server-Sent Events stream never ends: test_live_view.py reads it
        concrete = re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)
        for method in operations:
            body = {} if method == "post" else None
            status, answer = controller.rest(method.upper(), concrete, body)
            assert status not in (404, 405, 500), (method, path, answer)
            assert status == 200 or "error" in answer, (method, path, answer)


def test_errors_outside_dynprov_are_json(bed):
    controller = bed[0]
    for path in ("/", "/metrics", "/stats/switches", "/dynprov/nothing"):
        status, answer = controller.rest("GET", path, role="reader")
        assert status == 404 and "no endpoint" in answer["error"], (path, answer)
    status, answer = controller.rest("PUT", "/dynprov/bindings")
    assert status == 405 and "use GET" in answer["error"]


def _bridge_side(host) -> str:
    intf = host.defaultIntf()
    return (intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1).name


def _set_ids(interface: str, **ids) -> None:
    values = [f'external_ids:{k}="{v}"' for k, v in ids.items()]
    subprocess.run(["ovs-vsctl", "set", "Interface", interface, *values], check=True)


def test_iface_id_is_read_from_ovsdb_and_a_disagreement_is_counted(bed):
    controller, net, prefix = bed
    switches, hosts = switches_by_name(net, prefix), hosts_by_name(net, prefix)
    vm = lab.add_vm(net, switches["s11"], f"{prefix}lib", "00:fa:00:00:15:01",
                    "10.0.100.77/16")
    _set_ids(_bridge_side(vm), **{"attached-mac": vm.MAC(), "iface-id": "vm-lib-nic0"})
    assert controller.wait_for_log(f"provisioned VM {vm.MAC()}", timeout=FOLLOW), \
        controller.log()[-2000:]
    status, binding = controller.rest("GET", f"/dynprov/bindings/{vm.MAC()}?counters=false",
                                      role="reader")
    assert status == 200 and binding["detected_by"] == "ovsdb", binding
    other = next(h for name, h in hosts.items() if name != "lib" and h is not vm)
    _set_ids(_bridge_side(other), **{"attached-mac": vm.MAC(), "iface-id": "another-vm"})
    text = wait_for_metric(controller, "dynprov_iface_id_conflicts", 1)
    assert value(text, "dynprov_iface_id_conflicts") == 1, text
    assert controller.wait_for_log("carry different iface-ids", timeout=FOLLOW)
    subprocess.run(["ovs-vsctl", "remove", "Interface", _bridge_side(other), "external_ids",
                    "attached-mac", "--", "remove", "Interface", _bridge_side(other),
                    "external_ids", "iface-id"], check=True)
    text = wait_for_metric(controller, "dynprov_iface_id_conflicts", 0)
    assert value(text, "dynprov_iface_id_conflicts") == 0, text
