"""Money held by live calls (real-time authorization): the ledger table, next to the balances.

A hold is checked against the same money the ledger moves, so it lives in the same table and
its condition reads the balance item itself. Key layout (pk is the tenant, as in ledger.py):
    pk={tenant}  sk=BALANCE#{account}           + reserved (sum of the account's holds, micro-units)
                                                + hold_changes (bumped by every hold write)
    pk={tenant}  sk=HOLD#{account}#{call_id}    account, call_id, amount, max_duration,
                                                expires_at (epoch s), hold_ttl (DynamoDB TTL)
    pk={tenant}  sk=AUTHZ#settings              max_duration (the tenant's cap, seconds)

Placing a hold is ONE TransactWriteItems of two items:
  1. Put HOLD#... under `attribute_not_exists(pk)`: a retried start finds its hold (idempotent
     per call id) and gets the same answer;
  2. Update BALANCE#... `ADD reserved :amount, hold_changes :one` under
     `reserved <= :room AND balance >= :balance`, where `:balance` is the balance the caller
     read and `:room` = that balance (+ the credit limit, postpaid) - :amount. DynamoDB has no
     arithmetic in conditions, so the sum is moved to the value side: the condition still
     says "reserved + amount <= balance (+ credit)" and is evaluated by DynamoDB against the
     item as it is at commit. Concurrent starts do not conflict with each other while their
     sum fits (ADD is atomic); a balance that fell since the read (a posting) fails the
     condition and the caller re-reads. Two calls starting at once therefore share the money,
     and the sum of the holds never exceeds balance (+ credit limit).
`extend` (interim) moves a hold's amount the same way (money condition when it grows, and
`amount = :old` on the hold); `release` deletes the hold and gives its amount back, in one
transaction. `release_calls` (a rated file's calls) is one Query of the tenant's holds and
one transaction per account with released holds.

Expiry (a call whose STOP never came): `expires_at` is when the hold stops counting; the
DynamoDB TTL attribute `hold_ttl` is one day later, so DynamoDB removes the item only after
a sweep had the chance to give its amount back. `sweep` recomputes `reserved` from the
account's live holds (expires_at > now), deletes expired ones, and commits only if
`hold_changes` did not move since it was read (no ABA: the counter only grows), so it
also repairs a counter DynamoDB's TTL got ahead of. The service sweeps an account whenever
an answer is limited by money while the account holds money (the only case where a stale
hold could change an answer): no extra read on the common path.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from functions.shared.settings import settings
from functions.store import ConflictError, check_name, client

DEFAULT_MAX_DURATION = 10_800  # 3 h: the longest call a start may allow, unless set per tenant
MAX_DURATION_LIMIT = 86_400
TTL_DELAY = 86_400  # DynamoDB's TTL removes an expired hold one day after it stopped counting
_CALL_ID = re.compile(r"[\x21-\x22\x24-\x7e]{1,256}")  # printable ASCII, no space, no '#'
_ATTEMPTS = 12
_BATCH = 98  # holds per release transaction (+ the balance item <= 100 items)


def _table() -> str:
    return settings().ledger_table


def _key(tenant: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": tenant}, "sk": {"S": sk}}


def check_call_id(call_id: object) -> str:
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise ValueError(
            f"invalid call id {str(call_id)[:60]!r}: 1-256 printable ASCII characters, "
            "no space or '#'"
        )
    return call_id


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an amount is an integer number of micro-units, not {value!r}")
    return value


class MoneyMoved(ConflictError):
    """The balance or the reserved total moved since it was read: read again and requote."""


@dataclass(frozen=True, slots=True)
class Hold:
    tenant: str
    account: str
    call_id: str
    amount_micro: int
    max_duration_seconds: int
    expires_at: int  # epoch seconds: the hold counts until then
    created: bool = True  # False: it was there before (a retried start)


@dataclass(frozen=True, slots=True)
class Money:
    """An account's balance item as the holds see it, and its tenant's cap."""

    balance_micro: int
    reserved_micro: int
    changes: int
    has_balance: bool  # the balance attribute exists (the conditions differ when it does not)
    max_duration_seconds: int  # the tenant's cap
    hold: Hold | None = None  # the call's own hold, if read_money was given a call id


def _hold(tenant: str, item: dict[str, Any], *, created: bool) -> Hold:
    return Hold(
        tenant=tenant,
        account=item["account"]["S"],
        call_id=item["call_id"]["S"],
        amount_micro=int(item["amount"]["N"]),
        max_duration_seconds=int(item["max_duration"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        created=created,
    )


def read_money(tenant: str, account: str, call_id: str | None = None) -> Money:
    """The account's balance, its reserved total, the tenant's cap and (given a call id) the
    call's hold: one BatchGetItem."""
    check_name("tenant", tenant)
    check_name("account", account)
    table = _table()
    keys = [_key(tenant, f"BALANCE#{account}"), _key(tenant, "AUTHZ#settings")]
    if call_id is not None:
        keys.append(_key(tenant, _hold_sk(account, call_id)))
    request = {table: {"Keys": keys, "ConsistentRead": True}}
    found: list[dict[str, Any]] = []
    while request:
        answer = client("dynamodb").batch_get_item(RequestItems=request)
        found += answer.get("Responses", {}).get(table, [])
        request = answer.get("UnprocessedKeys") or {}
    by_sk = {item["sk"]["S"]: item for item in found}
    item = by_sk.get(f"BALANCE#{account}", {})
    cap = by_sk.get("AUTHZ#settings", {}).get("max_duration", {}).get("N")
    return Money(
        balance_micro=int(item.get("balance", {}).get("N", "0")),
        reserved_micro=int(item.get("reserved", {}).get("N", "0")),
        changes=int(item.get("hold_changes", {}).get("N", "0")),
        has_balance="balance" in item,
        max_duration_seconds=int(cap) if cap is not None else DEFAULT_MAX_DURATION,
        hold=(
            _hold(tenant, by_sk[_hold_sk(account, call_id)], created=False)
            if call_id is not None and _hold_sk(account, call_id) in by_sk
            else None
        ),
    )


