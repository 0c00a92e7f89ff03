"""Located template errors and the exception that lists every one of them (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

#: Errors reported; validation stops after this many.
MAX_ERRORS = 1000


@dataclass(frozen=True)
class TemplateError:
    """One problem: where (file, template, field path) and what is wrong."""

    source: str
    template: str | None
    field: str
    message: str

    def __str__(self) -> str:
        return ": ".join(p for p in (self.source, self.template, self.field, self.message) if p)


class TemplateValidationError(ValueError):
    """A library failed validation; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[TemplateError]) -> None:
        self.errors: List[TemplateError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))



def capped(errors: Sequence[TemplateError], origin: str) -> List[TemplateError]:
    """At most MAX_ERRORS errors, and a last one saying validation stopped there."""
    if len(errors) <= MAX_ERRORS:
        return list(errors)
    return [*errors[:MAX_ERRORS],
            TemplateError(origin, None, "", f"validation stopped after {MAX_ERRORS:,} errors; "
                                            "fix these and validate again")]
