"""Read and validate template libraries in a separate process, with a time limit.

A hostile or broken library file must not stop the controller: a parser
crash (a segfault in libyaml), a runaway allocation or endless work happens
in the worker process (:mod:`ryu_apps.loaders.library_worker`), never here. The
controller waits for its answer without blocking: it only ever waits in
``select.select`` and ``os.read``, which ryu-manager's eventlet monkey patch
makes green, so other green threads run meanwhile; without a hub (the CLI)
the same calls simply block.

A crash, a timeout or a worker failure becomes a
:class:`~ryu_apps.core.template_validation.TemplateValidationError` naming the
file the worker was reading, e.g. ``templates/x.yaml: the library checker
crashed (signal 11, SIGSEGV) while reading this file``; the caller keeps its
library. The next load starts a new worker.

The worker keeps its parse cache, so a reload re-reads only changed files,
and sends only the templates that changed since the library the caller holds
(templates that did not change keep their objects, as with an in-process
reload).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Dict, List, Optional, Tuple

from ryu_apps.app.framework import cfg

from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.core.template_validation import TemplateError, TemplateValidationError
from ryu_apps.loaders.library_worker import HEADER, decode, encode

CONF = cfg.CONF
CONF.register_opts([
    cfg.FloatOpt("library_check_timeout", default=120.0,
                 help="Seconds the library checker process may take to read and validate "
                      "the template library (a cold 10k-template library takes 20-30 s)."),
    cfg.IntOpt("library_check_memory_mb", default=4096,
               help="Address-space limit (MiB) of the library checker process; 0: none."),
], group="dynprov")

DEFAULT_TIMEOUT = 120.0
DEFAULT_MEMORY_MB = 4096
#: Largest message accepted from the worker.
MAX_MESSAGE_BYTES = 1 << 30
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
#: Where the worker was, by the stage of its last progress message.
_WHEN = {"starting": "before it read any file", "reading": "while reading this file",
         "validating": "while validating the library"}


class _Stopped(Exception):
    """The worker is gone (crashed, exited) or was stopped (timeout)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _fd(pipe: Optional[IO[bytes]]) -> int:
    """The descriptor of one of the worker's pipes (it is started with both)."""
    if pipe is None:
        raise _Stopped("has no pipe to talk through")
    return pipe.fileno()


def _close_pipes(process: subprocess.Popen) -> None:
    for pipe in (process.stdin, process.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass


class LibraryChecker:
    """A worker process that reads and validates libraries; started when first needed."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT,
                 memory_mb: int = DEFAULT_MEMORY_MB,
                 command: Optional[List[str]] = None) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.command = command or [sys.executable, "-m", "ryu_apps.loaders.library_worker",
                                   "--memory-mb", str(memory_mb)]
        self._process: Optional[subprocess.Popen] = None
        self._sent: Dict[str, Tuple[int, TemplateLibrary]] = {}   # path -> generation, lib
        self._busy = False

    @classmethod
    def from_options(cls, options) -> "LibraryChecker":
        """A checker configured by the ``[dynprov]`` options."""
        return cls(options.library_check_timeout, options.library_check_memory_mb)

    def __enter__(self) -> "LibraryChecker":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def load(self, path, current: Optional[TemplateLibrary] = None) -> TemplateLibrary:
        """The validated library at ``path``; ``current`` is the one the caller holds.

        Raises TemplateValidationError: the library's errors, or why the check
        could not finish (crash, timeout, another check running).
        """
        origin = str(path)
        if self._busy:
            raise _refusal(origin, "another library check is still running; try again "
                                   "when it has finished")
        self._busy = True
        try:
            return self._load(origin, current)
        finally:
            self._busy = False

    def close(self) -> None:
        """Stop the worker (it would also exit when this process does)."""
        process, self._process = self._process, None
        self._sent.clear()
        if process is None:
            return
        _close_pipes(process)
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # -- one request ---------------------------------------------------------------
    def _load(self, origin: str, current: Optional[TemplateLibrary]) -> TemplateLibrary:
        generation, sent = self._sent.get(origin, (0, None))
        base = generation if current is not None and sent is current else 0
        stage, source = "starting", origin
        deadline = time.monotonic() + self.timeout
        try:
            process = self._worker()
            _write_all(_fd(process.stdin), encode(("load", origin, base)))
            while True:
                reply = self._read(process, deadline)
                if reply[0] in ("reading", "validating"):
                    stage, source = reply
                    continue
                break
        except _Stopped as stopped:
            self._discard()
            raise _refusal(source, f"the library checker {stopped.why} {_WHEN[stage]}; "
                                   "nothing was loaded") from None
        except OSError as error:
            self._discard()
            raise _refusal(origin, f"cannot run the library checker: {error}") from None
        return self._answer(origin, reply, current)

    def _answer(self, origin: str, reply: tuple,
                current: Optional[TemplateLibrary]) -> TemplateLibrary:
        kind = reply[0]
        if kind == "errors":
            raise TemplateValidationError(reply[1])
        if kind == "unchanged" and current is not None:
            return current
        if kind == "library":
            _, generation, base, templates, removed, idle_timeout, sources, lines = reply
            merged = dict(current.templates) if base and current is not None else {}
            for template_id in removed:
                merged.pop(template_id, None)
            merged.update((t.template_id, t) for t in templates)
            library = TemplateLibrary(merged, idle_timeout, tuple(sources), dict(lines))
            self._sent[origin] = (generation, library)
            return library
        if kind == "failed":
            _, stage, source, what = reply
            hint = (f" (its memory limit is {self.memory_mb} MiB: option "
                    "library_check_memory_mb)" if what.startswith("MemoryError") else "")
            raise _refusal(source or origin, f"the library checker failed "
                                             f"{_WHEN.get(stage, '')}: {what}{hint}")
        self._discard()
        raise _refusal(origin, f"the library checker answered {kind!r}, which is not an "
                               "answer; it was stopped")

    # -- the worker process -----------------------------------------------------------
    def _worker(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._discard()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        return self._process

    def _discard(self) -> None:
        """Kill the worker (if any) after a failure: the next load starts afresh."""
        process, self._process = self._process, None
        self._sent.clear()
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            _close_pipes(process)

    def _read(self, process: subprocess.Popen, deadline: float) -> tuple:
        """The worker's next message; _Stopped if it ends or the deadline passes."""
        fd = _fd(process.stdout)
        header = self._read_exact(process, fd, HEADER.size, deadline)
        (size,) = HEADER.unpack(header)
        if size > MAX_MESSAGE_BYTES:
            raise _Stopped(f"sent a message of {size:,} bytes")
        try:
            message = decode(self._read_exact(process, fd, size, deadline))
        except Exception as error:   # a worker that sends garbage is stopped, not trusted
            raise _Stopped(f"sent an unreadable message ({type(error).__name__})") from None
        if not isinstance(message, tuple) or not message:
            raise _Stopped("sent an unreadable message")
        return message

    def _read_exact(self, process: subprocess.Popen, fd: int, size: int,
                    deadline: float) -> bytes:
        data = bytearray()
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                raise _Stopped(f"did not finish within {self.timeout:g} s and was stopped")
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            try:
                chunk = os.read(fd, min(size - len(data), 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise _Stopped(_how_it_ended(process))
            data += chunk
        return bytes(data)


def _how_it_ended(process: subprocess.Popen) -> str:
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        return "closed its output"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"crashed (signal {-code}, {name})"
    return f"exited with status {code}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def _refusal(source: str, message: str) -> TemplateValidationError:
    return TemplateValidationError([TemplateError(source, None, "", message)])