def set_max_duration(tenant: str, seconds: int) -> int:
    """The tenant's cap on the duration a start may allow (1 s to 24 h)."""
    check_name("tenant", tenant)
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError("a max duration is a whole number of seconds")
    if not 1 <= seconds <= MAX_DURATION_LIMIT:
        raise ValueError(f"invalid max duration {seconds}: 1 to {MAX_DURATION_LIMIT} seconds")
    client("dynamodb").put_item(
        TableName=_table(),
        Item={**_key(tenant, "AUTHZ#settings"), "max_duration": {"N": str(seconds)}},
    )
    return seconds


def get_max_duration(tenant: str) -> int:
    """The tenant's cap on the duration a start may allow (DEFAULT_MAX_DURATION unless set)."""
    item = (
        client("dynamodb")
        .get_item(
            TableName=_table(),
            Key=_key(check_name("tenant", tenant), "AUTHZ#settings"),
            ConsistentRead=True,
        )
        .get("Item")
        or {}
    )
    cap = item.get("max_duration", {}).get("N")
    return int(cap) if cap is not None else DEFAULT_MAX_DURATION


def get_hold(tenant: str, account: str, call_id: str) -> Hold | None:
    item = (
        client("dynamodb")
        .get_item(
            TableName=_table(),
            Key=_key(check_name("tenant", tenant), _hold_sk(account, call_id)),
            ConsistentRead=True,
        )
        .get("Item")
    )
    return _hold(tenant, item, created=False) if item else None


def _hold_sk(account: str, call_id: str) -> str:
    return f"HOLD#{check_name('account', account)}#{check_call_id(call_id)}"


def list_holds(tenant: str, account: str | None = None) -> list[Hold]:
    """The holds of an account (or of the whole tenant), expired ones included, by key."""
    check_name("tenant", tenant)
    prefix = "HOLD#" if account is None else f"HOLD#{check_name('account', account)}#"
    query = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :t AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":t": {"S": tenant}, ":p": {"S": prefix}},
        "ConsistentRead": True,
    }
    pages = client("dynamodb").get_paginator("query").paginate(**query)
    return [_hold(tenant, item, created=False) for page in pages for item in page.get("Items", [])]


