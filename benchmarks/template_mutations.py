"""Mutated template libraries for the template fuzzing benchmark and tests: the
default library with one to three mutations (of a document, of its text, or a
template copied into another file), drawn by hypothesis."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from ryu_apps.loaders.safe_yaml import GuardedComposer, YamlLimits

ROOT = Path(__file__).resolve().parents[1]
SEED_LIBRARY = ROOT / "templates"
#: Files of the default library, the starting point of every mutation.
SEED_FILES: Dict[str, str] = {p.name: p.read_text() for p in sorted(SEED_LIBRARY.glob("*.yaml"))}

Library = Dict[str, bytes]

# -- hypothesis strategies: mutations of the default library ---------------------------
NEAR_MISS_KEYS = ["vlna", "idle-timeout", "acls", "default", "bind-ip", "rate", "Name",
                  "direction ", "dst-port", "templates2", ""]
SYNTAX_SNIPPETS = [":", "- ", "{", "}", "[", "]", "&a ", "*a", "*nowhere",
                   "!!python/object:os.system ",
                   "<<: *a\n", "\t", "? ", "|\n", "'", '"', "%YAML 1.1\n---\n", "--- ", "...\n",
                   "!!binary zz", "!!timestamp 2001-13-45", "!!int 1x", "0o777", "1:2:3:4",
                   "2001-13-45", "0x", "&b [*b]", "\x00", "\ufeff", "\x85"]
hostile_values = st.one_of(
    st.none(), st.booleans(),
    st.integers(-10, 70_000), st.integers(-(2 ** 80), 2 ** 80),
    st.integers(0, 14_000).map(lambda bits: 1 << bits),   # str() fails past 4,300 digits
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.text(min_size=100, max_size=5000),
    st.sampled_from(["0x00FA", "0xFFFFF", "1-0", "443-80", "0-65536", "10.0.0.1/8",
                     "::/129", "tcp", "arp", "ipv5", "allow ", "to_vm", "2001:db8::/32",
                     "99999999999999999999", "1e400", "-1"]),
    st.lists(st.integers(), max_size=5), st.dictionaries(st.text(max_size=8), st.integers(),
                                                         max_size=4))


def _paths(node, prefix=()) -> List[tuple]:
    """Every path (keys and indexes) to a node of a parsed document."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,))
    return found


def _parent_and_key(document, path):
    node = document
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


class _SmallLoader(GuardedComposer, yaml.SafeLoader):
    """What a document mutation may parse: small once aliases are expanded."""

    yaml_limits = YamlLimits(max_nodes=20_000)


@st.composite
def document_mutation(draw, text: str) -> str:
    """The text of a parsed file with one node replaced, dropped, or given a bad key."""
    document = yaml.load(text, Loader=_SmallLoader)  # noqa: S506 (safe, limited)
    paths = [p for p in _paths(document) if p]
    if not paths:
        return yaml.safe_dump(draw(hostile_values), allow_unicode=True)
    path = draw(st.sampled_from(paths))
    parent, key = _parent_and_key(document, path)
    how = draw(st.sampled_from(["replace", "replace", "drop", "unknown key", "nest"]))
    if how == "replace":
        parent[key] = draw(hostile_values)
    elif how == "drop":
        del parent[key]
    elif how == "nest":
        value = parent[key]
        for _ in range(draw(st.integers(1, 120))):
            value = [value] if draw(st.booleans()) else {"x": value}
        parent[key] = value
    else:
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target[draw(st.sampled_from(NEAR_MISS_KEYS) | st.text(max_size=12))] = \
                draw(hostile_values)
        else:
            target.append(draw(hostile_values))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=10 ** 6)


@st.composite
def text_mutation(draw, data: bytes) -> bytes:
    """Bytes of a file truncated, spliced with junk or YAML syntax, or given aliases."""
    how = draw(st.sampled_from(["truncate", "junk", "syntax", "syntax", "aliases", "huge",
                                "repeat line"]))
    at = draw(st.integers(0, len(data)))
    if how == "truncate":
        return data[:at]
    if how == "junk":
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if how == "syntax":
        return data[:at] + draw(st.sampled_from(SYNTAX_SNIPPETS)).encode() + data[at:]
    if how == "aliases":
        fans = draw(st.integers(2, 12))
        levels = draw(st.integers(1, 9))
        lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fans)}]"
                                      for i in range(1, levels + 1)]
        return data + ("\n" + "\n".join(lines) + "\n").encode()
    if how == "huge":
        digits = draw(st.integers(20, 10_000))
        return data[:at] + b" " + b"9" * digits + b" " + data[at:]
    lines = data.split(b"\n")
    index = draw(st.integers(0, max(0, len(lines) - 1)))
    return b"\n".join(lines[:index + 1] + lines[index:index + 1] * draw(st.integers(1, 50))
                      + lines[index + 1:])


@st.composite
def mutated_library(draw) -> Library:
    """The default library with 1 to 3 mutations."""
    files: Library = {name: text.encode() for name, text in SEED_FILES.items()}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(files)))
        kind = draw(st.sampled_from(["document", "document", "text", "copy template"]))
        if kind == "document":
            try:
                text = files[name].decode()
                yaml.load(text, Loader=_SmallLoader)  # noqa: S506 (safe, limited)
            except (UnicodeDecodeError, yaml.YAMLError, RecursionError, ValueError):
                kind = "text"   # (an alias bomb would expand in _paths: no)
            else:
                files[name] = draw(document_mutation(text)).encode()
                continue
        if kind == "text":
            files[name] = draw(text_mutation(files[name]))
        else:   # a template copied into another file: duplicate id and name
            source = SEED_FILES[draw(st.sampled_from(sorted(SEED_FILES)))]
            files[f"copy-{name}"] = source.encode()
    return files


def write_library(directory: Path, files: Library) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


def generated_cases(count: int, fuzz_seed: int) -> List[Library]:
    """``count`` mutated libraries, drawn by hypothesis (deterministic for a seed)."""
    cases: List[Library] = []

    @seed(fuzz_seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(mutated_library())
    def collect(files: Library) -> None:
        cases.append(files)

    collect()
    return cases
