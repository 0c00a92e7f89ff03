"""Reading YAML a stranger may have written: limits before anything is built.

Every YAML file dynprov reads (template libraries, the mobility-domains file,
the identifier table file) goes through here:

- :func:`read_text` reads at most ``max_bytes`` of a *regular* file (a FIFO
  or a device never blocks or floods the reader) and decodes UTF-8, naming
  the line of the first bad byte;
- :class:`GuardedComposer`, mixed into a PyYAML loader, builds the node graph
  from the parser's event stream *without recursion* and refuses, at the
  offending line, a document nested deeper than ``max_depth`` or holding more
  than ``max_nodes`` nodes once its aliases are expanded (a "billion laughs"
  alias bomb is refused after a few events, not after it has been expanded);
  an alias inside the node it names (a recursive structure) is refused too.
  Plain PyYAML composes recursively, and its libyaml composer crashes the
  process (SIGSEGV) on a few thousand levels;
- :func:`harden` makes the scalar constructors that can raise a plain
  ``ValueError`` (an integer of more than 4,300 digits, a date such as
  ``2001-13-45``) raise a located ``ConstructorError`` instead.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, TypeVar

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MIB = 1024 * 1024

#: Fast libyaml parser when PyYAML was built with it, else the pure Python one.
try:
    from yaml import CSafeLoader as FastSafeLoader
except ImportError:   # PyYAML built without libyaml (its stubs assume libyaml is there)
    FastSafeLoader = yaml.SafeLoader  # type: ignore[misc,assignment]

#: A PyYAML loader class (what :func:`harden` takes and returns).
LoaderClass = TypeVar("LoaderClass", bound=type[yaml.constructor.BaseConstructor])


@dataclass(frozen=True)
class YamlLimits:
    """What one YAML file may hold."""

    max_bytes: int = 4 * MIB
    max_depth: int = 64               # nested collections (the library needs 6)
    max_nodes: int = 1_000_000        # nodes, aliases counted as what they stand for


DEFAULT_LIMITS = YamlLimits()


class InputProblem(Exception):
    """A file that cannot be read as YAML text; ``line`` where one is known.

    ``kind``: "unreadable" (the system refused: ``message`` is its reason),
    "not-a-file", "too-big" or "not-utf8".
    """

    def __init__(self, kind: str, message: str, line: Optional[int] = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.line = kind, message, line

    def __str__(self) -> str:
        return f"cannot read: {self.message}" if self.kind == "unreadable" else self.message


class YamlLimitError(yaml.MarkedYAMLError):
    """A document over one of the limits (valid YAML, refused by dynprov)."""

    def __init__(self, problem: str,
                 problem_mark: yaml.error.Mark | yaml._yaml.Mark | None) -> None:
        # types-PyYAML names only the pure Python Mark; libyaml's has the same fields
        super().__init__(None, None, problem, problem_mark)  # type: ignore[arg-type]


def read_text(path: Path | str, max_bytes: int = DEFAULT_LIMITS.max_bytes) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` bytes.

    Raises :class:`InputProblem` for anything else (missing, not a regular
    file, too big, not UTF-8); it never blocks on a FIFO.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise InputProblem("unreadable", str(error.strerror or error)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputProblem("not-a-file", f"not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise InputProblem("too-big", _too_big(info.st_size, max_bytes))
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as error:
        raise InputProblem("unreadable", str(error.strerror or error)) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise InputProblem("too-big", _too_big(len(data), max_bytes) +
                           " (it grew while being read)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputProblem("not-utf8", f"not UTF-8 text ({error.reason} at byte "
                                       f"{error.start})", line) from None


def _read_at_most(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = os.read(fd, min(left, MIB))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def describe_size(size: int) -> str:
    """``4 MiB``, ``512 KiB`` or ``100 bytes``."""
    for unit, name in ((MIB, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size:,} bytes"


def _too_big(size: int, limit: int) -> str:
    return f"file is {size:,} bytes, more than the limit of {describe_size(limit)}"


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a plain file"


def problem_line(error: yaml.YAMLError, text: str) -> Optional[int]:
    """The 1-based line a YAML error points at, if it says."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(error, "position", None)   # ReaderError: a character offset
    if isinstance(position, int) and 0 <= position <= len(text):
        return text.count("\n", 0, position) + 1
    return None


class _Frame:
    """A collection being composed: its node, expanded size, height, pending key."""

    __slots__ = ("node", "anchor", "size", "height", "key")

    def __init__(self, node: Node, anchor: Optional[str]) -> None:
        self.node, self.anchor = node, anchor
        self.size, self.height = 1, 0
        self.key: Optional[Node] = None


