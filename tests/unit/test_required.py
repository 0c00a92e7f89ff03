"""Under DYNPROV_REQUIRE_INTEGRATION=1 a missing prerequisite fails instead of skipping."""

import pytest

from tests.support.required import import_or_skip

MISSING = "dynprov_no_such_module"


def test_a_missing_module_fails_when_everything_is_required(monkeypatch):
    monkeypatch.setenv("DYNPROV_REQUIRE_INTEGRATION", "1")
    with pytest.raises(ModuleNotFoundError, match=MISSING):
        import_or_skip(MISSING)


def test_a_missing_module_skips_in_a_quick_run(monkeypatch):
    monkeypatch.delenv("DYNPROV_REQUIRE_INTEGRATION", raising=False)
    with pytest.raises(pytest.skip.Exception):
        import_or_skip(MISSING)


def test_a_present_module_is_returned_either_way(monkeypatch):
    for value in ("1", "0"):
        monkeypatch.setenv("DYNPROV_REQUIRE_INTEGRATION", value)
        assert import_or_skip("json").dumps([]) == "[]"
