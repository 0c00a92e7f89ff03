"""A hostile template file in the live library never stops the controller (issue 11).

The controller runs on a private copy of the open library. A 40,000-deep YAML
file (80 KB; it used to kill the controller without a log line) is written
into it and a reload is asked for, by SIGHUP and through REST: the reload is
refused with one clear located error, the controller keeps running and
answering, its library, bindings and flows stay as they were, and a new VM is
still provisioned. A reload whose validation takes seconds does not stop the
controller from answering meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping

pytestmark = pytest.mark.integration

DEEP = "templates: " + "[" * 40_000 + "]" * 40_000 + "\n"
REFUSED = "library reload refused, previous library stays"
VOLATILE = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*")


@pytest.fixture(scope="module", name="dc")
def hostile_datacenter(datacenter_own_library):
    return datacenter_own_library


def request(controller, path: str, method: str = "GET", timeout: float = 20):
    """(status, JSON body) of one REST call with the lab's admin token."""
    return controller.rest(method, path, timeout=timeout)


def state(controller, net) -> dict:
    """What a refused reload must leave alone: library, bindings, flows."""
    status, templates = request(controller, "/dynprov/templates")
    assert status == 200, templates
    status, bindings = request(controller, "/dynprov/bindings?counters=false")
    assert status == 200, bindings
    return {
        "templates": templates,
        "bindings": sorted((b["binding_id"], b["mac"], b["template_id"], b["vlan"],
                            json.dumps(b["server"], sort_keys=True)) for b in bindings),
        "flows": {s.name: sorted(VOLATILE.sub("", line) for line in
                                 lab.dump_flows(s.name).splitlines() if "cookie=0xd9" in line)
                  for s in net.switches},
    }


def refusals(controller) -> list:
    """Each refusal logged: its line and the error line after it."""
    lines = controller.log().splitlines()
    return [(line, lines[i + 1] if i + 1 < len(lines) else "")
            for i, line in enumerate(lines) if REFUSED in line]


def host(net, name: str):
    return next(h for h in net.hosts if h.name.endswith(name))


def test_a_40k_deep_file_reloaded_by_sighup_is_refused_and_nothing_changes(dc):
    controller, net, library = dc
    before = state(controller, net)
    seen = len(refusals(controller))
    (library / "deep.yaml").write_text(DEEP)
    try:
        os.kill(controller.process.pid, signal.SIGHUP)
        assert controller.wait_for_log(REFUSED, timeout=15, count=seen + 1), \
            controller.log()[-3000:]
        (line, error), = refusals(controller)[seen:]
        assert error == (f"{library}/deep.yaml: line 1: nested deeper than 64 levels "
                         "(the limit) at column 75")
        assert controller.process.poll() is None
        assert state(controller, net) == before
    finally:
        (library / "deep.yaml").unlink()
    # it still provisions: a new VM on a server, reachable by a web VM
    server = next(s for s in net.switches if s.name.endswith("s12"))
    late = lab.add_vm(net, server, server.name[:4] + "late7", "00:fa:00:00:00:97",
                      "10.0.100.97/16")
    lab.announce(late)
    assert controller.wait_for_log("provisioned VM 00:fa:00:00:00:97", timeout=10)
    assert ping(host(net, "web1"), late)


def reload_by_rest(controller):
    """POST /dynprov/library/reload with the admin token."""
    return request(controller, "/dynprov/library/reload", "POST")


def test_a_40k_deep_file_reloaded_through_rest_is_refused_with_its_line(dc):
    controller, net, library = dc
    before = state(controller, net)
    (library / "deep.yaml").write_text(DEEP)
    try:
        status, body = reload_by_rest(controller)
    finally:
        (library / "deep.yaml").unlink()
    assert status == 422, body
    assert body["errors"] == [f"{library}/deep.yaml: line 1: nested deeper than 64 levels "
                              "(the limit) at column 75"]
    assert "Traceback" not in json.dumps(body)
    assert state(controller, net)["templates"] == before["templates"]
    assert reload_by_rest(controller)[0] == 200      # the clean library reloads


def test_the_controller_answers_while_a_slow_reload_is_validated(dc):
    from benchmarks.library_reload import write_library

    controller, _, library = dc
    done = controller.log().count("library reloaded")
    extra = write_library(library, 2000)      # seconds of YAML for the checker
    (library / "defaults.yaml").unlink()      # the library has its own defaults
    try:
        os.kill(controller.process.pid, signal.SIGHUP)
        time.sleep(0.3)
        status, _ = request(controller, "/dynprov/switches", timeout=5)
        answered_during_reload = controller.log().count("library reloaded") == done
        assert status == 200
        assert controller.wait_for_log("library reloaded", timeout=60, count=done + 1)
        assert "library reloaded: 2003 templates" in controller.log()
        assert answered_during_reload, "the answer came only after the reload"
    finally:
        for path in extra:
            path.unlink()
    assert reload_by_rest(controller)[0] == 200
