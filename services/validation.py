"""Pydantic validation errors in words a person filling a form understands.

`InvalidInput.from_pydantic` keeps pydantic's wording ("Input should be greater than or equal to 1");
forms want "must be at least 1" and a summary that names fields by their labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import ValidationError

from services.errors import InvalidInput

_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^String should have at least 1 character$"), "is required"),
    (re.compile(r"^String should have at least (\d+) characters?$"), r"needs at least \1 characters"),
    (re.compile(r"^String should have at most (\d+) characters?$"), r"must be at most \1 characters"),
    (re.compile(r"^List should have at least 1 item after validation, not 0$"), "choose at least one"),
    (re.compile(r"^List should have at least (\d+) items after validation.*$"), r"choose at least \1"),
    (re.compile(r"^List should have at most (\d+) items after validation.*$"), r"choose at most \1"),
    (re.compile(r"^Input should be greater than or equal to (\S+)$"), r"must be at least \1"),
    (re.compile(r"^Input should be less than or equal to (\S+)$"), r"must be at most \1"),
    (re.compile(r"^Input should be a valid integer.*$"), "must be a whole number"),
    (re.compile(r"^Input should be a valid datetime.*$"), "must be a date and time"),
    (re.compile(r"^Field required$"), "is required"),
]


def friendly(message: str) -> str:
    for pattern, replacement in _REWRITES:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


def invalid_input(exc: ValidationError, labels: Mapping[str, str]) -> InvalidInput:
    """An InvalidInput whose field messages read plainly and whose summary names the fields by label."""
    base = InvalidInput.from_pydantic(exc)
    errors = {field: friendly(msg) for field, msg in base.errors.items()}
    if len(errors) == 1:
        field, msg = next(iter(errors.items()))
        summary = f"{labels.get(field, field)}: {msg}"
    else:
        summary = "Please check: " + ", ".join(labels.get(f, f) for f in errors) + "."
    return InvalidInput(summary, errors=errors)
