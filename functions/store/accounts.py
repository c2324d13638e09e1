"""Tenants, switches, accounts and rate-deck versions: the accounts table (PynamoDB).

Key layout (table `settings().accounts_table`; every pk is the tenant):
    pk={tenant}  sk=TENANT                         currency, timezone
    pk={tenant}  sk=SWITCH#{switch}                format, timezone, customer/supplier field,
                                                   CSV template, numbering plan
    pk={tenant}  sk=TRUNK#{switch}#{dir}#{key}     account (dir ingress: a customer, egress: a
                                                   supplier; key a trunk/gateway name or an IP)
    pk={tenant}  sk=ACCOUNT#{account}              kind, parent, prepaid, credit limit, currency,
                                                   status, deck_version (active), deck_seq
    pk={tenant}  sk=DECK#{account}#v{n:010d}       S3 key, currency, rows, skipped, source, sha256

Deck activation: `reserve_deck_version` hands out n with an atomic counter, the caller writes
the immutable Parquet `decks/tenant={t}/account={a}/v{n}.parquet`, then `put_deck_version`
records it and `activate_deck` flips the account's pointer under a condition (only forward).
A rater that read version n keeps reading v{n}: nothing ever rewrites a version.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import SimpleNamespace

from pynamodb.attributes import (
    BooleanAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from functions.ingest.numbers import DEFAULT_PLAN, NumberingPlan
from functions.rate.trunks import TrunkPlan
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, check_name
from functions.store.items import IntAttribute, Item, bind, conditional_failed, now

ACCOUNT_KINDS = ("customer", "supplier", "reseller")
ACCOUNT_STATUSES = ("active", "suspended")
ROUNDING_METHODS = ("half_up", "up", "down")  # functions.shared.money.RoundingMethod
MAX_ROUNDING_DECIMALS = 6  # balances are micro-units: a charge must be a whole number of them


class _Item(Item):
    created_at = UTCDateTimeAttribute(null=True)


class _TenantItem(_Item):
    currency = UnicodeAttribute()
    timezone = UnicodeAttribute()


class _SwitchItem(_Item):
    format = UnicodeAttribute()
    timezone = UnicodeAttribute()
    customer_field = UnicodeAttribute()
    supplier_field = UnicodeAttribute()
    default_supplier = UnicodeAttribute(null=True)
    # Comma-joined: a FreeSWITCH CSV template's variables; the numbering plan's tech prefixes.
    template = UnicodeAttribute(null=True)
    strip_prefixes = UnicodeAttribute(null=True)
    international_prefix = UnicodeAttribute(null=True)
    national_prefix = UnicodeAttribute(null=True)
    country_code = UnicodeAttribute(null=True)


class _AccountItem(_Item):
    kind = UnicodeAttribute()
    parent = UnicodeAttribute(null=True)
    prepaid = BooleanAttribute()
    credit_limit = IntAttribute()  # micro-units
    currency = UnicodeAttribute()
    status = UnicodeAttribute()
    deck_version = IntAttribute(null=True)  # active version; absent = no deck yet
    deck_seq = IntAttribute(null=True)  # last version number handed out
    # The contract's rounding of each charge (absent on items older than the setting).
    rounding = UnicodeAttribute(null=True)
    rounding_decimals = IntAttribute(null=True)


class _DeckItem(_Item):
    key = UnicodeAttribute()
    currency = UnicodeAttribute()
    rows = IntAttribute()
    skipped = IntAttribute()
    source = UnicodeAttribute()
    sha256 = UnicodeAttribute()


@cache
def _models(table: str) -> SimpleNamespace:
    return SimpleNamespace(
        tenant=bind(_TenantItem, table),
        switch=bind(_SwitchItem, table),
        account=bind(_AccountItem, table),
        deck=bind(_DeckItem, table),
        version=bind(_DeckVersionItem, table),
        trunk=bind(_TrunkItem, table),
    )


def _m() -> SimpleNamespace:
    return _models(settings().accounts_table)


def _deck_sk(account: str, version: int) -> str:
    return f"DECK#{account}#v{version:010d}"


# --- tenants ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant: str
    currency: str
    timezone: str


def _tenant(item: _TenantItem) -> Tenant:
    return Tenant(tenant=item.pk, currency=item.currency, timezone=item.timezone)


def create_tenant(tenant: str, *, currency: str = "USD", timezone: str = "UTC") -> Tenant:
    """Create a tenant; ConflictError if it exists."""
    item = _m().tenant(check_name("tenant", tenant), "TENANT", currency=currency, timezone=timezone)
    item.created_at = now()
    try:
        item.save(condition=_m().tenant.pk.does_not_exist())
    except PutError as error:
        if conditional_failed(error):
            raise ConflictError(f"tenant {tenant!r} already exists") from None
        raise
    return _tenant(item)


def get_tenant(tenant: str) -> Tenant:
    try:
        return _tenant(_m().tenant.get(check_name("tenant", tenant), "TENANT"))
    except DoesNotExist:
        raise NotFoundError(f"unknown tenant {tenant!r}") from None


# --- switches --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Switch:
    tenant: str
    switch: str
    format: str
    timezone: str
    customer_field: str  # the CDR field that names the customer account
    supplier_field: str  # the CDR field that names the supplier account
    # The supplier of calls whose CDR names none: a switch trunked to one vendor, or a
    # format (FreeSWITCH's stock CSV templates) without a gateway field.
    default_supplier: str | None = None
    # A FreeSWITCH switch's own mod_cdr_csv template (variable names in order); None: stock.
    template: tuple[str, ...] | None = None
    # How it writes numbers (tech prefixes, international and national prefixes).
    numbering: NumberingPlan = DEFAULT_PLAN


def _switch(item: _SwitchItem) -> Switch:
    return Switch(
        tenant=item.pk,
        switch=item.sk.removeprefix("SWITCH#"),
        format=item.format,
        timezone=item.timezone,
        customer_field=item.customer_field,
        supplier_field=item.supplier_field,
        default_supplier=item.default_supplier,
        template=tuple(item.template.split(",")) if item.template else None,
        numbering=NumberingPlan(
            strip=tuple(item.strip_prefixes.split(",")) if item.strip_prefixes else (),
            international_prefix=item.international_prefix or "00",
            national_prefix=item.national_prefix,
            country_code=item.country_code,
        ),
    )


def create_switch(
    tenant: str,
    switch: str,
    *,
    format: str,
    timezone: str | None = None,
    customer_field: str = "customer",
    supplier_field: str = "supplier",
    default_supplier: str | None = None,
    template: Sequence[str] | None = None,
) -> Switch:
    """Register a switch of a known tenant (time zone defaults to the tenant's).

    `template`: a freeswitch-csv switch's own mod_cdr_csv template, its variable names in
    order (the stock templates need none).
    """
    owner = get_tenant(tenant)
    if default_supplier is not None:
        supplier = get_account(tenant, default_supplier)
        if supplier.kind != "supplier":
            raise ValueError(f"default supplier {default_supplier!r} is a {supplier.kind}")
    if template is not None:
        # Here, not at import: the raters that read switches never load the CSV formats.
        from functions.ingest.formats.freeswitch import CSV_NAME, check_template

        if format != CSV_NAME:
            raise ValueError(f"template: only a {CSV_NAME} switch takes one, not {format}")
        template = check_template(template)
    item = _m().switch(
        tenant,
        f"SWITCH#{check_name('switch', switch)}",
        format=format,
        timezone=timezone or owner.timezone,
        customer_field=customer_field,
        supplier_field=supplier_field,
        default_supplier=default_supplier,
        template=",".join(template) if template else None,
    )
    item.created_at = now()
    try:
        item.save(condition=_m().switch.pk.does_not_exist())
    except PutError as error:
        if conditional_failed(error):
            raise ConflictError(f"switch {switch!r} already exists in tenant {tenant!r}") from None
        raise
    return _switch(item)


def get_switch(tenant: str, switch: str) -> Switch:
    try:
        item = _m().switch.get(
            check_name("tenant", tenant), f"SWITCH#{check_name('switch', switch)}"
        )
    except DoesNotExist:
        raise NotFoundError(f"unknown switch {switch!r} in tenant {tenant!r}") from None
    return _switch(item)


def list_switches(tenant: str) -> list[Switch]:
    model = _m().switch
    items = model.query(check_name("tenant", tenant), model.sk.startswith("SWITCH#"))
    return [_switch(item) for item in items]


def set_numbering(tenant: str, switch: str, plan: NumberingPlan) -> Switch:
    """Store how a switch writes numbers; its next files are translated by it (not earlier
    ones: the lake keeps what was ingested)."""
    model = _m().switch
    try:
        item = model.get(check_name("tenant", tenant), f"SWITCH#{check_name('switch', switch)}")
    except DoesNotExist:
        raise NotFoundError(f"unknown switch {switch!r} in tenant {tenant!r}") from None
    values = [
        (model.strip_prefixes, ",".join(plan.strip) or None),
        (model.international_prefix, plan.international_prefix),
        (model.national_prefix, plan.national_prefix),
        (model.country_code, plan.country_code),
    ]
    actions = [a.remove() if v is None else a.set(v) for a, v in values]
    item.update(actions=actions, condition=model.pk.exists())
    return _switch(item)


# --- trunks: what a switch's CDRs name, mapped to accounts ------------------------------------

# A direction's key names the account of this kind.
TRUNK_DIRECTIONS = {"ingress": "customer", "egress": "supplier"}
# Gateway and peer names, hosts and IPv4/IPv6 addresses; no key separators or spaces.
_TRUNK_KEY = re.compile(r"[A-Za-z0-9_.:@+\[\]-]{1,128}")


class _TrunkItem(_Item):
    account = UnicodeAttribute()


@dataclass(frozen=True, slots=True)
class TrunkMapping:
    tenant: str
    switch: str
    direction: str  # ingress (the customer's trunk) | egress (the supplier's)
    key: str  # a trunk or gateway name, or an IP, exactly as the CDRs write it
    account: str


def check_trunk_key(key: str) -> str:
    if not isinstance(key, str) or not _TRUNK_KEY.fullmatch(key):
        raise ValueError(
            f"invalid trunk key {key!r}: a trunk or gateway name or an IP, 1-128 letters, "
            "digits or '_.:@+[]-'"
        )
    return key


def _trunk_sk(switch: str, direction: str, key: str) -> str:
    if direction not in TRUNK_DIRECTIONS:
        raise ValueError(f"invalid direction {direction!r}: use ingress or egress")
    return f"TRUNK#{check_name('switch', switch)}#{direction}#{check_trunk_key(key)}"


def map_trunk(tenant: str, switch: str, direction: str, key: str, account: str) -> TrunkMapping:
    """Map what a switch's CDRs call a trunk (or its IP) to an account: ingress to a
    customer, egress to a supplier. Mapping a key again moves it to the new account."""
    sk = _trunk_sk(switch, direction, key)
    get_switch(tenant, switch)
    kind = TRUNK_DIRECTIONS[direction]
    target = get_account(tenant, account)
    if target.kind != kind:
        raise ValueError(
            f"{direction} {key!r}: account {account!r} is a {target.kind}, not a {kind}"
        )
    item = _m().trunk(tenant, sk, account=account)
    item.created_at = now()
    item.save()
    return TrunkMapping(tenant, switch, direction, key, account)


def unmap_trunk(tenant: str, switch: str, direction: str, key: str) -> TrunkMapping:
    """Remove a mapping; NotFoundError if the key is not mapped."""
    sk = _trunk_sk(switch, direction, key)
    model = _m().trunk
    try:
        item = model.get(check_name("tenant", tenant), sk)
    except DoesNotExist:
        raise NotFoundError(
            f"{direction} {key!r} is not mapped on switch {switch!r} in tenant {tenant!r}"
        ) from None
    item.delete()
    return TrunkMapping(tenant, switch, direction, key, item.account)


def list_trunks(tenant: str, switch: str) -> list[TrunkMapping]:
    """A switch's mappings, ingress then egress, each by key."""
    model = _m().trunk
    prefix = f"TRUNK#{check_name('switch', switch)}#"
    out = []
    for item in model.query(check_name("tenant", tenant), model.sk.startswith(prefix)):
        direction, key = item.sk.removeprefix(prefix).split("#", 1)
        out.append(TrunkMapping(tenant, switch, direction, key, item.account))
    return sorted(out, key=lambda m: (m.direction != "ingress", m.key))


def get_trunk_plan(tenant: str, switch: str) -> TrunkPlan:
    """What rating needs to resolve a switch's CDRs to accounts (functions.rate.trunks)."""
    found = get_switch(tenant, switch)
    mappings = list_trunks(tenant, switch)
    return TrunkPlan(
        ingress={m.key: m.account for m in mappings if m.direction == "ingress"},
        egress={m.key: m.account for m in mappings if m.direction == "egress"},
        customer_field=found.customer_field,
        supplier_field=found.supplier_field,
        default_supplier=found.default_supplier,
    )


# --- accounts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    tenant: str
    account: str
    kind: str  # customer | supplier | reseller
    parent: str | None  # a reseller account of the same tenant
    prepaid: bool
    credit_limit_micro: int
    currency: str
    status: str  # active | suspended
    deck_version: int | None  # the active rate deck version; None before the first upload
    rounding: str = "half_up"  # how each charge to this account is rounded, once
    rounding_decimals: int = 6


def _account(item: _AccountItem) -> Account:
    return Account(
        tenant=item.pk,
        account=item.sk.removeprefix("ACCOUNT#"),
        kind=item.kind,
        parent=item.parent,
        prepaid=bool(item.prepaid),
        credit_limit_micro=item.credit_limit,
        currency=item.currency,
        status=item.status,
        deck_version=item.deck_version,
        rounding=item.rounding or "half_up",
        rounding_decimals=6 if item.rounding_decimals is None else item.rounding_decimals,
    )


def _check_rounding(rounding: str, decimals: int) -> None:
    if rounding not in ROUNDING_METHODS:
        raise ValueError(f"invalid rounding {rounding!r}: use one of {', '.join(ROUNDING_METHODS)}")
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise ValueError(f"invalid rounding decimals {decimals!r}: use a whole number")
    if not 0 <= decimals <= MAX_ROUNDING_DECIMALS:
        raise ValueError(
            f"invalid rounding decimals {decimals}: use 0..{MAX_ROUNDING_DECIMALS} "
            "(balances are kept in micro-units)"
        )


def create_account(
    tenant: str,
    account: str,
    *,
    kind: str,
    parent: str | None = None,
    prepaid: bool = False,
    credit_limit_micro: int = 0,
    currency: str | None = None,
    rounding: str = "half_up",
    rounding_decimals: int = 6,
) -> Account:
    """Create an account; the parent, if any, must be a reseller of the same tenant.

    A parent must exist already, so the reseller tree can never hold a cycle.
    """
    owner = get_tenant(tenant)
    check_name("account", account)
    _check_rounding(rounding, rounding_decimals)
    if kind not in ACCOUNT_KINDS:
        raise ValueError(f"invalid account kind {kind!r}: use one of {', '.join(ACCOUNT_KINDS)}")
    if credit_limit_micro < 0:
        raise ValueError("credit limit must not be negative")
    if parent is not None:
        if parent == account:
            raise ValueError(f"account {account!r} cannot be its own parent")
        try:
            parent_account = get_account(tenant, parent)
        except NotFoundError:
            raise NotFoundError(f"unknown parent account {parent!r} in tenant {tenant!r}") from None
        if parent_account.kind != "reseller":
            raise ValueError(f"parent {parent!r} is a {parent_account.kind}, not a reseller")
    item = _m().account(
        tenant,
        f"ACCOUNT#{account}",
        kind=kind,
        parent=parent,
        prepaid=prepaid,
        credit_limit=credit_limit_micro,
        currency=currency or owner.currency,
        status="active",
        rounding=rounding,
        rounding_decimals=rounding_decimals,
    )
    item.created_at = now()
    try:
        item.save(condition=_m().account.pk.does_not_exist())
    except PutError as error:
        if conditional_failed(error):
            raise ConflictError(
                f"account {account!r} already exists in tenant {tenant!r}"
            ) from None
        raise
    return _account(item)


def _account_item(tenant: str, account: str) -> _AccountItem:
    try:
        return _m().account.get(
            check_name("tenant", tenant), f"ACCOUNT#{check_name('account', account)}"
        )
    except DoesNotExist:
        raise NotFoundError(f"unknown account {account!r} in tenant {tenant!r}") from None


def get_account(tenant: str, account: str) -> Account:
    return _account(_account_item(tenant, account))


def list_accounts(tenant: str) -> list[Account]:
    model = _m().account
    items = model.query(check_name("tenant", tenant), model.sk.startswith("ACCOUNT#"))
    return [_account(item) for item in items]


def set_rounding(tenant: str, account: str, rounding: str, decimals: int) -> Account:
    """Store the contract's rounding rule on an account (used by rating and re-rating)."""
    _check_rounding(rounding, decimals)
    item = _account_item(tenant, account)
    model = _m().account
    item.update(
        actions=[model.rounding.set(rounding), model.rounding_decimals.set(decimals)],
        condition=model.pk.exists(),
    )
    return _account(item)


def set_account_status(tenant: str, account: str, status: str) -> Account:
    if status not in ACCOUNT_STATUSES:
        raise ValueError(f"invalid status {status!r}: use one of {', '.join(ACCOUNT_STATUSES)}")
    item = _account_item(tenant, account)
    item.update(actions=[_m().account.status.set(status)], condition=_m().account.pk.exists())
    return _account(item)


# --- rate deck versions ----------------------------------------------------------------
#
# An upload composes the account's rate timeline onto its head version h and writes the new
# version's objects (lake.put_deck_upload, lake.put_deck) under a number from
# `reserve_deck_version`; `commit_deck_version` then records the version and moves the head
# from h to it in one transaction, so the pointer never names a version whose Parquet is not
# written, and of two uploads racing from h one commits and the other is told to compose
# again on the new head (HeadMovedError). Numbers a lost race or a crash reserved are never
# recorded: version numbers may skip. Nothing is ever rewritten or deleted.


class _DeckVersionItem(_DeckItem):
    """A deck version's item: the upload's file and what it did to the account's timeline."""

    # Items recorded before rate history lack these: they were full decks, replacing.
    mode = UnicodeAttribute(null=True)
    upload_key = UnicodeAttribute(null=True)
    effective = IntAttribute(null=True)
    effective_min = IntAttribute(null=True)
    effective_max = IntAttribute(null=True)
    timeline_rows = IntAttribute(null=True)
    timeline_sha256 = UnicodeAttribute(null=True)
    base = IntAttribute(null=True)
    restores = IntAttribute(null=True)
    added = IntAttribute(null=True)
    unchanged = IntAttribute(null=True)
    superseded = IntAttribute(null=True)
    end_dated = IntAttribute(null=True)
    closed = IntAttribute(null=True)


def _versions() -> type:
    return _m().version


_COMMIT_ATTEMPTS = 8  # transaction conflicts with a concurrent writer of the account item


class HeadMovedError(ConflictError):
    """Another version became the account's head first: compose again on the new head."""


@dataclass(frozen=True, slots=True)
class DeckVersion:
    tenant: str
    account: str
    version: int
    mode: str  # full | changes | rollback
    key: str  # the timeline after this version (lake.deck_key): what rating reads
    upload_key: str | None  # the rows as uploaded (lake.deck_upload_key); None: a rollback
    currency: str
    effective: int | None  # the upload's effective date E, epoch seconds; None: a rollback
    rows: int  # rows uploaded
    skipped: int  # invalid rows dropped (--skip-invalid)
    timeline_rows: int  # entries in the timeline after this version
    effective_min: int | None  # earliest effective_from uploaded (deck.ALWAYS: the beginning)
    effective_max: int | None  # latest effective_from uploaded
    source: str  # the uploaded file's name
    sha256: str  # of the uploaded file's bytes ("" for a rollback)
    timeline_sha256: str  # of the timeline's Parquet bytes
    base: int | None  # the head this version was composed on; None: the account's first
    restores: int | None = None  # a rollback: the version whose timeline it restores
    added: int = 0
    unchanged: int = 0
    superseded: int = 0
    end_dated: int = 0
    closed: int = 0
    uploaded_at: datetime | None = None  # set when committed


def _deck(item: _DeckVersionItem) -> DeckVersion:
    _, account, version = item.sk.split("#")
    return DeckVersion(
        tenant=item.pk,
        account=account,
        version=int(version.removeprefix("v")),
        mode=item.mode or "full",
        key=item.key,
        upload_key=item.upload_key,
        currency=item.currency,
        effective=item.effective,
        rows=item.rows,
        skipped=item.skipped,
        timeline_rows=item.rows if item.timeline_rows is None else item.timeline_rows,
        effective_min=item.effective_min,
        effective_max=item.effective_max,
        source=item.source,
        sha256=item.sha256,
        timeline_sha256=item.timeline_sha256 or item.sha256,
        base=item.base,
        restores=item.restores,
        added=item.added or 0,
        unchanged=item.unchanged or 0,
        superseded=item.superseded or 0,
        end_dated=item.end_dated or 0,
        closed=item.closed or 0,
        uploaded_at=item.created_at,
    )


def reserve_deck_version(tenant: str, account: str) -> int:
    """Hand out the account's next deck version number (atomic; never reused)."""
    item = _account_item(tenant, account)
    model = _m().account
    item.update(actions=[model.deck_seq.add(1)], condition=model.pk.exists())
    return item.deck_seq


def commit_deck_version(record: DeckVersion) -> DeckVersion:
    """Record a written version and make it the head, if the head is still `record.base`.

    One transaction: the version item (never overwritten) and the account's pointer, moved
    only from `record.base` (None: the account has no deck yet). Raises HeadMovedError if
    another version became the head meanwhile; a retry of a commit that went through
    returns the recorded version.
    """
    tenant = check_name("tenant", record.tenant)
    account = check_name("account", record.account)
    versions, accounts_model = _versions(), _m().account
    item = versions(
        tenant,
        _deck_sk(account, record.version),
        key=record.key,
        currency=record.currency,
        rows=record.rows,
        skipped=record.skipped,
        source=record.source,
        sha256=record.sha256,
        mode=record.mode,
        upload_key=record.upload_key,
        effective=record.effective,
        effective_min=record.effective_min,
        effective_max=record.effective_max,
        timeline_rows=record.timeline_rows,
        timeline_sha256=record.timeline_sha256,
        base=record.base,
        restores=record.restores,
        added=record.added,
        unchanged=record.unchanged,
        superseded=record.superseded,
        end_dated=record.end_dated,
        closed=record.closed,
    )
    item.created_at = record.uploaded_at or now()
    pointer = accounts_model.deck_version
    at_base = pointer.does_not_exist() if record.base is None else pointer == record.base
    connection = Connection(region=versions.Meta.region, host=versions.Meta.host)
    for attempt in range(_COMMIT_ATTEMPTS):
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.save(item, condition=versions.pk.does_not_exist())
                transaction.update(
                    accounts_model(tenant, f"ACCOUNT#{account}"),
                    actions=[pointer.set(record.version)],
                    condition=accounts_model.pk.exists() & at_base,
                )
            return _deck(item)
        except TransactWriteError as error:
            codes = {r.code for r in error.cancellation_reasons or [] if r is not None}
            if "ConditionalCheckFailed" in codes:
                return _committed_already(record)
            if not codes & {"TransactionConflict", "ThrottlingError"}:
                raise
        time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
    raise ConflictError(f"deck version {record.version} of {account!r}: still conflicting")


def _committed_already(record: DeckVersion) -> DeckVersion:
    """Why a commit's condition failed: a retry of itself, or another head first."""
    head = get_account(record.tenant, record.account).deck_version  # NotFoundError if none
    if head == record.version:
        existing = get_deck_version(record.tenant, record.account, record.version)
        if (existing.key, existing.timeline_sha256) == (record.key, record.timeline_sha256):
            return existing
    try:
        get_deck_version(record.tenant, record.account, record.version)
    except NotFoundError:
        raise HeadMovedError(
            f"account {record.account!r} moved from deck version {record.base} to {head}"
        ) from None
    raise ConflictError(
        f"deck version {record.version} of {record.account!r} already recorded with other contents"
    )


def get_deck_version(tenant: str, account: str, version: int) -> DeckVersion:
    try:
        item = _versions().get(
            check_name("tenant", tenant), _deck_sk(check_name("account", account), version)
        )
    except DoesNotExist:
        raise NotFoundError(f"unknown deck version {version} of account {account!r}") from None
    return _deck(item)


def list_deck_versions(tenant: str, account: str) -> list[DeckVersion]:
    """Every recorded version of the account's deck, oldest first."""
    model = _versions()
    prefix = f"DECK#{check_name('account', account)}#"
    return [
        _deck(i) for i in model.query(check_name("tenant", tenant), model.sk.startswith(prefix))
    ]


def active_deck(tenant: str, account: str) -> DeckVersion | None:
    """The deck version a rater should use now (the head), or None if the account has none."""
    current = get_account(tenant, account)
    if current.deck_version is None:
        return None
    return get_deck_version(tenant, account, current.deck_version)
