"""Template libraries survive the trip into store rows and back unchanged."""

import json
from pathlib import Path

import pytest

from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.loaders.library_files import load_library
from ryu_apps.store.library_rows import library_from_rows, rows_from_files
from ryu_apps.store.schema import SCHEMA_PATH, TABLES, schema_version

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_library_comes_back_equal_from_rows():
    rows = rows_from_files(ROOT / "templates")
    expected = load_library(ROOT / "templates")
    rebuilt = library_from_rows(rows)
    assert dict(rebuilt.templates) == dict(expected.templates)
    assert rebuilt.default_idle_timeout == expected.default_idle_timeout
    assert [row.template_id for row in rows.templates] == sorted(expected.templates)


def test_rows_name_the_file_each_template_came_from():
    rows = rows_from_files(ROOT / "templates")
    web = [row for row in rows.templates if row.name == "web"][0]
    assert web.source.endswith("web.yaml")
    assert json.loads(web.body)["name"] == "web"


def test_an_invalid_library_is_refused_with_the_validators_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "templates:\n  - {id: 7, name: seven, description: x, vlan: 5000,\n"
        "     virtual_switch: {default_action: allow}, access_port: {default_action: allow}}\n")
    with pytest.raises(TemplateValidationError) as refused:
        rows_from_files(tmp_path, domain="east")
    with pytest.raises(TemplateValidationError) as same:
        load_library(tmp_path)
    assert str(refused.value) == str(same.value)
    assert "vlan: expected an integer 1-4094, got 5000" in str(refused.value)


def test_the_schema_is_versioned_and_has_every_table():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["name"] == "Dynprov"
    assert schema_version().count(".") == 2
    assert set(TABLES) <= set(schema["tables"])
    assert ["mac"] in schema["tables"]["Binding"]["indexes"]
