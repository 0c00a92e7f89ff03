"""Start-up hook that lets Ryu 4.34's ``ryu-manager`` run, and serve TLS, unchanged.

This module is imported at interpreter start by ``dynprov_ryu_compat.pth``
(installed into site-packages with the package). It registers a tiny import
finder that patches two modules right after they load, and nothing else:

- ``eventlet.wsgi``: ``ryu/app/wsgi.py`` imports ``ALREADY_HANDLED``, a name
  eventlet removed in 0.30.3; ``ryu-manager`` imports that module before
  loading any app. The hook defines the missing sentinel.
- ``ryu.lib.hub``: its ``StreamServer`` pops its SSL settings on the first
  connection, so with ``--ctl-privkey/--ctl-cert/--ca-certs`` only the first
  switch connects over TLS (the others fail with ``NO_SHARED_CIPHER``). The
  hook makes it build one TLS context at creation and use it for every
  connection (:mod:`ryu_apps.tls.openflow_tls`, imported only then).

Why a hook and not a patched copy of Ryu: Ryu is installed from PyPI as is
(and archived upstream); the hook keeps the stock ``ryu-manager`` command, the
fixes apply only when the patched modules are imported, and the cost at
start-up of any other program is one finder on ``sys.meta_path``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Callable, Dict


def _add_already_handled(module: ModuleType) -> None:
    if not hasattr(module, "ALREADY_HANDLED"):
        module.ALREADY_HANDLED = object()


def _fix_stream_server_tls(module: ModuleType) -> None:
    from ryu_apps.tls.openflow_tls import install as install_tls

    install_tls(module)


#: Module name -> what to do to it once it has loaded.
PATCHES: Dict[str, Callable[[ModuleType], None]] = {
    "eventlet.wsgi": _add_already_handled,
    "ryu.lib.hub": _fix_stream_server_tls,
}


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a module's real loader and patches the module once it has run."""

    def __init__(self, real_loader: importlib.abc.Loader,
                 patch: Callable[[ModuleType], None]) -> None:
        self._real_loader = real_loader
        self._patch = patch

    def create_module(self, spec):
        return self._real_loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._real_loader.exec_module(module)
        self._patch(module)


class _PatchingFinder(importlib.abc.MetaPathFinder):
    """Finds the patched modules through the other finders, then wraps their loader."""

    def find_spec(self, fullname, path, target=None):
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def install() -> None:
    """Register the finder once; patch directly the modules already loaded."""
    for name, patch in PATCHES.items():
        loaded = sys.modules.get(name)
        if loaded is not None:
            patch(loaded)
    if not any(isinstance(f, _PatchingFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchingFinder())


install()
