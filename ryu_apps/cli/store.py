"""``dynprov store ...``: run, inspect and feed the shared store (clustered OVSDB).

::

    dynprov store start [--cluster] [--name NAME | --dir DIR]
    dynprov store status | stop [--destroy] | remote
    dynprov store load-templates templates/ [--domain NAME]
    dynprov store dump [--table Binding]
    dynprov store demo          # the migration demo across two controller processes

``--dir`` defaults to ``/var/run/dynprov-store/NAME`` (NAME ``default``).
Commands that talk to the database take ``--remote`` (else the store's own).

SSL: ``start --ssl`` serves clients on ``pssl:`` and Raft over ``ssl:`` with
the PKI's controller certificate and controller CA (``--pki DIR``, default
that of ``dynprov pki init``; ``--private-key/--certificate/--ca-cert``
override single files). Client commands use the same flags, or the named
store's own files when they talk to it without ``--remote``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from ryu_apps.tls import ovsdb_ssl
from ryu_apps.tls import pki
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.store.schema import TABLES, schema_version
from ryu_apps.store.server import CLUSTER, DEFAULT_RUN_ROOT, STANDALONE, Store, StoreError


# ovs.poller imports eventlet, which warns that it is deprecated: noise for an operator.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")


def register(subparsers) -> None:
    """Add the ``store`` subcommand."""
    parser = subparsers.add_parser(
        "store", help="run and inspect the shared store of several controllers",
        description="Start, stop and inspect the dynprov store (ovsdb-server, standalone "
                    "or a 3-member Raft cluster on loopback) and load template libraries.")
    actions = parser.add_subparsers(dest="action", required=True)

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--name", default="default",
                         help="store name (run directory under /var/run/dynprov-store)")
        sub.add_argument("--dir", type=Path, help="run directory (overrides --name)")
        sub.set_defaults(func=func)
        return sub

    start = add("start", _start, "create (if needed) and start the store")
    start.add_argument("--cluster", action="store_true",
                       help="three ovsdb-servers in a Raft cluster (default: one, standalone)")
    start.add_argument("--size", type=int, default=3, help="cluster members (default 3)")
    _add_ssl_flags(start)
    stop = add("stop", _stop, "stop the store's servers")
    stop.add_argument("--destroy", action="store_true", help="also delete its database files")
    add("status", _status, "each member: address, pid, Raft role")
    add("remote", _remote, "print the address controllers use ([dynprov] store = ...)")
    load = add("load-templates", _load_templates,
               "validate a template library and write it to the store")
    load.add_argument("path", help="a directory of YAML files, or one file")
    load.add_argument("--domain", default="", help="mobility domain (default: the main one)")
    load.add_argument("--remote", help="store address (default: the named store's)")
    _add_ssl_flags(load)
    actions.add_parser(
        "demo", help="the migration demo across two controller processes over a 3-member "
        "Raft store (root)").set_defaults(func=_demo)
    dump = add("dump", _dump, "print the store's rows as JSON")
    dump.add_argument("--table", choices=TABLES, action="append",
                      help="only this table (repeatable)")
    dump.add_argument("--remote", help="store address (default: the named store's)")
    _add_ssl_flags(dump)


def _add_ssl_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "SSL", "a controller certificate and the controller CA (dynprov pki init)")
    group.add_argument("--ssl", action="store_true",
                       help="use SSL with the files of the PKI directory")
    group.add_argument("--pki", type=Path, metavar="DIR",
                       help=f"PKI directory (implies --ssl; default ${pki.ENVIRONMENT} or "
                            f"{pki.DEFAULT_DIR})")
    for flag, what in (("private-key", "this end's private key"),
                       ("certificate", "this end's certificate"),
                       ("ca-cert", "the CA certificate the other end must be signed by")):
        group.add_argument(f"--{flag}", metavar="FILE", help=f"{what} (implies --ssl)")


def ssl_files(args: argparse.Namespace):
    """The SSL files the flags ask for, or None without any SSL flag."""
    explicit = (args.private_key, args.certificate, args.ca_cert)
    if not (args.ssl or args.pki or any(explicit)):
        return None
    defaults = ovsdb_ssl.controller_files(pki.Pki(args.pki or pki.default_dir()))
    return ovsdb_ssl.SslFiles(args.private_key or defaults.private_key,
                              args.certificate or defaults.certificate,
                              args.ca_cert or defaults.ca_cert)


def _client_ssl(args: argparse.Namespace, remote: str):
    """The files a client command connects to ``remote`` with (None: plain)."""
    files = ssl_files(args)
    if files is None and not getattr(args, "remote", None):
        files = _open(args).ssl   # the named store's own
    if files is None and ovsdb_ssl.uses_ssl(remote):
        raise StoreError(f"store {remote}: an ssl: remote needs --ssl, --pki DIR or "
                         "--private-key/--certificate/--ca-cert")
    return files


def run_dir(args: argparse.Namespace) -> Path:
    return args.dir or DEFAULT_RUN_ROOT / args.name


def _open(args: argparse.Namespace) -> Store:
    return Store.open(run_dir(args))


def _remote_of(args: argparse.Namespace) -> str:
    return getattr(args, "remote", None) or _open(args).remote


def _report(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def _start(args: argparse.Namespace) -> int:
    directory = run_dir(args)
    try:
        files = ssl_files(args)
        try:
            store = Store.open(directory)
        except StoreError:
            store = Store.create(directory, CLUSTER if args.cluster else STANDALONE, args.size,
                                 ssl=files)
        if files is not None and store.ssl != files:
            raise StoreError(f"{directory}: the store exists with SSL files {store.ssl}; SSL "
                             "flags apply when a store is created (stop --destroy first)")
        store.start()
    except StoreError as error:
        return _report(error)
    print(f"store {directory}: {store.mode}, schema {schema_version()}, remote {store.remote}")
    if store.ssl is not None:
        print(f"  SSL: members serve {store.ssl.certificate}; clients need a certificate "
              f"signed by {store.ssl.ca_cert}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    try:
        store = _open(args)
        store.destroy() if args.destroy else store.stop()
    except StoreError as error:
        return _report(error)
    print(f"store {run_dir(args)}: {'destroyed' if args.destroy else 'stopped'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        store = _open(args)
    except StoreError as error:
        return _report(error)
    print(f"store {store.directory}: {store.mode}, remote {store.remote}")
    for line in store.status():
        state = f"pid {line['pid']}" if line["pid"] else "not running"
        print(f"  {line['member']}  {line['remote']}  {state}  role {line['role']}  "
              f"term {line['term']}  (ovs-appctl -t {line['control']} cluster/status Dynprov)")
    return 0 if all(line["pid"] for line in store.status()) else 3


def _remote(args: argparse.Namespace) -> int:
    try:
        print(_open(args).remote)
    except StoreError as error:
        return _report(error)
    return 0


def _load_templates(args: argparse.Namespace) -> int:
    from ryu_apps.store.admin import AdminSession
    from ryu_apps.store.library_rows import rows_from_files
    from ryu_apps.store.writes import put_library

    try:
        rows = rows_from_files(args.path, args.domain)
    except TemplateValidationError as failure:
        for error in failure.errors:
            print(error, file=sys.stderr)
        print(f"FAILED: {len(failure.errors)} error(s) ({args.path}); the store is unchanged",
              file=sys.stderr)
        return 1
    try:
        remote = _remote_of(args)
        with AdminSession(remote, ssl=_client_ssl(args, remote)) as session:
            generation = session.apply(put_library(rows))
    except (StoreError, ovsdb_ssl.SslConfigError) as error:
        return _report(error)
    domain = args.domain or "main"
    print(f"OK: {len(rows.templates)} templates from {args.path} written to domain "
          f"{domain}, library generation {generation}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ryu_apps.lab.distributed_demo import run_distributed_demo

    return run_distributed_demo()


def _dump(args: argparse.Namespace) -> int:
    from ryu_apps.store.admin import AdminSession

    try:
        remote = _remote_of(args)
        with AdminSession(remote, ssl=_client_ssl(args, remote)) as session:
            tables = args.table or list(TABLES)
            print(json.dumps({table: session.rows(table) for table in tables},
                             indent=2, sort_keys=True, default=str))
    except (StoreError, ovsdb_ssl.SslConfigError) as error:
        return _report(error)
    return 0
