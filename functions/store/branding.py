"""The portal's white-label brands in the accounts table (boto3 low-level client).

Key layout (table `settings().accounts_table`):
    pk={tenant}  sk=BRAND#TENANT             the tenant's default brand
    pk={tenant}  sk=BRAND#ACCOUNT#{account}  a reseller's brand (its customers see it)
    each: name, primary, accent, logo (a data: URL, absent when none), updated_at/_by

A change is one TransactWriteItems: the brand, conditioned on the brand as it was read (its
`updated_at`), the audit entry (accounts.audit_put: subject `tenant` or `account`, the logo
recorded by its digest, not its bytes) and, for a reseller, a check that the account is still
a reseller. The pure rules (what a brand may hold, whose a caller sees) are
functions.api.brands.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from functions.api.brands import Brand
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, accounts, check_name, client

_ATTEMPTS = 5
_BATCH = 100  # BatchGetItem's most keys per call


def _table() -> str:
    return settings().accounts_table


def _sk(account: str | None) -> str:
    return "BRAND#TENANT" if account is None else f"BRAND#ACCOUNT#{check_name('account', account)}"


def _key(tenant: str, account: str | None) -> dict[str, Any]:
    return {"pk": {"S": check_name("tenant", tenant)}, "sk": {"S": _sk(account)}}


def _brand(item: dict[str, Any]) -> Brand:
    return Brand(
        name=item["name"]["S"],
        primary=item["primary"]["S"],
        accent=item["accent"]["S"],
        logo=item["logo"]["S"] if "logo" in item else None,
    )


def _read(tenant: str, account: str | None) -> dict[str, Any] | None:
    found = client("dynamodb").get_item(
        TableName=_table(), Key=_key(tenant, account), ConsistentRead=True
    )
    return found.get("Item")


def get_brand(tenant: str, account: str | None = None) -> Brand | None:
    """A reseller's brand (account None: the tenant's default), or None if it has none."""
    item = _read(tenant, account)
    return None if item is None else _brand(item)


def get_brands(tenant: str, resellers: Sequence[str]) -> tuple[dict[str, Brand], Brand | None]:
    """The brands of these resellers that have one, and the tenant's default (None if none),
    in one consistent BatchGetItem (resellers above an account: a handful)."""
    wanted = [_key(tenant, None), *(_key(tenant, r) for r in dict.fromkeys(resellers))]
    items: list[dict[str, Any]] = []
    for start in range(0, len(wanted), _BATCH):
        request = {_table(): {"Keys": wanted[start : start + _BATCH], "ConsistentRead": True}}
        while request:
            answer = client("dynamodb").batch_get_item(RequestItems=request)
            items += answer.get("Responses", {}).get(_table(), [])
            request = answer.get("UnprocessedKeys") or {}
    found = {item["sk"]["S"]: _brand(item) for item in items}
    tenant_brand = found.pop("BRAND#TENANT", None)
    return {sk.removeprefix("BRAND#ACCOUNT#"): brand for sk, brand in found.items()}, tenant_brand


def put_brand(
    tenant: str, account: str | None, brand: Brand, *, actor: accounts.Actor
) -> tuple[Brand, accounts.AuditEntry | None]:
    """Set the tenant's default brand (account None) or a reseller's, audited; the brand and
    the audit entry (None when nothing changed: no entry, no write)."""
    subject, name = ("tenant", tenant) if account is None else ("account", account)
    for _ in range(_ATTEMPTS):
        current = _read(tenant, account)
        old = None if current is None else _brand(current)
        if old == brand:
            return brand, None
        before = old.audit_values() if old is not None else dict.fromkeys(brand.audit_values())
        after = brand.audit_values()
        changes = [accounts.Change(f, before[f], after[f]) for f in after if before[f] != after[f]]
        entry, audit = accounts.audit_put(tenant, subject, name, changes, actor)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        item: dict[str, Any] = {
            **_key(tenant, account),
            "name": {"S": brand.name},
            "primary": {"S": brand.primary},
            "accent": {"S": brand.accent},
            "updated_at": {"S": now},
            "updated_by": {"S": actor.by},
        }
        if brand.logo is not None:
            item["logo"] = {"S": brand.logo}
        put: dict[str, Any] = {"TableName": _table(), "Item": item}
        if current is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "updated_at = :was"
            put["ExpressionAttributeValues"] = {":was": current["updated_at"]}
        owner: dict[str, Any] = {
            "TableName": _table(),
            "Key": {"pk": {"S": tenant}, "sk": {"S": "TENANT"}},
        }
        owner["ConditionExpression"] = "attribute_exists(pk)"
        if account is not None:  # a reseller's brand: the account is still a reseller
            owner["Key"] = {"pk": {"S": tenant}, "sk": {"S": f"ACCOUNT#{account}"}}
            owner["ConditionExpression"] = "kind = :reseller"
            owner["ExpressionAttributeValues"] = {":reseller": {"S": "reseller"}}
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[{"Put": put}, audit, {"ConditionCheck": owner}]
            )
            return brand, entry
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons") or []
            codes = [r.get("Code") for r in reasons]
            if len(codes) > 2 and codes[2] == "ConditionalCheckFailed":
                what = "tenant" if account is None else f"reseller account {account!r}"
                raise NotFoundError(f"no {what} in tenant {tenant!r}") from None
            # The brand changed since it was read, or a conflict: read and decide again.
    raise ConflictError("the brand kept changing meanwhile; send it again")
