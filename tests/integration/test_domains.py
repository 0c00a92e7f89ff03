"""Mobility domains on real OVS: a domain's own library, and no moves across domains."""

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send
from ryu_apps.lab.demo import ping
from tests.integration.conftest import OPEN_LIBRARY, stop_datacenter, unique_prefix

pytestmark = pytest.mark.integration

WEST_LIBRARY = """\
templates:
  - {id: 250, name: web, description: web only, vlan: 100,
     virtual_switch: {default_action: allow}, access_port: {default_action: allow}}
"""


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("domains")
    prefix = "m" + unique_prefix()[1:]
    (workdir / "west").mkdir()
    (workdir / "west" / "templates.yaml").write_text(WEST_LIBRARY)
    (workdir / "domains.yaml").write_text(
        "domains:\n"
        f"  - {{name: east, access_switches: [{prefix}a1]}}\n"
        f"  - {{name: west, access_switches: [{prefix}a2], templates: west}}\n")
    controller = lab.ControllerProcess(
        templates=OPEN_LIBRARY, workdir=workdir,
        extra_options=f"domains = {workdir / 'domains.yaml'}\n").start()
    net = None
    try:
        net = lab.build_network(controller.of_port, prefix=prefix, edge=0)
        lab.wait_for_fabric(controller, net)
        for vm in net.hosts:
            lab.announce(vm)
        vms = {h.name[4:]: h for h in net.hosts}
        yield controller, net, vms, controller.rest_target(), prefix
    finally:
        stop_datacenter(controller, net)


def test_a_template_missing_from_the_domain_library_is_quarantined(dc):
    controller, _, vms, _, _ = dc
    db6 = vms["db6"]                                     # on s21, behind a2: domain west
    assert controller.wait_for_log(f"quarantined VM MAC {db6.MAC()}", timeout=10)
    assert ("template 252 (0x00FC) is not in the library of mobility domain 'west'"
            in controller.log())
    assert controller.wait_for_log(f"provisioned VM {vms['db2'].MAC()}", timeout=5)  # east
    assert ping(vms["web5"], vms["web7"])                 # west's own templates work


def test_migration_to_another_domain_is_refused(dc):
    _, _, vms, url, prefix = dc
    status, answer = send(url, {"event": "migrating", "mac": vms["web1"].MAC(),
                                "server": f"{prefix}s21"})
    assert status == 409
    assert answer["error"] == (f"server {prefix}s21 is outside VM {vms['web1'].MAC()}'s "
                               "mobility domain 'east' (it is in domain 'west')")
    status, answer = send(url, {"event": "migrating", "mac": vms["web1"].MAC(),
                                "server": f"{prefix}s12"})
    assert status == 200, answer                          # inside east: accepted
