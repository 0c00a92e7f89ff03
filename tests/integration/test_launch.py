"""ryu-manager launches dynprov on a Python 3.11 with current eventlet."""

import subprocess

import pytest

from ryu_apps import lab

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
