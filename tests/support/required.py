"""Optional prerequisites of a test: skipped in a plain quick run, a failure in CI.

``scripts/test.sh`` (the README's test command, and CI) sets
DYNPROV_REQUIRE_INTEGRATION=1: then nothing may pass by skipping.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def required() -> bool:
    """Whether every prerequisite must be there (no test may skip)."""
    return os.environ.get("DYNPROV_REQUIRE_INTEGRATION") == "1"


def import_or_skip(name: str) -> ModuleType:
    """Import ``name``; when it cannot be imported, skip, or raise if it is required."""
    if required():
        return importlib.import_module(name)
    return pytest.importorskip(name)
