"""The template library in force, and its reloads (a failed one keeps the previous)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.loaders.library_files import LoadCache, load_library

if TYPE_CHECKING:
    from ryu_apps.loaders.library_check import LibraryChecker


class LibraryKeeper:
    """Holds the library in force; a failed reload keeps the previous one.

    With a ``checker`` (:class:`~ryu_apps.loaders.library_check.LibraryChecker`) the
    files are read and validated in a separate process: a crash or a timeout
    there is a refused reload, not a dead controller. Without one they are
    read here (tools, tests).
    """

    def __init__(self, path: str | os.PathLike,
                 checker: Optional["LibraryChecker"] = None) -> None:
        self.path = path
        self.checker = checker
        self._cache = LoadCache()
        self._current: TemplateLibrary = self._load(None)

    @property
    def current(self) -> TemplateLibrary:
        """The library in force."""
        return self._current

    def reload(self) -> TemplateLibrary:
        """Load the library again; on failure raise and keep the current one."""
        library = self._load(self._current)
        self._current = library
        return library

    def candidate(self) -> TemplateLibrary:
        """Load the library again without putting it in force (see :meth:`accept`);
        raise TemplateValidationError when it is invalid."""
        return self._load(self._current)

    def accept(self, library: TemplateLibrary) -> None:
        """Put a library that :meth:`candidate` returned in force."""
        self._current = library

    def _load(self, current: Optional[TemplateLibrary]) -> TemplateLibrary:
        if self.checker is not None:
            return self.checker.load(self.path, current)
        return load_library(self.path, self._cache)
