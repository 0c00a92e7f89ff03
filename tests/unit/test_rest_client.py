"""Which controller, token and CA the ``dynprov`` commands use, and what they say when refused."""

from __future__ import annotations

import argparse
import http.client
import ssl

import pytest

from ryu_apps.cli import notify, rest_client
from ryu_apps.cli.rest_client import ControllerError, RestTarget

ADMIN, READER = "admin-token-0123456789abcdef", "reader-token-0123456789abcdef"


def args(**given) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    rest_client.add_arguments(parser, None)
    argv = []
    for name, value in given.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


@pytest.fixture(name="tokens")
def tokens_file(tmp_path):
    path = tmp_path / "rest-tokens"
    path.write_text(f"# role name token\nadmin ops {ADMIN}\nreader mon {READER}\n")
    return path


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch, tmp_path):
    for name in ("DYNPROV_CONTROLLER", "DYNPROV_TOKEN", "DYNPROV_TOKEN_FILE",
                 "DYNPROV_CA_CERT", "DYNPROV_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(rest_client, "CONFIG_CANDIDATES", (tmp_path / "none.conf",))


def test_defaults_without_anything():
    assert rest_client.target_from_args(args(), "reader") == RestTarget(
        "http://127.0.0.1:8080", None, None)


def test_the_least_role_that_suffices_is_taken_from_a_roles_file(tokens):
    assert rest_client.read_token_file(tokens, "reader") == READER
    assert rest_client.read_token_file(tokens, "admin") == ADMIN
    tokens.write_text(f"admin ops {ADMIN}\n")
    assert rest_client.read_token_file(tokens, "reader") == ADMIN
    tokens.write_text(f"reader mon {READER}\n")
    with pytest.raises(ControllerError, match=f"^no admin token in {tokens} "):
        rest_client.read_token_file(tokens, "admin")


def test_a_bare_token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(f"\n# mine\n  {ADMIN}  \n")
    assert rest_client.read_token_file(path, "admin") == ADMIN


def test_an_unreadable_token_file_says_so(tmp_path):
    with pytest.raises(ControllerError, match="cannot read the token file .*nope: No such"):
        rest_client.target_from_args(args(token_file=tmp_path / "nope"), "reader")


def test_where_the_token_comes_from_in_order(tokens, tmp_path, monkeypatch):
    bare = tmp_path / "bare"
    bare.write_text("env-file-token-0123456789\n")
    config = tmp_path / "dynprov.conf"
    config.write_text(f"[dynprov]\nrest_tokens = {tokens}\n")
    monkeypatch.setenv("DYNPROV_CONFIG", str(config))
    assert rest_client.target_from_args(args(), "admin").token == ADMIN        # config
    monkeypatch.setenv("DYNPROV_TOKEN_FILE", str(bare))
    assert rest_client.target_from_args(args(), "admin").token == "env-file-token-0123456789"
    monkeypatch.setenv("DYNPROV_TOKEN", "env-token-0123456789")
    assert rest_client.target_from_args(args(), "admin").token == "env-token-0123456789"
    assert rest_client.target_from_args(args(token_file=tokens), "reader").token == READER


def test_url_and_ca_from_the_config_file(tmp_path, monkeypatch):
    config = tmp_path / "dynprov.conf"
    config.write_text("[DEFAULT]\nwsapi_host = 0.0.0.0\nwsapi_port = 8443\n"
                      "[dynprov]\nrest_cert = /etc/dynprov/rest-cert.pem\n"
                      "rest_key = /etc/dynprov/rest-key.pem\n")
    target = rest_client.target_from_args(args(config_file=config), "reader")
    assert (target.url, target.ca_cert) == ("https://127.0.0.1:8443",
                                            "/etc/dynprov/rest-cert.pem")
    config.write_text("[DEFAULT]\nwsapi_host = ::1\n")
    assert rest_client.target_from_args(args(config_file=config), "reader").url == \
        "http://[::1]:8080"
    monkeypatch.setenv("DYNPROV_CONTROLLER", "https://10.0.0.1:9443/")
    monkeypatch.setenv("DYNPROV_CA_CERT", "/tmp/ca.pem")
    target = rest_client.target_from_args(args(config_file=config), "reader")
    assert (target.url, target.ca_cert) == ("https://10.0.0.1:9443", "/tmp/ca.pem")
    target = rest_client.target_from_args(
        args(config_file=config, controller="http://h:1", ca_cert="/ca.pem"), "reader")
    assert (target.url, target.ca_cert) == ("http://h:1", "/ca.pem")


def test_a_bad_url_or_config_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNPROV_CONTROLLER", "127.0.0.1:8080")
    with pytest.raises(ControllerError, match="'127.0.0.1:8080' is not a controller URL"):
        rest_client.target_from_args(args(), "reader")
    with pytest.raises(ControllerError, match="cannot read the config file .*missing.conf"):
        rest_client.target_from_args(args(config_file=tmp_path / "missing.conf"), "reader")


def test_what_each_refusal_says():
    anonymous, known = RestTarget("http://c:1"), RestTarget("http://c:1", READER)
    assert rest_client.refusal(anonymous, 401, "/p", {"error": "no Authorization header"}) \
        == ("the dynprov controller at http://c:1 needs a token (401: no Authorization "
            "header); give one with --token-file FILE, DYNPROV_TOKEN or DYNPROV_TOKEN_FILE "
            "(the controller's tokens file is [dynprov] rest_tokens)")
    assert rest_client.refusal(known, 401, "/p", {"error": "unknown token"}).startswith(
        "the dynprov controller at http://c:1 refused the token (401: unknown token); give ")
    assert rest_client.refusal(known, 403, "/p", {"error": "token 'mon' has role reader: "
                                                           "POST needs admin"}) == (
        "the dynprov controller at http://c:1 refused the call (403: token 'mon' has role "
        "reader: POST needs admin); use an admin token")
    assert rest_client.refusal(known, 500, "/p", {"error": "internal error"}) == (
        "the dynprov controller at http://c:1 answered 500 for /p: internal error")


def test_what_each_connection_failure_says():
    plain, tls = RestTarget("http://c:1"), RestTarget("https://c:1")
    refused = ConnectionRefusedError(111, "Connection refused")
    assert rest_client.unreachable(plain, refused) == (
        "cannot reach the dynprov controller at http://c:1: [Errno 111] Connection refused "
        "(is it running, on this --wsapi-host and --wsapi-port?)")
    unverified = ssl.SSLCertVerificationError(1, "certificate verify failed")
    unverified.verify_message = "self-signed certificate"
    assert rest_client.unreachable(tls, unverified) == (
        "cannot verify the TLS certificate of the dynprov controller at https://c:1: "
        "self-signed certificate; give its certificate or CA with --ca-cert FILE or "
        "DYNPROV_CA_CERT")
    assert rest_client.unreachable(tls, ssl.SSLError(1, "[SSL] wrong version number")) \
        .endswith("if it serves plain HTTP, use http://")
    closed = http.client.RemoteDisconnected("Remote end closed connection without response")
    assert rest_client.unreachable(plain, closed).endswith(
        "if it serves HTTPS ([dynprov] rest_cert), use https://")


def test_notify_sends_the_admin_token_and_explains_a_403(tokens, monkeypatch, capsys):
    sent = []

    def fake_call(target, method, path, body=None, timeout=0):
        sent.append((target.token, method, path, body))
        return 403, {"error": "token 'mon' has role reader: POST needs admin"}

    monkeypatch.setattr(rest_client, "call", fake_call)
    parser = argparse.ArgumentParser()
    notify.register(parser.add_subparsers())
    parsed = parser.parse_args(["notify", "shutdown", "00:fa:00:00:00:01",
                                "--token-file", str(tokens), "--controller", "http://c:1"])
    assert parsed.func(parsed) == 2
    assert sent == [(ADMIN, "POST", "/dynprov/notifications",
                     {"event": "shutdown", "mac": "00:fa:00:00:00:01"})]
    assert capsys.readouterr().err == (
        "dynprov: error: the dynprov controller at http://c:1 refused the call (403: token "
        "'mon' has role reader: POST needs admin); use an admin token\n")


def test_notify_says_why_the_controller_is_unreachable(monkeypatch, capsys):
    def refused(*_args, **_kwargs):
        raise ControllerError("cannot reach the dynprov controller at http://c:1: refused")

    monkeypatch.setattr(rest_client, "call", refused)
    parser = argparse.ArgumentParser()
    notify.register(parser.add_subparsers())
    parsed = parser.parse_args(["notify", "shutdown", "00:fa:00:00:00:01"])
    assert parsed.func(parsed) == 1
    assert capsys.readouterr().err == (
        "dynprov: error: cannot reach the dynprov controller at http://c:1: refused\n")
