"""SSL for OVSDB connections: the OVSDB watcher, the store's clients and its servers.

python-ovs opens an ``ssl:HOST:PORT`` remote with files set beforehand, once
for the whole process (``ovs.stream.Stream.ssl_set_*``); without them it
retries forever on ``TypeError: cafile, capath and cadata cannot be all
omitted``. :func:`configure` sets them before a connection is opened, checks
the files first, and refuses a second, different set in the same process
(python-ovs could not honour it). So one controller process has one OVSDB
identity and one list of trusted CAs for all its ``ssl:`` remotes:

- it watches servers' OVSDB (served with a *switch* certificate): trust the
  switch CA;
- it uses the store (members serve with a *controller* certificate): trust
  the controller CA;
- both: trust both (``cacerts.pem`` of ``dynprov pki init``).

Inside ``ryu-manager`` the files come from ``[dynprov] ovsdb_ssl_private_key``,
``ovsdb_ssl_certificate`` (default: Ryu's ``--ctl-privkey``/``--ctl-cert``)
and ``ovsdb_ssl_ca_cert``. python-ovs checks the server's certificate against
the CA, not its host name (as Open vSwitch itself does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ryu_apps.tls import pki as pki_files

#: ``[dynprov]`` option names, in the order of SslFiles' fields.
OPTION_NAMES = ("ovsdb_ssl_private_key", "ovsdb_ssl_certificate", "ovsdb_ssl_ca_cert")


class SslConfigError(ValueError):
    """An ``ssl:`` remote without usable files, or a second set in one process."""


@dataclass(frozen=True)
class SslFiles:
    """This end's key and certificate, and the CA certificate(s) the peer must match."""

    private_key: str
    certificate: str
    ca_cert: str

    def problems(self) -> List[str]:
        """What is wrong with the files (empty when each is a readable file)."""
        found = []
        for option, path in zip(OPTION_NAMES, (self.private_key, self.certificate,
                                               self.ca_cert)):
            if not path:
                found.append(f"{option} is not set")
            elif not os.path.isfile(path):
                found.append(f"{option} {path}: no such file")
            elif not os.access(path, os.R_OK):
                found.append(f"{option} {path}: not readable")
        return found

    def server_options(self) -> List[str]:
        """ovsdb-server's options to serve ``pssl:`` with these files."""
        return [f"--private-key={self.private_key}", f"--certificate={self.certificate}",
                f"--ca-cert={self.ca_cert}"]

    def client_options(self) -> List[str]:
        """ovsdb-client's / ovs-vsctl's options to connect to ``ssl:`` with these files."""
        return ["-p", self.private_key, "-c", self.certificate, "-C", self.ca_cert]


def controller_files(pki: pki_files.Pki, trusts: Sequence[str] = (pki_files.CONTROLLER,),
                     name: str = pki_files.CONTROLLER) -> SslFiles:
    """A controller's (or the store's, or the operator's) files from a PKI directory.

    ``trusts``: whose servers it talks to: ``controller`` (store members),
    ``switch`` (servers' OVSDB), or both.
    """
    kinds = set(trusts)
    if not kinds or not kinds <= set(pki_files.KINDS):
        raise SslConfigError(f"trusts must name {' and/or '.join(pki_files.KINDS)}, "
                             f"got {list(trusts)}")
    ca = pki.ca_bundle if len(kinds) == 2 else pki.ca_cert(kinds.pop())
    return SslFiles(str(pki.key(name)), str(pki.cert(name)), str(ca))


def uses_ssl(remote: str) -> bool:
    """Whether any of the comma-separated OVSDB remotes is ``ssl:``."""
    return any(part.strip().startswith("ssl:") for part in remote.split(","))


def configure(remote: str, files: Optional[SslFiles], what: str) -> None:
    """Before opening ``remote`` (``what`` names it in errors): set python-ovs's SSL files.

    Nothing to do unless ``remote`` has an ``ssl:`` part. ``files`` None: the
    ``[dynprov] ovsdb_ssl_*`` options of a Ryu process (:func:`from_ryu_conf`).
    Raises SslConfigError if files are missing or unreadable, or if another
    set is already in use in this process.
    """
    if not uses_ssl(remote):
        return
    if files is None:
        files = from_ryu_conf()
    problems = files.problems()
    if problems:
        raise SslConfigError(f"{what} {remote}: cannot use SSL: {'; '.join(problems)}")
    in_use = current()
    if in_use is not None and in_use != files:
        raise SslConfigError(
            f"{what} {remote}: this process already uses OVSDB SSL files {in_use}; python-ovs "
            f"holds one set per process, so {files} cannot be used too (give every ssl: "
            "remote of one process the same key, certificate and CA file)")
    import ovs.stream   # here: it imports eventlet, which warns at import (CLI noise)

    ovs.stream.Stream.ssl_set_private_key_file(files.private_key)
    ovs.stream.Stream.ssl_set_certificate_file(files.certificate)
    ovs.stream.Stream.ssl_set_ca_cert_file(files.ca_cert)


def current() -> Optional[SslFiles]:
    """The files python-ovs uses in this process, if set."""
    import ovs.stream

    stream = ovs.stream.Stream
    values = (stream._SSL_private_key_file, stream._SSL_certificate_file,
              stream._SSL_ca_cert_file)
    return SslFiles(*values) if all(values) else None


def register_options(conf=None) -> None:
    """Register ``[dynprov] ovsdb_ssl_*`` with Ryu's configuration (idempotent)."""
    from ryu_apps.app.framework import cfg

    (conf or cfg.CONF).register_opts([
        cfg.StrOpt(OPTION_NAMES[0], default="",
                   help="Private key for ssl: OVSDB remotes (ovsdb, store); "
                        "default: --ctl-privkey."),
        cfg.StrOpt(OPTION_NAMES[1], default="",
                   help="Certificate for ssl: OVSDB remotes; default: --ctl-cert."),
        cfg.StrOpt(OPTION_NAMES[2], default="",
                   help="CA certificate(s) the OVSDB servers must be signed by (switch CA for "
                        "servers' OVSDB, controller CA for the store, both: cacerts.pem)."),
    ], group="dynprov")


def from_ryu_conf(conf=None) -> SslFiles:
    """The ``[dynprov] ovsdb_ssl_*`` files, key and certificate defaulting to --ctl-*."""
    from ryu_apps.app.framework import cfg

    conf = conf or cfg.CONF
    register_options(conf)
    options = conf.dynprov

    def ryu_default(name: str) -> str:
        try:
            return getattr(conf, name) or ""
        except AttributeError:   # oslo.config NoSuchOptError: Ryu did not register it
            return ""

    return SslFiles(options.ovsdb_ssl_private_key or ryu_default("ctl_privkey"),
                    options.ovsdb_ssl_certificate or ryu_default("ctl_cert"),
                    options.ovsdb_ssl_ca_cert)
