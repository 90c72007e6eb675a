"""Cursor pagination for list endpoints.

A list endpoint takes `limit` (1..200, default 50) and `cursor` (absent for the first page) and answers
`{"items": [...], "next_cursor": "..." | null}`. Clients treat the cursor as opaque: pass back the
`next_cursor` of the previous answer until it is null.

Inside, a cursor is url-safe base64 of a small JSON object, one of two shapes:
- keyset `{"k": [sort values of the last item]}`: used where the service can continue after a key
  (stable under inserts and deletes, and cheap at any depth);
- offset `{"o": N}`: used where a service function only takes limit/offset. New rows inserted before
  the position while a client pages can shift a page by a row; that is the documented price of
  reusing the same service functions the pages use.

Each endpoint fetches `limit + 1` rows, so `next_cursor` is null exactly on the last page. A cursor
that does not decode is a 422 naming the `cursor` field, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from services.errors import InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR_CHARS = 512
MAX_OFFSET = 10_000_000  # far beyond any real list; keeps crafted cursors inside the database's integers


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null on the last")


@dataclass(frozen=True)
class PageRequest:
    """What the client asked for: how many, and where to continue (offset and/or keyset)."""

    limit: int
    offset: int = 0
    after: tuple[Any, ...] | None = None


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The payload of a cursor; InvalidInput(field="cursor") when it is not one of ours."""
    bad = InvalidInput("This cursor is not valid; start again without one.", field="cursor")
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(payload, dict):
        raise bad
    if "o" in payload and not (
        isinstance(payload["o"], int) and not isinstance(payload["o"], bool) and payload["o"] >= 0
    ):
        raise bad
    if "k" in payload and not isinstance(payload["k"], list):
        raise bad
    if "o" not in payload and "k" not in payload:
        raise bad
    return payload


def page_params(
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page"),
    cursor: str | None = Query(None, max_length=_MAX_CURSOR_CHARS, description="`next_cursor` of the previous page"),
) -> PageRequest:
    """FastAPI dependency: the page a client asked for."""
    if not cursor:
        return PageRequest(limit=limit)
    payload = decode_cursor(cursor)
    after = tuple(payload["k"]) if "k" in payload else None
    return PageRequest(limit=limit, offset=int(payload.get("o", 0)), after=after)


def offset_page(rows: Sequence[T], req: PageRequest) -> tuple[list[T], str | None]:
    """Given up to `limit + 1` rows fetched at `req.offset`, the page and the next offset cursor."""
    items = list(rows[: req.limit])
    more = len(rows) > req.limit
    return items, encode_cursor({"o": req.offset + req.limit}) if more else None


def keyset_page(rows: Sequence[T], req: PageRequest, key: Callable[[T], Sequence[Any]]) -> tuple[list[T], str | None]:
    """Given up to `limit + 1` rows after `req.after`, the page and a cursor holding the last item's key."""
    items = list(rows[: req.limit])
    more = len(rows) > req.limit
    return items, encode_cursor({"k": list(key(items[-1]))}) if more and items else None
