"""The core imports no framework, socket, subprocess, clock or file I/O."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "ryu_apps" / "core"
FORBIDDEN = {"ryu", "os_ken", "eventlet", "socket", "subprocess", "time", "os",
             "yaml", "requests", "threading", "asyncio", "random", "mininet", "ovs"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path.name} imports {imported & FORBIDDEN}"
    assert "open(" not in path.read_text(), f"{path.name} opens files"
