"""Money held by live calls (real-time authorization): the ledger table, next to the balances.

A hold is checked against the same money the ledger moves, so it lives in the same table and
its condition reads the balance item itself. Key layout (pk is the tenant, as in ledger.py):
    pk={tenant}  sk=BALANCE#{account}           + reserved (sum of the account's holds, micro-units)
                                                + hold_changes (bumped by every hold write)
                                                + bundle#{bundle}#{YYYY-MM} (sum of the seconds
                                                  the live calls hold of a bundle in a period)
    pk={tenant}  sk=HOLD#{account}#{call_id}    account, call_id, amount, max_duration,
                                                expires_at (epoch s), hold_ttl (DynamoDB TTL),
                                                bundle (its counter key), bundle_seconds
    pk={tenant}  sk=AUTHZ#settings              max_duration (the tenant's cap, seconds)
                                                + routes_version (bumped by every write the
                                                  route list depends on, below)

Placing a hold is ONE TransactWriteItems of two items (three with a bundle, below):
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
A call inside a bundle holds its seconds the same way (`BundleHold`): the balance item's
`bundle#...` ADD under "held + seconds <= included - the counter as read", and a
ConditionCheck on the counter item (files table) that it has counted no more since; a hold of
0 micro-units is a hold (a call wholly inside a bundle, a free destination).
`read_money` reads the period's counters (files.counter_request) in the same BatchGetItem.
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

The routing version: a warm container keeps each tenant's route book (its suppliers with
their deck versions, statuses, targets and blocks, and the routing policy;
functions/rate/route_service.py). Every write that changes what the book is built from --
a supplier's deck upload or rollback (accounts.commit_deck_version), `tollgate routes
target|block|unblock|policy` (functions/store/routes.py), a supplier's status, kind,
currency or rounding (accounts.update_account) -- adds 1 to `routes_version` in the SAME
TransactWriteItems as the change (`routes_bump`), so a reader that sees the new version sees
the change (the book is then rebuilt with consistent reads). `read_money` returns it from the
item the START's BatchGetItem reads anyway: no extra read. A writer whose change is not
transactional must bump AFTER the change is durable, never before it.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from functions.rate.contracts import BUNDLE, Counter, CounterKey
from functions.shared.settings import settings
from functions.store import ConflictError, check_name, client, files

DEFAULT_MAX_DURATION = 10_800  # 3 h: the longest call a start may allow, unless set per tenant
MAX_DURATION_LIMIT = 86_400
TTL_DELAY = 86_400  # DynamoDB's TTL removes an expired hold one day after it stopped counting
_CALL_ID = re.compile(r"[\x21-\x22\x24-\x7e]{1,256}")  # printable ASCII, no space, no '#'
_ATTEMPTS = 12
_BATCH = 98  # holds per release transaction (+ the balance item <= 100 items)
ROUTES_VERSION = "routes_version"  # the AUTHZ#settings attribute (see the module doc)
BUNDLE_HELD = "bundle#"  # + {bundle}#{period}: the balance item's held seconds of a bundle


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
    bundle: CounterKey | None = None  # the account's bundle (in its period) the call uses
    bundle_seconds: int = 0  # how many of its seconds the call holds


@dataclass(frozen=True, slots=True)
class BundleHold:
    """The seconds a call holds of a bundle, and what the bundle had when the quote was made:
    the write holds them only if the other calls' and the counter's still leave room."""

    key: CounterKey
    seconds: int
    included: int  # the bundle's seconds per period
    counted: Counter  # its period's counter as read with the money


def _bundle_attribute(key: CounterKey) -> str:
    """The balance item's attribute that sums the seconds the account's live calls hold of a
    bundle in a period (a top-level number, so concurrent holds ADD to it atomically)."""
    return f"{BUNDLE_HELD}{key.name}#{key.period}"


@dataclass(frozen=True, slots=True)
class Money:
    """An account's balance item as the holds see it, and its tenant's cap."""

    balance_micro: int
    reserved_micro: int
    changes: int
    has_balance: bool  # the balance attribute exists (the conditions differ when it does not)
    max_duration_seconds: int  # the tenant's cap
    hold: Hold | None = None  # the call's own hold, if read_money was given a call id
    # The period's tier and bundle counters read_money was asked for (zero if none counted).
    counters: Mapping[CounterKey, Counter] = field(default_factory=dict)
    # The seconds the account's live calls hold of each bundle and period (those above 0).
    bundle_held: Mapping[CounterKey, int] = field(default_factory=dict)
    routes_version: int = 0  # the tenant's routing version (0: never bumped)

    def bundle_others(self) -> dict[CounterKey, int]:
        """`bundle_held` less what the call's own hold holds: the OTHER live calls' seconds."""
        others = dict(self.bundle_held)
        own = self.hold
        if own is not None and own.bundle is not None and own.bundle in others:
            others[own.bundle] -= own.bundle_seconds
        return others


def _hold(tenant: str, item: dict[str, Any], *, created: bool) -> Hold:
    bundle = item.get("bundle", {}).get("S")
    return Hold(
        tenant=tenant,
        account=item["account"]["S"],
        call_id=item["call_id"]["S"],
        amount_micro=int(item["amount"]["N"]),
        max_duration_seconds=int(item["max_duration"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        created=created,
        bundle=CounterKey.parse(bundle) if bundle else None,
        bundle_seconds=int(item.get("bundle_seconds", {}).get("N", "0")),
    )


def _bundle_held(account: str, item: dict[str, Any]) -> dict[CounterKey, int]:
    held = {}
    for name, value in item.items():
        if name.startswith(BUNDLE_HELD) and int(value["N"]):
            bundle, period = name.removeprefix(BUNDLE_HELD).split("#")
            held[CounterKey(account, BUNDLE, bundle, period)] = int(value["N"])
    return held


def read_money(
    tenant: str,
    account: str,
    call_id: str | None = None,
    counters: Sequence[CounterKey] = (),
) -> Money:
    """The account's balance, its reserved total, the tenant's cap, (given a call id) the
    call's hold and (given their keys) the period's tier and bundle counters from the files
    table: one BatchGetItem over both tables."""
    check_name("tenant", tenant)
    check_name("account", account)
    table = _table()
    keys = [_key(tenant, f"BALANCE#{account}"), _key(tenant, "AUTHZ#settings")]
    if call_id is not None:
        keys.append(_key(tenant, _hold_sk(account, call_id)))
    request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
    counted: dict[str, CounterKey] = {}
    for key in dict.fromkeys(counters):
        files_table, raw = files.counter_request(tenant, key)
        counted[raw["sk"]["S"]] = key
        request.setdefault(files_table, {"Keys": [], "ConsistentRead": True})["Keys"].append(raw)
    found: list[dict[str, Any]] = []
    counter_items: dict[CounterKey, dict[str, Any]] = {}
    while request:
        answer = client("dynamodb").batch_get_item(RequestItems=request)
        for name, items in answer.get("Responses", {}).items():
            if name == table:
                found += items
            else:
                counter_items.update((counted[item["sk"]["S"]], item) for item in items)
        request = answer.get("UnprocessedKeys") or {}
    by_sk = {item["sk"]["S"]: item for item in found}
    item = by_sk.get(f"BALANCE#{account}", {})
    authz = by_sk.get("AUTHZ#settings", {})
    cap = authz.get("max_duration", {}).get("N")
    return Money(
        balance_micro=int(item.get("balance", {}).get("N", "0")),
        reserved_micro=int(item.get("reserved", {}).get("N", "0")),
        changes=int(item.get("hold_changes", {}).get("N", "0")),
        has_balance="balance" in item,
        max_duration_seconds=int(cap) if cap is not None else DEFAULT_MAX_DURATION,
        counters={key: files.counter_of(counter_items.get(key)) for key in counted.values()},
        bundle_held=_bundle_held(account, item),
        routes_version=int(authz.get(ROUTES_VERSION, {}).get("N", "0")),
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
    client("dynamodb").update_item(  # an update: the item's routes_version stays
        TableName=_table(),
        Key=_key(tenant, "AUTHZ#settings"),
        UpdateExpression="SET max_duration = :s",
        ExpressionAttributeValues={":s": {"N": str(seconds)}},
    )
    return seconds


def routes_bump(tenant: str) -> dict[str, Any]:
    """The TransactWriteItems action (boto3's low-level form) that adds 1 to the tenant's
    routing version: put it in the transaction of a change the route list depends on."""
    return {
        "Update": {
            "TableName": _table(),
            "Key": _key(check_name("tenant", tenant), "AUTHZ#settings"),
            "UpdateExpression": "ADD #v :one",
            "ExpressionAttributeNames": {"#v": ROUTES_VERSION},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def _settings(tenant: str) -> dict:
    """The tenant's AUTHZ#settings item as stored ({} when never written)."""
    return (
        client("dynamodb")
        .get_item(
            TableName=_table(),
            Key=_key(check_name("tenant", tenant), "AUTHZ#settings"),
            ConsistentRead=True,
        )
        .get("Item")
        or {}
    )


def get_routes_version(tenant: str) -> int:
    """The tenant's routing version, read on its own (0: never bumped)."""
    return int(_settings(tenant).get(ROUTES_VERSION, {}).get("N", "0"))


def get_max_duration(tenant: str) -> int:
    """The tenant's cap on the duration a start may allow (DEFAULT_MAX_DURATION unless set)."""
    item = _settings(tenant)
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
    tenant: str,
    account: str,
    delta: int,
    money: Money | None,
    credit_micro: int,
    seconds: Mapping[CounterKey, int] | None = None,
    guarded: BundleHold | None = None,
) -> dict[str, Any]:
    """The balance item's ADD of `delta` to reserved; with `money`, under the condition that
    reserved + delta <= balance (as read, or more) + credit. `seconds`: what to ADD to each
    bundle's held seconds; with `guarded`, under the condition that its bundle's held seconds
    + its delta <= what the bundle had left by the counter as read (the counter's own
    ConditionCheck is `_counter_check`'s)."""
    update: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(tenant, f"BALANCE#{account}"),
        "UpdateExpression": "ADD reserved :d, hold_changes :one",
        "ExpressionAttributeValues": {":d": {"N": str(delta)}, ":one": {"N": "1"}},
    }
    conditions = []
    values = update["ExpressionAttributeValues"]
    for i, (key, moved) in enumerate(sorted((seconds or {}).items())):
        if not moved and (guarded is None or key != guarded.key):
            continue
        update.setdefault("ExpressionAttributeNames", {})[f"#b{i}"] = _bundle_attribute(key)
        values[f":b{i}"] = {"N": str(moved)}
        update["UpdateExpression"] += f", #b{i} :b{i}"
        if guarded is not None and key == guarded.key:
            room = guarded.included - guarded.counted.seconds - moved
            if room < 0:
                raise MoneyMoved(f"no room left for {moved} s of bundle {key.name!r}")
            values[f":s{i}"] = {"N": str(room)}
            conditions.append(f"(attribute_not_exists(#b{i}) OR #b{i} <= :s{i})")
    if conditions:
        update["ConditionExpression"] = " AND ".join(conditions)
    if money is not None:
        room = money.balance_micro + credit_micro - delta
        values[":room"] = {"N": str(room)}
        reserved = "(attribute_not_exists(reserved) OR reserved <= :room)"
        if money.has_balance:
            values[":b"] = {"N": str(money.balance_micro)}
            conditions.append(f"{reserved} AND balance >= :b")
        else:
            conditions.append(f"{reserved} AND attribute_not_exists(balance)")
        update["ConditionExpression"] = " AND ".join(conditions)
        if room < 0:  # nothing can fit (attribute_not_exists(reserved) would let it pass)
            raise MoneyMoved(f"no room left for {delta} micro-units on {account!r}")
    return {"Update": update}


