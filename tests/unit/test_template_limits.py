"""Hostile library files are refused with a located error, never a crash or a hang."""

from __future__ import annotations

import json
import os
import random
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from benchmarks.template_mutations import mutated_library, write_library

from ryu_apps.loaders import library_files
from ryu_apps.core.domains import DomainError
from ryu_apps.core.identifiers import IdentifierError
from ryu_apps.loaders.domain_files import load_domains
from ryu_apps.loaders.scheme_config import load_scheme
from ryu_apps.store.library_rows import LibraryRows, TemplateRow, library_from_rows
from ryu_apps.core.acl_compiler import port_range_masks
from ryu_apps.core.template_model import PortRange
from ryu_apps.core.template_validation import (
    MAX_ACL_ENTRIES,
    MAX_ACL_RULES,
    MAX_ERRORS,
    MAX_TEMPLATES,
    TemplateValidationError,
    build_library,
)
from ryu_apps.loaders.library_files import MAX_FILE_BYTES, load_library
from ryu_apps.loaders.safe_yaml import (
    FastSafeLoader,
    GuardedComposer,
    InputProblem,
    YamlLimitError,
    YamlLimits,
    harden,
    read_text,
)

TEMPLATE = textwrap.dedent("""\
    templates:
      - id: 250
        name: web
        description: Web
        vlan: 100
        virtual_switch: {default_action: deny}
        access_port: {default_action: allow}
    """)
DEEP = "templates: " + "[" * 40_000 + "]" * 40_000 + "\n"
ALIAS_BOMB = "".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)])


class Guarded(GuardedComposer, FastSafeLoader):
    """A loader under the default limits."""


harden(Guarded)


def load(text: str, loader=Guarded):
    return yaml.load(text, Loader=loader)  # noqa: S506 (safe loaders only)


def refusal(path) -> list:
    """The error lines of a library that must be refused (and nothing but that)."""
    with pytest.raises(TemplateValidationError) as refused:
        load_library(path)
    lines = [str(e) for e in refused.value.errors]
    assert all(e.source for e in refused.value.errors), lines
    assert not any("Traceback" in line for line in lines)
    return lines


@pytest.fixture
def lib(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.yaml").write_text(TEMPLATE)
    return Path("lib")


# -- the guarded composer ------------------------------------------------------------
@pytest.mark.parametrize("text, line", [
    (DEEP, 1),
    ("a: " + "{a: " * 40_000 + "1" + "}" * 40_000, 1),
    ("x: 1\ny:\n  " + "- " * 100 + "1\n", 3),
])
def test_deep_nesting_is_refused_at_its_line_before_anything_is_built(text, line):
    with pytest.raises(YamlLimitError) as refused:
        load(text)
    assert refused.value.problem == "nested deeper than 64 levels (the limit)"
    assert refused.value.problem_mark.line + 1 == line


def test_nesting_up_to_the_limit_is_read():
    deep = load("[" * 64 + "]" * 64)
    for _ in range(63):
        (deep,) = deep
    assert deep == []


def test_an_alias_bomb_is_refused_without_being_expanded():
    with pytest.raises(YamlLimitError, match="more than 1,000,000 nodes with aliases "
                                             "expanded") as refused:
        load(ALIAS_BOMB)
    assert refused.value.problem_mark.line + 1 == 7   # 9^7 = 4.8 million "lol"s


def test_aliases_that_stay_small_and_merge_keys_work():
    assert load("a: &x [1, 2]\nb: *x\nc: {<<: {k: 1}, j: 2}\n") == {
        "a": [1, 2], "b": [1, 2], "c": {"k": 1, "j": 2}}


def test_an_alias_cannot_nest_its_node_past_the_depth_limit():
    text = "a: &deep " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*deep" + "]" * 30
    with pytest.raises(YamlLimitError, match=r"alias \*deep here nests its node deeper "
                                             "than 64 levels"):
        load(text)


