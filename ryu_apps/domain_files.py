"""Read the mobility-domains file and the template library of each domain."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import yaml

from ryu_apps.core.domains import DomainError, DomainMap, build_domains
from ryu_apps.library_files import LibraryKeeper


def load_domains(path: str | None) -> Tuple[DomainMap, Dict[str, LibraryKeeper]]:
    """The domain map, and a library keeper per domain that names its own library.

    ``path`` None or empty: one implicit domain with the main library. Library
    paths in the file are relative to the file's directory.
    """
    if not path:
        return DomainMap(()), {}
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text())
    except OSError as error:
        raise DomainError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise DomainError(f"{path}: not valid YAML: {error}") from None
    domains = build_domains(str(path), document)
    keepers = {}
    for domain in domains.domains:
        if domain.templates is not None:
            keepers[domain.name] = LibraryKeeper(file.parent / domain.templates)
    return domains, keepers
