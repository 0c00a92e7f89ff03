"""``dynprov vm-config``: libvirt <interface> elements, MACs never repeated."""

from __future__ import annotations

import argparse
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from xml.etree import ElementTree

import pytest

from ryu_apps.cli import vm_config
from ryu_apps.core.identifiers import IdentifierError
from ryu_apps.loaders.scheme_config import load_scheme


def run(argv):
    parser = argparse.ArgumentParser(prog="dynprov")
    vm_config.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["vm-config", *argv])
    return args.func(args)


def interfaces(text: str) -> list:
    return [ElementTree.fromstring(f"<r>{text}</r>").findall("interface")][0]


def test_one_vm_is_a_libvirt_openvswitch_interface_encoding_the_template(capsys):
    assert run(["--template", "250", "--bridge", "s11", "--offline", "--seed", "1"]) == 0
    (element,) = interfaces(capsys.readouterr().out)
    mac = element.find("mac").get("address")
    assert load_scheme("prefix/16").decode(mac) == 250
    assert element.get("type") == "bridge"
    assert element.find("source").get("bridge") == "s11"
    assert element.find("virtualport").get("type") == "openvswitch"
    interface_id = element.find("virtualport/parameters").get("interfaceid")
    assert len(interface_id) == 36 and interface_id.count("-") == 4


def test_n_vms_never_repeat_a_mac_of_the_inventory_and_record_theirs(tmp_path, capsys):
    inventory = tmp_path / "inventory.txt"
    scheme = load_scheme("prefix/16")
    first = vm_config.new_macs(scheme, 250, 5, set(), random.Random(7))
    inventory.write_text("# handed out\n" + "\n".join(f"web{i} {m.upper()}"
                                                       for i, m in enumerate(first)) + "\n")
    assert run(["--template", "250", "--bridge", "br-int", "--count", "5", "--offline",
                "--seed", "7", "--inventory", str(inventory), "--record",
                "--output-dir", str(tmp_path / "xml")]) == 0
    written = sorted((tmp_path / "xml").glob("vm-*.xml"))
    assert len(written) == 5
    macs = {ElementTree.parse(p).find("mac").get("address") for p in written}
    assert len(macs) == 5 and not macs & set(first)   # the same seed, other MACs
    assert vm_config.macs_in(inventory.read_text()) == set(first) | macs


def test_a_bound_mac_from_the_controller_is_never_handed_out(capsys):
    scheme = load_scheme("prefix/16")
    bound = vm_config.new_macs(scheme, 252, 1, set(), random.Random(3))[0]

    class Bindings(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            data = json.dumps([{"mac": bound}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_):
            pass

    server = HTTPServer(("127.0.0.1", 0), Bindings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert run(["--template", "252", "--bridge", "s11", "--seed", "3",
                    "--controller", url]) == 0
    finally:
        server.shutdown()
    (element,) = interfaces(capsys.readouterr().out)
    assert element.find("mac").get("address") != bound


def test_an_unreachable_controller_is_a_warning_not_a_failure(capsys):
    assert run(["--template", "250", "--bridge", "s11", "--controller",
                "http://127.0.0.1:9"]) == 0
    assert "bound MACs not checked" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--count", "0"], "--count: expected 1..4096, got 0"),
    (["--record"], "--record needs --inventory FILE"),
    (["--template", "0x10000"], "template"),
])
def test_bad_arguments_exit_2_with_the_reason(capsys, argv, message):
    base = ["--template", "250", "--bridge", "s11", "--offline"]
    assert run(base + argv) == 2
    assert message in capsys.readouterr().err


def test_a_full_template_space_is_an_error_not_a_loop():
    scheme = load_scheme("prefix/16")

    class Tiny:
        def random_unique_id(self, rng, template):
            return 1

        def encode(self, template, unique):
            return scheme.encode(template, unique)

    with pytest.raises(IdentifierError, match="run out"):
        vm_config.new_macs(Tiny(), 250, 2, set(), random.Random(0))


def test_names_are_escaped_in_the_xml():
    text = vm_config.interface_xml("br'<x>", "00:fa:00:00:00:01", "id")
    assert ElementTree.fromstring(text).find("source").get("bridge") == "br'<x>"