@pytest.mark.parametrize("text, message", [
    ("&a [*a]", "alias *a is inside the node it names (a recursive structure)"),
    ("a: *b", "found undefined alias 'b'"),
    ("a: &b 1\nc: &b 2", "found duplicate anchor 'b'; first occurrence"),
])
def test_bad_aliases(text, message):
    with pytest.raises(yaml.MarkedYAMLError) as refused:
        load(text)
    assert message in str(refused.value)


def test_the_guarded_composer_builds_what_pyyaml_builds():
    text = (Path(__file__).resolve().parents[2] / "templates" / "web.yaml").read_text()
    assert load(text) == load(text, FastSafeLoader)


def test_the_node_limit_counts_literal_nodes_too():
    class Small(GuardedComposer, FastSafeLoader):
        yaml_limits = YamlLimits(max_nodes=100)
    load("[" + ", ".join(["1"] * 98) + "]", Small)
    with pytest.raises(YamlLimitError, match="more than 100 nodes"):
        load("[" + ", ".join(["1"] * 100) + "]", Small)


@pytest.mark.parametrize("text, message", [
    ("x: 2001-13-45", "cannot read '2001-13-45' as a date: month must be in 1..12"),
    ("x: " + "9" * 5000, "cannot read '" + "9" * 37 + "...' as an integer: Exceeds the "
                         "limit (4300 digits)"),
    ("x: !!int 1x", "cannot read '1x' as an integer"),
])
def test_scalars_that_raise_in_python_become_located_yaml_errors(text, message):
    with pytest.raises(yaml.constructor.ConstructorError) as refused:
        load(text)
    assert message in str(refused.value)
    assert refused.value.problem_mark.line == 0


# -- reading files -------------------------------------------------------------------------
def test_read_text_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputProblem, match=r"not a regular file \(a FIFO\)"):
        read_text(fifo)


