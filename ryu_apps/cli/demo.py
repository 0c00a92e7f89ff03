"""``dynprov demo``: run the demo on the default topology and library."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="the live-migration demo on the default Mininet topology (root)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the controller's log")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-migration", action="store_true",
                      help="only provisioning and the templates at work")
    mode.add_argument("--distributed", action="store_true",
                      help="the migration across two controller processes over a 3-member "
                           "Raft store (the same as 'dynprov store demo')")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    # Heavy imports (Mininet) only when asked for.
    if args.no_migration:
        from ryu_apps.lab.demo import run_demo
        return run_demo(verbose=args.verbose)
    if args.distributed:
        from ryu_apps.lab.distributed_demo import run_distributed_demo
        return run_distributed_demo()
    from ryu_apps.lab.migration_demo import run_migration_demo
    return run_migration_demo(verbose=args.verbose)
