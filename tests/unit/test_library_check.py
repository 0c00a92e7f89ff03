"""The library checker: validation in a worker process; a crash or a hang is a refusal."""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

import pytest

from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.loaders.library_check import LibraryChecker
from ryu_apps.loaders.library_files import load_library
from ryu_apps.loaders.library_keeper import LibraryKeeper
from ryu_apps.loaders.library_worker import decode, encode

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
DEEP = "templates: " + "[" * 40_000 + "]" * 40_000 + "\n"


def worker_command(setup: str) -> list:
    """A worker that runs ``setup`` (Python) first: a test's way to break it on purpose."""
    return [sys.executable, "-c",
            f"{setup}\nfrom ryu_apps.loaders.library_worker import main\nraise SystemExit(main())"]


#: libyaml's own recursive composer instead of the guarded one: a 40k-deep file crashes it.
UNGUARDED = worker_command("import ryu_apps.loaders.library_files as f\n"
                           "f._StrictLoader.get_single_node = f.FastSafeLoader.get_single_node")


@pytest.fixture
def library(tmp_path) -> Path:
    directory = tmp_path / "lib"
    shutil.copytree(TEMPLATES, directory)
    return directory


@pytest.fixture
def checker():
    with LibraryChecker(timeout=60) as running:
        yield running


def refusal(call) -> list:
    with pytest.raises(TemplateValidationError) as refused:
        call()
    return [str(e) for e in refused.value.errors]


def test_the_checker_returns_the_library_the_validator_builds(library, checker):
    assert dict(checker.load(library).templates) == dict(load_library(library).templates)
    assert checker.load(library).rule_lines == load_library(library).rule_lines   # file:line
    assert load_library(library).rule_lines


def test_the_checkers_errors_are_the_validators(library, checker):
    (library / "web.yaml").write_text("templates:\n  - id: 250\n    vlna: 7\n")
    assert refusal(lambda: checker.load(library)) == refusal(lambda: load_library(library))


def test_a_reload_keeps_unchanged_templates_and_answers_unchanged_files_at_once(library,
                                                                              checker):
    keeper = LibraryKeeper(library, checker)
    first = keeper.current
    assert keeper.reload() is first
    web = library / "web.yaml"
    web.write_text(web.read_text().replace("vlan: 100", "vlan: 101", 1))
    second = keeper.reload()
    assert second.get(250).vlan == 101
    assert second.get(252) is first.get(252)      # only the changed template was sent
    (library / "management.yaml").unlink()
    third = keeper.reload()
    assert 254 not in third and third.get(250) is second.get(250)
    assert dict(third.templates) == dict(load_library(library).templates)


def test_a_40k_deep_file_is_refused_and_the_keeper_keeps_its_library(library, checker):
    keeper = LibraryKeeper(library, checker)
    before = keeper.current
    (library / "deep.yaml").write_text(DEEP)
    assert refusal(keeper.reload) == [
        f"{library}/deep.yaml: line 1: nested deeper than 64 levels (the limit) at column 75"]
    assert keeper.current is before


def test_a_parser_crash_is_a_refusal_naming_the_file_and_the_library_stays(library):
    keeper = LibraryKeeper(library, LibraryChecker(timeout=60, command=UNGUARDED))
    before = keeper.current
    (library / "deep.yaml").write_text(DEEP)
    assert refusal(keeper.reload) == [
        f"{library}/deep.yaml: the library checker crashed (signal 11, SIGSEGV) while "
        "reading this file; nothing was loaded"]
    assert keeper.current is before
    (library / "deep.yaml").unlink()          # the next reload starts a new worker
    web = library / "web.yaml"
    web.write_text(web.read_text().replace("vlan: 100", "vlan: 101", 1))
    assert keeper.reload().get(250).vlan == 101
    keeper.checker.close()


def test_a_check_past_its_time_is_stopped_and_refused(library):
    slow = worker_command("import time, ryu_apps.loaders.library_files as f\n"
                          "load = f.load_documents\n"
                          "f.load_documents = lambda *a, **k: (time.sleep(30), load(*a, **k))[1]")
    with LibraryChecker(timeout=1.0, command=slow) as checker:
        lines = refusal(lambda: checker.load(library))
        assert lines == [f"{library}: the library checker did not finish within 1 s and was "
                         "stopped before it read any file; nothing was loaded"]
        assert checker._process is None         # killed; the next load starts a new one


def test_a_worker_failure_is_reported_with_the_file_it_was_reading(library):
    failing = worker_command("import ryu_apps.loaders.library_files as f\n"
                             "parse = f._parse_text\n"
                             "def fail(source, text):\n"
                             "    if source.endswith('web.yaml'):\n"
                             "        raise MemoryError()\n"
                             "    return parse(source, text)\n"
                             "f._parse_text = fail")
    with LibraryChecker(timeout=60, memory_mb=512, command=failing) as checker:
        assert refusal(lambda: checker.load(library)) == [
            f"{library}/web.yaml: the library checker failed while reading this file: "
            "MemoryError (its memory limit is 512 MiB: option library_check_memory_mb)"]


def test_one_check_at_a_time(library, checker):
    checker._busy = True     # as while another green thread waits for the worker
    assert refusal(lambda: checker.load(library)) == [
        f"{library}: another library check is still running; try again when it has finished"]


def test_messages_carry_the_template_model_and_nothing_else():
    library = load_library(TEMPLATES)
    template = library.get(250)
    framed = encode(("library", 1, 0, [template], [], 300, ("a",)))
    assert decode(framed[4:])[3] == [template]
    for forbidden in (pickle.dumps(print), pickle.dumps(shutil.rmtree),
                      b"\x80\x05cbuiltins\ngetattr\n(cbuiltins\nprint\nV__call__\ntR."):
        with pytest.raises(pickle.UnpicklingError):
            decode(forbidden)
