"""In store mode a library reload (REST or SIGHUP) reads no YAML and says how to change it.

A real ``ryu-manager`` with ``[dynprov] store = ...`` on a real ovsdb-server;
no switches are needed: the library is all that is looked at.
"""

import json
import os
import shutil
import signal

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.distributed import load_templates
from ryu_apps.store.server import STANDALONE, Store

pytestmark = pytest.mark.integration


def call(controller, path: str, method: str = "GET"):
    """(status, decoded JSON body) of one request to the controller's REST API
    (a reader token to read, an admin token for anything else)."""
    return controller.rest(method, path, role="reader" if method == "GET" else "admin",
                           timeout=40)


def web_vlan(controller) -> int:
    status, body = call(controller, "/dynprov/templates/250")
    assert status == 200, body
    return body["vlan"]


@pytest.fixture
def store_mode(tmp_path):
    """A standalone store holding the library (generation 1) and one process using it.

    Yields (controller, store remote, library directory).
    """
    library = tmp_path / "templates"
    shutil.copytree(lab.DEFAULT_TEMPLATES, library)
    store = Store.create(tmp_path / "store", STANDALONE).start()
    controller = None
    try:
        assert load_templates(store.remote, library) == 1
        (tmp_path / "p1").mkdir()
        controller = lab.ControllerProcess(
            templates=library, workdir=tmp_path / "p1",
            extra_options=f"store = {store.remote}\nprocess_name = p1\n").start()
        assert controller.wait_for_log("store library generation 1 of domain main in force"), \
            controller.log()[-3000:]
        yield controller, store.remote, library
    finally:
        if controller is not None:
            controller.stop()
        store.destroy()


def _edit_web(library, old: str, new: str) -> None:
    web = library / "web.yaml"
    web.write_text(web.read_text().replace(old, new, 1))


def test_a_rest_reload_is_refused_with_409_and_reads_no_file(store_mode):
    controller, remote, library = store_mode
    _edit_web(library, "vlan: 100", "vlan: 150")
    status, body = call(controller, "/dynprov/library/reload", "POST")
    assert status == 409, body
    assert body["error"].startswith("library reload refused: ")
    assert f"dynprov store load-templates <dir> --remote {remote}" in body["error"]
    assert f"a reload does not read the YAML files ({library})" in body["error"]
    assert "runs the store's library (generation 1)" in body["error"]
    assert (body["store"], body["process"], body["library_generation"]) == (remote, "p1", 1)
    assert web_vlan(controller) == 100
    # an invalid file is not read either: still 409, not the 422 of a refused library
    _edit_web(library, "vlan: 150", "vlan: 5000")
    status, body = call(controller, "/dynprov/library/reload", "POST")
    assert status == 409 and "5000" not in json.dumps(body), body
    assert controller.log().count("library reload refused: ") == 2, controller.log()[-3000:]


def test_sighup_is_refused_in_the_log_and_load_templates_changes_the_library(store_mode):
    controller, remote, library = store_mode
    _edit_web(library, "vlan: 100", "vlan: 150")
    os.kill(controller.process.pid, signal.SIGHUP)
    assert controller.wait_for_log(f"dynprov store load-templates <dir> --remote {remote}"), \
        controller.log()[-3000:]
    assert "library reload refused: " in controller.log()
    assert "library reloaded" not in controller.log()
    assert web_vlan(controller) == 100
    # the way the message names: every process of the store takes the edited files
    assert load_templates(remote, library) == 2
    assert controller.wait_for_log("store library generation 2 of domain main in force"), \
        controller.log()[-3000:]
    assert web_vlan(controller) == 150
