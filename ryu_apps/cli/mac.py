"""``dynprov mac``: encode a template id into a VM MAC, decode MACs into template ids."""

from __future__ import annotations

import argparse
import random
import sys

from ryu_apps.core.identifiers import IdentifierError, normalise_mac, parse_number
from ryu_apps.loaders.scheme_config import load_scheme

EXIT_OK = 0
EXIT_BAD_INPUT = 2
DEFAULT_SCHEME = "prefix/16"
SCHEME_HELP = ("identifier scheme: prefix/16, prefix/12, prefix (= prefix/16), "
               f"interleave or table:PATH (default {DEFAULT_SCHEME})")


def register(subparsers) -> None:
    """Add the ``mac`` subcommand with its ``encode`` and ``decode`` subcommands."""
    parser = subparsers.add_parser(
        "mac", help="encode and decode VM MAC addresses (template ids)",
        description="Turn a template id into a VM MAC, or VM MACs into template ids.")
    commands = parser.add_subparsers(dest="mac_command", required=True)
    _register_encode(commands)
    _register_decode(commands)


def _register_encode(commands) -> None:
    parser = commands.add_parser(
        "encode", help="print the MAC of a VM of a template",
        description="Print the MAC of a VM of TEMPLATE with a given or random unique id.")
    parser.add_argument("--scheme", default=DEFAULT_SCHEME, metavar="SPEC", help=SCHEME_HELP)
    parser.add_argument("--template", required=True, type=_number, metavar="N",
                        help="template id (decimal or 0x hex)")
    unique = parser.add_mutually_exclusive_group(required=True)
    unique.add_argument("--unique", type=_number, metavar="N",
                        help="unique id telling VMs of one template apart (decimal or 0x hex)")
    unique.add_argument("--random", action="store_true",
                        help="pick a random unique id that gives a valid VM MAC")
    parser.add_argument("--seed", type=_number, metavar="N",
                        help="seed for --random (repeatable output)")
    parser.set_defaults(func=run_encode)


def _register_decode(commands) -> None:
    parser = commands.add_parser(
        "decode", help="print the template id each VM MAC selects",
        description="Print the template id each VM MAC selects, one line per MAC.")
    parser.add_argument("--scheme", default=DEFAULT_SCHEME, metavar="SPEC", help=SCHEME_HELP)
    parser.add_argument("macs", nargs="+", metavar="MAC", help="VM MAC, like 00:fa:83:91:de:1b")
    parser.set_defaults(func=run_decode)


def run_encode(args: argparse.Namespace) -> int:
    """``dynprov mac encode``: print one MAC."""
    if args.seed is not None and not args.random:
        return _fail("--seed only applies with --random")
    try:
        scheme = load_scheme(args.scheme)
        unique_id = args.unique
        if args.random:
            unique_id = scheme.random_unique_id(random.Random(args.seed), args.template)
        print(scheme.encode(args.template, unique_id))
    except IdentifierError as error:
        return _fail(error)
    return EXIT_OK


def run_decode(args: argparse.Namespace) -> int:
    """``dynprov mac decode``: one line per MAC; every bad MAC is reported."""
    try:
        scheme = load_scheme(args.scheme)
    except IdentifierError as error:
        return _fail(error)
    status = EXIT_OK
    for mac in args.macs:
        try:
            template_id = scheme.decode(mac)
        except IdentifierError as error:
            status = _fail(error)
            continue
        print(f"{normalise_mac(mac)} template {template_id} (0x{template_id:04X})")
    return status


def _number(text: str) -> int:
    try:
        return parse_number(text)
    except IdentifierError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fail(error: object) -> int:
    print(f"dynprov: error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
