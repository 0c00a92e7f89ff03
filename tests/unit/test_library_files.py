"""Loading the template library from YAML files, and keeping the one in force."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.loaders.library_files import load_library
from ryu_apps.loaders.library_keeper import LibraryKeeper

DEFAULT_LIBRARY = Path(__file__).resolve().parents[2] / "templates"


def template_yaml(template_id: int = 250, name: str = "web", vlan: int = 100) -> str:
    return textwrap.dedent(f"""\
        templates:
          - id: {template_id}
            name: {name}
            description: Test template {name}
            vlan: {vlan}
            virtual_switch: {{default_action: deny}}
            access_port: {{default_action: allow}}
        """)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_lines(path) -> list:
    with pytest.raises(TemplateValidationError) as raised:
        load_library(path)
    return [str(error) for error in raised.value.errors]


@pytest.fixture
def library_dir(tmp_path, monkeypatch) -> Path:
    """An empty ``lib`` directory, with the current directory set to its parent."""
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "lib"
    directory.mkdir()
    return directory


# -- loading -----------------------------------------------------------------------
def test_loads_every_yaml_file_of_a_directory_in_name_order(library_dir):
    write(library_dir, "b.yml", template_yaml(251, "db", 200))
    write(library_dir, "a.yaml", template_yaml())
    write(library_dir, "c.yaml", "defaults: {idle_timeout: 42}\n")
    write(library_dir, "notes.txt", "not: yaml: at all:")
    write(library_dir, ".hidden.yaml", "{{{")
    (library_dir / "sub.yaml").mkdir()
    library = load_library("lib")
    assert library.sources == ("lib/a.yaml", "lib/b.yml", "lib/c.yaml")
    assert [(t.template_id, t.source, t.idle_timeout) for t in library] == [
        (250, "lib/a.yaml", 42), (251, "lib/b.yml", 42)]


def test_loads_a_single_file_and_accepts_path_objects(library_dir):
    path = write(library_dir, "one.yaml", template_yaml())
    assert load_library(path).get(250).source == str(path)
    assert load_library("lib/one.yaml").sources == ("lib/one.yaml",)


def test_hex_ids_in_yaml_quoted_or_not(library_dir):
    write(library_dir, "a.yaml", template_yaml(template_id='"0x00FA"'))
    write(library_dir, "b.yaml", template_yaml(template_id="0x00FC", name="db"))
    assert [t.template_id for t in load_library("lib")] == [0xFA, 0xFC]


def test_missing_path_is_named():
    assert error_lines("no/such/templates") == [
        "no/such/templates: no such file or directory"]


def test_directory_without_yaml_files(library_dir):
    write(library_dir, "readme.txt", "hello")
    assert error_lines("lib") == ["lib: no *.yaml or *.yml files in this directory"]


def test_yaml_syntax_error_has_file_and_line(library_dir):
    write(library_dir, "web.yaml", """\
        templates:
          - id: 250
            name: web
             vlan: 100
        """)
    (line,) = error_lines("lib")
    assert line.startswith("lib/web.yaml: line 4: invalid YAML: ")
    assert "column" in line


def test_duplicate_keys_are_errors_with_lines(library_dir):
    write(library_dir, "web.yaml", """\
        templates:
          - id: 250
            name: web
            description: Web
            vlan: 100
            vlan: 200
            virtual_switch:
              default_action: deny
              acl:
                - {action: allow, direction: to_vm, action: deny}
            access_port: {default_action: allow}
        """)
    assert error_lines("lib") == [
        "lib/web.yaml: line 6: duplicate key 'vlan' (first defined on line 5)",
        "lib/web.yaml: line 10: duplicate key 'action' (first defined on line 10)",
    ]


def test_yaml_integers_that_surprise_are_errors(library_dir):
    write(library_dir, "web.yaml", template_yaml(template_id="0250", vlan="1:40"))
    assert error_lines("lib") == [
        "lib/web.yaml: line 2: '0250' reads as 168 in YAML (a leading 0 means octal); "
        "write it as a plain decimal number, or quote it",
        "lib/web.yaml: line 5: '1:40' reads as 100 in YAML (':' means base 60); "
        "write it as a plain decimal number, or quote it",
    ]


def test_documents_with_duplicate_keys_are_still_validated(library_dir):
    write(library_dir, "web.yaml", template_yaml().replace(
        "vlan: 100\n", "vlan: 100\n    vlan: 5000\n"))
    assert error_lines("lib") == [
        "lib/web.yaml: line 6: duplicate key 'vlan' (first defined on line 5)",
        "lib/web.yaml: template 250 'web': vlan: expected an integer 1-4094, got 5000",
    ]


def test_merge_keys_may_be_overridden(library_dir):
    write(library_dir, "web.yaml", """\
        templates:
          - &web
            id: 250
            name: web
            description: Web
            vlan: 100
            virtual_switch: {default_action: deny}
            access_port: {default_action: allow}
          - <<: *web
            id: 251
            name: web2
        """)
    assert [t.vlan for t in load_library("lib")] == [100, 100]


def test_read_errors_and_validation_errors_are_reported_together_in_file_order(library_dir):
    write(library_dir, "a.yaml", template_yaml(vlan=0))
    write(library_dir, "b.yaml", "templates: [\n")
    write(library_dir, "c.yaml", "")
    (library_dir / "d.yaml").write_bytes(b"templates: []\n# caf\xe9\n")
    write(library_dir, "e.yaml", template_yaml(template_id=250, name="other"))
    lines = error_lines("lib")
    assert [line.split(":")[0] for line in lines] == [
        "lib/a.yaml", "lib/b.yaml", "lib/c.yaml", "lib/d.yaml", "lib/e.yaml"]
    assert lines[0] == ("lib/a.yaml: template 250 'web': vlan: expected an integer 1-4094, "
                        "got 0")
    assert lines[1].startswith("lib/b.yaml: line 2: invalid YAML: ")
    assert lines[2] == ("lib/c.yaml: file is empty (expected a mapping with a 'templates' "
                        "list)")
    assert lines[3] == ("lib/d.yaml: line 2: not UTF-8 text (invalid continuation byte "
                        "at byte 19)")
    assert lines[4] == ("lib/e.yaml: template 250 'other': id: duplicate template id 250, "
                        "also defined in lib/a.yaml")


def test_unreadable_files_do_not_also_report_an_empty_library(library_dir):
    write(library_dir, "a.yaml", "templates: [")
    (line,) = error_lines("lib")
    assert line.startswith("lib/a.yaml: line")


def test_library_with_no_templates_is_an_error(library_dir):
    write(library_dir, "defaults.yaml", "defaults: {idle_timeout: 30}\n")
    assert error_lines("lib") == ["lib: no templates defined: the library is empty"]


def test_unsafe_yaml_tags_are_rejected(library_dir):
    write(library_dir, "a.yaml", "templates: !!python/object:os.system []\n")
    (line,) = error_lines("lib")
    assert line.startswith("lib/a.yaml: line 1: invalid YAML: could not determine a "
                           "constructor")


# -- the keeper ------------------------------------------------------------------------
def test_keeper_reloads_and_keeps_the_previous_library_on_failure(library_dir):
    path = write(library_dir, "web.yaml", template_yaml(vlan=100))
    keeper = LibraryKeeper("lib")
    assert keeper.current.get(250).vlan == 100
    path.write_text(template_yaml(vlan=101))
    reloaded = keeper.reload()
    assert reloaded is keeper.current and reloaded.get(250).vlan == 101
    path.write_text(template_yaml(vlan=5000))
    with pytest.raises(TemplateValidationError, match="vlan: expected an integer 1-4094"):
        keeper.reload()
    assert keeper.current is reloaded


def test_keeper_refuses_to_start_with_a_bad_library(library_dir):
    write(library_dir, "web.yaml", "templates: 5\n")
    with pytest.raises(TemplateValidationError, match="expected a list of templates"):
        LibraryKeeper("lib")


# -- the default library -------------------------------------------------------------------
def test_default_library_is_valid_and_fits_the_mac_scheme():
    library = load_library(DEFAULT_LIBRARY)
    assert {t.name: (t.template_id, t.vlan) for t in library} == {
        "quarantine": (0x00F0, 999), "outside": (0x00F2, 100), "web": (0x00FA, 100),
        "database": (0x00FC, 100), "management": (0x00FE, 300)}
    for template in library:
        assert 0x00F0 <= template.template_id <= 0x00FF
        assert (template.template_id >> 8) % 2 == 0  # even first MAC octet: unicast
        assert template.virtual_switch.bandwidth is not None
        assert template.access_port.bandwidth is not None
    assert library.default_idle_timeout == 300
    assert library.by_name("web").virtual_switch.bandwidth.rate_kbps == 100000
