"""The API's write routes and rates (an edge, like handler.py): accounts created and changed,
an account's deck uploaded, the rates in force read.

Each route authenticates in functions.api.handler.serve, checks the request in the pure
functions.api.changes, then calls the same store service as the CLI (accounts.create_account,
accounts.update_account, decks.upload_deck), whose transaction writes the change and its audit
entry together: the actor is `apikey:<key id>`. The store's refusals map to stable codes: 409
`account_exists`, `parent_cycle`, `change_refused` (the account's history forbids a kind or
currency change) or `conflict` (changed meanwhile); 404 `not_found` for an account outside
the caller's view.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from chalice import Response
from chalice.app import Request

from functions.api import changes
from functions.api.handler import serve
from functions.api.paging import page, parse_limit
from functions.api.requests import Answer, ApiError, BodyError, Call, parse_choice, parse_day
from functions.api.scope import account_view, find_visible
from functions.rate.deck import InvalidDeckError
from functions.rate.timeline import MODES, as_timeline, in_force
from functions.store import ConflictError, NotFoundError, accounts, client, decks, lake

ALL_ROLES = None  # serve: any role (the view decides what it may read)


@functools.cache
def _principal() -> str:
    """The AWS identity the function runs as (one STS call per container)."""
    return client("sts").get_caller_identity()["Arn"]


def _actor(call: Call) -> accounts.Actor:
    return accounts.Actor(by=f"apikey:{call.key.key_id}", principal=_principal())


def _conflict(error: ConflictError, default: str) -> ApiError:
    if isinstance(error, accounts.CycleError):
        return ApiError(409, "parent_cycle", str(error), "parent")
    if isinstance(error, accounts.ChangeRefusedError):
        return ApiError(409, "change_refused", str(error))
    return ApiError(409, default, str(error))


def _visible(call: Call, account_id: str, seen: list) -> Any:
    found = find_visible(call.caller, account_id, seen)
    if found is None:
        raise changes.not_found(account_id)
    return found


def create_account(request: Request) -> Response:
    def work(call: Call) -> Answer:
        caller = call.caller
        wanted = changes.new_account(caller, call.body, accounts.list_accounts(caller.tenant))
        try:
            created = accounts.create_account(
                caller.tenant,
                wanted.account,
                kind=wanted.kind,
                parent=wanted.parent,
                prepaid=wanted.prepaid,
                credit_limit_micro=wanted.credit_limit_micro,
                currency=wanted.currency,
                actor=_actor(call),
            )
        except ConflictError as error:
            raise _conflict(error, "account_exists") from None
        except NotFoundError:  # the parent vanished meanwhile (accounts are never deleted)
            raise BodyError("parent", f"no account {wanted.parent!r}") from None
        except ValueError as error:  # what the store refuses that the checks let through
            raise BodyError("body", str(error)) from None
        location = f"/v1/accounts/{created.account}"
        return Answer(201, account_view(created, caller), {"Location": location})

    return serve(request, work, roles=changes.WRITE_ROLES, body=True)


def update_account(request: Request, account_id: str) -> Response:
    def work(call: Call) -> dict[str, Any]:
        caller = call.caller
        seen = accounts.list_accounts(caller.tenant)
        target = _visible(call, account_id, seen)
        patch = changes.account_patch(caller, target, call.body, seen)
        try:
            updated, _ = accounts.update_account(
                caller.tenant,
                target.account,
                patch.changes,
                actor=_actor(call),
                reason=patch.reason,
                guard=changes.status_guard(caller),
            )
        except ConflictError as error:
            raise _conflict(error, "conflict") from None
        except NotFoundError as error:
            raise BodyError("parent", str(error)) from None
        except ValueError as error:
            raise BodyError("body", str(error)) from None
        return account_view(updated, caller)

    return serve(request, work, roles=changes.WRITE_ROLES, body=True)


def list_rates(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any]:
        caller = call.caller
        limit = parse_limit(call.query.get("limit"))
        seen = accounts.list_accounts(caller.tenant)
        account = changes.rates_account(caller, call.query, seen)
        items: list[dict[str, Any]] = []
        version = account.deck_version
        if version is not None:
            timeline = as_timeline(lake.get_deck(caller.tenant, account.account, version), version)
            now = int(dt.datetime.now(dt.UTC).timestamp())
            items = changes.rate_items(in_force(timeline, now))
        chosen, next_cursor = page(items, changes.rate_key, limit, call.query.get("cursor"))
        return {
            "account": account.account,
            "currency": account.currency,
            "version": version,
            "items": chosen,
            "next_cursor": next_cursor,
        }

    return serve(request, work, params=("account", "limit", "cursor"), roles=ALL_ROLES)


def put_deck(request: Request, account_id: str) -> Response:
    def work(call: Call) -> Answer:
        caller = call.caller
        mode = parse_choice(call.query, "mode", MODES, "full")
        effective = None
        if "effective" in call.query:
            day = parse_day(call.query, "effective")
            effective = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())
        target = _visible(call, account_id, accounts.list_accounts(caller.tenant))
        if not caller.tenant_level and target.account == caller.account:
            raise ApiError(403, "own_account", "a reseller sets the decks of the accounts below it")
        raw = request.raw_body
        data = raw if isinstance(raw, bytes) else (raw or "").encode()
        try:
            uploaded = decks.upload_deck(
                caller.tenant,
                accounts.get_account(caller.tenant, target.account),
                data,
                source=f"api-{call.key.key_id}.csv",
                mode=mode,
                effective=effective,
                actor=_actor(call),
                reason=f"deck upload through the API ({mode})",
            )
        except InvalidDeckError as error:
            return Answer(400, changes.deck_error(error))
        except decks.EmptyDeckError as error:
            return Answer(400, {"code": "bad_deck", "message": str(error), "field": "body"})
        except ConflictError as error:
            raise _conflict(error, "conflict") from None
        view = changes.deck_version_view(uploaded.version, created=uploaded.created)
        return Answer(201 if uploaded.created else 200, view)

    return serve(request, work, params=("mode", "effective"), roles=changes.WRITE_ROLES, body=False)
