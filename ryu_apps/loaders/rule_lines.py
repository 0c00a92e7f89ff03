"""The YAML line of every template ACL rule, read off the composed node graph.

The strict loader (loaders/library_files.py) composes each file under
:class:`~ryu_apps.loaders.safe_yaml.GuardedComposer`'s limits; before the graph
becomes Python objects, :func:`acl_lines` walks the few levels that hold ACL
rules (``templates[i].<side>.acl[j]``) and keeps each rule mapping's start line.
The walk visits only those levels, so it costs a few steps per rule.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ryu_apps.core.template_model import TemplateLibrary

SIDES = ("virtual_switch", "access_port")
#: (template name, side, index in the side's acl) -> 1-based line.
Lines = Dict[Tuple[str, str, int], int]


def _value(mapping: Optional[Node], key: str) -> Optional[Node]:
    """The value node of ``key`` in a mapping node (the last one, as PyYAML keeps)."""
    found = None
    if isinstance(mapping, MappingNode):
        for key_node, value_node in mapping.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                found = value_node
    return found


def _items(node: Optional[Node]) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value


def acl_lines(root: Optional[Node]) -> Lines:
    """Each ACL rule's line in one file's document (templates without a name skipped)."""
    lines: Lines = {}
    for entry in _items(_value(root, "templates") if root is not None else None):
        name = _value(entry, "name")
        if not isinstance(name, ScalarNode):
            continue
        for side in SIDES:
            for index, rule in enumerate(_items(_value(_value(entry, side), "acl"))):
                lines[(str(name.value), side, index)] = rule.start_mark.line + 1
    return lines


def with_rule_lines(library: TemplateLibrary,
                    per_file: Dict[str, Lines]) -> TemplateLibrary:
    """The library with the line of each rule of its templates, by template id."""
    found: Dict[Tuple[int, str, int], int] = {}
    for template in library:
        for (name, side, index), line in per_file.get(template.source, {}).items():
            if name == template.name:
                found[(template.template_id, side, index)] = line
    return TemplateLibrary(library.templates, library.default_idle_timeout, library.sources,
                           found)
