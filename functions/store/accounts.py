"""Tenants, switches, accounts and rate-deck versions: the accounts table (PynamoDB).

Key layout (table `settings().accounts_table`; every pk is the tenant):
    pk={tenant}  sk=TENANT                         currency, timezone
    pk={tenant}  sk=SWITCH#{switch}                format, timezone, customer/supplier field
    pk={tenant}  sk=ACCOUNT#{account}              kind, parent, prepaid, credit limit, currency,
                                                   status, deck_version (active), deck_seq
    pk={tenant}  sk=DECK#{account}#v{n:010d}       S3 key, currency, rows, skipped, source, sha256

Deck activation: `reserve_deck_version` hands out n with an atomic counter, the caller writes
the immutable Parquet `decks/tenant={t}/account={a}/v{n}.parquet`, then `put_deck_version`
records it and `activate_deck` flips the account's pointer under a condition (only forward).
A rater that read version n keeps reading v{n}: nothing ever rewrites a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import SimpleNamespace

from pynamodb.attributes import (
    BooleanAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

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


def _switch(item: _SwitchItem) -> Switch:
    return Switch(
        tenant=item.pk,
        switch=item.sk.removeprefix("SWITCH#"),
        format=item.format,
        timezone=item.timezone,
        customer_field=item.customer_field,
        supplier_field=item.supplier_field,
        default_supplier=item.default_supplier,
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
) -> Switch:
    """Register a switch of a known tenant (time zone defaults to the tenant's)."""
    owner = get_tenant(tenant)
    if default_supplier is not None:
        supplier = get_account(tenant, default_supplier)
        if supplier.kind != "supplier":
            raise ValueError(f"default supplier {default_supplier!r} is a {supplier.kind}")
    item = _m().switch(
        tenant,
        f"SWITCH#{check_name('switch', switch)}",
        format=format,
        timezone=timezone or owner.timezone,
        customer_field=customer_field,
        supplier_field=supplier_field,
        default_supplier=default_supplier,
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


@dataclass(frozen=True, slots=True)
class DeckVersion:
    tenant: str
    account: str
    version: int
    key: str  # S3 key of the immutable Parquet in the lake bucket
    currency: str
    rows: int
    skipped: int
    source: str  # the uploaded file's name
    sha256: str  # of the Parquet bytes
    created_at: datetime | None


def _deck(item: _DeckItem) -> DeckVersion:
    _, account, version = item.sk.split("#")
    return DeckVersion(
        tenant=item.pk,
        account=account,
        version=int(version.removeprefix("v")),
        key=item.key,
        currency=item.currency,
        rows=item.rows,
        skipped=item.skipped,
        source=item.source,
        sha256=item.sha256,
        created_at=item.created_at,
    )


def reserve_deck_version(tenant: str, account: str) -> int:
    """Hand out the account's next deck version number (atomic; never reused)."""
    item = _account_item(tenant, account)
    model = _m().account
    item.update(actions=[model.deck_seq.add(1)], condition=model.pk.exists())
    return item.deck_seq


def put_deck_version(
    tenant: str,
    account: str,
    version: int,
    *,
    key: str,
    currency: str,
    rows: int,
    skipped: int,
    source: str,
    sha256: str,
) -> DeckVersion:
    """Record a written deck version (immutable: ConflictError if recorded differently)."""
    check_name("tenant", tenant)
    check_name("account", account)
    model = _m().deck
    item = model(
        tenant,
        _deck_sk(account, version),
        key=key,
        currency=currency,
        rows=rows,
        skipped=skipped,
        source=source,
        sha256=sha256,
    )
    item.created_at = now()
    try:
        item.save(condition=model.pk.does_not_exist())
    except PutError as error:
        if not conditional_failed(error):
            raise
        existing = get_deck_version(tenant, account, version)
        if (existing.key, existing.sha256) != (key, sha256):
            raise ConflictError(
                f"deck version {version} of {account!r} already recorded with other contents"
            ) from None
        return existing
    return _deck(item)


def get_deck_version(tenant: str, account: str, version: int) -> DeckVersion:
    try:
        item = _m().deck.get(
            check_name("tenant", tenant), _deck_sk(check_name("account", account), version)
        )
    except DoesNotExist:
        raise NotFoundError(f"unknown deck version {version} of account {account!r}") from None
    return _deck(item)


def list_deck_versions(tenant: str, account: str) -> list[DeckVersion]:
    model = _m().deck
    prefix = f"DECK#{check_name('account', account)}#"
    return [
        _deck(i) for i in model.query(check_name("tenant", tenant), model.sk.startswith(prefix))
    ]


def activate_deck(tenant: str, account: str, version: int) -> bool:
    """Point the account at a recorded deck version; False if a newer one is already active.

    The version item must exist (so its Parquet does), and the pointer only moves forward:
    a slow upload of v3 finishing after v4 was activated leaves v4 active.
    """
    get_deck_version(tenant, account, version)  # versions are never deleted: check then flip
    model = _m().account
    item = model(tenant, f"ACCOUNT#{account}")
    condition = model.pk.exists() & (
        model.deck_version.does_not_exist() | (model.deck_version <= version)
    )
    try:
        item.update(actions=[model.deck_version.set(version)], condition=condition)
    except UpdateError as error:
        if conditional_failed(error):
            return False
        raise
    return True


def active_deck(tenant: str, account: str) -> DeckVersion | None:
    """The deck version a rater should use now, or None if the account has no deck."""
    current = get_account(tenant, account)
    if current.deck_version is None:
        return None
    return get_deck_version(tenant, account, current.deck_version)
