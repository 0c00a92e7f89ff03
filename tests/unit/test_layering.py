"""The house's layering (docs/architecture.md, "The house"): which package may import which.

Read from the source (no import is executed): every ``ryu_apps`` import of every
module, mapped to its package.
"""

import ast
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ryu_apps"

#: Package -> the other ryu_apps packages it may import.
ALLOWED: Dict[str, Set[str]] = {
    "core": set(),
    "app": {"core", "loaders", "store", "tls"},
    "loaders": {"core", "app"},      # app: the framework edge (hub, cfg) only
    "rest": {"core", "app", "loaders"},
    "tls": {"app"},
    "store": {"core", "loaders", "tls"},
    "provisioner": {"core", "app", "loaders", "rest", "store", "tls"},
    "cli": {"core", "app", "loaders", "store", "tls", "lab"},   # lab: `dynprov demo`
    "lab": {"core", "cli", "rest", "store", "tls"},
}


def _package(module: str) -> str:
    return module.split(".")[1]


def _imports(path: Path) -> Set[str]:
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("ryu_apps.")}


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _closure(start: str, modules: Dict[str, Set[str]]) -> Set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        todo += sorted(modules[name])
    return seen


MODULES = {_module_of(p): _imports(p) for p in PACKAGE.rglob("*.py")}
for _name in list(MODULES):   # a package's __init__ answers for "ryu_apps.x"
    if _name.endswith(".__init__"):
        MODULES[_name[: -len(".__init__")]] = MODULES.pop(_name)


def test_every_package_imports_only_what_the_house_allows():
    wrong = sorted(f"{module} imports {target}"
                   for module, targets in MODULES.items() if module != "ryu_apps"
                   for target in targets
                   if not _package(target).startswith("__")   # ryu_apps.__version__
                   and _package(target) != _package(module)
                   and _package(target) not in ALLOWED[_package(module)])
    assert not wrong, "\n".join(wrong)


def test_the_app_never_reaches_the_lab_or_the_command_line():
    reached = _closure("ryu_apps.provisioner", MODULES)
    assert "ryu_apps.app.openflow" in reached and "ryu_apps.core.engine" in reached
    assert not {m for m in reached if _package(m) in ("lab", "cli")}
