"""``dynprov controller``: run the controller on Ryu or os-ken, with ryu-manager's flags.

::

    dynprov controller [--framework ryu|os-ken] [ryu-manager flags ...] [apps ...]

The app defaults to ``ryu_apps.provisioner``. os-ken 4 ships no manager
command, so this is a manager of dynprov's own, the same for both frameworks:
it patches the standard library for eventlet, parses the command line and the
``--config-file`` with the framework's options (``--ofp-tcp-listen-port``,
``--ofp-listen-host``, ``--ctl-privkey``/``--ctl-cert``/``--ca-certs``,
``--wsapi-host``/``--wsapi-port``, ``--verbose``, ``--log-file``, ...,
``--app-lists``, ``--pid-file``, ``--enable-debugger``), starts the logging, loads
the apps and their contexts and runs them until they stop, as ``ryu-manager``
does. The framework is chosen before anything imports it: the subcommand
re-executes the interpreter on this module with ``DYNPROV_FRAMEWORK`` set
(:mod:`ryu_apps.app.framework` reads it), keeping the process id.
``ryu-manager ryu_apps.provisioner`` keeps working unchanged.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
from typing import List, Sequence, Tuple

#: The app run when the command line names none.
DEFAULT_APP = "ryu_apps.provisioner"
FRAMEWORK_FLAG = "--framework"
#: Framework names accepted on the command line (ryu_apps.app.framework.PACKAGES).
FRAMEWORKS = ("ryu", "os-ken")
ENV = "DYNPROV_FRAMEWORK"
PROG = "dynprov controller"


class LaunchError(Exception):
    """The command line of ``dynprov controller`` is wrong (the message says where)."""


def register(subparsers) -> None:
    """Add the ``controller`` subcommand; its arguments go to the manager untouched."""
    parser = subparsers.add_parser(
        "controller", add_help=False,
        prefix_chars="\x00",   # no option of its own: every flag is the manager's
        help="run the controller (ryu_apps.provisioner) on Ryu or os-ken: "
             "[--framework ryu|os-ken] [ryu-manager flags] [apps]; --help lists the flags")
    parser.add_argument("manager_args", nargs="*")
    parser.set_defaults(func=_run)


def split_framework(argv: Sequence[str], default: str = "ryu") -> Tuple[str, List[str]]:
    """(framework, the other arguments): ``--framework NAME`` or ``--framework=NAME``
    anywhere, else ``default``."""
    rest: List[str] = []
    name = default
    args = iter(argv)
    for arg in args:
        if arg == FRAMEWORK_FLAG:
            name = next(args, "")
        elif arg.startswith(FRAMEWORK_FLAG + "="):
            name = arg.split("=", 1)[1]
        else:
            rest.append(arg)
            continue
        if name.lower() not in FRAMEWORKS:
            raise LaunchError(f"{PROG}: {FRAMEWORK_FLAG}: expected "
                              f"{' or '.join(FRAMEWORKS)}, got {name!r}")
        name = name.lower()
    return name, rest


def _run(args) -> int:
    """Re-execute on :func:`main` with the framework in the environment."""
    try:
        name, rest = split_framework(args.manager_args, os.environ.get(ENV) or "ryu")
    except LaunchError as error:
        print(error, file=sys.stderr)
        return 2
    env = dict(os.environ, **{ENV: name})
    command = [sys.executable, "-m", "ryu_apps.cli.controller", *rest]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)
    return 1   # not reached


def main(argv: Sequence[str]) -> int:
    """Run the apps on the framework of ``DYNPROV_FRAMEWORK`` until they stop."""
    import eventlet

    eventlet.monkey_patch(thread=False)   # first, as both managers do
    try:
        from ryu_apps.app import framework

        launch = framework.launch_modules()
    except (RuntimeError, ImportError) as error:   # FrameworkError, a framework missing
        print(f"{PROG}: cannot start: {error}"
              + (f" (scripts/setup.sh installs {error.name})"
                 if isinstance(error, ImportError) and error.name else ""), file=sys.stderr)
        return 2
    launch.log.early_init_log(logging.DEBUG)
    conf = _parse(framework, list(argv))
    launch.log.init_log()
    logger = logging.getLogger("dynprov.controller")
    logger.info("dynprov controller on %s", framework.version())
    if conf.enable_debugger:
        logger.info("debugging is available (--enable-debugger): threads are not green")
    else:
        framework.hub.patch(thread=True)
    if conf.pid_file:
        with open(conf.pid_file, "w") as pid_file:
            pid_file.write(str(os.getpid()))
    _harden_openflow_tls(framework)
    return _serve(framework, launch, conf.app_lists + conf.app or [DEFAULT_APP], logger)


def _parse(framework, argv: List[str]):
    """The framework's configuration, with the manager's own options, parsed."""
    cfg = framework.cfg
    conf = cfg.CONF
    conf.register_cli_opts([
        cfg.ListOpt("app-lists", default=[], help="application module names to run"),
        cfg.MultiStrOpt("app", positional=True, default=[],
                        help=f"application module name to run (default {DEFAULT_APP})"),
        cfg.StrOpt("pid-file", default=None, help="pid file name"),
        cfg.BoolOpt("enable-debugger", default=False,
                    help="do not make the standard threading library green (debugging)"),
        cfg.StrOpt("user-flags", default=None,
                   help="a Python file registering more options for user applications"),
    ])
    _load_user_flags(argv)
    from ryu_apps import __version__

    site_file = f"/usr/local/etc/{framework.PACKAGE}/{framework.PACKAGE}.conf"
    conf(args=argv, prog=PROG, project=framework.PACKAGE,
         version=f"{PROG} {__version__} ({framework.version()})",
         default_config_files=[site_file] if os.path.isfile(site_file) else [])
    return conf


def _load_user_flags(argv: List[str]) -> None:
    """Run the ``--user-flags`` file before parsing, so its options are known."""
    path = next((argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--user-flags"),
                next((arg.split("=", 1)[1] for arg in argv
                      if arg.startswith("--user-flags=")), ""))
    if path and os.path.isfile(path):
        runpy.run_path(path)


def _harden_openflow_tls(framework) -> None:
    """One TLS context for every switch, bounded handshakes (ryu_apps.tls.openflow_tls).

    Ryu needs it (its server serves only the first switch over TLS; the start-up hook
    has installed it already); os-ken's server builds its context once, and gets the
    same handshake limits, TLS 1.2 minimum and located errors.
    """
    from ryu_apps.tls.openflow_tls import install

    install(framework.hub)


def _serve(framework, launch, apps: List[str], logger: logging.Logger) -> int:
    manager = launch.AppManager.get_instance()
    manager.load_apps(apps)
    contexts = manager.create_contexts()
    services = list(manager.instantiate_apps(**contexts))
    web = launch.start_wsgi(manager)
    if web is not None:
        services.append(framework.hub.spawn(web))
    try:
        framework.hub.joinall(services)
    except KeyboardInterrupt:
        logger.debug("interrupted: closing the apps")
    finally:
        manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
