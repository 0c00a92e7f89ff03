"""ryu-manager launches dynprov on a Python 3.11 with current eventlet."""

import subprocess
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab

pytestmark = pytest.mark.integration


def test_ryu_manager_runs_despite_eventlet_removing_already_handled():
    out = subprocess.run([lab.ryu_manager_command(), "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ryu-manager 4.34" in out.stdout + out.stderr


def test_readme_launch_command_listens_with_the_usual_flags(tmp_path):
    controller = lab.ControllerProcess(workdir=tmp_path).start()
    try:
        command = controller.command()
        for flag in ("--config-file", "--ofp-tcp-listen-port", "--wsapi-port", "--verbose"):
            assert flag in command
        assert controller.wait_for_log("dynprov: ", timeout=10), controller.log()
        assert "templates from" in controller.log()
    finally:
        controller.stop()
    assert controller.process.returncode is not None


def test_invalid_library_stops_the_controller_with_the_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("templates:\n  - id: 70000\n    name: x\n")
    controller = lab.ControllerProcess(templates=bad, workdir=tmp_path)
    with pytest.raises(RuntimeError, match="bad.yaml"):
        controller.start(timeout=20)


def _dynprov(*args):
    command = [str(Path(lab.ryu_manager_command()).parent / "dynprov"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60,
                          cwd=str(lab.REPO_ROOT))


def test_installed_dynprov_decodes_the_patent_example():
    out = _dynprov("mac", "decode", "--scheme", "prefix/16", "00:FA:83:91:DE:1B")
    assert out.returncode == 0, out.stderr
    assert "template 250 (0x00FA)" in out.stdout


def test_installed_dynprov_refuses_a_multicast_mac():
    out = _dynprov("mac", "decode", "--scheme", "prefix/16", "01:00:5e:00:00:01")
    assert out.returncode == 2
    assert "multicast" in out.stderr


def test_installed_dynprov_validates_the_default_library():
    out = _dynprov("templates", "validate", "templates")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: 5 templates")
