"""``dynprov templates validate|list|show``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ryu_apps.cli import templates
from ryu_apps.cli.templates import format_rate

DEFAULT_LIBRARY = str(Path(__file__).resolve().parents[2] / "templates")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dynprov")
    templates.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["templates", *argv])
    return args.func(args)


@pytest.fixture
def bad_library(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "web.yaml").write_text(
        "templates:\n"
        "  - {id: 250, name: web, description: Web, vlna: 100,\n"
        "     virtual_switch: {default_action: deny}, access_port: {default_action: allow}}\n")
    return "lib"


def test_validate_ok(capsys):
    assert run("validate", DEFAULT_LIBRARY) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: 5 templates from 6 files ({DEFAULT_LIBRARY})\n"
    assert err == ""


def test_validate_prints_every_error_to_stderr(bad_library, capsys):
    assert run("validate", bad_library) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "lib/web.yaml: template 250 'web': unknown key 'vlna' (expected one of: id, name, "
        "description, vlan, idle_timeout, virtual_switch, access_port); did you mean 'vlan'?",
        "lib/web.yaml: template 250 'web': vlan: missing required key",
        "FAILED: 2 errors (lib)",
    ]


def test_validate_singular_counts(tmp_path, capsys):
    path = tmp_path / "one.yaml"
    path.write_text("templates: [{id: 1, name: a, description: A, vlan: 5,"
                    " virtual_switch: {default_action: allow},"
                    " access_port: {default_action: allow}}]\n")
    assert run("validate", str(path)) == 0
    assert capsys.readouterr().out == f"OK: 1 template from 1 file ({path})\n"


def test_list_shows_one_row_per_template_sorted_by_id(capsys):
    assert run("list", DEFAULT_LIBRARY) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "HEX", "NAME", "VLAN", "IDLE", "ACL", "VS/AP",
                                "BANDWIDTH", "VS", "BANDWIDTH", "AP", "DESCRIPTION"]
    assert [line.split()[:5] for line in lines[1:]] == [
        ["240", "0x00F0", "quarantine", "999", "120s"],
        ["242", "0x00F2", "outside", "100", "3600s"],
        ["250", "0x00FA", "web", "100", "600s"],
        ["252", "0x00FC", "database", "100", "300s"],
        ["254", "0x00FE", "management", "300", "1800s"],
    ]
    web = lines[3]
    assert "10/1" in web and "100 Mbit/s" in web and "500 Mbit/s" in web
    assert web.endswith("Public web tier (HTTP/HTTPS from anywhere, PostgreSQL to the "
                        "database tier)")


def test_list_of_a_bad_library_fails(bad_library, capsys):
    assert run("list", bad_library) == 1
    assert "vlan: missing required key" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["250", "0x00FA", "0xfa", "web"])
def test_show_by_id_hex_or_name(key, capsys):
    assert run("show", DEFAULT_LIBRARY, key) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "template 250 (0x00FA) 'web'"
    assert "  vlan          100" in lines
    assert "  idle timeout  600 s" in lines
    assert "    bind ip         yes" in lines
    assert "    bind ipv6       link_local" in lines and "    stateful        yes" in lines
    assert "    bandwidth       100 Mbit/s, burst 10000 kbit" in lines
    assert "      [0] allow to_vm ethertype=arp" in lines
    assert ("      [4] allow from_vm ethertype=ipv4 protocol=tcp dst=10.0.200.0/24 "
            "dst_port=5432") in lines
    assert ("      [5] allow from_vm ethertype=ipv6 protocol=tcp dst=fd00:0:0:200::/64 "
            "dst_port=5432") in lines
    assert lines[-1] == ("      [0] deny to_vm ethertype=ipv4 protocol=tcp src=192.0.2.0/24 "
                         "dst_port=22")


def test_show_side_without_acl(capsys):
    assert run("show", DEFAULT_LIBRARY, "management") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "    acl             (none)"
    assert lines[-2] == "    bandwidth       50 Mbit/s, burst 5000 kbit"


def test_show_unknown_template(capsys):
    assert run("show", DEFAULT_LIBRARY, "nope") == 1
    assert capsys.readouterr().err == f"error: no template 'nope' in {DEFAULT_LIBRARY}\n"
    assert run("show", DEFAULT_LIBRARY, "251") == 1


def test_show_of_a_bad_library_fails(bad_library, capsys):
    assert run("show", bad_library, "web") == 1
    assert capsys.readouterr().err.endswith("FAILED: 2 errors (lib)\n")


def test_subcommand_is_required(capsys):
    with pytest.raises(SystemExit):
        run()


@pytest.mark.parametrize("kbps, text", [
    (512, "512 kbit/s"), (1000, "1 Mbit/s"), (1500, "1.5 Mbit/s"), (100000, "100 Mbit/s"),
    (1_000_000, "1 Gbit/s"), (2_500_000, "2.5 Gbit/s"),
])
def test_format_rate(kbps, text):
    assert format_rate(kbps) == text
