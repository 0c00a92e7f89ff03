"""Start-up hook that lets Ryu 4.34's ``ryu-manager`` run on current eventlet.

``ryu/app/wsgi.py`` imports ``eventlet.wsgi.ALREADY_HANDLED``, a name eventlet
removed in 0.30.3; ``ryu-manager`` imports that module before loading any app.
This module is imported at interpreter start by ``dynprov_ryu_compat.pth``
(installed into site-packages with the package). It registers a tiny import
finder that, when ``eventlet.wsgi`` is first imported, defines the missing
sentinel after the real module has loaded. Nothing else is imported or changed,
so the cost at start-up is one finder on ``sys.meta_path``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

PATCHED_MODULE = "eventlet.wsgi"


class _SentinelAddingLoader(importlib.abc.Loader):
    """Wraps the real loader of ``eventlet.wsgi`` and adds the sentinel."""

    def __init__(self, real_loader: importlib.abc.Loader) -> None:
        self._real_loader = real_loader

    def create_module(self, spec):
        return self._real_loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._real_loader.exec_module(module)
        if not hasattr(module, "ALREADY_HANDLED"):
            module.ALREADY_HANDLED = object()


class _EventletWsgiFinder(importlib.abc.MetaPathFinder):
    """Finds ``eventlet.wsgi`` through the other finders, then wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != PATCHED_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _SentinelAddingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Register the finder once; patch directly if eventlet.wsgi is loaded."""
    loaded = sys.modules.get(PATCHED_MODULE)
    if loaded is not None:
        if not hasattr(loaded, "ALREADY_HANDLED"):
            loaded.ALREADY_HANDLED = object()
        return
    if not any(isinstance(f, _EventletWsgiFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _EventletWsgiFinder())


install()
