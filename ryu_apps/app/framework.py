"""The one module that imports the OpenFlow framework: Ryu (the default) or os-ken.

Every other module of dynprov takes the framework's names from here
(``from ryu_apps.app.framework import hub, cfg, ...``), written against Ryu's
API. ``DYNPROV_FRAMEWORK`` (set by ``dynprov controller --framework``) picks
the framework when this module is first imported: ``ryu`` (default) or
``os-ken``, OpenStack's maintained fork, whose ``os_ken.*`` modules mirror
``ryu.*`` (:data:`NAMES` says where each name comes from) with three
differences bridged here:

- the app base class is ``OSKenApp``; ``app_manager.RyuApp`` names it;
- os-ken has no WSGI module: :mod:`ryu_apps.app.wsgi_routes` provides the
  few names of ``ryu.app.wsgi`` the REST API uses, and the ``--wsapi-host``/
  ``--wsapi-port`` options;
- os-ken 4 runs its hub on native threads unless ``OSKEN_HUB_TYPE=eventlet``;
  dynprov relies on green threads (one thread mutates the engine, ``hub.Timeout``
  interrupts a blocked wait), so this module selects eventlet and refuses any
  other hub type.

A name is imported when it is first asked for: the ``dynprov`` command, which
needs only ``cfg``, does not pay seconds for the OpenFlow parsers and the
WSGI stack.
"""

from __future__ import annotations

import importlib
import os
from types import SimpleNamespace
from typing import Any, Dict, Mapping, Optional, Tuple

#: Environment variable that selects the framework.
ENV = "DYNPROV_FRAMEWORK"
RYU = "ryu"
OS_KEN = "os-ken"
#: Framework name -> its top-level Python package.
PACKAGES = {RYU: "ryu", OS_KEN: "os_ken"}
#: os-ken's hub selector, and the only hub dynprov runs on.
OSKEN_HUB_ENV = "OSKEN_HUB_TYPE"
OSKEN_HUB = "eventlet"

#: Name -> (module under the framework's package, attribute of it or None: the module).
NAMES: Dict[str, Tuple[str, Optional[str]]] = {
    "cfg": ("cfg", None),
    "app_manager": ("base.app_manager", None),
    "event": ("controller.event", None),
    "ofp_event": ("controller.ofp_event", None),
    "CONFIG_DISPATCHER": ("controller.handler", "CONFIG_DISPATCHER"),
    "DEAD_DISPATCHER": ("controller.handler", "DEAD_DISPATCHER"),
    "MAIN_DISPATCHER": ("controller.handler", "MAIN_DISPATCHER"),
    "set_ev_cls": ("controller.handler", "set_ev_cls"),
    "hub": ("lib.hub", None),
    "ofproto_v1_3": ("ofproto.ofproto_v1_3", None),
    "ofproto_v1_3_parser": ("ofproto.ofproto_v1_3_parser", None),
    "ofctl_api": ("app.ofctl.api", None),
    "ofctl_exception": ("app.ofctl.exception", None),
    # Ryu's WSGI names; on os-ken, from ryu_apps.app.wsgi_routes.
    "ControllerBase": ("app.wsgi", "ControllerBase"),
    "Response": ("app.wsgi", "Response"),
    "WSGIApplication": ("app.wsgi", "WSGIApplication"),
    "route": ("app.wsgi", "route"),
}
WSGI_MODULE = "app.wsgi"


class FrameworkError(RuntimeError):
    """The framework asked for is unknown or cannot run dynprov (the message says why)."""


def selected(environ: Mapping[str, str] = os.environ) -> str:
    """The framework ``environ`` asks for: ``ryu`` when ``DYNPROV_FRAMEWORK`` is unset."""
    name = environ.get(ENV, "").strip().lower() or RYU
    if name in ("os_ken", "osken"):
        name = OS_KEN
    if name not in PACKAGES:
        raise FrameworkError(f"{ENV}={environ.get(ENV)!r}: expected one of "
                             f"{', '.join(PACKAGES)}")
    return name


def select_osken_hub(environ: Any = os.environ, strict: bool = True) -> None:
    """Make os-ken's hub the eventlet one: called before any os_ken module is imported
    (os_ken.lib.hub reads the variable once). ``strict``: another hub asked for is an
    error (else it is left for the import of the hub to refuse)."""
    hub_type = environ.setdefault(OSKEN_HUB_ENV, OSKEN_HUB)
    if strict and hub_type != OSKEN_HUB:
        raise FrameworkError(f"{OSKEN_HUB_ENV}={hub_type!r}: dynprov runs on os-ken's "
                             f"eventlet hub only (unset it or set it to {OSKEN_HUB!r})")


NAME = selected()
PACKAGE = PACKAGES[NAME]
#: Ryu's ofctl service app (requests with replies up to a barrier), by module name.
OFCTL_SERVICE_APP = f"{PACKAGE}.app.ofctl.service"

__all__ = ["NAME", "OFCTL_SERVICE_APP", "PACKAGE", "FrameworkError", "version",
           "launch_modules", *NAMES]


def __getattr__(name: str) -> Any:
    """Import ``name`` from the framework on first use (then it is a module global)."""
    if name not in NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = NAMES[name]
    if NAME == OS_KEN:
        select_osken_hub(strict=name == "hub")
    if NAME == OS_KEN and module_name == WSGI_MODULE:
        module: Any = importlib.import_module("ryu_apps.app.wsgi_routes")
    else:
        module = importlib.import_module(f"{PACKAGE}.{module_name}")
    value = module if attribute is None else getattr(module, attribute)
    if NAME == OS_KEN and name == "app_manager":
        value = SimpleNamespace(**vars(module), RyuApp=module.OSKenApp)
    if NAME == OS_KEN and name == "hub" and module.HUB_TYPE != OSKEN_HUB:
        raise FrameworkError(f"os_ken.lib.hub runs the {module.HUB_TYPE!r} hub: it was "
                             f"imported before dynprov selected {OSKEN_HUB!r}")
    globals()[name] = value
    return value


def version() -> str:
    """The framework and its version, e.g. ``ryu 4.34`` or ``os-ken 4.2.2``."""
    package = importlib.import_module(PACKAGE)
    number = getattr(package, "version", None) if NAME == RYU else package.__version__
    return f"{NAME} {number}"


def launch_modules() -> Any:
    """What a manager needs, for the launcher (``dynprov controller``) only: ``log``,
    ``AppManager`` and ``start_wsgi(app_manager)`` (Ryu's server for a plain
    ``WSGIApplication`` context; None on os-ken, which has none), after the modules
    that register ryu-manager's command-line options (logging, OpenFlow listeners and
    TLS, WSGI, the framework's flags, topology)."""
    if NAME == OS_KEN:
        select_osken_hub()
    parts = {part: importlib.import_module(f"{PACKAGE}.{part}") for part in (
        "log", "flags", "base.app_manager", "controller.controller", "topology.switches")}
    if NAME == RYU:
        start_wsgi = importlib.import_module("ryu.app.wsgi").start_service
    else:
        from ryu_apps.app.wsgi_routes import register_options

        register_options(__getattr__("cfg"))

        def start_wsgi(_apps: Any) -> None:
            return None
    return SimpleNamespace(log=parts["log"], AppManager=parts["base.app_manager"].AppManager,
                           start_wsgi=start_wsgi)