def _money_update(
    tenant: str, account: str, delta: int, money: Money | None, credit_micro: int
) -> dict[str, Any]:
    """The balance item's ADD of `delta` to reserved; with `money`, under the condition that
    reserved + delta <= balance (as read, or more) + credit."""
    update: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(tenant, f"BALANCE#{account}"),
        "UpdateExpression": "ADD reserved :d, hold_changes :one",
        "ExpressionAttributeValues": {":d": {"N": str(delta)}, ":one": {"N": "1"}},
    }
    if money is not None:
        room = money.balance_micro + credit_micro - delta
        values = update["ExpressionAttributeValues"]
        values[":room"] = {"N": str(room)}
        reserved = "(attribute_not_exists(reserved) OR reserved <= :room)"
        if money.has_balance:
            values[":b"] = {"N": str(money.balance_micro)}
            update["ConditionExpression"] = f"{reserved} AND balance >= :b"
        else:
            update["ConditionExpression"] = f"{reserved} AND attribute_not_exists(balance)"
        if room < 0:  # nothing can fit (attribute_not_exists(reserved) would let it pass)
            raise MoneyMoved(f"no room left for {delta} micro-units on {account!r}")
    return {"Update": update}


def _transact(items: list[dict[str, Any]]) -> list[str] | None:
    """None if committed; else the cancellation codes per item ("None" for items that were
    fine). Conflicts and throttling are retried here."""
    dynamodb = client("dynamodb")
    for attempt in range(_ATTEMPTS):
        try:
            dynamodb.transact_write_items(TransactItems=items)
            return None
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "TransactionCanceledException":
                reasons = [
                    r.get("Code", "None") for r in error.response.get("CancellationReasons") or []
                ]
                if "ConditionalCheckFailed" in reasons:
                    return reasons
                if not any(r in ("TransactionConflict", "ThrottlingError") for r in reasons):
                    raise
            elif code not in ("TransactionInProgressException", "ThrottlingException"):
                raise
        time.sleep(min(0.5, 0.01 * 2**attempt) * random.random())
    raise ConflictError(f"hold transaction still conflicting after {_ATTEMPTS} attempts")


