"""Read the mobility-domains file and the template library of each domain.

The file is read under the limits of :mod:`ryu_apps.loaders.safe_yaml` (size,
nesting, aliases); each domain's library through a
:class:`~ryu_apps.loaders.library_files.LibraryKeeper` (with the controller's
library checker when one is given).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Tuple

import yaml

from ryu_apps.core.domains import DomainError, DomainMap, build_domains
from ryu_apps.loaders.library_keeper import LibraryKeeper
from ryu_apps.loaders.safe_yaml import (FastSafeLoader, GuardedComposer, InputProblem, harden,
                                        read_text)

if TYPE_CHECKING:
    from ryu_apps.loaders.library_check import LibraryChecker


class _DomainLoader(GuardedComposer, FastSafeLoader):
    """Safe YAML under the input limits."""


harden(_DomainLoader)


def load_domains(path: str | None, checker: Optional["LibraryChecker"] = None,
                 ) -> Tuple[DomainMap, Dict[str, LibraryKeeper]]:
    """The domain map, and a library keeper per domain that names its own library.

    ``path`` None or empty: one implicit domain with the main library. Library
    paths in the file are relative to the file's directory.
    """
    if not path:
        return DomainMap(()), {}
    file = Path(path)
    try:
        document = yaml.load(read_text(file), Loader=_DomainLoader)  # noqa: S506 (safe)
    except InputProblem as problem:
        line = f"line {problem.line}: " if problem.line else ""
        raise DomainError(f"{path}: {line}{problem}") from None
    except yaml.YAMLError as error:
        raise DomainError(f"{path}: not valid YAML: {error}") from None
    except (RecursionError, ValueError, TypeError, MemoryError) as error:
        raise DomainError(f"{path}: not valid YAML: {type(error).__name__}") from None
    domains = build_domains(str(path), document)
    keepers = {}
    for domain in domains.domains:
        if domain.templates is not None:
            keepers[domain.name] = LibraryKeeper(file.parent / domain.templates, checker)
    return domains, keepers
