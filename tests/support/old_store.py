"""A store file of an earlier schema version, with one binding, converted to this
checkout's schema by ``ovsdb-tool`` as the store does at start (tests of the upgrade)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, Iterable

from ryu_apps.store.schema import BINDING, DB_NAME, SCHEMA_PATH, schema_version


def converted_row(directory: Path, version: str, missing: Iterable[str],
                  row: Dict[str, object]) -> Dict[str, object]:
    """Create a store of schema ``version`` (this schema without the Binding columns
    ``missing``) holding ``row``, convert it to this schema (its version checked) and
    return the row as stored after the conversion (OVSDB's JSON)."""
    previous = json.loads(SCHEMA_PATH.read_text())
    previous["version"] = version
    for column in missing:
        del previous["tables"][BINDING]["columns"][column]
    old_schema, db = directory / "old.ovsschema", directory / "store.db"
    old_schema.write_text(json.dumps(previous))
    subprocess.run(["ovsdb-tool", "create", str(db), str(old_schema)], check=True)
    subprocess.run(["ovsdb-tool", "transact", str(db), json.dumps(
        [DB_NAME, {"op": "insert", "table": BINDING, "row": row}])],
        check=True, capture_output=True)
    subprocess.run(["ovsdb-tool", "convert", str(db), str(SCHEMA_PATH)], check=True)
    version_now = subprocess.run(["ovsdb-tool", "db-version", str(db)], check=True,
                                 capture_output=True, text=True).stdout.strip()
    assert version_now == schema_version()
    out = subprocess.run(["ovsdb-tool", "query", str(db), json.dumps(
        [DB_NAME, {"op": "select", "table": BINDING, "where": []}])],
        check=True, capture_output=True, text=True).stdout
    (stored,) = json.loads(out)[0]["rows"]
    return stored
