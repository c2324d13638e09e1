"""API keys in the accounts table (boto3 low-level client): created, listed, revoked, checked.

Key layout (table `settings().accounts_table`):
    pk=APIKEY#{key_id}  sk=APIKEY          the lookup item: tenant, role, account, allow_ips,
                                           digest (SHA-256 of the secret), created_at/_by,
                                           label, revoked_at/_by
    pk={tenant}         sk=APIKEY#{key_id} the tenant's listing item: the same, minus the digest
    pk={tenant}         sk=AUDIT#APIKEY#{key_id}#{at}#{change id}   who created or revoked it

A request reads the lookup item alone (one consistent GetItem: a revocation holds from the
next request); an operator lists a tenant's keys from its partition. Both items and the audit
entry are written in one TransactWriteItems, so they never disagree. The presented key
(`tg_{key_id}_{secret}`) is returned once by create_key and never stored.

When the deployment names a usage plan, a new key also gets its API Gateway key there (the
per-key request limit, functions.store.gateway) and a revoked key's is disabled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from functions.api.keys import (
    ApiKey,
    KeyFormatError,
    check_account_kind,
    check_cidrs,
    check_key_id,
    check_label,
    check_role,
    digest,
    ip_allowed,
    matches,
    new_key,
    parse,
)
from functions.api.usagekeys import usage_key_of
from functions.shared.settings import settings
from functions.store import (
    ConflictError,
    NotFoundError,
    StoreError,
    accounts,
    budget,
    check_name,
    client,
    gateway,
)

_ATTEMPTS = 5
# Within a time budget (the switches' authorization), a key this container read at most this
# long ago stands in for the store when the store cannot answer in time: the switch still
# gets its tenant's fallback decision. The secret is checked against the digest read then;
# every request still reads the key first, so a revocation made before an outage applies.
LAST_KNOWN_SECONDS = 3600.0
_last_known: dict[str, tuple[float, dict[str, Any]]] = {}
# Compared against when the key id is unknown, so an unknown id costs what a wrong secret does.
_NO_DIGEST = "0" * 64
# Unauthorized's stable codes and their messages (the API will answer 401 with them).
UNAUTHORIZED = {
    "malformed_key": "not an API key",
    "unknown_key": "unknown API key",
    "revoked_key": "API key revoked",
    "ip_not_allowed": "API key not allowed from this address",
    "expired_session": "session expired: sign in again",  # a portal session (store.users)
}


class Unauthorized(StoreError):
    """A presented key that grants nothing. `code` is stable (a key of UNAUTHORIZED) and says
    no more: a wrong secret and an unknown id are both `unknown_key`."""

    def __init__(self, code: str) -> None:
        super().__init__(UNAUTHORIZED[code])
        self.code = code


def _table() -> str:
    return settings().accounts_table


def _lookup_key(key_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"APIKEY#{key_id}"}, "sk": {"S": "APIKEY"}}


def _item_key(tenant: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": check_name("tenant", tenant)}, "sk": {"S": sk}}


def _listing_key(tenant: str, key_id: str) -> dict[str, Any]:
    return _item_key(tenant, f"APIKEY#{key_id}")


def _when(moment: dt.datetime) -> dict[str, str]:
    return {"S": moment.isoformat(timespec="microseconds")}


def _attributes(key: ApiKey) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tenant": {"S": key.tenant},
        "role": {"S": key.role},
        "allow_ips": {"L": [{"S": c} for c in key.allow_ips]},
        "created_at": _when(key.created_at),
        "created_by": {"S": key.created_by},
    }
    if key.account is not None:
        item["account"] = {"S": key.account}
    if key.label is not None:
        item["label"] = {"S": key.label}
    return item


def _record(key_id: str, item: dict[str, Any]) -> ApiKey:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    def moment(name: str) -> dt.datetime | None:
        return dt.datetime.fromisoformat(item[name]["S"]) if name in item else None

    return ApiKey(
        tenant=item["tenant"]["S"],
        key_id=key_id,
        role=item["role"]["S"],
        account=text("account"),
        allow_ips=tuple(c["S"] for c in item["allow_ips"]["L"]),
        label=text("label"),
        created_at=moment("created_at"),  # type: ignore[arg-type]
        created_by=item["created_by"]["S"],
        revoked_at=moment("revoked_at"),
        revoked_by=text("revoked_by"),
    )


def _cancel_codes(error: ClientError) -> list[str | None]:
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        raise error
    return [r.get("Code") for r in error.response.get("CancellationReasons") or []]


def _exists(key: dict[str, Any], condition: str, values: dict[str, Any] | None = None) -> dict:
    check: dict[str, Any] = {"TableName": _table(), "Key": key, "ConditionExpression": condition}
    if values:
        check["ExpressionAttributeValues"] = values
    return {"ConditionCheck": check}


def create_key(
    tenant: str,
    role: str,
    *,
    account: str | None = None,
    allow_ips: tuple[str, ...] | list[str] = (),
    label: str | None = None,
    actor: accounts.Actor,
) -> tuple[ApiKey, str]:
    """A new key of the tenant: its record and the presented key, which is shown this once
    and never stored. The tenant (and the account, of a kind the role may act for) must
    exist, and still do when the key is written."""
    role, account = check_role(role, account)
    networks, label = check_cidrs(allow_ips), check_label(label)
    accounts.get_tenant(tenant)
    checks = [_exists(_item_key(tenant, "TENANT"), "attribute_exists(pk)")]
    if account is not None:
        found = accounts.get_account(tenant, account)
        check_account_kind(role, account, found.kind)
        kind = {":kind": {"S": found.kind}}
        checks.append(_exists(_item_key(tenant, f"ACCOUNT#{account}"), "kind = :kind", kind))
    for _ in range(_ATTEMPTS):
        key_id, secret, presented = new_key()
        record = ApiKey(
            tenant=tenant,
            key_id=key_id,
            role=role,
            account=account,
            allow_ips=networks,
            label=label,
            created_at=dt.datetime.now(dt.UTC),
            created_by=actor.by,
        )
        changes = [
            accounts.Change(field, None, value)
            for field, value in (
                ("role", role),
                ("account", account),
                ("allow_ips", list(networks)),
                ("label", label),
            )
        ]
        _, audit = accounts.audit_put(tenant, "apikey", key_id, changes, actor)
        attributes = _attributes(record)
        new = "attribute_not_exists(pk)"
        items = [
            {
                "Put": {
                    "TableName": _table(),
                    "Item": {**_lookup_key(key_id), **attributes, "digest": {"S": digest(secret)}},
                    "ConditionExpression": new,
                }
            },
            {
                "Put": {
                    "TableName": _table(),
                    "Item": {**_listing_key(tenant, key_id), **attributes},
                    "ConditionExpression": new,
                }
            },
            audit,
            *checks,
        ]
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            codes = _cancel_codes(error)
        else:
            _add_usage_key(record, presented, actor)
            return record, presented
        failed = [i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
        if any(i >= 3 for i in failed):  # the tenant or the account went meanwhile
            raise NotFoundError(
                f"tenant {tenant!r} or account {account!r} changed while the key was made"
            )
        # A 64-bit key id taken already (never in practice) or a conflict: a new key.
    raise ConflictError("could not store a new API key; run it again")


def _add_usage_key(record: ApiKey, presented: str, actor: accounts.Actor) -> None:
    """The key's API Gateway key in the deployment's usage plan (functions.store.gateway);
    if API Gateway refuses, the key is revoked (it could make no request) and the error
    raised: no key is handed out without its limit."""
    try:
        gateway.add_key(record.tenant, record.key_id, usage_key_of(presented))
    except Exception:
        revoke_key(record.tenant, record.key_id, actor=actor)
        raise


def authenticate(presented: object, *, ip: str | None = None) -> ApiKey:
    """The key a request presents, if it grants anything; else Unauthorized with its code.

    The secret is checked before anything about the key is told: only its holder learns it
    was revoked or is used from the wrong address. A key with an allow-list fails closed:
    without the caller's address (`ip` None) it is not allowed.
    """
    try:
        key_id, secret = parse(presented)
    except KeyFormatError:
        raise Unauthorized("malformed_key") from None
    item = _lookup(key_id)
    stored = item["digest"]["S"] if item is not None and "digest" in item else _NO_DIGEST
    if not matches(secret, stored) or item is None:
        raise Unauthorized("unknown_key")
    key = _record(key_id, item)
    if key.revoked:
        raise Unauthorized("revoked_key")
    if not ip_allowed(ip, key.allow_ips):
        raise Unauthorized("ip_not_allowed")
    return key


def _lookup(key_id: str) -> dict[str, Any] | None:
    """The key's lookup item; within a budget, when the store cannot answer in time, the
    one last read here (at most LAST_KNOWN_SECONDS ago), else the store's error."""
    try:
        found = client("dynamodb").get_item(
            TableName=_table(), Key=_lookup_key(key_id), ConsistentRead=True
        )
    except Exception as error:
        known = _last_known.get(key_id)
        if (
            budget.active() is None
            or budget.unavailable(error) is None
            or known is None
            or not 0 <= budget.clock() - known[0] <= LAST_KNOWN_SECONDS
        ):
            raise
        return known[1]
    item = found.get("Item")
    if item is None:
        _last_known.pop(key_id, None)
    elif budget.active() is not None:
        _last_known[key_id] = (budget.clock(), item)
    return item


