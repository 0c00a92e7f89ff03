"""The dynprov store's schema: where it lives and what it holds.

The schema file ``dynprov.ovsschema`` ships beside this module and is
versioned (its ``version`` field); see docs/store.md for the tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

SCHEMA_PATH = Path(__file__).with_name("dynprov.ovsschema")
DB_NAME = "Dynprov"

LIBRARY = "Library"
TEMPLATE = "Template"
BINDING = "Binding"
PROCESS = "Process"
#: Deployment-wide settings; row "topology" holds the secret LLDP probes are signed with.
DEPLOYMENT = "Deployment"
TABLES = (LIBRARY, TEMPLATE, BINDING, PROCESS, DEPLOYMENT)


def schema_version() -> str:
    """The version of the schema shipped with this checkout."""
    return json.loads(SCHEMA_PATH.read_text())["version"]


def schema_helper(tables: Optional[Iterable[str]] = None):
    """An :class:`ovs.db.idl.SchemaHelper` for every column of ``tables`` (all by default)."""
    import ovs.db.idl  # the edge: keeps importing this module cheap for the CLI's help

    helper = ovs.db.idl.SchemaHelper(location=str(SCHEMA_PATH))
    if tables is None:
        helper.register_all()
    else:
        for table in tables:
            helper.register_table(table)
    return helper
