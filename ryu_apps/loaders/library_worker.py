"""The library checker's worker process: reads and validates template libraries.

``python -m ryu_apps.loaders.library_worker [--memory-mb N]`` serves
:class:`~ryu_apps.loaders.library_check.LibraryChecker`, its parent, over its stdin
and stdout: every message is a 4-byte big-endian length and a pickle.

- request: ``("load", path, base)``; ``base`` is the generation of the
  library the parent holds for ``path`` (0: none this worker sent);
- progress: ``("reading", file)`` before each file, ``("validating", path)``
  before validation, so a crash can be pinned on a file;
- answer: ``("unchanged",)`` (the parent's library is still right),
  ``("library", generation, base, templates, removed, idle_timeout, sources,
  rule_lines)``
  (the templates that changed since generation ``base`` or all of them when
  ``base`` is 0, and the ids that left), ``("errors", [TemplateError, ...])``,
  or ``("failed", stage, source, what)`` when the worker itself failed (out
  of memory, a bug).

It keeps each library's parse cache between requests, so a reload reads only
the files whose text changed, as in the controller. It exits when its stdin
closes (the parent went away). The parent's unpickler accepts only the
template model's classes (:data:`ALLOWED_CLASSES`). The memory limit
(RLIMIT_AS) turns a runaway allocation into a MemoryError reported here.
"""

from __future__ import annotations

import argparse
import enum
import io
import pickle
import struct
import sys
from typing import BinaryIO, Dict, List, Optional, Sequence, Tuple

HEADER = struct.Struct(">I")
#: The classes a message may hold (module, name).
ALLOWED_CLASSES = frozenset(
    [("ryu_apps.core.template_model", name) for name in
     ("Template", "SwitchSide", "AclRule", "Action", "Direction", "PortRange", "Bandwidth")]
    + [("ryu_apps.core.template_errors", "TemplateError"),
       ("ipaddress", "IPv4Network"), ("ipaddress", "IPv6Network")])


class _ModelUnpickler(pickle.Unpickler):
    """Unpickles plain data and the template model's classes, nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("builtins", "getattr"):
            return _enum_member     # how pickle names an enum member; nothing else
        if (module, name) not in ALLOWED_CLASSES:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a message")
        return super().find_class(module, name)


def _enum_member(cls: type, name: str) -> object:
    if isinstance(cls, enum.EnumMeta) and isinstance(name, str) and name in cls.__members__:
        return cls[name]
    raise pickle.UnpicklingError(f"getattr({cls!r}, {name!r}) is not allowed in a message")


def encode(message: object) -> bytes:
    """One framed message."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> object:
    """The message of a frame's body (raises pickle.UnpicklingError on anything else)."""
    return _ModelUnpickler(io.BytesIO(body)).load()


def read_message(stream: BinaryIO) -> Optional[object]:
    """The next message on a blocking stream, or None at its end."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    return decode(body) if len(body) == size else None


class _Worker:
    """Answers load requests; remembers what it sent for each library path."""

    def __init__(self, out: BinaryIO) -> None:
        from ryu_apps.loaders.library_files import LoadCache

        self.out = out
        self.caches: Dict[str, LoadCache] = {}
        self.sent: Dict[str, Tuple[int, object]] = {}   # path -> (generation, library)
        self.generation = 0
        self.stage: Tuple[str, str] = ("starting", "")

    def send(self, message: object) -> None:
        self.out.write(encode(message))
        self.out.flush()

    def progress(self, stage: str, source: str) -> None:
        self.stage = (stage, source)
        self.send((stage, source))

    def load(self, path: str, base: int) -> None:
        from ryu_apps.core.template_validation import TemplateValidationError
        from ryu_apps.loaders.library_files import LoadCache, load_documents

        cache = self.caches.setdefault(path, LoadCache())
        self.stage = ("starting", path)
        try:
            library, _ = load_documents(path, cache, on_progress=self.progress)
        except TemplateValidationError as failure:
            self.send(("errors", failure.errors))
            return
        generation, previous = self.sent.get(path, (0, None))
        if base == 0 or base != generation:
            previous = None
        elif library is previous:
            self.send(("unchanged",))
            return
        self.generation += 1
        self.send(_library_message(library, previous, self.generation, base if previous else 0))
        self.sent[path] = (self.generation, library)


def _library_message(library, previous, generation: int, base: int) -> tuple:
    """The templates that are new or changed since ``previous`` (all if None)."""
    templates: List[object] = [t for template_id, t in library.templates.items()
                               if previous is None or previous.get(template_id) is not t]
    removed = ([] if previous is None else
               [template_id for template_id in previous.templates
                if template_id not in library.templates])
    return ("library", generation, base, templates, removed, library.default_idle_timeout,
            tuple(library.sources), dict(library.rule_lines))


def _load_request(message: object) -> Tuple[str, int]:
    """``(path, base)`` of a ``("load", path, base)`` request."""
    if isinstance(message, tuple) and len(message) == 3 and message[0] == "load" \
            and isinstance(message[1], str) and isinstance(message[2], int):
        return message[1], message[2]
    raise ValueError(f"expected a request ('load', path, base), got {message!r:.200}")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve requests on stdin until it closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mb", type=int, default=0,
                        help="address-space limit of this process (0: none)")
    args = parser.parse_args(argv)
    if args.memory_mb > 0:
        import resource
        limit = args.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    requests, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr   # nothing but messages may reach the parent's pipe
    worker = _Worker(out)
    while True:
        request = read_message(requests)
        if request is None:
            return 0
        path, base = _load_request(request)
        try:
            worker.load(path, base)
        except Exception as error:   # MemoryError, RecursionError, a bug: all are answers
            stage, source = worker.stage
            what = f"{type(error).__name__}: {str(error)[:200]}".rstrip(": ")
            worker.caches.pop(path, None)
            worker.sent.pop(path, None)
            try:
                worker.send(("failed", stage, source, what))
            except MemoryError:
                return 3


if __name__ == "__main__":
    sys.exit(main())
