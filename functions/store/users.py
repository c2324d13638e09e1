"""Portal users and their sign-in sessions in the accounts table (boto3 low-level client).

Key layout (table `settings().accounts_table`):
    pk=USER#{user}      sk=USER               the sign-in item: tenant, role, account, password
                                              (scrypt), totp_secret, created_at/_by,
                                              disabled_at/_by, failures, locked_until,
                                              last_step (the TOTP step used last)
    pk={tenant}         sk=USER#{user}        the tenant's listing item: the same, minus the
                                              password, the TOTP secret and the counters
    pk={tenant}         sk=AUDIT#USER#{user}#{at}#{change id}   who created or disabled it
    pk=SESSION#{id}     sk=SESSION            a session: tenant, user, role, account, digest
                                              (SHA-256 of the token's secret), session_expires_at
    pk=USER#{user}      sk=SESSION#{id}       the user's sessions, for disabling them at once

User names are unique across tenants: sign-in names no tenant. A session item carries
`session_expires_at` (epoch seconds, the table's TTL attribute) and is refused from then on,
whether DynamoDB has removed it yet or not. The TOTP secret is stored as given to the user (the
server must compute the codes); the table is encrypted at rest and only the API function and
the operator read it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from functions.api import signin
from functions.api.keys import KEY_ONLY, ApiKey, check_account_kind, check_role
from functions.api.usagekeys import usage_key_of
from functions.shared.settings import settings
from functions.store import (
    ConflictError,
    NotFoundError,
    StoreError,
    accounts,
    check_name,
    client,
    gateway,
)
from functions.store.apikeys import Unauthorized


class BadCredentials(StoreError):
    """A sign-in that grants nothing; one answer for a wrong password, a wrong, old or replayed
    code, an unknown, disabled or locked user: nobody learns which."""

    code = "bad_credentials"


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """A user as anyone may see it: never its password hash nor its TOTP secret."""

    tenant: str
    user: str
    role: str
    account: str | None
    created_at: dt.datetime
    created_by: str
    disabled_at: dt.datetime | None = None
    disabled_by: str | None = None
    locked_until: dt.datetime | None = None  # set on the sign-in item only

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    tenant: str
    user: str
    role: str
    account: str | None
    expires_at: dt.datetime


def _table() -> str:
    return settings().accounts_table


def _signin_key(user: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user}"}, "sk": {"S": "USER"}}


def _listing_key(tenant: str, user: str) -> dict[str, Any]:
    return {"pk": {"S": check_name("tenant", tenant)}, "sk": {"S": f"USER#{user}"}}


def _session_key(session_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "SESSION"}}


def _marker_key(user: str, session_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user}"}, "sk": {"S": f"SESSION#{session_id}"}}


def _when(moment: dt.datetime) -> dict[str, str]:
    return {"S": moment.isoformat(timespec="microseconds")}


def _epoch(moment: dt.datetime) -> dict[str, str]:
    return {"N": str(int(moment.timestamp()))}


def _user(user: str, item: dict[str, Any]) -> User:
    def moment(name: str) -> dt.datetime | None:
        return dt.datetime.fromisoformat(item[name]["S"]) if name in item else None

    locked = int(item["locked_until"]["N"]) if "locked_until" in item else None
    return User(
        tenant=item["tenant"]["S"],
        user=user,
        role=item["role"]["S"],
        account=item["account"]["S"] if "account" in item else None,
        created_at=moment("created_at"),  # type: ignore[arg-type]
        created_by=item["created_by"]["S"],
        disabled_at=moment("disabled_at"),
        disabled_by=item["disabled_by"]["S"] if "disabled_by" in item else None,
        locked_until=None if locked is None else dt.datetime.fromtimestamp(locked, dt.UTC),
    )


def create_user(
    tenant: str, user: str, password: str, role: str, *, account: str | None, actor: accounts.Actor
) -> tuple[User, str]:
    """A new user of the tenant and its TOTP secret, which is returned this once (for the
    user's authenticator app). The name must be free in every tenant."""
    user, password = signin.check_user(user), signin.check_password(password)
    role, account = check_role(role, account)
    if role in KEY_ONLY:
        raise ValueError(
            f"invalid role {role!r}: a {role} is a machine with an API key, not a user"
        )
    accounts.get_tenant(tenant)
    checks = [
        {
            "ConditionCheck": {
                "TableName": _table(),
                "Key": {"pk": {"S": tenant}, "sk": {"S": "TENANT"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
    ]
    if account is not None:
        found = accounts.get_account(tenant, account)
        check_account_kind(role, account, found.kind)
        checks.append(
            {
                "ConditionCheck": {
                    "TableName": _table(),
                    "Key": {"pk": {"S": tenant}, "sk": {"S": f"ACCOUNT#{account}"}},
                    "ConditionExpression": "kind = :kind",
                    "ExpressionAttributeValues": {":kind": {"S": found.kind}},
                }
            }
        )
    secret = signin.new_totp_secret()
    record = User(tenant, user, role, account, dt.datetime.now(dt.UTC), actor.by)
    attributes: dict[str, Any] = {
        "tenant": {"S": tenant},
        "role": {"S": role},
        "created_at": _when(record.created_at),
        "created_by": {"S": actor.by},
    }
    if account is not None:
        attributes["account"] = {"S": account}
    changes = [accounts.Change("role", None, role), accounts.Change("account", None, account)]
    _, audit = accounts.audit_put(tenant, "user", user, changes, actor)
    secrets_ = {
        "password": {"S": signin.hash_password(password)},
        "totp_secret": {"S": secret},
        "failures": {"N": "0"},
    }
    new = "attribute_not_exists(pk)"
    items = [
        {
            "Put": {
                "TableName": _table(),
                "Item": {**_signin_key(user), **attributes, **secrets_},
                "ConditionExpression": new,
            }
        },
        {
            "Put": {
                "TableName": _table(),
                "Item": {**_listing_key(tenant, user), **attributes},
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
        if codes and codes[0] == "ConditionalCheckFailed":
            raise ConflictError(
                f"user {user!r} exists already (in this or another tenant)"
            ) from None
        raise NotFoundError(
            f"tenant {tenant!r} or account {account!r} changed while the user was made"
        ) from None
    return record, secret


def _cancel_codes(error: ClientError) -> list[str | None]:
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        raise error
    return [r.get("Code") for r in error.response.get("CancellationReasons") or []]


def list_users(tenant: str) -> list[User]:
    """The tenant's users, disabled ones too, by name."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :t AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {
            ":t": {"S": check_name("tenant", tenant)},
            ":p": {"S": "USER#"},
        },
        "ConsistentRead": True,
    }
    pages = client("dynamodb").get_paginator("query").paginate(**request)
    items = [item for page in pages for item in page.get("Items", [])]
    users = [_user(i["sk"]["S"].removeprefix("USER#"), i) for i in items]
    return sorted(users, key=lambda u: u.user)


def get_user(tenant: str, user: str) -> User:
    """A user of the tenant with its lock, from its sign-in item; NotFoundError otherwise."""
    found = client("dynamodb").get_item(
        TableName=_table(), Key=_signin_key(signin.check_user(user)), ConsistentRead=True
    )
    item = found.get("Item")
    if item is None or item["tenant"]["S"] != tenant:
        raise NotFoundError(f"unknown user {user!r} in tenant {tenant!r}")
    return _user(user, item)


def disable_user(tenant: str, user: str, *, actor: accounts.Actor) -> User:
    """Disable a user of the tenant (both items and the audit entry in one transaction) and
    end its sessions. Disabling a disabled user changes nothing and returns it."""
    current = get_user(tenant, user)
    if not current.disabled:
        at = dt.datetime.now(dt.UTC)
        change = accounts.Change("disabled_at", None, at.isoformat(timespec="microseconds"))
        _, audit = accounts.audit_put(tenant, "user", user, [change], actor)
        values = {":at": _when(at), ":by": {"S": actor.by}, ":t": {"S": tenant}}

        def disable(key: dict[str, Any]) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": _table(),
                    "Key": key,
                    "UpdateExpression": "SET disabled_at = :at, disabled_by = :by",
                    "ConditionExpression": "attribute_exists(pk) AND tenant = :t",
                    "ExpressionAttributeValues": values,
                }
            }

        items = [disable(_signin_key(user)), disable(_listing_key(tenant, user)), audit]
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            _cancel_codes(error)
            raise ConflictError(f"user {user!r} changed meanwhile; run it again") from None
        current = dataclasses.replace(current, disabled_at=at, disabled_by=actor.by)
    _end_sessions(user)
    return current


def _end_sessions(user: str) -> None:
    """Delete every session of the user (and its marker)."""
    dynamodb = client("dynamodb")
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :u AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":u": {"S": f"USER#{user}"}, ":p": {"S": "SESSION#"}},
        "ConsistentRead": True,
    }
    for page in dynamodb.get_paginator("query").paginate(**request):
        for item in page.get("Items", []):
            session_id = item["sk"]["S"].removeprefix("SESSION#")
            dynamodb.delete_item(TableName=_table(), Key=_session_key(session_id))
            dynamodb.delete_item(TableName=_table(), Key=_marker_key(user, session_id))


def _fail(user: str, now: dt.datetime, *, count: bool = True) -> None:
    """Count a failed sign-in; the MAX_FAILURES-th in a row locks the user for a while. An
    unknown user's (nothing to count) and, with `count` False, a locked or disabled user's
    (not counted: a lock is not extended) cost the same write, refused by its condition: the
    time an answer takes tells nothing of which it was."""
    dynamodb = client("dynamodb")
    try:
        counted = dynamodb.update_item(
            TableName=_table(),
            Key=_signin_key(user),
            UpdateExpression="ADD failures :one",
            ConditionExpression="attribute_exists(pk) AND :count = :yes",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":count": {"BOOL": count},
                ":yes": {"BOOL": True},
            },
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return
        raise
    if int(counted["Attributes"]["failures"]["N"]) >= signin.MAX_FAILURES:
        until = now + dt.timedelta(seconds=signin.LOCK_SECONDS)
        dynamodb.update_item(
            TableName=_table(),
            Key=_signin_key(user),
            UpdateExpression="SET locked_until = :until, failures = :zero",
            ExpressionAttributeValues={":until": _epoch(until), ":zero": {"N": "0"}},
        )


def sign_in(
    user: object, password: object, code: object, *, now: dt.datetime | None = None
) -> tuple[Session, str]:
    """A new session of the user and its token (returned this once), if the password and
    the TOTP code are right, the code was not used before, and the user is neither disabled
    nor locked; else BadCredentials, the same for every reason, after the same scrypt work."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        name = signin.check_user(user)
    except ValueError:
        signin.password_matches(password, signin.DUMMY_HASH)
        raise BadCredentials("bad credentials") from None
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key=_signin_key(name), ConsistentRead=True)
        .get("Item")
    )
    usable = (
        item is not None
        and "disabled_at" not in item
        and int(item.get("locked_until", {}).get("N", "0")) <= now.timestamp()
    )
    if not usable:
        signin.password_matches(password, signin.DUMMY_HASH)
        _fail(name, now, count=False)
        raise BadCredentials("bad credentials")
    assert item is not None
    last = int(item["last_step"]["N"]) if "last_step" in item else None
    step = None
    if signin.password_matches(password, item["password"]["S"]):
        step = signin.verify_totp(item["totp_secret"]["S"], code, now.timestamp(), last)
    if step is None:
        _fail(name, now)
        raise BadCredentials("bad credentials")
    session_id, secret, token = signin.new_session()
    expires = now + dt.timedelta(seconds=signin.SESSION_SECONDS)
    session = Session(
        session_id,
        item["tenant"]["S"],
        name,
        item["role"]["S"],
        item["account"]["S"] if "account" in item else None,
        expires,
    )
    attributes: dict[str, Any] = {
        "tenant": {"S": session.tenant},
        "user": {"S": name},
        "role": {"S": session.role},
        "created_at": _when(now),
        "session_expires_at": _epoch(expires),
    }
    if session.account is not None:
        attributes["account"] = {"S": session.account}
    used = {
        "Update": {
            "TableName": _table(),
            "Key": _signin_key(name),
            "UpdateExpression": "SET last_step = :step, failures = :zero",
            # The code's step is taken once, even by two sign-ins racing with the same code.
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(disabled_at) "
            "AND (attribute_not_exists(last_step) OR last_step < :step)",
            "ExpressionAttributeValues": {":step": {"N": str(step)}, ":zero": {"N": "0"}},
        }
    }
    put_session = {
        "Put": {
            "TableName": _table(),
            "Item": {
                **_session_key(session_id),
                **attributes,
                "digest": {"S": signin.session_digest(secret)},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    marker = {
        "Put": {
            "TableName": _table(),
            "Item": {**_marker_key(name, session_id), "session_expires_at": _epoch(expires)},
        }
    }
    try:
        client("dynamodb").transact_write_items(TransactItems=[used, put_session, marker])
    except ClientError as error:
        _cancel_codes(error)
        _fail(name, now)
        raise BadCredentials("bad credentials") from None
    # the session's request limit in API Gateway, as an API key's (no usage plan: nothing)
    gateway.add_session_key(session_id, usage_key_of(token), expires)
    return session, token


def authenticate(token: object, *, now: dt.datetime | None = None) -> ApiKey:
    """The session a request presents, as the API key it stands for (role, account; the key
    id is the session id); Unauthorized `unknown_key` for anything else, `expired_session`
    once it has expired."""
    try:
        session_id, secret = signin.parse_session(token)
    except signin.TokenFormatError:
        raise Unauthorized("malformed_key") from None
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key=_session_key(session_id), ConsistentRead=True)
        .get("Item")
    )
    stored = item["digest"]["S"] if item is not None else "0" * 64
    if not signin.session_matches(secret, stored) or item is None:
        raise Unauthorized("unknown_key")
    now = now or dt.datetime.now(dt.UTC)
    if int(item["session_expires_at"]["N"]) <= now.timestamp():
        raise Unauthorized("expired_session")
    return ApiKey(
        tenant=item["tenant"]["S"],
        key_id=session_id,
        role=item["role"]["S"],
        account=item["account"]["S"] if "account" in item else None,
        allow_ips=(),
        label=f"session of {item['user']['S']}",
        created_at=dt.datetime.fromisoformat(item["created_at"]["S"]),
        created_by=item["user"]["S"],
    )
