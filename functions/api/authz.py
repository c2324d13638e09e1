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
from typing import Any

from chalice import Response
from chalice.app import Request

from functions.api import dialects
from functions.api.dialects import DIALECTS
from functions.api.handler import serve
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
        super().__init__(503, "unavailable", message)
        self.retry_after = RETRY_STOP_SECONDS


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

    # The whole request, its key's authentication too, runs within the authorization's time
    # budget (functions/store/budget.py): short timeouts, few attempts, one deadline.
    with budget.within(budget.authz_limits()):
        try:
            return serve(request, work, params=("dialect",), roles=ROLES, body=True)
        except Exception as error:
            # Only the key's authentication gets here (the service answers a store that
            # cannot answer in time with the tenant's fallback): no tenant is known, so no
            # decision either; the switch's own fallback applies.
            reason = budget.unavailable(error)
            if reason is None:
                raise
            logger.error("authz key not checked: %s", reason, extra={"error": repr(error)})
            body = {"code": "unavailable", "message": f"the key could not be checked ({reason})"}
            headers = {
                "Content-Type": "application/json",
                "Cache-Control": "no-store",
                "Retry-After": str(RETRY_STOP_SECONDS),
            }
            return Response(body=body, status_code=503, headers=headers)
