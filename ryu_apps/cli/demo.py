"""``dynprov demo``: run the demo on the default topology and library."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="run the demo on the default Mininet topology (needs root)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the controller's log")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ryu_apps.demo import run_demo  # heavy imports only when asked for

    return run_demo(verbose=args.verbose)
