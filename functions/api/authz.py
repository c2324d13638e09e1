"""POST /v1/authz (an edge, like handler.py): a switch's START, INTERIM or STOP of one call.

The body is checked here (each 400 `bad_field` names the member at fault), then
functions.authz.service answers: a deny is a 200 with `allow` false and a `reason`; HTTP
errors mean the request itself was refused. Keys of role `switch` (tenant-wide, nothing else
readable) and `tenant-admin` may ask.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from chalice import Response
from chalice.app import Request

from functions.api import dialects
from functions.api.dialects import DIALECTS
from functions.api.handler import json_response, serve
from functions.api.requests import (
    ApiError,
    BodyError,
    Call,
    Document,
    body_choice,
    body_members,
    parse_choice,
)
from functions.authz import service
from functions.rate.authorization import EVENTS
from functions.shared.ids import check_name
from functions.store import ConflictError, accounts, budget, holds

logger = logging.getLogger(__name__)

ROLES = frozenset({"switch", "tenant-admin"})
RETRY_STOP_SECONDS = 5  # Retry-After of a STOP the store could not record


class Unavailable(ApiError):
    """503 `unavailable` with Retry-After (handler.serve sets the header)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "unavailable", message, retry_after=RETRY_STOP_SECONDS)


MEMBERS = (
    "event",
    "call_id",
    "account",
    "trunk",
    "switch",
    "caller",
    "callee",
    "time",
    "answered_seconds",
)
MAX_ANSWERED = 7 * 86_400
_NUMBER_CHARS = 64


