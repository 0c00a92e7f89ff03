"""Building the scheme in force from its spec, and reading table files."""

import re

import pytest

from ryu_apps.core.identifiers import IdentifierError, InterleaveScheme, PrefixScheme, TableScheme
from ryu_apps.loaders.scheme_config import load_scheme


def write(tmp_path, text, name="table.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("spec, kind, name", [("prefix/16", PrefixScheme, "prefix/16"),
                                              ("prefix", PrefixScheme, "prefix/16"),
                                              ("prefix/12", PrefixScheme, "prefix/12"),
                                              ("interleave", InterleaveScheme, "interleave")])
def test_plain_specs(spec, kind, name):
    scheme = load_scheme(spec)
    assert isinstance(scheme, kind) and scheme.name == name


def test_table_file(tmp_path):
    path = write(tmp_path, """
# web tier by prefix, one database VM by its exact MAC
entries:
  "02:aa:00:00:00:00/16": 0x00FA
  02:00:00:00:00:01: 252
  12:30:00:00:00:00/16: "0x00FE"   # unquoted, yet not a YAML 1.1 base-60 number
""")
    scheme = load_scheme(f"table:{path}")
    assert isinstance(scheme, TableScheme)
    assert scheme.decode("02:aa:12:34:56:78") == 250
    assert scheme.decode("02:00:00:00:00:01") == 252
    assert scheme.decode("12:30:00:00:00:01") == 254
    assert scheme.encode(250, 1) == "02:aa:00:00:00:01"


def test_decimal_with_leading_zero_is_decimal_not_octal(tmp_path):
    path = write(tmp_path, "entries:\n  02:00:00:00:00:01: 0250\n")
    assert load_scheme(f"table:{path}").decode("02:00:00:00:00:01") == 250


@pytest.mark.parametrize("text, message", [
    ("", r"expected a mapping with the key 'entries', got nothing"),
    ("- 1\n", r"expected a mapping with the key 'entries', got a list"),
    ("entries:\n", r"'entries' must map MAC or MAC/LEN to a template id, got nothing"),
    ("entries: [1, 2]\n", r"'entries' must map MAC or MAC/LEN to a template id, got a list"),
    ("entry:\n  02:00:00:00:00:01: 1\n",
     r"unknown key 'entry': expected a mapping with the key 'entries'"),
    ("version: 1\n", r"unknown key 'version'"),
    ("{}\n", r"no 'entries'"),
    ("entries: {02:00:00:00:00:01: 1\n", r"not valid YAML: line \d+, column \d+"),
    ("entries:\n  02:00:00:00:00:01: 1\n  02:00:00:00:00:01: 2\n",
     r"line 3: duplicate key '02:00:00:00:00:01' \(first on line 2\)"),
    ("entries:\n  02:00:00:00:00:01: web\n",
     r"table entry '02:00:00:00:00:01': template id 'web' is not a non-negative decimal"),
    ("entries:\n  02:00:00:00:00:01: [1]\n",
     r"table entry '02:00:00:00:00:01': template id must be a number, got a list"),
    ("entries:\n  02:00:00:00:00:01: 65536\n",
     r"table entry '02:00:00:00:00:01': template id 65536 out of range"),
    ("entries:\n  03:00:00:00:00:00/8: 1\n",
     r"table entry '03:00:00:00:00:00/8': multicast prefix \(I/G bit set\)"),
    ("entries:\n  02:aa:01:00:00:00/16: 1\n",
     r"table entry '02:aa:01:00:00:00/16': host bits below /16 must be zero"),
    ("entries: {}\n", "table scheme needs at least one entry"),
    ("entries:\n  [1]: 1\n", r"line 2: key must be text \(a MAC or MAC/LEN\), got a list"),
])
def test_table_file_errors_name_the_file_and_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(IdentifierError, match=f"^{re.escape(str(path))}: {message}"):
        load_scheme(f"table:{path}")


def test_missing_table_file_is_named(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(IdentifierError, match=f"^{re.escape(str(path))}: cannot read table file: "
                                              "No such file"):
        load_scheme(f"table:{path}")


def test_table_file_that_is_a_directory(tmp_path):
    with pytest.raises(IdentifierError,
                       match=f"^{re.escape(str(tmp_path))}: cannot read table file"):
        load_scheme(f"table:{tmp_path}")


def test_table_file_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"entries:\n  \xe9: 1\n")
    with pytest.raises(IdentifierError,
                       match=f"^{re.escape(str(path))}: table file is not UTF-8 text"):
        load_scheme(f"table:{path}")


@pytest.mark.parametrize("spec, message", [
    ("table", r"identifier scheme 'table' needs its file: expected table:PATH"),
    ("table:", r"identifier scheme 'table:' names no file: expected table:PATH"),
    ("table:  ", r"names no file"),
    ("tabel:x.yaml", r"unknown identifier scheme 'tabel:x.yaml': expected one of"),
    ("prefix/24", r"template width 24 is not supported"),
])
def test_bad_specs(spec, message):
    with pytest.raises(IdentifierError, match=message):
        load_scheme(spec)