def _counter_check(tenant: str, guarded: BundleHold) -> dict[str, Any]:
    """The bundle's counter (files table) has counted no more than when it was read: a rated
    file that used the bundle since makes the hold read again, as a posting does the money."""
    table, key = files.counter_request(tenant, guarded.key)
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": key,
            "ConditionExpression": "attribute_not_exists(seconds) OR seconds <= :c",
            "ExpressionAttributeValues": {":c": {"N": str(guarded.counted.seconds)}},
        }
    }


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
    bundle: BundleHold | None = None,
) -> Hold:
    """Hold `amount_micro` (and `bundle`'s seconds) for a call, once per call id (see the
    module's doc). A hold of 0 (a call inside a bundle, a free destination) is a hold too:
    its item makes a retried START idempotent and keeps its bundle seconds.

    The existing hold (created False) if the call id holds money already; MoneyMoved if the
    money read in `money`, or the bundle as read in `bundle`, no longer leaves room for the
    amount or the seconds (read again and requote).
    """
    amount = _int(amount_micro)
    if amount < 0:
        raise ValueError(f"a hold is an amount of 0 or more, not {amount}")
    used = bundle if bundle is not None and _int(bundle.seconds) > 0 else None
    sk = _hold_sk(account, call_id)
    item = {
        **_key(check_name("tenant", tenant), sk),
        "account": {"S": account},
        "call_id": {"S": call_id},
        "amount": {"N": str(amount)},
        "max_duration": {"N": str(int(max_duration_seconds))},
        "expires_at": {"N": str(int(expires_at))},
        "hold_ttl": {"N": str(int(expires_at) + TTL_DELAY)},
        "bundle_seconds": {"N": str(used.seconds if used else 0)},
    }
    if used is not None:
        item["bundle"] = {"S": used.key.text}
    put = {
        "Put": {
            "TableName": _table(),
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    seconds = {used.key: used.seconds} if used else None
    guarded = money if amount > 0 else None
    items = [put, _money_update(tenant, account, amount, guarded, credit_micro, seconds, used)]
    if used is not None:
        items.append(_counter_check(tenant, used))
    reasons = _transact(items)
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
    bundle: BundleHold | None = None,
) -> Hold:
    """Set a live hold's amount, bundle seconds (`bundle`; None: none) and expiry (an interim,
    a STOP); MoneyMoved if the hold, the money or the bundle changed since read (read them
    again)."""
    amount = _int(amount_micro)
    if amount < 0:
        raise ValueError(f"a hold is an amount of 0 or more, not {amount}")
    used = bundle if bundle is not None and _int(bundle.seconds) > 0 else None
    delta = amount - hold.amount_micro
    seconds: dict[CounterKey, int] = {}
    if hold.bundle is not None and hold.bundle_seconds:
        seconds[hold.bundle] = -hold.bundle_seconds
    if used is not None:
        seconds[used.key] = seconds.get(used.key, 0) + used.seconds
    grows = used if used is not None and seconds[used.key] > 0 else None
    values = {
        ":a": {"N": str(amount)},
        ":m": {"N": str(int(max_duration_seconds))},
        ":e": {"N": str(int(expires_at))},
        ":ttl": {"N": str(int(expires_at) + TTL_DELAY)},
        ":s": {"N": str(used.seconds if used else 0)},
        ":old": {"N": str(hold.amount_micro)},
        ":olde": {"N": str(hold.expires_at)},
    }
    expression = "SET amount = :a, max_duration = :m, expires_at = :e, hold_ttl = :ttl, "
    expression += "bundle_seconds = :s"
    if used is not None:
        expression += ", bundle = :k"
        values[":k"] = {"S": used.key.text}
    else:
        expression += " REMOVE bundle"
    update = {
        "Update": {
            "TableName": _table(),
            "Key": _key(tenant, _hold_sk(hold.account, hold.call_id)),
            "UpdateExpression": expression,
            "ConditionExpression": "amount = :old AND expires_at = :olde AND "
            + _same_seconds(hold, values),
            "ExpressionAttributeValues": values,
        }
    }
    guarded = money if delta > 0 else None
    items = [
        update,
        _money_update(tenant, hold.account, delta, guarded, credit_micro, seconds, grows),
    ]
    if grows is not None:
        items.append(_counter_check(tenant, grows))
    reasons = _transact(items)
    if reasons is not None:
        raise MoneyMoved(f"the hold of call {hold.call_id!r} or its account's money moved")
    return Hold(
        tenant, hold.account, hold.call_id, amount, int(max_duration_seconds), int(expires_at),
        bundle=used.key if used else None, bundle_seconds=used.seconds if used else 0,
    )  # fmt: skip


def _same_seconds(hold: Hold, values: dict[str, Any]) -> str:
    """The condition that a hold still holds the bundle seconds it was read with (a hold
    written before holds kept bundle seconds has no attribute: 0)."""
    values[":olds"] = {"N": str(hold.bundle_seconds)}
    if hold.bundle_seconds:
        return "bundle_seconds = :olds"
    return "(attribute_not_exists(bundle_seconds) OR bundle_seconds = :olds)"


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
    deletes = []
    seconds: dict[CounterKey, int] = {}
    for h in holds:
        values = {":a": {"N": str(h.amount_micro)}, ":e": {"N": str(h.expires_at)}}
        condition = "amount = :a AND expires_at = :e AND " + _same_seconds(h, values)
        deletes.append(
            {
                "Delete": {
                    "TableName": _table(),
                    "Key": _key(tenant, _hold_sk(account, h.call_id)),
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": values,
                }
            }
        )
        if h.bundle is not None and h.bundle_seconds:
            seconds[h.bundle] = seconds.get(h.bundle, 0) - h.bundle_seconds
    total = sum(h.amount_micro for h in holds)
    return _transact([*deletes, _money_update(tenant, account, -total, None, 0, seconds)])


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
    held = dict.fromkeys(money.bundle_held, 0)
    for h in holds:
        if h.call_id not in gone and h.bundle is not None and h.bundle_seconds:
            held[h.bundle] = held.get(h.bundle, 0) + h.bundle_seconds
    if not expired and reserved == money.reserved_micro and held == dict(money.bundle_held):
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
    names = {}
    assignments = ""
    for i, (key, total) in enumerate(sorted(held.items())):
        names[f"#b{i}"] = _bundle_attribute(key)
        values[f":b{i}"] = {"N": str(total)}
        assignments += f", #b{i} = :b{i}"
    if money.changes:
        condition = "hold_changes = :v"
        values[":v"] = {"N": str(money.changes)}
    else:
        condition = "attribute_not_exists(hold_changes)"
    update = {
        "Update": {
            "TableName": _table(),
            "Key": _key(tenant, f"BALANCE#{account}"),
            "UpdateExpression": f"SET reserved = :r{assignments} ADD hold_changes :one",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            **({"ExpressionAttributeNames": names} if names else {}),
        }
    }
    return _transact([*deletes, update]) is None
