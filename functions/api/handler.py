"""The API routes' edge: every request authenticated here, in `serve`, then one call of the
pure core (functions.api.scope, functions.api.paging) and one store read, mapped to JSON.

Errors are JSON `{"code", "message"[, "field"]}` with a stable code: 401 for a missing or
refused key (the store's Unauthorized code), 403 `forbidden` for a role that may not do it,
404 `not_found` for an account outside the caller's view (whether it exists elsewhere is never
told), 400 `bad_parameter` / `bad_field` naming the query parameter or body member at fault,
429 `rate_limited` (with Retry-After) beyond the key's request rate (functions/api/throttle.py;
on AWS API Gateway's usage plan answers it first, in the same shape: functions/api/usagekeys.py).
Authentication comes first: a stranger learns nothing about the parameters either.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from chalice import Response
from chalice.app import Request

from functions.api import scope, throttle
from functions.api.keys import NAMED_ONLY, ApiKey
from functions.api.paging import page, parse_limit
from functions.api.requests import (
    Answer,
    ApiError,
    BodyError,
    Call,
    Document,
    Download,
    Redirect,
    check_params,
    forbidden,
)
from functions.api.signin import SESSION_PREFIX
from functions.api.usagekeys import BASIC_CHALLENGE, BEARER, SEND_BASIC, basic_key
from functions.shared.ids import check_name
from functions.store import accounts, apikeys, users

# `Bearer <token>`, as the authorizer reads it too (the usage key it names: usagekeys.py)
_BEARER = BEARER
_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}

Result = dict[str, Any] | Answer | Download | Document | Redirect
Work = Callable[[Call], Result]
# Each key's request rate (functions/api/throttle.py): this process's buckets, 429 beyond.
LIMITER = throttle.Limiter(*throttle.limits_from(os.environ), clock=time.monotonic)


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer with the API's own headers (never cached), and any `headers` beside."""
    return Response(body=body, status_code=status, headers={**_HEADERS, **(headers or {})})


def authenticate(request: Request, *, basic: bool = False) -> ApiKey:
    """The key the request presents (`Authorization: Bearer <key>`), checked against the
    caller's address, or a signed-in user's session token (POST /v1/sessions) standing for
    the key of the user's role and account; ApiError 401 otherwise. `basic`: the key may
    also come as HTTP Basic (user the key id, password the key: usagekeys.basic_key), for
    the routes of usagekeys.BASIC_ROUTES only, as the authorizer allows it."""
    send = SEND_BASIC if basic else "send the API key as Authorization: Bearer <key>"
    header = (request.headers or {}).get("authorization")
    if not header:
        raise ApiError(401, "missing_key", send)
    found = _BEARER.fullmatch(header)
    if found is not None:
        token = found.group(1)
    else:
        try:
            token = basic_key(header) if basic else None
        except ValueError as error:
            raise ApiError(401, "malformed_key", str(error)) from None
        if token is None:
            raise ApiError(401, "malformed_key", send)
    identity = (request.context or {}).get("identity") or {}
    try:
        if token.startswith(SESSION_PREFIX):  # a portal user's session (sign-in)
            return users.authenticate(token)
        return apikeys.authenticate(token, ip=identity.get("sourceIp"))
    except apikeys.Unauthorized as refused:
        raise ApiError(401, refused.code, str(refused)) from None


