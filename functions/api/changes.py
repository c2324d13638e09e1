"""What the API's write routes and rates may do for a caller (plain Python, no AWS).

Who may write: a tenant-admin key anywhere in its tenant (suppliers included), a
reseller-admin key below its own account (its subtree, never the account itself); every other
role is refused before its body is read. A body is checked member by member here, each error
naming the member, so the store only ever sees values it accepts; the store still decides what
the account's history forbids (409).

Rates: the caller's own account by default; `account=` reads another one in the caller's view
(scope.visible: a reseller its subtree, suppliers only for the carrier's roles). Tenant-level
keys have no account of their own and must name one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from functions.api.requests import (
    ApiError,
    BodyError,
    QueryError,
    body_bool,
    body_choice,
    body_decimal,
    body_members,
    forbidden,
)
from functions.api.scope import AccountLike, Caller, find_visible
from functions.rate.deck import ALWAYS, NEVER
from functions.rate.timeline import instant_text
from functions.shared.ids import check_name
from functions.shared.money import AMOUNT_SCALE, RATE_SCALE, to_units, units_to_str

WRITE_ROLES = frozenset({"tenant-admin", "reseller-admin"})
CARRIER_WRITER = "tenant-admin"  # the carrier's own writer: suppliers, fraud suspensions
CREATE_MEMBERS = ("account", "kind", "parent", "prepaid", "credit_limit", "currency")
PATCH_MEMBERS = ("credit_limit", "prepaid", "status", "reason", "parent", "kind", "currency")
STATUSES = ("active", "suspended")
KINDS = ("customer", "reseller", "supplier")  # supplier: the carrier's keys alone
FRAUD_PREFIX = "fraud:"  # the status reason of a suspension by the fraud rules
MAX_REASON = 1024


def not_found(account_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no account {account_id!r}")


def _kind(caller: Caller, body: Mapping[str, Any]) -> str:
    """Below the carrier the choice is customer or reseller: a reseller's key is never told
    that suppliers exist, not even in an error message."""
    return body_choice(body, "kind", KINDS if caller.role == CARRIER_WRITER else KINDS[:2])


def _money(body: Mapping[str, Any], name: str) -> int:
    """A non-negative money member, exact: micro-units."""
    value = body_decimal(body, name, places=AMOUNT_SCALE)  # at most 6 places: exact
    if value < 0:
        raise BodyError(name, f"{name!r} must not be negative")
    return to_units(body[name], AMOUNT_SCALE)


def _currency(body: Mapping[str, Any]) -> str:
    value = body["currency"]
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise BodyError("currency", "'currency' must be a 3-letter ISO code such as EUR")
    return value


def _parent(caller: Caller, body: Mapping[str, Any], seen: list[AccountLike]) -> AccountLike | None:
    """The parent named (None: the tenant's top level, for a tenant-level key only): a
    reseller in the caller's view. Unknown and hidden are the same answer."""
    name = body["parent"]
    if name is None:
        if not caller.tenant_level:
            raise BodyError("parent", "'parent' must be an account of your own subtree")
        return None
    if not isinstance(name, str):
        raise BodyError("parent", "'parent' must be an account id or null")
    found = find_visible(caller, name, seen)
    if found is None:
        raise BodyError("parent", f"no account {name!r} to put accounts under")
    if found.kind != "reseller":
        raise BodyError("parent", f"parent {name!r} is a {found.kind}, not a reseller")
    return found


@dataclass(frozen=True, slots=True)
class NewAccount:
    account: str
    kind: str
    parent: str | None
    prepaid: bool
    credit_limit_micro: int
    currency: str | None  # None: the tenant's


def new_account(
    caller: Caller, body: Mapping[str, Any] | None, accounts: Iterable[AccountLike]
) -> NewAccount:
    """A POST /v1/accounts body, checked: BodyError naming the member at fault."""
    members = body_members(body, CREATE_MEMBERS, required=("account", "kind"))
    name = members["account"]
    try:
        check_name("account", name)
    except ValueError as error:
        raise BodyError("account", str(error)) from None
    kind = _kind(caller, members)
    seen = list(accounts)
    if "parent" in members:
        parent = _parent(caller, members, seen)
    elif caller.tenant_level:
        parent = None
    else:  # a reseller's new account goes under its own by default
        parent = find_visible(caller, caller.account, seen)
        if parent is None or parent.kind != "reseller":
            raise forbidden(f"account {caller.account!r} is not a reseller: it has no accounts")
    currency = _currency(members) if "currency" in members else None
    if currency is None and parent is not None:
        currency = parent.currency  # the parent's, as a reseller sells in its own currency
    return NewAccount(
        account=name,
        kind=kind,
        parent=None if parent is None else parent.account,
        prepaid=body_bool(members, "prepaid") if "prepaid" in members else False,
        credit_limit_micro=_money(members, "credit_limit") if "credit_limit" in members else 0,
        currency=currency,
    )


@dataclass(frozen=True, slots=True)
class AccountPatch:
    changes: dict[str, Any]  # functions.store.accounts.update_account's fields
    reason: str | None


def account_patch(
    caller: Caller,
    target: AccountLike,
    body: Mapping[str, Any] | None,
    accounts: Iterable[AccountLike],
) -> AccountPatch:
    """A PATCH /v1/accounts/{id} body, checked, for an account the caller sees."""
    members = body_members(body, PATCH_MEMBERS)
    if not caller.tenant_level and target.account == caller.account:
        raise ApiError(403, "own_account", "a reseller changes the accounts below it, not its own")
    if not set(members) - {"reason"}:
        raise BodyError("body", f"nothing to change: give one of {', '.join(PATCH_MEMBERS[:-1])}")
    changes: dict[str, Any] = {}
    if "credit_limit" in members:
        changes["credit_limit_micro"] = _money(members, "credit_limit")
    if "prepaid" in members:
        changes["prepaid"] = body_bool(members, "prepaid")
    if "status" in members:
        changes["status"] = body_choice(members, "status", STATUSES)
    if "kind" in members:
        changes["kind"] = _kind(caller, members)
    if "currency" in members:
        changes["currency"] = _currency(members)
    if "parent" in members:
        parent = _parent(caller, members, list(accounts))
        changes["parent"] = None if parent is None else parent.account
    reason = members.get("reason")
    if reason is not None:
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise BodyError("reason", f"'reason' must be a text of at most {MAX_REASON} characters")
        reason = reason.strip() or None
    if changes.get("status", target.status) != target.status and reason is None:
        raise BodyError("reason", "'reason' is required when the status changes")
    return AccountPatch(changes, reason)


def status_guard(caller: Caller) -> Callable[[AccountLike, AccountLike], None]:
    """Checked on the account as the change's transaction reads it: a fraud suspension is
    lifted by the carrier alone."""

    def guard(current: AccountLike, wanted: AccountLike) -> None:
        fraud = (current.status_reason or "").startswith(FRAUD_PREFIX)
        lifted = current.status == "suspended" and wanted.status == "active"
        if fraud and lifted and caller.role != CARRIER_WRITER:
            raise ApiError(
                403,
                "fraud_suspension",
                f"account {current.account!r} was suspended by the fraud rules: only the "
                "carrier may resume it",
                "status",
            )

    return guard


def rates_account(
    caller: Caller, query: Mapping[str, str], accounts: Iterable[AccountLike]
) -> AccountLike:
    """The account whose rates GET /v1/rates reads."""
    name = query.get("account", caller.account)
    if name is None:
        raise QueryError("account", "a tenant-level key names the account: account=ID")
    found = find_visible(caller, name, accounts)
    if found is None:
        raise not_found(name)
    return found


def _money_e8(units: int) -> str:
    return units_to_str(units, RATE_SCALE)


def _instant(seconds: int) -> str | None:
    """An entry's bound as a deck writes it; None for open (since always, never ends)."""
    return None if seconds <= ALWAYS or seconds >= NEVER else instant_text(seconds)


def rate_items(live: pa.Table) -> list[dict[str, Any]]:
    """The entries in force (functions.rate.timeline.in_force) as the API shows them: every
    amount an exact decimal string with 8 places (rates per minute, fees per call)."""
    return [
        {
            "prefix": row["prefix"],
            "origin": row["origin"] or None,
            "destination": row["destination"],
            "rate": _money_e8(row["rate_e8"]),
            "connect_fee": _money_e8(row["connect_fee_e8"]),
            "increment": f"{row['increment_first']}/{row['increment_next']}",
            "minimum_charge": _money_e8(row["minimum_charge_e8"]),
            "free_seconds": row["free_seconds"],
            "surcharge": _money_e8(row["surcharge_e8"]),
            "effective_from": _instant(row["effective_from"]),
            "effective_to": _instant(row["effective_to"]),
            "status": "closed" if row["closed"] else "open",
        }
        for row in live.to_pylist()
    ]


def rate_key(item: Mapping[str, Any]) -> str:
    """The paging order: by prefix, then origin (a prefix is digits: '#' sorts before)."""
    return f"{item['prefix']}#{item['origin'] or ''}"


def deck_version_view(version: Any, *, created: bool) -> dict[str, Any]:
    """A deck version as the API shows it: what it did, never where the lake keeps it."""
    uploaded = version.uploaded_at
    return {
        "account": version.account,
        "plan": version.plan,
        "version": version.version,
        "created": created,
        "mode": version.mode,
        "currency": version.currency,
        "effective": None if version.effective is None else _instant(version.effective),
        "rows": version.rows,
        "timeline_rows": version.timeline_rows,
        "added": version.added,
        "unchanged": version.unchanged,
        "superseded": version.superseded,
        "end_dated": version.end_dated,
        "closed": version.closed,
        "base": version.base,
        "sha256": version.sha256,
        "uploaded_at": None if uploaded is None else uploaded.isoformat().replace("+00:00", "Z"),
    }


def deck_error(error: Any) -> dict[str, Any]:
    """An InvalidDeckError as the 400 answer: its first error's line and field, and each
    error (at most 20)."""
    errors = list(error.errors)
    first = errors[0] if errors else None
    return {
        "code": "bad_deck",
        "message": str(first) if first is not None else str(error),
        "field": first.field if first is not None else "body",
        "line": first.line if first is not None else None,
        "errors": [
            {"line": e.line, "field": e.field, "value": e.value, "message": e.message}
            for e in errors[:20]
        ],
    }
