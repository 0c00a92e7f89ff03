"""The core imports only named pure standard-library modules and itself (an allow-list).

No framework, socket, subprocess, clock, file, logging, environment or
interpreter state: anything not listed here fails, so a new import is a
decision someone writes down.
"""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "ryu_apps" / "core"
#: Standard-library modules that compute and nothing else.
ALLOWED = frozenset({
    "__future__", "abc", "bisect", "collections", "dataclasses", "difflib", "enum",
    "functools", "hashlib", "heapq", "hmac", "ipaddress", "itertools", "math", "operator",
    "re", "string", "struct", "types", "typing",
})
#: Builtins that reach outside (files, dynamic imports, code from strings).
FORBIDDEN_CALLS = frozenset({"open", "__import__", "eval", "exec", "compile", "input",
                             "breakpoint"})


def imports_of(tree: ast.AST) -> set:
    """Absolute module names a module imports (relative imports stay in the core)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def disallowed(names: set) -> set:
    """Names neither in the allow-list nor in ryu_apps.core."""
    return {name for name in names
            if name.split(".")[0] not in ALLOWED
            and name != "ryu_apps.core" and not name.startswith("ryu_apps.core.")}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_only_allowed_modules(path):
    tree = ast.parse(path.read_text())
    bad = disallowed(imports_of(tree))
    assert not bad, f"{path.name} imports {sorted(bad)}; the core may import only " \
                    f"ryu_apps.core and {sorted(ALLOWED)}"
    calls = {node.func.id for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not calls & FORBIDDEN_CALLS, f"{path.name} calls {sorted(calls & FORBIDDEN_CALLS)}"


@pytest.mark.parametrize("source, bad", [
    ("import pathlib", {"pathlib"}), ("from datetime import datetime", {"datetime"}),
    ("import logging", {"logging"}), ("import sys", {"sys"}), ("import os.path", {"os.path"}),
    ("from ryu.lib import hub", {"ryu.lib"}), ("import ryu_apps.app.openflow",
                                               {"ryu_apps.app.openflow"}),
    ("from ryu_apps.core import fabric\nimport typing", set()),
    ("from . import fabric", set()),
])
def test_the_allow_list_refuses_what_the_old_deny_list_let_through(source, bad):
    assert disallowed(imports_of(ast.parse(source))) == bad
