"""The names of ``ryu.app.wsgi`` the REST API uses, for os-ken, which has no WSGI module.

Used through :mod:`ryu_apps.app.framework` only when os-ken is the framework;
with Ryu, Ryu's own module serves. Same contract as Ryu's: :func:`route` marks a
controller method with a route name, a path (Routes syntax, ``{mac}``), its HTTP
methods and requirements; :meth:`WSGIApplication.register` connects a
controller class's marked methods (in name order) with the data its instances
get; each request builds one controller ``(req, link, data, **config)`` and calls
the matched method with the path's variables. Built on Routes and WebOb, which
os-ken itself requires. No websockets, no RPC: dynprov uses neither.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterable, List, Optional

import webob
import webob.exc
from routes import Mapper
from routes.util import URLGenerator

#: Where Ryu's WSGI server listens by default (``--wsapi-host``, ``--wsapi-port``).
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8080
#: URL variables Routes adds that are not the method's arguments.
ROUTING_KEYS = ("action", "controller")


def register_options(cfg: Any) -> None:
    """Register ``--wsapi-host`` and ``--wsapi-port`` as Ryu does (idempotent)."""
    options = [
        cfg.StrOpt("wsapi-host", default=DEFAULT_HOST,
                   help=f"webapp listen host (default {DEFAULT_HOST})"),
        cfg.IntOpt("wsapi-port", default=DEFAULT_PORT,
                   help=f"webapp listen port (default {DEFAULT_PORT})"),
    ]
    try:
        cfg.CONF.register_cli_opts(options)
    except cfg.ArgsAlreadyParsedError:  # too late for the command line: the config file
        cfg.CONF.register_opts(options)


def route(name: str, path: str, methods: Optional[Iterable[str]] = None,
          requirements: Optional[Dict[str, str]] = None) -> Callable:
    """Mark a controller method as the handler of ``path`` (for ``methods``; None: any)."""
    def mark(method: Callable) -> Callable:
        method.routing_info = {"name": name, "path": path,  # type: ignore[attr-defined]
                               "methods": list(methods) if methods else None,
                               "requirements": requirements or {}}
        return method
    return mark


class Response(webob.Response):
    """A WebOb response whose text is UTF-8 unless said otherwise (as Ryu's)."""

    def __init__(self, *args: Any, charset: str = "UTF-8", **kwargs: Any) -> None:
        super().__init__(*args, charset=charset, **kwargs)


class ControllerBase:
    """One request's controller: ``req``, a URL generator ``link``, the registered data."""

    def __init__(self, req: webob.Request, link: Any, data: Any, **config: Any) -> None:
        self.req = req
        self.link = link
        self.data = data
        self.parent: Optional[WSGIApplication] = None
        for name, value in config.items():
            setattr(self, name, value)

    def __call__(self, req: webob.Request) -> Any:
        variables = dict(req.urlvars)
        action = variables.get("action", "index")
        for key in ROUTING_KEYS:
            variables.pop(key, None)
        return getattr(self, action)(req, **variables)


class WSGIApplication:
    """Routes requests to the registered controllers' marked methods."""

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.mapper = Mapper()
        self.registory: Dict[str, Any] = {}   # Ryu's spelling: apps may read it

    def register(self, controller: type, data: Any = None) -> None:
        """Connect every method of ``controller`` marked by :func:`route`, in name order."""
        for action, method in _routed_methods(controller):
            info = method.routing_info
            conditions = {"method": info["methods"]} if info["methods"] else {}
            self.mapper.connect(info["name"], info["path"], controller=controller,
                                action=action, requirements=info["requirements"],
                                conditions=conditions)
        if data:
            self.registory[controller.__name__] = data

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        req = webob.Request(environ)
        match = self.mapper.match(environ=environ)
        if not match:
            return webob.exc.HTTPNotFound()(environ, start_response)
        req.urlvars = match
        controller_class = match["controller"]
        controller = controller_class(req, URLGenerator(self.mapper, environ),
                                      self.registory.get(controller_class.__name__),
                                      **self.config)
        controller.parent = self
        response = controller(req)
        return response(environ, start_response)


def _routed_methods(controller: type) -> List[tuple]:
    return inspect.getmembers(
        controller, lambda member: callable(member) and hasattr(member, "routing_info"))