def get_key(tenant: str, key_id: str) -> ApiKey:
    """A key of the tenant; NotFoundError for an unknown id or another tenant's key."""
    found = client("dynamodb").get_item(
        TableName=_table(), Key=_listing_key(tenant, check_key_id(key_id)), ConsistentRead=True
    )
    if "Item" not in found:
        raise NotFoundError(f"unknown API key {key_id!r} in tenant {tenant!r}")
    return _record(key_id, found["Item"])


def list_keys(tenant: str) -> list[ApiKey]:
    """The tenant's keys, revoked ones too, oldest first."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :t AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {
            ":t": {"S": check_name("tenant", tenant)},
            ":p": {"S": "APIKEY#"},
        },
        "ConsistentRead": True,
    }
    pages = client("dynamodb").get_paginator("query").paginate(**request)
    items = [item for page in pages for item in page.get("Items", [])]
    keys = [_record(i["sk"]["S"].removeprefix("APIKEY#"), i) for i in items]
    return sorted(keys, key=lambda k: (k.created_at, k.key_id))


def _revoke(key: dict[str, Any], also: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": _table(),
            "Key": key,
            "UpdateExpression": "SET revoked_at = :at, revoked_by = :by",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(revoked_at)"
            + also,
            "ExpressionAttributeValues": values,
        }
    }


def revoke_key(tenant: str, key_id: str, *, actor: accounts.Actor) -> ApiKey:
    """Revoke a key of the tenant: both items and the audit entry in one transaction, each
    item only if not revoked yet. Revoking a revoked key changes nothing and returns it."""
    for _ in range(_ATTEMPTS):
        key = get_key(tenant, key_id)
        if key.revoked:
            gateway.disable_key(key_id)  # again: a revocation API Gateway missed before
            return key
        at = dt.datetime.now(dt.UTC)
        changes = [accounts.Change("revoked_at", None, at.isoformat(timespec="microseconds"))]
        _, audit = accounts.audit_put(tenant, "apikey", key_id, changes, actor)
        values = {":at": _when(at), ":by": {"S": actor.by}}
        items = [
            _revoke(_listing_key(tenant, key_id), "", values),
            # The lookup item's tenant is checked too: a key id is only ever the tenant's own.
            _revoke(_lookup_key(key_id), " AND tenant = :t", {**values, ":t": {"S": tenant}}),
            audit,
        ]
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            _cancel_codes(error)  # revoked meanwhile, or a conflict: read it again
            continue
        gateway.disable_key(key_id)  # API Gateway refuses it too (no plan: nothing to do)
        return dataclasses.replace(key, revoked_at=at, revoked_by=actor.by)
    raise ConflictError(f"API key {key_id!r} kept changing meanwhile; run it again")
