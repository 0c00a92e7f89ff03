"""``dynprov pki init``: the CAs and certificates for TLS on every control channel.

::

    dynprov pki init [--dir DIR] [--controller NAME ...] [--switch NAME ...] [--days N]

Idempotent: makes only what is missing, then prints the files and how each
side uses them (ryu-manager's flags, ``ovs-vsctl set-ssl`` on each switch host).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ryu_apps.tls import pki


def register(subparsers) -> None:
    """Add the ``pki`` subcommand."""
    parser = subparsers.add_parser(
        "pki", help="make the CAs and certificates for TLS (OpenFlow, OVSDB, the store)",
        description="Certificates for TLS on every control channel: a controller CA, a "
                    "switch CA, and their certificates (see docs/operator-guide.md, TLS).")
    actions = parser.add_subparsers(dest="action", required=True)
    init = actions.add_parser(
        "init", help="make what is missing (idempotent) and print how to use it",
        description="Make the two CAs and the named certificates, whatever is missing; "
                    "nothing that exists is replaced.")
    init.add_argument("--dir", type=Path, default=None,
                      help=f"PKI directory (default ${pki.ENVIRONMENT} or {pki.DEFAULT_DIR})")
    init.add_argument("--controller", action="append", metavar="NAME",
                      help="a controller certificate to make (repeatable; default "
                           f"'{pki.CONTROLLER}')")
    init.add_argument("--switch", action="append", metavar="NAME",
                      help="a switch (server) certificate to make (repeatable; default "
                           f"'{pki.SWITCH}')")
    init.add_argument("--days", type=int, default=pki.DEFAULT_DAYS,
                      help=f"validity of new certificates (default {pki.DEFAULT_DAYS})")
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    controllers = args.controller or [pki.CONTROLLER]
    switches = args.switch or [pki.SWITCH]
    try:
        made = pki.init(args.dir, controllers, switches, args.days)
    except pki.PkiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(usage(made, controllers, switches))
    return 0


def usage(made: pki.Pki, controllers, switches) -> str:
    """The files of ``made`` and the commands that use them."""
    lines = [f"PKI in {made.directory} (private keys mode 0600)",
             f"  controller CA  {made.controller_ca}",
             f"  switch CA      {made.switch_ca}",
             f"  both CAs       {made.ca_bundle}"]
    for name in controllers:
        lines.append(f"  controller {name}: {made.cert(name)} {made.key(name)}")
    for name in switches:
        lines.append(f"  switch {name}: {made.cert(name)} {made.key(name)}")
    name = controllers[0]
    lines += ["", "Controller, OpenFlow over mutual TLS (and [dynprov] ovsdb_ssl_* for ssl: "
              "OVSDB remotes):",
              f"  ryu-manager --ofp-ssl-listen-port 6653 --ctl-privkey {made.key(name)} "
              f"--ctl-cert {made.cert(name)} --ca-certs {made.switch_ca} ...",
              "", "Each switch host (its ovs-vswitchd and ovsdb-server):"]
    for name in switches:
        lines.append(f"  ovs-vsctl set-ssl {made.key(name)} {made.cert(name)} "
                     f"{made.controller_ca}")
    lines.append("  ovs-vsctl set-controller BRIDGE ssl:CONTROLLER_IP:6653")
    lines += ["", "Keep the CA keys (*ca-privkey.pem) offline once every certificate is made."]
    return "\n".join(lines)
