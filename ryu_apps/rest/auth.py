"""Bearer tokens with roles for the REST API: the tokens file, checks, refusal log.

The tokens file (``[dynprov] rest_tokens``) holds one token per line::

    # role    name        token
    admin     operator    Ck2v0m8...   (at least 16 characters)
    reader    monitoring  qP4uA1z...

``reader`` may GET; ``admin`` may do everything. The name is what the log
says; the token itself is never logged. Blank lines and ``#`` comments are
ignored. The file must not be accessible to other users, nor writable by its
group: :func:`load_tokens` refuses it otherwise. Tokens are kept as SHA-256
digests and a presented token is compared with every one of them in constant
time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

#: Shortest token accepted in a tokens file.
MIN_TOKEN_LENGTH = 16
#: Characters of a token (RFC 6750 ``b64token``).
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
#: Permission bits a tokens file must not have: any for others, write for its group.
_TOO_OPEN = stat.S_IRWXO | stat.S_IWGRP


class Role(enum.IntEnum):
    """What a token may do; a higher role may do what a lower one may."""

    READER = 1
    ADMIN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class TokenFileError(ValueError):
    """A tokens file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Token:
    """One token of the file: its name (for logs), role and SHA-256 digest."""

    name: str
    role: Role
    digest: bytes


def digest(secret: str) -> bytes:
    """The SHA-256 digest a token is kept and compared as."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def _line_problems(role: Optional[Role], role_text: str, name: str, secret: str,
                   names: Dict[str, int], secrets_seen: Dict[bytes, int]) -> List[str]:
    """What is wrong with one 'ROLE NAME TOKEN' line, given the lines before it."""
    problems = []
    if role is None:
        problems.append(f"role: expected reader or admin, got {role_text!r}")
    if not _NAME.fullmatch(name):
        problems.append(f"name: expected letters, digits, '_', '.', '@' or '-' "
                        f"(at most 64), got {name!r}")
    elif name in names:
        problems.append(f"name {name!r} already used on line {names[name]}")
    if len(secret) < MIN_TOKEN_LENGTH or not _TOKEN.fullmatch(secret):
        problems.append(f"token: expected at least {MIN_TOKEN_LENGTH} characters of "
                        "A-Z a-z 0-9 - . _ ~ + / (then '=' padding), got "
                        f"{len(secret)} character{'s' if len(secret) != 1 else ''}")
    elif digest(secret) in secrets_seen:
        problems.append(f"token already given on line {secrets_seen[digest(secret)]}")
    return problems


def parse_tokens(text: str, source: str) -> List[Token]:
    """The tokens of a file's text; TokenFileError lists every bad line as source:line."""
    tokens: List[Token] = []
    errors: List[str] = []
    names: Dict[str, int] = {}
    secrets_seen: Dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        fields = line.split()
        if len(fields) != 3:
            errors.append(f"{where}: expected 'ROLE NAME TOKEN' (3 fields), got "
                          f"{len(fields)} field{'s' if len(fields) != 1 else ''}")
            continue
        role_text, name, secret = fields
        role = next((r for r in Role if r.label == role_text.lower()), None)
        problems = _line_problems(role, role_text, name, secret, names, secrets_seen)
        if problems or role is None:   # an unknown role is one of the problems
            errors.extend(f"{where}: {p}" for p in problems)
            continue
        names[name] = number
        secrets_seen[digest(secret)] = number
        tokens.append(Token(name, role, digest(secret)))
    if errors:
        raise TokenFileError("\n".join(errors))
    if not tokens:
        raise TokenFileError(f"{source}: no token (expected lines 'ROLE NAME TOKEN')")
    return tokens


def check_permissions(path: Path, mode: int) -> None:
    """TokenFileError when the file's mode lets other users read it or its group write it."""
    if mode & _TOO_OPEN:
        raise TokenFileError(
            f"{path}: tokens file is accessible to other users (mode "
            f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}")


def load_tokens(path: Path) -> "Tokens":
    """Read, check and parse a tokens file."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise TokenFileError(f"{path}: tokens file is not a regular file")
        check_permissions(path, info.st_mode)
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TokenFileError(f"{path}: cannot read the tokens file: "
                             f"{error.strerror or error}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"{path}: tokens file is not UTF-8 text") from None
    return Tokens(parse_tokens(text, str(path)))


def new_secret() -> str:
    """A fresh random token (256 bits, URL-safe base64)."""
    return secrets.token_urlsafe(32)


def create_tokens_file(path: Path, name: str = "admin") -> None:
    """Write a new tokens file with one admin token, mode 0600; never overwrites.

    Missing parent directories are made with mode 0700.
    """
    text = ("# dynprov REST API tokens: ROLE NAME TOKEN (roles: reader, admin)\n"
            f"# made at first start; docs/rest-api.md#tokens\n"
            f"admin {name} {new_secret()}\n")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise TokenFileError(f"{path}: cannot create the tokens file: "
                             f"{error.strerror or error}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


class Tokens:
    """The tokens in force; :meth:`identify` finds the one presented."""

    def __init__(self, tokens: List[Token]) -> None:
        self._tokens = tuple(tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def identify(self, presented: str) -> Optional[Token]:
        """The token whose secret is ``presented``, else None.

        Compares the presented token's digest with every token's, in constant
        time, without stopping at a match.
        """
        wanted = digest(presented)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(token.digest, wanted):
                found = token
        return found

    def roles(self) -> Dict[str, int]:
        """How many tokens of each role (for the start-up log line)."""
        counts = {role.label: 0 for role in Role}
        for token in self._tokens:
            counts[token.role.label] += 1
        return counts


def required_role(method: str) -> Role:
    """GET (and HEAD) need a reader; every other method an admin."""
    return Role.READER if method.upper() in ("GET", "HEAD") else Role.ADMIN


def bearer_token(header: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer TOKEN`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        return None
    return value


class RefusalLog:
    """Log a refused call once per (client, reason), then at most once per ``period``.

    The next line for a (client, reason) says how many were refused in
    between. ``clock`` returns seconds (monotonic); ``log`` takes the line.
    """

    MAX_KEYS = 4096

    def __init__(self, log: Callable[[str], None], clock: Callable[[], float],
                 period: float = 60.0) -> None:
        self._log, self._clock, self.period = log, clock, period
        self._seen: Dict[Tuple[str, str], Tuple[float, int]] = {}

    def refused(self, client: str, reason: str) -> bool:
        """Count one refusal; True when it was logged."""
        now = self._clock()
        key = (client, reason)
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.period:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is None and len(self._seen) >= self.MAX_KEYS:
            self._forget_old(now)
        more = f" ({last[1]} more since the last line)" if last and last[1] else ""
        self._log(f"REST call refused: client {client}: {reason}{more}")
        self._seen[key] = (now, 0)
        return True

    def _forget_old(self, now: float) -> None:
        for key, (when, _) in list(self._seen.items()):
            if now - when >= self.period:
                del self._seen[key]
        if len(self._seen) >= self.MAX_KEYS:  # a flood of distinct clients: start over
            self._seen.clear()