def _text(body: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BodyError(name, f"{name!r} is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _NUMBER_CHARS:
        raise BodyError(name, f"{name!r} must be text of 1-{_NUMBER_CHARS} characters")
    if not value.isprintable():
        raise BodyError(name, f"{name!r} must be printable text")
    return value.strip()


def _checked(check, body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(f"{name!r} must be a string")
        return check(value)
    except ValueError as error:
        raise BodyError(name, str(error)) from None


def _time(body: dict[str, Any]) -> dt.datetime | None:
    value = body.get("time")
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError
        return moment.astimezone(dt.UTC)
    except ValueError:
        raise BodyError(
            "time", "'time' must be an ISO 8601 time with its offset, e.g. 2026-12-05T10:00:00Z"
        ) from None


def _answered(body: dict[str, Any], event: str) -> int:
    value = body.get("answered_seconds")
    if value is None:
        if event == "interim":
            raise BodyError("answered_seconds", "'answered_seconds' is required for an interim")
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ANSWERED:
        raise BodyError(
            "answered_seconds", f"'answered_seconds' must be a whole number 0-{MAX_ANSWERED}"
        )
    return value


def parse(tenant: str, raw: dict[str, Any] | None) -> service.Request:
    body = body_members(raw, MEMBERS, required=("event", "call_id"))
    event = body_choice(body, "event", EVENTS)
    call_id = _checked(holds.check_call_id, body, "call_id")
    account = _checked(lambda v: check_name("account", v), body, "account")
    trunk = _checked(accounts.check_trunk_key, body, "trunk")
    switch = _checked(lambda v: check_name("switch", v), body, "switch")
    if account is None and trunk is None:
        raise BodyError("account", "give the 'account' or the 'trunk' the call came in on")
    if account is not None and trunk is not None:
        raise BodyError("trunk", "give the 'account' or the 'trunk', not both")
    if switch is not None and trunk is None:
        raise BodyError("switch", "'switch' narrows a 'trunk': give the trunk too")
    callee = _text(body, "callee", required=event != "stop")
    return service.Request(
        tenant=tenant,
        event=event,
        call_id=call_id or "",
        account=account,
        trunk=trunk,
        switch=switch,
        caller=_text(body, "caller") or "",
        callee=callee or "",
        at=_time(body),
        answered_seconds=_answered(body, event),
    )


def authorize(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any] | Document:
        dialect = parse_choice(call.query, "dialect", DIALECTS, "json")
        wanted = parse(call.caller.tenant, call.body)
        try:
            # Within the time budget; a store that cannot answer in time gives the tenant's
            # fallback decision as a 200 (`degraded` says why), in the switch's dialect: a 503
            # would leave the switch to its own error path, and Kamailio's and FreeSWITCH's
            # configurations act on a decision (allow with a cap, or deny with a SIP cause).
            answer = service.authorize_in_time(wanted)
        except service.StoreUnavailable as error:
            # A STOP decides nothing: it releases the hold, for the record. Not recorded,
            # it is a 503 the switch may retry; one never retried costs nothing either, the
            # rated CDR (or the hold's expiry) releases the hold (docs/authorization.md).
            raise Unavailable(str(error)) from None
        except service.TrunkError as error:
            raise BodyError("trunk", str(error)) from None
        except ConflictError as error:  # the account's money kept moving under the call
            raise ApiError(409, "conflict", str(error)) from None
        if dialect == "json" or wanted.event == "stop":  # a STOP's answer is for the record
            return answer
        content_type, body = dialects.render(
            answer, dialect, callee=wanted.callee, call_id=wanted.call_id
        )
        return (
            json.loads(body) if content_type == "application/json" else Document(body, content_type)
        )

    return _within_budget(lambda: serve(request, work, params=("dialect",), roles=ROLES, body=True))


def _within_budget(respond: Callable[[], Response]) -> Response:
    """The whole request, its key's authentication too, within the authorization's time
    budget (functions/store/budget.py): short timeouts, few attempts, one deadline."""
    with budget.within(budget.authz_limits()):
        try:
            return respond()
        except Exception as error:
            # Only the key's authentication gets here (the service answers a store that
            # cannot answer in time with the tenant's fallback): no tenant is known, so no
            # decision either; the switch's own fallback applies.
            reason = budget.unavailable(error)
            if reason is None:
                raise
            logger.error("authz key not checked: %s", reason, extra={"error": repr(error)})
            body = {"code": "unavailable", "message": f"the key could not be checked ({reason})"}
            return json_response(503, body, {"Retry-After": str(RETRY_STOP_SECONDS)})


# --- FreeSWITCH's own request: mod_xml_curl's dialplan lookup, POST /v1/authz/freeswitch ---
# mod_xml_curl posts the channel's REQUEST_PARAMS event as form fields (often a few KB: every
# variable_*, the SDP among them) and sends the key as HTTP Basic (usagekeys.basic_key). The
# form becomes the same START as POST /v1/authz (dialects.parse_freeswitch_form, then parse),
# and the answer is always the dialplan document, a denial included (a hangup with its cause).
# An HTTP error (400, 401, 403, 409...) is JSON: xml_curl logs it and falls through to the next
# binding, then to the static dialplan (docs/authorization.md: make that context fail closed).
FORM_BYTES = 256 * 1024
FORM_FIELDS = 2_000
FIELD_CHARS = 16_384  # any field: an SDP fits
READ_CHARS = 256  # a field the authorization reads (dialects.FORM_FIELDS, the lookup's own)
_READ = frozenset(
    {name for names in dialects.FORM_FIELDS.values() for name in names}
    | {"section", "Event-Date-Timestamp", "Hunt-Context", "Caller-Context"}
)
_CONTEXT = re.compile(r"[A-Za-z0-9._-]{1,64}")


def form_fields(raw: bytes | str | None) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded body, each within its size; a field
    the authorization reads at most once (two destinations in one lookup are no request of
    FreeSWITCH's: which one would be priced?); BodyError naming the field (or `body`).

    A repeat of a field nothing reads is let through (its first value kept): it changes no
    answer, and refusing it would send every call of a switch whose version repeats one (its
    own hostname/section beside the event's headers) to the static dialplan."""
    data = raw.encode() if isinstance(raw, str) else raw or b""
    if len(data) > FORM_BYTES:
        raise BodyError("body", f"the form is over {FORM_BYTES} bytes")
    try:
        parsed = parse_qs(
            data.decode(), keep_blank_values=True, strict_parsing=bool(data),
            errors="strict", max_num_fields=FORM_FIELDS,
        )  # fmt: skip
    except UnicodeDecodeError:
        raise BodyError("body", "the form is not UTF-8 text") from None
    except ValueError:
        raise BodyError(
            "body", f"send application/x-www-form-urlencoded fields, at most {FORM_FIELDS}"
        ) from None
    fields = {}
    for name, values in parsed.items():
        read = name in _READ
        if read and len(values) > 1:
            raise BodyError(name, f"the field {name!r} is given {len(values)} times")
        limit = READ_CHARS if read else FIELD_CHARS
        if any(len(value) > limit for value in values):
            raise BodyError(name, f"the field {name!r} is over {limit} characters")
        fields[name] = values[0]
    return fields


def freeswitch_request(tenant: str, fields: dict[str, str]) -> service.Request:
    """The START of a dialplan lookup: parse_freeswitch_form's body through `parse` (a
    BodyError names the form field the member came from), the account before the trunk (a
    channel variable set on purpose beats the From host), the trunk before the source IP."""
    sources = dict(dialects.FORM_FIELDS)
    try:
        body = dialects.parse_freeswitch_form(fields)
        ip = body.pop("ip", None)
        if "account" in body:
            body.pop("trunk", None)
        elif "trunk" not in body and ip is not None:
            body["trunk"], sources["trunk"] = ip, sources["ip"]
        return parse(tenant, body)
    except BodyError as error:
        given = [
            name for name in sources.get(error.field or "", ()) if fields.get(name, "").strip()
        ]
        if not given:
            raise
        raise BodyError(given[0], f"{given[0]!r}: {error.message}") from None


def _context(fields: dict[str, str]) -> str:
    """The dialplan context being looked up: the answer's context must be it."""
    for name in ("Hunt-Context", "Caller-Context"):
        value = fields.get(name)
        if value:
            if not _CONTEXT.fullmatch(value):
                raise BodyError(name, f"{name!r} must be a context name (letters, digits, ._-)")
            return value
    return "public"


def authorize_freeswitch(request: Request) -> Response:
    def work(call: Call) -> Document:
        fields = form_fields(request.raw_body)
        wanted = freeswitch_request(call.caller.tenant, fields)
        options = {"context": _context(fields)}
        try:
            answer = service.authorize_in_time(wanted)
        except service.StoreUnavailable as error:  # a START never raises it
            raise Unavailable(str(error)) from None
        except service.TrunkError as error:
            raise BodyError("trunk", str(error)) from None
        except ConflictError as error:
            raise ApiError(409, "conflict", str(error)) from None
        content_type, body = dialects.render(
            answer, "freeswitch", callee=wanted.callee, call_id=wanted.call_id, options=options
        )
        return Document(body, content_type)

    return _within_budget(lambda: serve(request, work, roles=ROLES, basic=True))
