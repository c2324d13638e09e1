"""Adapters, one module per store: accounts, ledger, files (DynamoDB) and lake (S3).

Every adapter takes the tenant as an argument and builds its keys itself, so one tenant's
request can never name another tenant's item. Identifiers that become part of a key are
checked with `check_name` / `check_token` (functions.shared.ids, re-exported here): they cannot
contain a key separator (`#`, `/`, `=`), so no id can be crafted to reach outside its tenant.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

# Re-exported: every adapter checks ids through the store package.
from functions.shared.ids import check_name as check_name
from functions.shared.ids import check_token as check_token
from functions.shared.settings import settings
from functions.store import budget


class StoreError(Exception):
    """Base of the adapters' own errors."""


class NotFoundError(StoreError, LookupError):
    """The named tenant, switch, account, deck version or file does not exist."""


class ConflictError(StoreError):
    """The item exists with different contents, or a state change is not allowed."""


def check_day(day: object) -> str:
    """A day as 'YYYY-MM-DD' (from a date or that string); a datetime is refused."""
    import datetime as dt

    if isinstance(day, dt.datetime):
        raise TypeError("day must be a date or 'YYYY-MM-DD', not a datetime")
    if isinstance(day, dt.date):
        return day.isoformat()
    return dt.date.fromisoformat(day).isoformat()


def check_slot(slot: object) -> tuple[str, str | None]:
    """A duplicate-claim slot: a day (date or 'YYYY-MM-DD') or an hour ('YYYY-MM-DDTHH').

    Returns (day, hour or None), both validated, so a slot can only name a real day and hour.
    """
    import datetime as dt

    if isinstance(slot, dt.datetime):
        raise TypeError("a slot is a date or 'YYYY-MM-DD[THH]', not a datetime")
    if isinstance(slot, dt.date):
        return slot.isoformat(), None
    if not isinstance(slot, str) or not _SLOT.fullmatch(slot):
        raise ValueError(f"invalid claim slot {slot!r}: use YYYY-MM-DD or YYYY-MM-DDTHH")
    day, _, hour = slot.partition("T")
    dt.date.fromisoformat(day)
    if hour and not 0 <= int(hour) <= 23:
        raise ValueError(f"invalid claim slot {slot!r}: hour {hour} is not 00-23")
    return day, hour or None


# The fraud table's TTL attribute (infra/template.yaml FraudTable): epoch seconds.
FRAUD_TTL_ATTRIBUTE = "expires_at"
HOLD_TTL_ATTRIBUTE = "hold_ttl"  # the ledger table's live-call holds (functions/store/holds.py)
_SLOT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2})?")
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def _loader() -> botocore.loaders.Loader:
    """One loader of botocore's service and endpoint data per process: each new session
    would otherwise parse its JSON files again (~0.1 s a client, at every cold start)."""
    return botocore.loaders.create_loader()


def botocore_session() -> botocore.session.Session:
    """A new botocore session sharing the process's loader (PynamoDB takes one per model
    and thread: functions/store/items.py)."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader())
    budget.register(session)  # no-ops unless a request runs within a budget
    return session


def client(service: str) -> Any:
    """One boto3 client per service per process (clients are thread-safe); reset in tests.

    Inside `budget.within(limits)` (the switches' authorization) the client of `limits`:
    short timeouts and few attempts (functions/store/budget.py); the other Lambdas' clients
    keep waiting long and retrying much."""
    return _client(service, budget.active())


@cache
def _client(service: str, limits: budget.Limits | None) -> Any:
    session = boto3.session.Session(botocore_session=botocore_session())
    config = _CLIENT_CONFIG if limits is None else Config(**budget.client_config(limits))
    return session.client(service, config=config)


_RESET_HOOKS: list[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> Callable[[], None]:
    """Have `reset` call `hook` too: a warm container's cache of store reads (the
    authorization's contracts, trunk maps, tenant settings) belongs to one endpoint."""
    _RESET_HOOKS.append(hook)
    return hook


def reset() -> None:
    """Forget cached clients, settings and bound models, e.g. when the endpoint changes.

    PynamoDB keeps a connection per model class and the queue adapter caches queue URLs, so
    the adapters that have been imported drop theirs too.
    """
    _client.cache_clear()
    settings.cache_clear()
    for name in ("accounts", "files"):
        adapter = sys.modules.get(f"{__name__}.{name}")
        if adapter is not None:
            adapter._models.cache_clear()
    queues = sys.modules.get(f"{__name__}.queues")
    if queues is not None:
        queues.reset()
    iam = sys.modules.get(f"{__name__}.iam")
    if iam is not None:  # the caller's account: another endpoint may be another account
        iam.account.cache_clear()
    routes = sys.modules.get(f"{__name__}.routes")
    if routes is not None:  # its warm route service caches decks and suppliers per tenant
        routes.route_service.cache_clear()
    for hook in _RESET_HOOKS:
        hook()


def provision() -> None:
    """Create the tables, buckets and the fraud topic named by settings() if missing (local
    stack, tests).

    Same shape as infra/template.yaml: `pk` S HASH, `sk` S RANGE, on-demand; the fraud
    table's items expire on `expires_at` (DynamoDB TTL).
    """
    names = settings()
    dynamodb = client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    tables = (
        names.accounts_table,
        names.ledger_table,
        names.files_table,
        names.billing_table,
        names.fraud_table,
    )
    for table in tables:
        if table in existing:
            continue
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        ttl = {names.fraud_table: FRAUD_TTL_ATTRIBUTE, names.ledger_table: HOLD_TTL_ATTRIBUTE}
        if table in ttl:
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl[table]},
            )
    # The fraud topic's name; on AWS settings() holds its ARN and the stack made it.
    if not names.fraud_topic.startswith("arn:"):
        client("sns").create_topic(Name=names.fraud_topic)  # idempotent for one name
    s3 = client("s3")
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    region = s3.meta.region_name
    placement = {} if region == "us-east-1" else {"LocationConstraint": region}
    for bucket in (names.cdr_bucket, names.lake_bucket, names.documents_bucket):
        if bucket not in buckets:
            if placement:
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=placement)
            else:
                s3.create_bucket(Bucket=bucket)
