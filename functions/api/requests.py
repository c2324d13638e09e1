"""What an API request may carry and what a route may answer (plain Python, no AWS).

Query parameters and JSON bodies are checked here, each error naming the field at fault, so a
bad request is a 400 the client can act on and never a 500. A route's service answers a plain
dict (200 JSON), an `Answer` (another status), a `Download` (a file's bytes), a `Document`
(another format) or a `Redirect` (a pre-signed link); functions.api.handler maps each to HTTP.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from functions.api.keys import ApiKey
from functions.api.scope import Caller


class ApiError(Exception):
    """An answer other than success, with a stable `code` (and the field at fault, if any);
    `retry_after`: whole seconds the caller should wait, sent as Retry-After (429, 503)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.retry_after = retry_after


class QueryError(ApiError):
    """A query parameter the route cannot take; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(400, "bad_parameter", message, field)


class BodyError(ApiError):
    """A JSON body the route cannot take; `field` names the member at fault ("body" for the
    whole document)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(400, "bad_field", message, field)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request, as a route's service sees it."""

    caller: Caller
    key: ApiKey
    query: dict[str, str]
    body: dict[str, Any] | None = None  # the JSON object a write sent; None for reads


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Download:
    content: bytes
    content_type: str  # e.g. "text/csv; charset=utf-8"
    filename: str


@dataclass(frozen=True, slots=True)
class Document:
    """An answer in another format than JSON (a switch's dialect: FreeSWITCH's XML)."""

    content: str
    content_type: str  # e.g. "text/xml"


@dataclass(frozen=True, slots=True)
class Redirect:
    """303 to a pre-signed link: large files never pass through the function."""

    url: str
    expires_in: int  # seconds


def check_params(params: Mapping[str, Sequence[str]], allowed: Sequence[str]) -> dict[str, str]:
    """Each allowed parameter's single value; QueryError for an unknown or repeated one (a
    misspelt `limt` silently ignored would hand back a page the client did not ask for)."""
    values = {}
    for name in sorted(params):
        if name not in allowed:
            raise QueryError(name, f"unknown query parameter {name!r}")
        given = params[name]
        if len(given) != 1:
            raise QueryError(name, f"give {name!r} once")
        values[name] = given[0]
    return values


def parse_day(query: Mapping[str, str], name: str, default: dt.date | None = None) -> dt.date:
    """A `YYYY-MM-DD` query parameter; QueryError naming it when missing or malformed."""
    text = query.get(name)
    if text is None:
        if default is None:
            raise QueryError(name, f"{name!r} is required (YYYY-MM-DD)")
        return default
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise QueryError(name, f"{name!r} must be a date YYYY-MM-DD, not {text!r}") from None


def parse_choice(query: Mapping[str, str], name: str, choices: Sequence[str], default: str) -> str:
    value = query.get(name, default)
    if value not in choices:
        raise QueryError(name, f"{name!r} must be one of {', '.join(choices)}")
    return value


def body_members(
    body: Mapping[str, Any] | None, allowed: Sequence[str], required: Sequence[str] = ()
) -> dict[str, Any]:
    """The body's members, checked against the route's list: BodyError names an unknown
    member (a misspelt `credit_limt` silently ignored would leave the limit unchanged) or a
    missing one."""
    if not isinstance(body, Mapping):
        raise BodyError("body", "send a JSON object")
    for name in body:
        if name not in allowed:
            raise BodyError(str(name), f"unknown member {name!r}")
    for name in required:
        if name not in body:
            raise BodyError(name, f"{name!r} is required")
    return dict(body)


def body_decimal(body: Mapping[str, Any], name: str, *, places: int = 6) -> Decimal:
    """A money member as a decimal string ("250.00"), never a JSON number: a float would
    already have lost digits before it reached us."""
    value = body[name]
    if not isinstance(value, str):
        raise BodyError(name, f'{name!r} must be a decimal string such as "250.00"')
    try:
        if not re.fullmatch(rf"-?[0-9]{{1,12}}(\.[0-9]{{1,{places}}})?", value):
            raise InvalidOperation
        return Decimal(value)
    except InvalidOperation:
        raise BodyError(
            name, f"{name!r} must be a decimal with at most {places} places, not {value!r}"
        ) from None


def body_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body[name]
    if not isinstance(value, bool):
        raise BodyError(name, f"{name!r} must be true or false")
    return value


def body_choice(body: Mapping[str, Any], name: str, choices: Sequence[str]) -> str:
    value = body[name]
    if value not in choices:
        raise BodyError(name, f"{name!r} must be one of {', '.join(choices)}")
    return value
