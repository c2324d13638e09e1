"""Routing settings in the accounts table (boto3 low-level): supplier targets and route
blocks on the supplier's own item, the tenant's routing policy, each change audited.

Key layout (table `settings().accounts_table`):
    pk={tenant}  sk=ACCOUNT#{supplier}   + route_target (JSON: host, port, transport, prefix,
                                           gateway) and route_blocks (JSON: sorted callee
                                           prefixes), beside the account's other attributes
    pk={tenant}  sk=ROUTING              settings (JSON: functions.rate.routing.Policy's keys
                                           that differ from the defaults), updated_at

A change is one TransactWriteItems: the attribute's update, conditioned on the value it was
read with (and, for a supplier, on the account still being a supplier), and its audit entry
(accounts.audit_put: subject `account` with field route_target or route_blocks, or subject
`tenant` with fields routing.{key}), and the bump of the tenant's routing version
(holds.routes_bump: the next START's route list is rebuilt at once). Losing a race reads and
decides again. `list_suppliers` reads consistently: a book rebuilt because the version moved
sees the change that moved it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from functions.rate.routing import POLICY_KEYS, Policy, check_block
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, accounts, check_name, client, holds

_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class RouteSupplier:
    """A supplier as routing sees it."""

    account: str
    status: str
    currency: str
    deck_version: int | None
    rounding: str = "half_up"
    rounding_decimals: int = 6
    target: dict[str, Any] | None = None
    blocks: tuple[str, ...] = field(default_factory=tuple)


def _table() -> str:
    return settings().accounts_table


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _loads(item: dict[str, Any], name: str) -> Any:
    return json.loads(item[name]["S"]) if name in item else None


def _supplier(item: dict[str, Any]) -> RouteSupplier:
    return RouteSupplier(
        account=item["sk"]["S"].removeprefix("ACCOUNT#"),
        status=item["status"]["S"],
        currency=item["currency"]["S"],
        deck_version=int(item["deck_version"]["N"]) if "deck_version" in item else None,
        rounding=item["rounding"]["S"] if "rounding" in item else "half_up",
        rounding_decimals=int(item["rounding_decimals"]["N"]) if "rounding_decimals" in item else 6,
        target=_loads(item, "route_target"),
        blocks=tuple(_loads(item, "route_blocks") or ()),
    )


def list_suppliers(tenant: str) -> list[RouteSupplier]:
    """Every supplier of the tenant (suspended ones too: routing leaves them out), by id."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :accounts)",
        "FilterExpression": "kind = :supplier",
        "ConsistentRead": True,  # after a routing version bump: the change that bumped it
        "ExpressionAttributeValues": {
            ":pk": {"S": check_name("tenant", tenant)},
            ":accounts": {"S": "ACCOUNT#"},
            ":supplier": {"S": "supplier"},
        },
    }
    pages = client("dynamodb").get_paginator("query").paginate(**request)
    found = [_supplier(item) for page in pages for item in page.get("Items", [])]
    return sorted(found, key=lambda s: s.account)


def _account_key(tenant: str, supplier: str) -> dict[str, Any]:
    return {
        "pk": {"S": check_name("tenant", tenant)},
        "sk": {"S": f"ACCOUNT#{check_name('account', supplier)}"},
    }


def get_supplier(tenant: str, supplier: str) -> RouteSupplier:
    found = client("dynamodb").get_item(
        TableName=_table(), Key=_account_key(tenant, supplier), ConsistentRead=True
    )
    item = found.get("Item")
    if item is None:
        raise NotFoundError(f"unknown account {supplier!r} in tenant {tenant!r}")
    if item["kind"]["S"] != "supplier":
        raise ValueError(f"account {supplier!r} is a {item['kind']['S']}, not a supplier")
    return _supplier(item)


def _set_on_supplier(
    tenant: str,
    supplier: str,
    attribute: str,
    decide: Any,
    actor: accounts.Actor,
    reason: str | None,
) -> tuple[RouteSupplier, accounts.AuditEntry | None]:
    """Read the supplier, `decide(current) -> new value (JSON-able, None: remove)`, and write
    it with its audit entry, only if the attribute still holds what was read."""
    for _ in range(_ATTEMPTS):
        found = client("dynamodb").get_item(
            TableName=_table(), Key=_account_key(tenant, supplier), ConsistentRead=True
        )
        item = found.get("Item")
        if item is None:
            raise NotFoundError(f"unknown account {supplier!r} in tenant {tenant!r}")
        if item["kind"]["S"] != "supplier":
            raise ValueError(f"account {supplier!r} is a {item['kind']['S']}, not a supplier")
        old = _loads(item, attribute)
        new = decide(old)
        current = _supplier(item)
        if new == old:
            return current, None
        change = accounts.Change(attribute, old, new)
        entry, audit = accounts.audit_put(tenant, "account", supplier, [change], actor, reason)
        values: dict[str, Any] = {":supplier": {"S": "supplier"}}
        condition = "kind = :supplier AND "
        if old is None:
            condition += "attribute_not_exists(#a)"
        else:
            condition += "#a = :old"
            values[":old"] = item[attribute]
        update: dict[str, Any] = {
            "TableName": _table(),
            "Key": _account_key(tenant, supplier),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#a": attribute},
        }
        if new is None:
            update["UpdateExpression"] = "REMOVE #a"
        else:
            update["UpdateExpression"] = "SET #a = :new"
            values[":new"] = {"S": _json(new)}
        update["ExpressionAttributeValues"] = values
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[{"Update": update}, audit, holds.routes_bump(tenant)]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            continue  # changed meanwhile (or a conflict): read and decide again
        item = {**item}
        if new is None:
            item.pop(attribute, None)
        else:
            item[attribute] = {"S": _json(new)}
        return _supplier(item), entry
    raise ConflictError(f"supplier {supplier!r} kept changing meanwhile; run it again")


