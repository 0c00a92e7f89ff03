"""``dynprov``: the operator's command-line tool."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ryu_apps import __version__
from ryu_apps.cli import (
    audit,
    controller,
    demo,
    inspect,
    mac,
    notify,
    pki,
    store,
    templates,
    trace,
    vm_config,
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dynprov",
        description="Dynamic network provisioning for VMs on Open vSwitch.")
    parser.add_argument("--version", action="version", version=f"dynprov {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (templates, mac, vm_config, inspect, audit, notify, demo, store, pki,
                   controller, trace):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dynprov`` command."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