def _body(request: Request) -> dict[str, Any]:
    try:
        body = request.json_body
    except Exception:  # Chalice raises its BadRequestError for text that is not JSON
        raise BodyError("body", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BodyError("body", "send a JSON object")
    return body


def _answer(result: Result) -> Response:
    if isinstance(result, Answer):
        return json_response(result.status, result.body, result.headers)
    if isinstance(result, Download):
        disposition = f'attachment; filename="{result.filename}"'
        headers = {"Content-Type": result.content_type, "Content-Disposition": disposition}
        # Text goes out as text: a bytes body of a type API Gateway does not treat as binary
        # would not survive the Lambda response's JSON.
        text = result.content_type.startswith("text/")
        content = result.content.decode() if text else result.content
        return Response(content, status_code=200, headers={**_HEADERS, **headers})
    if isinstance(result, Document):
        content_type = {"Content-Type": result.content_type}
        return Response(result.content, status_code=200, headers={**_HEADERS, **content_type})
    if isinstance(result, Redirect):
        body = {"url": result.url, "expires_in": result.expires_in}
        return json_response(303, body, {"Location": result.url})
    return json_response(200, result)


def serve(
    request: Request,
    work: Work,
    *,
    params: tuple[str, ...] = (),
    roles: frozenset[str] | None = None,
    body: bool = False,
    basic: bool = False,
) -> Response:
    """Authenticate, check the role, the query parameters and the JSON body, run `work`, map
    its result. Authentication comes first: a stranger learns nothing about the parameters.
    `basic`: HTTP Basic is taken too and a 401 challenges for it (usagekeys.BASIC_ROUTES)."""
    try:
        key = authenticate(request, basic=basic)
        LIMITER.check(key.tenant, key.key_id)
        if roles is not None and key.role not in roles:
            raise forbidden(f"a {key.role} key may not do this")
        if roles is None and key.role in NAMED_ONLY:  # a switch key: POST /v1/authz only
            raise forbidden(f"a {key.role} key may only ask for authorizations")
        raw = request.query_params
        given = {name: raw.getlist(name) for name in raw} if raw else {}
        query = check_params(given, params)
        caller = scope.Caller(key.tenant, key.key_id, key.role, key.account)
        return _answer(work(Call(caller, key, query, _body(request) if body else None)))
    except ApiError as error:
        challenge = BASIC_CHALLENGE if basic else "Bearer"
        extra = {"WWW-Authenticate": challenge} if error.status == 401 else None
        if error.retry_after is not None:  # 429 rate_limited, 503 unavailable
            extra = {"Retry-After": str(error.retry_after)}
        answer = {"code": error.code, "message": error.message}
        if error.field is not None:
            answer["field"] = error.field
        return json_response(error.status, answer, extra)


def _visible_account_and_balance(
    caller: scope.Caller, account_id: str, *, balance: bool
) -> tuple[scope.AccountLike, tuple[int, int] | None]:
    """The account if the caller may see it (404 otherwise, whether it exists or not) and,
    if asked, its balance: one read of the account, the caller's own and the balance
    (a BatchGetItem); the tenant's accounts only for an account deeper in a reseller's tree."""
    try:
        check_name("account", account_id)
    except ValueError:  # no account has such an id: the same 404 as any other
        raise ApiError(404, "not_found", f"no account {account_id!r}") from None
    names = [account_id, *([caller.account] if caller.account else [])]
    known, money = accounts.get_accounts_and_balance(
        caller.tenant, names, account_id if balance else None
    )
    decided, found = scope.find_known(caller, account_id, known)
    if not decided:
        found = scope.find_visible(caller, account_id, accounts.list_accounts(caller.tenant))
    if found is None:
        raise ApiError(404, "not_found", f"no account {account_id!r}")
    return found, money


def _visible_account(caller: scope.Caller, account_id: str) -> scope.AccountLike:
    return _visible_account_and_balance(caller, account_id, balance=False)[0]


def me(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any]:
        key = call.key
        return {
            "key_id": key.key_id,
            "tenant": key.tenant,
            "role": key.role,
            "account": key.account,
            "allow_ips": list(key.allow_ips),
        }

    return serve(request, work)


def list_accounts(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any]:
        caller = call.caller
        limit = parse_limit(call.query.get("limit"))
        if caller.role == "customer" and caller.account:  # its own account, read alone
            known, _ = accounts.get_accounts_and_balance(caller.tenant, [caller.account])
            found = scope.find_known(caller, caller.account, known)[1]  # always decided
            seen = [found] if found is not None else []
        else:
            seen = scope.visible(caller, accounts.list_accounts(caller.tenant))
        items, next_cursor = page(seen, lambda a: a.account, limit, call.query.get("cursor"))
        return {
            "items": [scope.account_view(a, caller) for a in items],
            "next_cursor": next_cursor,
        }

    return serve(request, work, params=("limit", "cursor"))


def get_account(request: Request, account_id: str) -> Response:
    def work(call: Call) -> dict[str, Any]:
        return scope.account_view(_visible_account(call.caller, account_id), call.caller)

    return serve(request, work)


def get_balance(request: Request, account_id: str) -> Response:
    def work(call: Call) -> dict[str, Any]:
        account, money = _visible_account_and_balance(call.caller, account_id, balance=True)
        assert money is not None
        return scope.balance_view(account, *money)

    return serve(request, work)


def openapi(request: Request) -> Response:
    from functions.api.openapi import document

    return serve(request, lambda call: document())