class GuardedComposer:
    """Loader mixin: compose from events with depth and expansion limits, no recursion.

    Put it before the PyYAML loader class: ``class L(GuardedComposer, CSafeLoader)``.
    Produces the same nodes as PyYAML's composer (no path resolvers: dynprov's
    loaders have none) and the same errors for undefined and duplicate anchors.
    """

    yaml_limits: YamlLimits = DEFAULT_LIMITS

    if TYPE_CHECKING:   # provided by the PyYAML loader this is mixed into (untyped there)
        def get_event(self) -> Any: ...
        def check_event(self, *choices: Any) -> bool: ...
        def resolve(self, kind: type, value: Optional[str], implicit: Any) -> str: ...

    def get_single_node(self) -> Optional[Node]:
        self.get_event()                        # stream start
        document = None
        if not self.check_event(yaml.StreamEndEvent):
            document = self._compose_document()
        if not self.check_event(yaml.StreamEndEvent):
            event = self.get_event()
            raise ComposerError("expected a single document in the stream",
                                document.start_mark if document else None,
                                "but found another document", event.start_mark)
        self.get_event()                        # stream end
        return document

    def _compose_document(self) -> Node:
        self.get_event()                        # document start
        limits = self.yaml_limits
        anchors: Dict[str, Tuple[Node, int, int]] = {}   # name -> node, size, height
        open_anchors: Dict[str, Node] = {}
        stack: List[_Frame] = []
        total = 0                               # nodes so far, aliases expanded
        while True:
            event = self.get_event()
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node, size, height = _closed(stack.pop(), event, anchors, open_anchors)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                self._open_collection(event, stack, anchors, open_anchors)
                total = _counted(total + 1, limits, event)
                continue
            elif isinstance(event, yaml.AliasEvent):
                node, size, height = self._nested_alias(event, len(stack), anchors,
                                                        open_anchors)
                total = _counted(total + size, limits, event)
            else:                               # a scalar
                self._check_new_anchor(event, anchors, open_anchors)
                total = _counted(total + 1, limits, event)
                node, size, height = self._scalar(event, anchors)
            if not stack:
                self.get_event()                # document end
                return node
            _attach(stack[-1], node, size, height)

    def _open_collection(self, event, stack: List[_Frame], anchors, open_anchors) -> None:
        """Check a new collection's anchor and depth, then push its frame."""
        self._check_new_anchor(event, anchors, open_anchors)
        limit = self.yaml_limits.max_depth
        if len(stack) >= limit:
            raise YamlLimitError(f"nested deeper than {limit} levels (the limit)",
                                 event.start_mark)
        stack.append(_Frame(self._collection_node(event), event.anchor))
        if event.anchor is not None:
            open_anchors[event.anchor] = stack[-1].node

    def _nested_alias(self, event, depth: int, anchors,
                      open_anchors) -> Tuple[Node, int, int]:
        """The node an alias names, refused when it would nest too deep at ``depth``."""
        node, size, height = self._alias(event, anchors, open_anchors)
        limit = self.yaml_limits.max_depth
        if depth + height > limit:
            raise YamlLimitError(f"alias *{event.anchor} here nests its node deeper than "
                                 f"{limit} levels (the limit)", event.start_mark)
        return node, size, height

    def _scalar(self, event, anchors) -> Tuple[Node, int, int]:
        """A scalar event's node (tag resolved), registered under its anchor if any."""
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(ScalarNode, event.value, event.implicit)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                          style=event.style)
        if event.anchor is not None:
            anchors[event.anchor] = (node, 1, 0)
        return node, 1, 0

    def _collection_node(self, event) -> Node:
        kind = SequenceNode if isinstance(event, yaml.SequenceStartEvent) else MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolve(kind, None, event.implicit)
        return kind(tag, [], event.start_mark, None, flow_style=event.flow_style)

    @staticmethod
    def _alias(event, anchors, open_anchors) -> Tuple[Node, int, int]:
        if event.anchor in open_anchors:
            raise YamlLimitError(f"alias *{event.anchor} is inside the node it "
                                 "names (a recursive structure)", event.start_mark)
        if event.anchor not in anchors:
            raise ComposerError(None, None, f"found undefined alias {event.anchor!r}",
                                event.start_mark)
        return anchors[event.anchor]

    @staticmethod
    def _check_new_anchor(event, anchors, open_anchors) -> None:
        anchor = event.anchor
        if anchor is not None and (anchor in anchors or anchor in open_anchors):
            first = anchors[anchor][0] if anchor in anchors else open_anchors[anchor]
            raise ComposerError(f"found duplicate anchor {anchor!r}; first occurrence",
                                first.start_mark, "second occurrence", event.start_mark)


def _counted(total: int, limits: YamlLimits, event) -> int:
    if total > limits.max_nodes:
        raise YamlLimitError(f"more than {limits.max_nodes:,} nodes with aliases "
                             "expanded (the limit)", event.start_mark)
    return total


def _closed(frame: _Frame, event, anchors, open_anchors) -> Tuple[Node, int, int]:
    """A finished collection's node, size and height; its anchor now names it."""
    frame.node.end_mark = event.end_mark
    node, size, height = frame.node, frame.size, frame.height + 1
    if frame.anchor is not None:
        del open_anchors[frame.anchor]
        anchors[frame.anchor] = (node, size, height)
    return node, size, height


def _attach(parent: _Frame, node: Node, size: int, height: int) -> None:
    parent.size += size
    if height > parent.height:
        parent.height = height
    if isinstance(parent.node, SequenceNode):
        parent.node.value.append(node)
    elif parent.key is None:
        parent.key = node
    else:
        parent.node.value.append((parent.key, node))
        parent.key = None


def harden(loader: LoaderClass) -> LoaderClass:
    """Make ``loader``'s int, float and timestamp constructors fail with a located error.

    Call it after the loader's own ``add_constructor`` calls; returns the loader.
    """
    for kind, what in (("int", "an integer"), ("float", "a number"), ("timestamp", "a date")):
        tag = f"tag:yaml.org,2002:{kind}"
        constructor = loader.yaml_constructors.get(tag)
        if constructor is not None:
            loader.add_constructor(tag, _located(constructor, what))
    return loader


def _located(constructor: Callable, what: str) -> Callable:
    def construct(loader, node):
        try:
            return constructor(loader, node)
        except (ValueError, OverflowError, TypeError) as error:
            reason = str(error).split(";")[0]
            raise ConstructorError(None, None, f"cannot read {_preview(node.value)} as "
                                   f"{what}: {reason}", node.start_mark) from None
    return construct


def _preview(text: object) -> str:
    text = str(text)
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")
