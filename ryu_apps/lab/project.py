"""Where the dynprov checkout, its templates and its Mininet topology file are."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOPOLOGY_RELATIVE = Path("topologies") / "dynprov_topo.py"


def find_project_root() -> Path:
    """The dynprov checkout: the working directory or a parent holding topologies/ and
    templates/, else the tree this package sits in (importing never fails; a missing
    file is reported where it is opened)."""
    package_tree = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd(), *Path.cwd().parents, package_tree):
        if (candidate / TOPOLOGY_RELATIVE).is_file() and (candidate / "templates").is_dir():
            return candidate
    return package_tree


REPO_ROOT = find_project_root()

TOPOLOGY_FILE = REPO_ROOT / TOPOLOGY_RELATIVE

DEFAULT_TEMPLATES = REPO_ROOT / "templates"


def load_topology_module():
    """Import topologies/dynprov_topo.py the way ``mn --custom`` would."""
    spec = importlib.util.spec_from_file_location("dynprov_topo", TOPOLOGY_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"{TOPOLOGY_FILE}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