def test_read_text_refuses_a_big_file_without_reading_it(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as file:
        file.truncate(50 * 1024 * 1024)    # 50 MB, sparse: nothing written
    with pytest.raises(InputProblem) as refused:
        read_text(big)
    assert refused.value.kind == "too-big"
    assert str(refused.value) == "file is 52,428,800 bytes, more than the limit of 4 MiB"


def test_read_text_names_the_line_of_the_first_byte_that_is_not_utf8(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"a: 1\nb: 2\nc: caf\xe9\n")
    with pytest.raises(InputProblem) as refused:
        read_text(path)
    assert (refused.value.line, refused.value.message) == (
        3, "not UTF-8 text (invalid continuation byte at byte 16)")


# -- the library: each pathological file is one located error -----------------------------
def test_a_40k_deep_file_is_refused_with_its_line(lib):
    (lib / "deep.yaml").write_text(DEEP)
    assert refusal(lib) == [
        "lib/deep.yaml: line 1: nested deeper than 64 levels (the limit) at column 75"]


def test_an_alias_bomb_file_is_refused_with_its_line(lib):
    (lib / "bomb.yaml").write_text(ALIAS_BOMB)
    assert refusal(lib) == ["lib/bomb.yaml: line 7: more than 1,000,000 nodes with aliases "
                            "expanded (the limit) at column 10"]


def test_a_file_of_200k_rules_is_refused_by_its_size(lib):
    rules = "".join("      - {action: allow, direction: to_vm}\n" for _ in range(200_000))
    (lib / "rules.yaml").write_text(TEMPLATE.replace("web", "big").replace("250", "251")
                                    .replace("{default_action: deny}",
                                             "\n      default_action: deny\n      acl:\n")
                                    + rules)
    (line,) = refusal(lib)
    assert line.startswith("lib/rules.yaml: file is 8,")
    assert line.endswith("bytes, more than the limit of 4 MiB")


def test_200k_rules_of_parsed_yaml_are_refused_by_the_rule_limit():
    rules = [{"action": "allow", "direction": "to_vm", "protocol": "tcp", "dst_port": 80}]
    template = {"id": 250, "name": "web", "description": "Web", "vlan": 100,
                "virtual_switch": {"default_action": "deny", "acl": rules * 200_000},
                "access_port": {"default_action": "allow"}}
    with pytest.raises(TemplateValidationError) as refused:
        build_library([("big.yaml", {"templates": [template]})])
    assert [str(e) for e in refused.value.errors] == [
        f"big.yaml: template 250 'web': virtual_switch.acl: 200,000 rules, more than the "
        f"limit of {MAX_ACL_RULES:,} per side"]


def test_a_50_mb_file_is_refused_by_its_size(lib):
    with open(lib / "huge.yaml", "wb") as file:
        file.truncate(50_000_000)
    assert refusal(lib) == ["lib/huge.yaml: file is 50,000,000 bytes, more than the limit "
                            "of 4 MiB"]


def test_binary_junk_is_refused_with_its_line(lib):
    junk = random.Random(11).randbytes(4096)
    (lib / "junk.yaml").write_bytes(b"templates: []\n" + junk)
    (line,) = refusal(lib)
    assert line.startswith("lib/junk.yaml: line 2: not UTF-8 text (")


def test_control_characters_are_refused_with_their_line(lib):
    (lib / "nul.yaml").write_text("templates: []\n# ok\nx: \x00\n")
    (line,) = refusal(lib)
    assert line.startswith("lib/nul.yaml: line 3: invalid YAML: unacceptable character "
                           "#x0000")


def test_a_fifo_in_the_library_is_refused_not_waited_on(lib):
    os.mkfifo(lib / "pipe.yaml")
    assert refusal(lib) == [
        "lib/pipe.yaml: not a regular file (a FIFO, device or socket): refused"]


def test_a_fifo_given_as_the_library_is_refused_not_waited_on(lib):
    os.mkfifo("pipe.yaml")
    assert refusal("pipe.yaml") == ["pipe.yaml: not a regular file (a FIFO)"]


def test_symlinks_may_not_lead_out_of_the_library(lib, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(TEMPLATE)
    (lib / "out.yaml").symlink_to(outside)
    (line,) = refusal(lib)
    assert line == (f"lib/out.yaml: symbolic link to {outside}, outside the library "
                    "directory (refused: copy the file in, or link the whole directory)")


def test_symlinks_inside_the_library_and_a_linked_library_are_read(lib, tmp_path):
    (lib / "real").mkdir()
    (lib / "a.yaml").rename(lib / "real" / "web.yml")
    (lib / "a.yaml").symlink_to(Path("real") / "web.yml")
    assert load_library(lib).get(250).source == "lib/a.yaml"
    (tmp_path / "linked").symlink_to(lib.resolve())
    assert len(load_library(tmp_path / "linked")) == 1


def test_the_library_total_size_is_limited(lib, monkeypatch):
    monkeypatch.setattr(library_files, "MAX_LIBRARY_BYTES", 400)
    assert len(TEMPLATE) < 200
    for name in ("b.yaml", "c.yaml"):
        (lib / name).write_text("templates: []\n#" + "x" * 150 + "\n")
    assert refusal(lib) == ["lib/c.yaml: the library's files reach 400 bytes in all (the "
                            "limit) at this file: it and the files after it were not read"]


def test_the_number_of_files_is_limited(lib, monkeypatch):
    monkeypatch.setattr(library_files, "MAX_FILES", 3)
    for index in range(4):
        (lib / f"x{index}.yaml").write_text("templates: []\n")
    assert refusal(lib) == ["lib: more than 3 YAML files in this directory (the limit)"]


def test_a_file_at_the_size_limit_is_read(lib):
    padding = MAX_FILE_BYTES - len(TEMPLATE) - 2
    (lib / "a.yaml").write_text(TEMPLATE + "#" + "x" * padding + "\n")
    assert len(load_library(lib)) == 1


def test_a_description_is_at_most_1000_characters():
    template = {"id": 250, "name": "web", "description": "x" * 1000, "vlan": 100,
                "virtual_switch": {"default_action": "deny"},
                "access_port": {"default_action": "allow"}}
    build_library([("a.yaml", {"templates": [template]})])
    template["description"] = "x" * 4_000_000
    with pytest.raises(TemplateValidationError) as refused:
        build_library([("a.yaml", {"templates": [template]})])
    assert [str(e) for e in refused.value.errors] == [
        "a.yaml: template 250 'web': description: expected at most 1,000 characters, got "
        "4,000,000"]


def test_too_many_templates_are_refused_before_each_is_checked():
    templates = [{"id": 1}] * (MAX_TEMPLATES + 1)
    with pytest.raises(TemplateValidationError) as refused:
        build_library([("many.yaml", {"templates": templates})])
    assert [str(e) for e in refused.value.errors] == [
        "many.yaml: templates: 65,537 templates here bring the library to 65,537, more than "
        "the limit of 65,536 (one per template id)"]


def test_an_acl_that_compiles_to_too_many_entries_is_refused():
    # tcp without ethertype: IPv4 and IPv6 entries; 1-65534 splits into 30 value/mask
    # pairs; the destination ranges overlap without containing each other
    rules, entries = [], 0
    while entries <= MAX_ACL_ENTRIES:
        ports = PortRange(1 + len(rules), 60_000 + len(rules))
        rules.append({"action": "allow", "direction": "to_vm", "protocol": "tcp",
                      "src_port": "1-65534", "dst_port": f"{ports.low}-{ports.high}"})
        entries += 2 * 30 * len(port_range_masks(ports))
    template = {"id": 250, "name": "web", "description": "Web", "vlan": 100,
                "virtual_switch": {"default_action": "deny", "acl": rules},
                "access_port": {"default_action": "allow"}}
    with pytest.raises(TemplateValidationError) as refused:
        build_library([("wide.yaml", {"templates": [template]})])
    (error,) = refused.value.errors
    assert error.field == "virtual_switch.acl"
    assert error.message.startswith(f"compiles to {entries:,} OpenFlow entries, more than "
                                    f"the limit of {MAX_ACL_ENTRIES:,} per side")
    template["virtual_switch"]["acl"] = rules[:-1]
    build_library([("wide.yaml", {"templates": [template]})])


def test_errors_stop_at_the_limit_with_a_last_line_saying_so():
    templates = [{"id": 70000 + i} for i in range(MAX_ERRORS)]
    with pytest.raises(TemplateValidationError) as refused:
        build_library([("bad.yaml", {"templates": templates})], origin="lib")
    errors = refused.value.errors
    assert len(errors) == MAX_ERRORS + 1
    assert str(errors[-1]) == (f"lib: validation stopped after {MAX_ERRORS:,} errors; "
                               "fix these and validate again")


def test_duplicate_key_problems_are_capped_too(lib):
    keys = "".join(f"    vlan: {i % 4000 + 1}\n" for i in range(3 * MAX_ERRORS))
    (lib / "a.yaml").write_text(TEMPLATE.replace("    vlan: 100\n", keys))
    lines = refusal(lib)
    assert len(lines) == MAX_ERRORS + 1
    assert lines[0] == "lib/a.yaml: line 6: duplicate key 'vlan' (first defined on line 5)"
    assert lines[-1].startswith("lib: validation stopped after 1,000 errors")


@pytest.mark.parametrize("text, expected", [
    ("templates:\n  - id: 0x" + "f" * 5000 + "\n",
     "templates[0].id: expected an integer 0-65535 or a hex string like '0x00FA', got a "
     "20,000-bit integer"),
    ("templates:\n  - ? 0x" + "f" * 5000 + "\n    : 1\n",
     "templates[0]: unknown key a 20,000-bit integer (expected one of: id, name"),
    ("templates:\n  - id: 0" + "7" * 5000 + "\n",
     "reads as a 15,000-bit integer in YAML (a leading 0 means octal)"),
    ("templates:\n  - {id: 250, vlan: 1.0e+400}\n", "vlan: expected an integer 1-4094, "
                                                   "got inf"),
])
def test_huge_numbers_are_described_not_printed(lib, text, expected):
    (lib / "a.yaml").write_text(text)
    assert any(expected in line for line in refusal(lib)), refusal(lib)



# -- the other files: domains, identifier table, store rows ----------------------------------
def test_a_deep_identifier_table_file_is_refused_with_its_line(tmp_path):
    table = tmp_path / "macs.yaml"
    table.write_text("entries:\n  x: " + "[" * 40_000 + "]" * 40_000 + "\n")
    with pytest.raises(IdentifierError) as refused:
        load_scheme(f"table:{table}")
    assert str(refused.value) == (f"{table}: not valid YAML: line 2, column 68: nested "
                                  "deeper than 64 levels (the limit)")


def test_a_fifo_as_identifier_table_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "macs.yaml")
    with pytest.raises(IdentifierError, match=r"cannot read table file: not a regular file "
                                              r"\(a FIFO\)"):
        load_scheme(f"table:{tmp_path / 'macs.yaml'}")


@pytest.mark.parametrize("text, message", [
    ("domains: " + "[" * 40_000 + "]" * 40_000, "nested deeper than 64 levels (the limit)"),
    (ALIAS_BOMB, "more than 1,000,000 nodes with aliases expanded (the limit)"),
    ("domains: []\nx: 2001-13-45\n", "cannot read '2001-13-45' as a date"),
])
def test_a_hostile_domains_file_is_refused_with_its_line(tmp_path, text, message):
    path = tmp_path / "domains.yaml"
    path.write_text(text)
    with pytest.raises(DomainError) as refused:
        load_domains(str(path))
    assert str(refused.value).startswith(f"{path}: not valid YAML: ")
    assert message in str(refused.value) and "line " in str(refused.value)


def _rows(*bodies: str, defaults: str = "{}") -> LibraryRows:
    return LibraryRows("", defaults, tuple(TemplateRow(250 + i, f"t{i}", f"t{i}.yaml", body)
                                           for i, body in enumerate(bodies)))


@pytest.mark.parametrize("body, message", [
    ("[" * 40_000 + "]" * 40_000, "stored body nested deeper than 64 levels (the limit)"),
    ('{"a": ' * 70 + "1" + "}" * 70, "stored body nested deeper than 64 levels (the limit)"),
    ("x" * (MAX_FILE_BYTES + 1), "stored body of 4,194,305 characters, more than the limit "
                                 "of 4 MiB"),
    ('{"id": 250,', "stored body is not JSON: Expecting property name enclosed in double "
                    "quotes: line 1 column 12 (char 11)"),
])
def test_hostile_store_rows_are_refused_naming_their_row(body, message):
    good = json.dumps({"id": 251, "name": "web", "description": "Web", "vlan": 100,
                       "virtual_switch": {"default_action": "deny"},
                       "access_port": {"default_action": "allow"}})
    with pytest.raises(TemplateValidationError) as refused:
        library_from_rows(_rows(body, good))
    assert [str(e) for e in refused.value.errors] == [f"t0.yaml: template row 250: {message}"]


def test_strings_with_brackets_do_not_count_as_json_nesting():
    body = json.dumps({"id": 250, "name": "web", "description": "[" * 100 + '\\"{' * 50,
                       "vlan": 100, "virtual_switch": {"default_action": "deny"},
                       "access_port": {"default_action": "allow"}})
    assert library_from_rows(_rows(body)).get(250).description.startswith("[[[")


def test_too_many_store_rows_are_refused_before_any_is_parsed():
    with pytest.raises(TemplateValidationError) as refused:
        library_from_rows(_rows(*["not json"] * (MAX_TEMPLATES + 1)))
    assert [str(e) for e in refused.value.errors] == [
        "store (domain main): 65,537 template rows, more than the limit of 65,536"]

# -- any mutation of a valid library: valid, or every error located -------------------------
@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_library())
def test_a_mutated_library_validates_or_every_error_names_its_file(files):
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work) / "lib"
        write_library(directory, files)
        try:
            library = load_library(directory)
        except TemplateValidationError as failure:
            paths = {str(directory)} | {str(directory / name) for name in files}
            assert failure.errors
            assert all(error.source in paths for error in failure.errors), failure.errors
            assert len(failure.errors) <= MAX_ERRORS + 1
        else:
            assert len(library) > 0
