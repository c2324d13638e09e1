"""POST /v1/sessions: a portal user signs in with user, password and TOTP code and gets a
short-lived session token, which the API then takes as it takes an API key (handler.serve).

The one route besides Stripe's webhook that needs no key. Every refusal is 401
`bad_credentials`, whatever the reason (unknown user, wrong password, wrong or replayed code,
disabled or locked user); attempts are counted per caller address by the API's rate limiter.
"""

from __future__ import annotations

from typing import Any

from chalice import Response
from chalice.app import Request

from functions.api import handler
from functions.api.requests import ApiError, BodyError, body_members
from functions.store import users

MEMBERS = ("user", "password", "totp")


def _refusal(error: ApiError) -> Response:
    answer: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.field is not None:
        answer["field"] = error.field
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if error.retry_after is not None:
        headers = {"Retry-After": str(error.retry_after)}
    return handler.json_response(error.status, answer, headers)


def create_session(request: Request) -> Response:
    identity = (request.context or {}).get("identity") or {}
    try:
        handler.LIMITER.check("", f"signin:{identity.get('sourceIp')}")
        body = body_members(handler._body(request), MEMBERS, required=MEMBERS)
        for name in MEMBERS:
            if not isinstance(body[name], str):
                raise BodyError(name, f"{name!r} must be a string")
        try:
            session, token = users.sign_in(body["user"], body["password"], body["totp"])
        except users.BadCredentials:
            raise ApiError(401, "bad_credentials", "wrong user, password or code") from None
    except ApiError as error:
        return _refusal(error)
    expires = session.expires_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return handler.json_response(201, {"token": token, "expires_at": expires})
