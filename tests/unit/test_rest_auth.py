"""REST tokens: the file, its permissions, roles, constant-time lookup, the refusal log."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from ryu_apps.rest.auth import (
    RefusalLog,
    Role,
    TokenFileError,
    Tokens,
    bearer_token,
    create_tokens_file,
    digest,
    load_tokens,
    parse_tokens,
    required_role,
)

ADMIN = "Adm1n-token-0123456789abcdef"
READER = "Re4der-token-0123456789abcdef"
GOOD = f"""\
# role  name  token
admin   operator    {ADMIN}

reader  monitoring  {READER}{"   "}
"""


def test_a_good_file():
    tokens = parse_tokens(GOOD, "tokens")
    assert [(t.name, t.role) for t in tokens] == [("operator", Role.ADMIN),
                                                  ("monitoring", Role.READER)]
    assert all(len(t.digest) == 32 for t in tokens)
    assert ADMIN not in repr(tokens)   # kept as digests only


def test_every_bad_line_is_located():
    text = ("admin operator\n"                         # 1: two fields
            "root bob " + "x" * 20 + "\n"              # 2: unknown role
            "reader b@d!name " + "y" * 20 + "\n"       # 3: bad name
            "reader short abc\n"                       # 4: short token
            f"admin operator {ADMIN}\n"                # 5: good
            f"reader operator {READER}\n"              # 6: name used on line 5
            f"reader other {ADMIN}\n"                  # 7: token given on line 5
            "reader spaces " + "z" * 15 + "é\n")       # 8: a character outside b64token
    with pytest.raises(TokenFileError) as raised:
        parse_tokens(text, "/etc/dynprov/rest-tokens")
    assert str(raised.value).splitlines() == [
        "/etc/dynprov/rest-tokens:1: expected 'ROLE NAME TOKEN' (3 fields), got 2 fields",
        "/etc/dynprov/rest-tokens:2: role: expected reader or admin, got 'root'",
        "/etc/dynprov/rest-tokens:3: name: expected letters, digits, '_', '.', '@' or '-' "
        "(at most 64), got 'b@d!name'",
        "/etc/dynprov/rest-tokens:4: token: expected at least 16 characters of A-Z a-z 0-9 "
        "- . _ ~ + / (then '=' padding), got 3 characters",
        "/etc/dynprov/rest-tokens:6: name 'operator' already used on line 5",
        "/etc/dynprov/rest-tokens:7: token already given on line 5",
        "/etc/dynprov/rest-tokens:8: token: expected at least 16 characters of A-Z a-z 0-9 "
        "- . _ ~ + / (then '=' padding), got 16 characters",
    ]


def test_a_file_without_tokens_is_refused():
    with pytest.raises(TokenFileError, match=r"^tokens: no token \(expected lines "):
        parse_tokens("# nothing yet\n\n", "tokens")


def test_the_file_must_not_be_open_to_other_users(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(GOOD)
    for mode in (0o644, 0o604, 0o620, 0o666):
        os.chmod(path, mode)
        with pytest.raises(TokenFileError) as raised:
            load_tokens(path)
        assert str(raised.value) == (f"{path}: tokens file is accessible to other users "
                                     f"(mode {mode:04o}); run: chmod 600 {path}")
    for mode in (0o600, 0o400, 0o640):   # owner only, or read by its group
        os.chmod(path, mode)
        assert len(load_tokens(path)) == 2


def test_a_missing_or_odd_file_is_an_error(tmp_path):
    with pytest.raises(TokenFileError, match="cannot read the tokens file: No such file"):
        load_tokens(tmp_path / "nope")
    with pytest.raises(TokenFileError, match="is not a regular file"):
        load_tokens(tmp_path)
    binary = tmp_path / "binary"
    binary.write_bytes(b"admin x \xff\xfe" * 4)
    os.chmod(binary, 0o600)
    with pytest.raises(TokenFileError, match="is not UTF-8 text"):
        load_tokens(binary)


def test_a_new_file_has_one_admin_token_and_mode_0600(tmp_path):
    path = tmp_path / "etc" / "dynprov" / "rest-tokens"
    create_tokens_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    (line,) = [x for x in path.read_text().splitlines() if not x.startswith("#")]
    role, name, secret = line.split()
    assert (role, name) == ("admin", "admin") and len(secret) >= 40
    tokens = load_tokens(path)
    assert tokens.identify(secret).role is Role.ADMIN
    with pytest.raises(TokenFileError, match="cannot create the tokens file: File exists"):
        create_tokens_file(path)   # never overwritten
    assert line in path.read_text()


def test_identify_finds_only_the_exact_token():
    tokens = Tokens(parse_tokens(GOOD, "tokens"))
    assert tokens.identify(ADMIN).name == "operator"
    assert tokens.identify(READER).role is Role.READER
    for wrong in ("", ADMIN[:-1], ADMIN + "x", ADMIN.upper(), READER + " "):
        assert tokens.identify(wrong) is None
    assert tokens.roles() == {"reader": 1, "admin": 1}


def test_identify_compares_every_token_without_stopping(monkeypatch):
    compared = []
    import hmac
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest",
                        lambda a, b: compared.append(a) or real(a, b))
    tokens = Tokens(parse_tokens(GOOD, "tokens"))
    tokens.identify(ADMIN)   # the first token matches: the second is compared anyway
    assert compared == [digest(ADMIN), digest(READER)]


@pytest.mark.parametrize("method, role", [("GET", Role.READER), ("head", Role.READER),
                                          ("POST", Role.ADMIN), ("PUT", Role.ADMIN),
                                          ("DELETE", Role.ADMIN), ("PATCH", Role.ADMIN),
                                          ("OPTIONS", Role.ADMIN)])
def test_role_needed_by_each_method(method, role):
    assert required_role(method) is role
    assert Role.ADMIN >= role   # an admin may do everything


@pytest.mark.parametrize("header, token", [
    ("Bearer abc", "abc"), ("bearer  abc ", "abc"), (None, None), ("", None),
    ("Basic YWxhZGRpbjpvcGVu", None), ("Bearer", None), ("Bearer a b", None),
    ("abc", None)])
def test_bearer_header(header, token):
    assert bearer_token(header) == token


def test_refusals_are_logged_once_per_client_and_reason_then_counted():
    lines, now = [], [100.0]
    log = RefusalLog(lines.append, lambda: now[0], period=60)
    assert log.refused("10.0.0.9", "unknown token")
    for _ in range(500):
        assert not log.refused("10.0.0.9", "unknown token")
    assert log.refused("10.0.0.9", "no Authorization header")   # another reason
    assert log.refused("10.0.0.7", "unknown token")             # another client
    now[0] += 61
    assert log.refused("10.0.0.9", "unknown token")
    assert lines == [
        "REST call refused: client 10.0.0.9: unknown token",
        "REST call refused: client 10.0.0.9: no Authorization header",
        "REST call refused: client 10.0.0.7: unknown token",
        "REST call refused: client 10.0.0.9: unknown token (500 more since the last line)",
    ]


def test_a_flood_of_clients_keeps_the_log_bounded():
    lines = []
    log = RefusalLog(lines.append, lambda: 0.0)
    for n in range(3 * RefusalLog.MAX_KEYS):
        log.refused(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", "unknown token")
    assert len(log._seen) <= RefusalLog.MAX_KEYS


def test_the_server_makes_a_missing_tokens_file_and_never_logs_the_token(tmp_path, caplog):
    rest_server = pytest.importorskip("ryu_apps.rest.server")
    path = tmp_path / "rest-tokens"
    logger = logging.getLogger("test.rest")
    with caplog.at_level(logging.INFO, logger="test.rest"):
        tokens = rest_server.tokens_in_force(str(path), logger)
    secret = path.read_text().split()[-1]
    assert tokens.identify(secret).name == "admin"
    assert caplog.messages == [f"REST API: no tokens file at {path}: made one with an admin "
                               "token (mode 0600); read the token there"]
    assert secret not in caplog.text
    with caplog.at_level(logging.INFO, logger="test.rest"):
        assert rest_server.tokens_in_force("", logger) is None
    assert "rest_tokens is not set: every REST call is refused" in caplog.text
