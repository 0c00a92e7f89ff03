"""The deployment's certificates: two CAs, a controller and switches (``openssl``).

Like ``ovs-pki``, there are two certificate authorities, so that a switch's
key can never pass for a controller's:

- the **controller CA** signs controllers (and the store's members, and the
  operator's CLI); switches, servers' OVSDB and store members trust it;
- the **switch CA** signs switches (a server's ``ovs-vswitchd`` and its
  ``ovsdb-server``); controllers trust it.

Layout of a PKI directory (mode 0700; private keys 0600)::

    controllerca-cert.pem  controllerca-privkey.pem
    switchca-cert.pem      switchca-privkey.pem
    controller-cert.pem    controller-privkey.pem     (one pair per --controller NAME)
    switch-cert.pem        switch-privkey.pem         (one pair per --switch NAME)
    cacerts.pem            both CA certificates: what a controller trusts when it
                           talks OVSDB to servers and to the store in one process

:func:`init` is idempotent: it makes only what is missing and never replaces a
key or certificate. Keys are ECDSA P-256. The default directory is
``/var/lib/dynprov/pki`` (``DYNPROV_PKI_DIR`` overrides it): Open vSwitch keeps
one SSL configuration per host, so the switch side of the lab PKI is per host,
not per checkout.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Sequence

DEFAULT_DIR = Path("/var/lib/dynprov/pki")
ENVIRONMENT = "DYNPROV_PKI_DIR"
CONTROLLER, SWITCH = "controller", "switch"
KINDS = (CONTROLLER, SWITCH)
DEFAULT_DAYS = 3650
CURVE = "prime256v1"
_CA_EXTENSIONS = ("basicConstraints=critical,CA:TRUE\n"
                  "keyUsage=critical,keyCertSign,cRLSign\n"
                  "subjectKeyIdentifier=hash\n")
_LEAF_EXTENSIONS = ("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")


class PkiError(RuntimeError):
    """The PKI could not be made or is incomplete (the message says what and where)."""


def default_dir() -> Path:
    """``$DYNPROV_PKI_DIR`` if set, else /var/lib/dynprov/pki."""
    return Path(os.environ.get(ENVIRONMENT) or DEFAULT_DIR)


@dataclass(frozen=True)
class Pki:
    """The files of one PKI directory (they may not exist yet: see :meth:`missing`)."""

    directory: Path

    def ca_cert(self, kind: str) -> Path:
        return self.directory / f"{_kind(kind)}ca-cert.pem"

    def ca_key(self, kind: str) -> Path:
        return self.directory / f"{_kind(kind)}ca-privkey.pem"

    def cert(self, name: str) -> Path:
        return self.directory / f"{_name(name)}-cert.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{_name(name)}-privkey.pem"

    @property
    def controller_ca(self) -> Path:
        return self.ca_cert(CONTROLLER)

    @property
    def switch_ca(self) -> Path:
        return self.ca_cert(SWITCH)

    @property
    def ca_bundle(self) -> Path:
        return self.directory / "cacerts.pem"

    def missing(self, controllers: Sequence[str] = (CONTROLLER,),
                switches: Sequence[str] = (SWITCH,)) -> List[Path]:
        """The files of the CAs and of these identities that do not exist."""
        wanted = [self.controller_ca, self.switch_ca, self.ca_bundle]
        for name in (*controllers, *switches):
            wanted += [self.cert(name), self.key(name)]
        return [path for path in wanted if not path.is_file()]

    def require(self, controllers: Sequence[str] = (CONTROLLER,),
                switches: Sequence[str] = (SWITCH,)) -> "Pki":
        """Self, or PkiError naming the missing files and the command that makes them."""
        missing = self.missing(controllers, switches)
        if missing:
            raise PkiError(f"{self.directory}: PKI incomplete, missing "
                           f"{', '.join(p.name for p in missing)} "
                           f"(make it with: dynprov pki init --dir {self.directory})")
        return self


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise PkiError(f"certificate kind must be {' or '.join(KINDS)}, got {kind!r}")
    return kind


def _name(name: str) -> str:
    if not name or name.startswith(".") or not all(c.isalnum() or c in "-_." for c in name) \
            or name in (CONTROLLER + "ca", SWITCH + "ca"):
        raise PkiError(f"certificate name must be letters, digits, '-', '_' or '.', not start "
                       f"with '.' and not be a CA's name, got {name!r}")
    return name


def init(directory: Path | None = None, controllers: Iterable[str] = (CONTROLLER,),
         switches: Iterable[str] = (SWITCH,), days: int = DEFAULT_DAYS) -> Pki:
    """Make whatever is missing of the two CAs and these certificates; the Pki.

    Safe to run concurrently (a lock file in the directory) and again (nothing
    that exists is replaced).
    """
    controllers, switches = list(controllers), list(switches)
    for name in (*controllers, *switches):
        _name(name)
    overlap = set(controllers) & set(switches)
    if overlap:
        raise PkiError(f"a name cannot be both a controller and a switch: "
                       f"{', '.join(sorted(overlap))}")
    pki = Pki(Path(directory or default_dir()).absolute())
    if not shutil.which("openssl"):
        raise PkiError("openssl not found (Debian package openssl)")
    try:
        pki.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(pki.directory, 0o700)
        with open(pki.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for kind in KINDS:
                _make_ca(pki, kind, days)
            _write_bundle(pki)
            for kind, names in ((CONTROLLER, controllers), (SWITCH, switches)):
                for name in names:
                    _make_leaf(pki, kind, name, days)
            (pki.directory / ".openssl.cnf").unlink(missing_ok=True)
    except OSError as error:
        raise PkiError(f"{pki.directory}: {error}") from None
    return pki


def _make_ca(pki: Pki, kind: str, days: int) -> None:
    cert, key = pki.ca_cert(kind), pki.ca_key(kind)
    if cert.is_file():
        return  # its key may have been moved offline, as it should be in production
    _new_key(key)
    _openssl("req", "-new", "-x509", "-key", str(key), "-out", str(cert) + ".tmp",
             "-days", str(days), "-sha256", "-subj", f"/O=dynprov/CN=dynprov {kind} CA",
             "-set_serial", _serial(), "-config", _config(pki, _CA_EXTENSIONS),
             "-extensions", "extensions")
    os.replace(str(cert) + ".tmp", cert)


def _make_leaf(pki: Pki, kind: str, name: str, days: int) -> None:
    cert, key = pki.cert(name), pki.key(name)
    if cert.is_file() and key.is_file():
        return
    ca_cert, ca_key = pki.ca_cert(kind), pki.ca_key(kind)
    if not ca_key.is_file():
        raise PkiError(f"{ca_key}: the {kind} CA's key is not here; cannot sign "
                       f"{cert.name} (bring the key back, or sign elsewhere)")
    _new_key(key)  # a key without its certificate was never used: replace it
    request = pki.directory / f"{name}-req.pem"
    _openssl("req", "-new", "-key", str(key), "-out", str(request),
             "-subj", f"/O=dynprov/OU={kind}/CN={name}", "-config", _config(pki, ""))
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-set_serial", _serial(), "-days", str(days), "-sha256",
             "-extfile", _config(pki, _LEAF_EXTENSIONS), "-extensions", "extensions",
             "-out", str(cert) + ".tmp")
    request.unlink(missing_ok=True)
    os.replace(str(cert) + ".tmp", cert)


def _write_bundle(pki: Pki) -> None:
    text = pki.controller_ca.read_text() + pki.switch_ca.read_text()
    if not pki.ca_bundle.is_file() or pki.ca_bundle.read_text() != text:
        temporary = pki.ca_bundle.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, pki.ca_bundle)


def _new_key(path: Path) -> None:
    temporary = path.with_suffix(".tmp")
    old_mask = os.umask(0o077)
    try:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{CURVE}",
                 "-out", str(temporary))
    finally:
        os.umask(old_mask)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _config(pki: Pki, extensions: str) -> str:
    """A private openssl config: no prompts (the system one may ask), these extensions."""
    path = pki.directory / ".openssl.cnf"
    path.write_text("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n"
                    f"[extensions]\n{extensions}")
    return str(path)


def _serial() -> str:
    return "0x" + secrets.token_hex(8)


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed (exit {done.returncode}): "
                       f"{done.stderr.strip()}")
