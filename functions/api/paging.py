"""Query parameters and pages of the API's list routes (plain Python, no AWS).

A page is cut from the caller's whole view, ordered by id; the cursor is the last id of the
page before, base64url-encoded so clients treat it as opaque. Resuming *after* an id (not at
an offset) keeps a walk stable when accounts are added or removed meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from functions.api.requests import QueryError

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR_PREFIX = "a1:"  # a version, so the format can change without misreading old cursors
_MAX_CURSOR = 512


def parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor resumes after; QueryError for anything this API did not hand out."""
    try:
        if len(cursor) > _MAX_CURSOR or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
            raise ValueError
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.startswith(_CURSOR_PREFIX) or len(text) == len(_CURSOR_PREFIX):
        raise QueryError("cursor", "cursor is not one this API handed out")
    return text.removeprefix(_CURSOR_PREFIX)


def page(
    items: Sequence[T], key: Callable[[T], str], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """(the page, the next cursor or None on the last page) of items sorted by `key`."""
    ordered = sorted(items, key=key)
    if cursor is not None:
        after = decode_cursor(cursor)
        ordered = [i for i in ordered if key(i) > after]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return chosen, encode_cursor(key(chosen[-1])) if more else None
