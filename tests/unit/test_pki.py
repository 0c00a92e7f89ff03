"""The PKI made by ``dynprov pki init``: two CAs, keys private, idempotent."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from ryu_apps.tls import pki
from ryu_apps.cli.main import main as dynprov


def verifies(ca, cert) -> bool:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)],
                          capture_output=True).returncode == 0


def test_each_ca_signs_only_its_own_kind(tmp_path):
    made = pki.init(tmp_path / "pki", controllers=("controller",), switches=("switch", "hv2"))
    assert made.missing(switches=("switch", "hv2")) == []
    assert verifies(made.switch_ca, made.cert("switch")) and verifies(made.switch_ca,
                                                                      made.cert("hv2"))
    assert verifies(made.controller_ca, made.cert("controller"))
    assert not verifies(made.switch_ca, made.cert("controller"))
    assert not verifies(made.controller_ca, made.cert("switch"))
    assert made.ca_bundle.read_text() == (made.controller_ca.read_text()
                                          + made.switch_ca.read_text())


def test_keys_and_directory_are_private(tmp_path):
    made = pki.init(tmp_path / "pki")
    assert stat.S_IMODE(os.stat(made.directory).st_mode) == 0o700
    keys = sorted(made.directory.glob("*privkey.pem"))
    assert [k.name for k in keys] == ["controller-privkey.pem", "controllerca-privkey.pem",
                                      "switch-privkey.pem", "switchca-privkey.pem"]
    assert {stat.S_IMODE(os.stat(k).st_mode) for k in keys} == {0o600}


def test_a_second_run_replaces_nothing_and_adds_what_is_new(tmp_path):
    first = pki.init(tmp_path / "pki")
    before = {p.name: p.read_bytes() for p in first.directory.glob("*.pem")}
    second = pki.init(tmp_path / "pki", switches=("switch", "hv9"))
    after = {p.name: p.read_bytes() for p in second.directory.glob("*.pem")}
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {"hv9-cert.pem", "hv9-privkey.pem"}
    assert verifies(second.switch_ca, second.cert("hv9"))


def test_a_ca_key_moved_offline_keeps_existing_files_and_refuses_new_ones(tmp_path):
    made = pki.init(tmp_path / "pki")
    made.ca_key("switch").rename(tmp_path / "offline-switchca-privkey.pem")
    pki.init(tmp_path / "pki")   # everything there: nothing to sign
    with pytest.raises(pki.PkiError, match=r"switchca-privkey.pem: the switch CA's key is not "
                                           r"here; cannot sign hv2-cert.pem"):
        pki.init(tmp_path / "pki", switches=("hv2",))


@pytest.mark.parametrize("name", ["", "../x", ".hidden", "switchca", "a b"])
def test_bad_names_are_refused_before_anything_is_made(tmp_path, name):
    with pytest.raises(pki.PkiError, match="certificate name must be"):
        pki.init(tmp_path / "pki", switches=(name,))
    assert not (tmp_path / "pki").exists()


def test_require_names_missing_files_and_the_fix(tmp_path):
    with pytest.raises(pki.PkiError, match=r"PKI incomplete, missing controllerca-cert.pem, "
                                           r".*\(make it with: dynprov pki init --dir "):
        pki.Pki(tmp_path).require()


def test_cli_init_prints_how_to_use_the_files(tmp_path, capsys):
    directory = tmp_path / "pki"
    assert dynprov(["pki", "init", "--dir", str(directory), "--switch", "switch",
                    "--switch", "hv2"]) == 0
    out = capsys.readouterr().out
    assert f"--ctl-privkey {directory}/controller-privkey.pem" in out
    assert f"--ca-certs {directory}/switchca-cert.pem" in out
    assert (f"ovs-vsctl set-ssl {directory}/hv2-privkey.pem {directory}/hv2-cert.pem "
            f"{directory}/controllerca-cert.pem") in out
    assert dynprov(["pki", "init", "--dir", str(directory)]) == 0


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert dynprov(["pki", "init", "--dir", str(tmp_path / "p"), "--switch", "x/y"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: certificate name must be") and "Traceback" not in err