def place(
    tenant: str,
    account: str,
    call_id: str,
    amount_micro: int,
    max_duration_seconds: int,
    expires_at: int,
    *,
    money: Money,
    credit_micro: int,
) -> Hold:
    """Hold `amount_micro` for a call, once per call id (see the module's doc).

    The existing hold (created False) if the call id holds money already; MoneyMoved if the
    money read in `money` no longer leaves room for the amount (read again and requote).
    """
    amount = _int(amount_micro)
    if amount <= 0:
        raise ValueError(f"a hold is a positive amount, not {amount}")
    sk = _hold_sk(account, call_id)
    item = {
        **_key(check_name("tenant", tenant), sk),
        "account": {"S": account},
        "call_id": {"S": call_id},
        "amount": {"N": str(amount)},
        "max_duration": {"N": str(int(max_duration_seconds))},
        "expires_at": {"N": str(int(expires_at))},
        "hold_ttl": {"N": str(int(expires_at) + TTL_DELAY)},
    }
    put = {
        "Put": {
            "TableName": _table(),
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    reasons = _transact([put, _money_update(tenant, account, amount, money, credit_micro)])
    if reasons is None:
        return _hold(tenant, item, created=True)
    if reasons[0] == "ConditionalCheckFailed":
        existing = get_hold(tenant, account, call_id)
        if existing is not None:
            return existing
    raise MoneyMoved(f"the money of {account!r} moved; read it again")


def extend(
    tenant: str,
    hold: Hold,
    amount_micro: int,
    max_duration_seconds: int,
    expires_at: int,
    *,
    money: Money,
    credit_micro: int,
) -> Hold:
    """Set a live hold's amount and expiry (an interim); MoneyMoved if the hold or the money
    changed since read (read both again)."""
    amount = _int(amount_micro)
    if amount <= 0:
        raise ValueError(f"a hold is a positive amount, not {amount}")
    delta = amount - hold.amount_micro
    update = {
        "Update": {
            "TableName": _table(),
            "Key": _key(tenant, _hold_sk(hold.account, hold.call_id)),
            "UpdateExpression": "SET amount = :a, max_duration = :m, expires_at = :e, "
            "hold_ttl = :ttl",
            "ConditionExpression": "amount = :old AND expires_at = :olde",
            "ExpressionAttributeValues": {
                ":a": {"N": str(amount)},
                ":m": {"N": str(int(max_duration_seconds))},
                ":e": {"N": str(int(expires_at))},
                ":ttl": {"N": str(int(expires_at) + TTL_DELAY)},
                ":old": {"N": str(hold.amount_micro)},
                ":olde": {"N": str(hold.expires_at)},
            },
        }
    }
    guarded = money if delta > 0 else None
    reasons = _transact([update, _money_update(tenant, hold.account, delta, guarded, credit_micro)])
    if reasons is not None:
        raise MoneyMoved(f"the hold of call {hold.call_id!r} or its account's money moved")
    return Hold(
        tenant, hold.account, hold.call_id, amount, int(max_duration_seconds), int(expires_at)
    )


def release(tenant: str, account: str, call_id: str) -> Hold | None:
    """Delete a call's hold and give its amount back; None if it holds nothing (released
    before, swept, or never held: a repeated STOP changes nothing)."""
    for _ in range(_ATTEMPTS):
        hold = get_hold(tenant, account, call_id)
        if hold is None:
            return None
        if _release_batch(tenant, account, [hold]) is None:
            return hold
    raise ConflictError(f"the hold of call {call_id!r} kept changing")


def _release_batch(tenant: str, account: str, holds: list[Hold]) -> list[str] | None:
    deletes = [
        {
            "Delete": {
                "TableName": _table(),
                "Key": _key(tenant, _hold_sk(account, h.call_id)),
                "ConditionExpression": "amount = :a AND expires_at = :e",
                "ExpressionAttributeValues": {
                    ":a": {"N": str(h.amount_micro)},
                    ":e": {"N": str(h.expires_at)},
                },
            }
        }
        for h in holds
    ]
    total = sum(h.amount_micro for h in holds)
    return _transact([*deletes, _money_update(tenant, account, -total, None, 0)])


def release_calls(tenant: str, call_ids: set[str]) -> list[Hold]:
    """Release the holds of these calls (a rated file's), whatever their account: one Query of
    the tenant's holds, then one transaction per account (and per 98 holds) with any."""
    return release_holds(tenant, [h for h in list_holds(tenant) if h.call_id in call_ids])


def release_holds(tenant: str, wanted: list[Hold]) -> list[Hold]:
    """Release these holds (as listed): one transaction per account and per 98 holds; a hold
    changed meanwhile (an interim, a STOP) is released as it now is, or skipped if gone."""
    by_account: dict[str, list[Hold]] = {}
    for hold in wanted:
        by_account.setdefault(hold.account, []).append(hold)
    released: list[Hold] = []
    for account, holds in sorted(by_account.items()):
        for i in range(0, len(holds), _BATCH):
            batch = holds[i : i + _BATCH]
            if _release_batch(tenant, account, batch) is None:
                released += batch
            else:  # a STOP or an interim raced this batch: one at a time
                released += [h for h in batch if release(tenant, account, h.call_id)]
    return released


def sweep(tenant: str, account: str, now: int) -> bool:
    """Make `reserved` the sum of the account's live holds (expires_at > now) and delete up to
    98 expired holds; True if anything changed. Commits only if no hold of the account was
    written meanwhile (`hold_changes` as read); False without writing otherwise."""
    money = read_money(tenant, account)
    holds = list_holds(tenant, account)
    expired = [h for h in holds if h.expires_at <= now][:_BATCH]
    gone = {h.call_id for h in expired}
    reserved = sum(h.amount_micro for h in holds if h.call_id not in gone)
    if not expired and reserved == money.reserved_micro:
        return False
    deletes = [
        {
            "Delete": {
                "TableName": _table(),
                "Key": _key(tenant, _hold_sk(account, h.call_id)),
                "ConditionExpression": "expires_at = :e",
                "ExpressionAttributeValues": {":e": {"N": str(h.expires_at)}},
            }
        }
        for h in expired
    ]
    values = {":r": {"N": str(reserved)}, ":one": {"N": "1"}}
    if money.changes:
        condition = "hold_changes = :v"
        values[":v"] = {"N": str(money.changes)}
    else:
        condition = "attribute_not_exists(hold_changes)"
    update = {
        "Update": {
            "TableName": _table(),
            "Key": _key(tenant, f"BALANCE#{account}"),
            "UpdateExpression": "SET reserved = :r ADD hold_changes :one",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
    }
    return _transact([*deletes, update]) is None