def set_target(
    tenant: str,
    supplier: str,
    target: Mapping[str, Any] | None,
    *,
    actor: accounts.Actor,
    reason: str | None = None,
) -> tuple[RouteSupplier, accounts.AuditEntry | None]:
    """Set (None: remove) where the supplier's calls go; `target` as routing.check_target
    returns it."""
    wanted = None if target is None else dict(target)
    return _set_on_supplier(tenant, supplier, "route_target", lambda _: wanted, actor, reason)


def block(
    tenant: str, supplier: str, prefix: str, *, actor: accounts.Actor, reason: str | None = None
) -> tuple[RouteSupplier, accounts.AuditEntry | None]:
    """Never offer this supplier for callees starting with `prefix`."""
    check_block(prefix)
    return _set_on_supplier(
        tenant,
        supplier,
        "route_blocks",
        lambda old: sorted({*(old or []), prefix}),
        actor,
        reason,
    )


def unblock(
    tenant: str, supplier: str, prefix: str, *, actor: accounts.Actor, reason: str | None = None
) -> tuple[RouteSupplier, accounts.AuditEntry | None]:
    """Lift a block (nothing changes if there is none of that exact prefix)."""
    check_block(prefix)

    def without(old: list[str] | None) -> list[str] | None:
        rest = sorted(set(old or []) - {prefix})
        return rest or None

    return _set_on_supplier(tenant, supplier, "route_blocks", without, actor, reason)


# --- the tenant's routing policy -------------------------------------------------------------


def _policy_key(tenant: str) -> dict[str, Any]:
    return {"pk": {"S": check_name("tenant", tenant)}, "sk": {"S": "ROUTING"}}


def _read_policy(tenant: str) -> dict[str, Any] | None:
    found = client("dynamodb").get_item(
        TableName=_table(), Key=_policy_key(tenant), ConsistentRead=True
    )
    return found.get("Item")


def get_policy(tenant: str) -> dict[str, Any]:
    """The tenant's stored settings (only those set; Policy.of applies the defaults)."""
    item = _read_policy(tenant)
    return {} if item is None else json.loads(item["settings"]["S"])


def set_policy(
    tenant: str,
    changes: Mapping[str, Any],
    *,
    actor: accounts.Actor,
    reason: str | None = None,
) -> tuple[Policy, accounts.AuditEntry | None]:
    """Change some settings (a value of None: back to the default), audited."""
    for _ in range(_ATTEMPTS):
        item = _read_policy(tenant)
        stored = {} if item is None else json.loads(item["settings"]["S"])
        wanted = {**stored, **changes}
        wanted = {k: v for k, v in wanted.items() if v is not None}
        policy = Policy.of(wanted)  # checks every value, names the one at fault
        default = Policy().as_json()
        after = {k: v for k, v in policy.as_json().items() if v != default[k]}
        before = Policy.of(stored).as_json()
        diffs = [
            accounts.Change(f"routing.{k}", before[k], policy.as_json()[k])
            for k in POLICY_KEYS
            if before[k] != policy.as_json()[k]
        ]
        if not diffs:
            return policy, None
        entry, audit = accounts.audit_put(tenant, "tenant", tenant, diffs, actor, reason)
        put: dict[str, Any] = {
            "TableName": _table(),
            "Item": {
                **_policy_key(tenant),
                "settings": {"S": _json(after)},
                "updated_at": {"S": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")},
            },
        }
        if item is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "updated_at = :was"
            put["ExpressionAttributeValues"] = {":was": item["updated_at"]}
        owner = {
            "TableName": _table(),
            "Key": {"pk": {"S": tenant}, "sk": {"S": "TENANT"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[
                    {"Put": put},
                    audit,
                    {"ConditionCheck": owner},
                    holds.routes_bump(tenant),
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            codes = [r.get("Code") for r in error.response.get("CancellationReasons") or []]
            if len(codes) > 2 and codes[2] == "ConditionalCheckFailed":
                raise NotFoundError(f"unknown tenant {tenant!r}") from None
            continue
        return policy, entry
    raise ConflictError("the routing policy kept changing meanwhile; run it again")


@cache
def route_service() -> Any:
    """The warm container's route service over the real stores (functions.rate.route_service):
    `route_service().routes_for(tenant, account, callee, at, customer_quote_rate)`."""
    from functions.rate.route_service import RouteService
    from functions.store import lake, quality
    from functions.store import routes as routes_store

    return RouteService(routes=routes_store, lake=lake, quality=quality, accounts=accounts)


__all__ = [
    "RouteSupplier",
    "block",
    "get_policy",
    "get_supplier",
    "list_suppliers",
    "route_service",
    "set_policy",
    "set_target",
    "unblock",
]
