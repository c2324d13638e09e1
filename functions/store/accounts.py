"""Tenants, switches, accounts and rate-deck versions: the accounts table (PynamoDB).

Key layout (table `settings().accounts_table`; every pk is the tenant):
    pk={tenant}  sk=TENANT                         currency, timezone, authz fallback
    pk={tenant}  sk=SWITCH#{switch}                format, timezone, customer/supplier field,
                                                   CSV template, numbering plan, column
                                                   mapping (JSON)
    pk={tenant}  sk=TRUNK#{switch}#{dir}#{key}     account (dir ingress: a customer, egress: a
                                                   supplier; key a trunk/gateway name or an IP)
    pk={tenant}  sk=ACCOUNT#{account}              kind, parent, prepaid, credit limit, currency,
                                                   status, deck_version (active, plan default),
                                                   deck_seq, plan_decks {plan: active version}
                                                   of the other plans, plan_rules {caller
                                                   prefix: plan}
    pk={tenant}  sk=DECK#{account}#v{n:010d}       S3 key, currency, rows, skipped, source, sha256
    pk={tenant}  sk=DID#{number}#{start YYYY-MM-DD} account, monthly/setup fees (micro-units),
                                                   per-minute rate (10^-8), end (last day)
    pk={tenant}  sk=CONTRACT#{account}#{tier|bundle}#{name}
                                                   the terms (JSON: prefixes, mode and tiers;
                                                   or included seconds, fee, start)
    pk={tenant}  sk=AUDIT#{TENANT|SWITCH|ACCOUNT|APIKEY}#{name}#{at}#{change id}
                                                   who changed what, when and why (see below)
    pk={tenant}  sk=APIKEY#{key_id}                an API key as listed (functions.store.apikeys)
    pk=APIKEY#{key_id}  sk=APIKEY                  the same key with its digest: the one item a
                                                   request reads. Its pk is not a tenant (no
                                                   tenant id can hold `#`) and no read here
                                                   asks for it: the key names its tenant

Deck activation: `reserve_deck_version` hands out n with an atomic counter, the caller writes
the immutable Parquet `decks/tenant={t}/account={a}/v{n}.parquet`, then `commit_deck_version`
records it and moves its plan's head in one transaction, only from the head it was based on.
A rater that read version n keeps reading v{n}: nothing ever rewrites a version.

Rate plans (functions.rate.plans): each plan is its own timeline of versions, all numbered
from the account's one sequence (so the lake path has no plan in it); a version records its
plan (absent: `default`, as every version before plans was). The head of `default` stays in
`deck_version`, those of the other plans in the `plan_decks` map.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
import uuid
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from functions.api.dialects import (
    DEFAULT_FALLBACK,
    DEFAULT_FALLBACK_SECONDS,
    check_fallback,
    check_fallback_seconds,
)
from functions.ingest.numbers import DEFAULT_PLAN, NumberingPlan
from functions.rate.contracts import Contracts
from functions.rate.plans import DEFAULT_PLAN as DEFAULT_RATE_PLAN
from functions.rate.plans import check_caller_prefix
from functions.rate.recurring import BundleFee, Did, check_dids
from functions.rate.tiers import Bundle, Tier, TierSchedule
from functions.rate.trunks import TrunkPlan
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, budget, check_name, client
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
    # What POST /v1/authz answers when it cannot decide in time (functions.api.dialects):
    # absent = the defaults there (closed; the open cap in seconds).
    authz_fallback = UnicodeAttribute(null=True)
    authz_fallback_seconds = IntAttribute(null=True)


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
    # A column mapping's JSON (functions.ingest.formats.mapped.ColumnMapping.to_dict).
    column_mapping = UnicodeAttribute(null=True)


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
    # Why and since when the account has its status (absent until the status first changes).
    status_reason = UnicodeAttribute(null=True)
    status_since = UTCDateTimeAttribute(null=True)
    # Rate plans other than `default`: plan -> active deck version; caller prefix -> plan.
    plan_decks = MapAttribute(null=True)
    plan_rules = MapAttribute(null=True)


class _DeckItem(_Item):
    key = UnicodeAttribute()
    currency = UnicodeAttribute()
    rows = IntAttribute()
    skipped = IntAttribute()
    source = UnicodeAttribute()
    sha256 = UnicodeAttribute()


@cache
def _models(table: str, ledger_table: str, limits: budget.Limits | None = None) -> SimpleNamespace:
    """The models bound to the tables; with `limits` (inside a budget: the switches'
    authorization), models of their own whose connections time out and retry by them."""
    meta = bind(_AccountItem, table, limits).Meta

    def bound(base):
        return bind(base, table, limits)

    timeouts = budget.model_meta(limits) if limits else {}
    return SimpleNamespace(
        tenant=bound(_TenantItem),
        switch=bound(_SwitchItem),
        account=bound(_AccountItem),
        deck=bound(_DeckItem),
        version=bound(_DeckVersionItem),
        trunk=bound(_TrunkItem),
        audit=bound(_AuditItem),
        did=bound(_DidItem),
        did_number=bound(_DidNumberItem),
        contract=bound(_ContractItem),
        balance=bind(_LedgerBalanceItem, ledger_table, limits),
        authz=bind(_AuthzSettingsItem, ledger_table, limits),
        # One connection for the transactions (its client is made once, on first use).
        connection=Connection(region=meta.region, host=meta.host, **timeouts),
    )


def _m() -> SimpleNamespace:
    names = settings()
    return _models(names.accounts_table, names.ledger_table, budget.active())


def _deck_sk(account: str, version: int) -> str:
    return f"DECK#{account}#v{version:010d}"


# --- the audit trail: who changed what, when and why ---------------------------------------
#
# A change to a tenant's, a switch's or an account's settings is one transaction: the item's
# update, conditioned on the values it was read with, and an audit item under the same
# tenant. No setting changes unrecorded, no entry records a change that did not happen, and
# each entry's `old` is the value really replaced (a concurrent change makes the loser read
# and decide again). `by` is who the operator says made the change (`--by`, or
# $TOLLGATE_OPERATOR); `principal` is the AWS identity the call ran as, which cannot be typed.

AUDIT_SUBJECTS = ("tenant", "switch", "account", "apikey", "user")
_REASON_CHARS = 1024
_BY_CHARS = 256
_UPDATE_ATTEMPTS = 8  # the item changed between read and write: read and decide again


class _AuditItem(_Item):
    at = UTCDateTimeAttribute()
    by = UnicodeAttribute()
    principal = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    changes = UnicodeAttribute()  # JSON: [{"field", "old", "new"}, ...], values exact


class _LedgerBalanceItem(Item):
    """The ledger's `BALANCE#{account}` item (functions.store.ledger): it exists once any
    money has moved for the account. Only its existence is read, in the same transaction as
    a change that must not happen to an account with a history of money."""


class _AuthzSettingsItem(Item):
    """The ledger's `AUTHZ#settings` item (functions.store.holds): its `routes_version` is
    bumped in the same transaction as a change a supplier's routes depend on (its deck head,
    status, kind, currency, rounding), so the next START rebuilds its route list at once."""

    routes_version = IntAttribute(null=True)


# The account fields routing reads of a supplier (functions.store.routes.RouteSupplier).
ROUTING_FIELDS = frozenset({"kind", "status", "currency", "rounding", "rounding_decimals"})


def _routes_bump(tenant: str) -> tuple[Item, list[Any]]:
    """The update adding 1 to the tenant's routing version (holds.routes_bump's, PynamoDB)."""
    model = _m().authz
    return model(tenant, "AUTHZ#settings"), [model.routes_version.add(1)]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: `by` as named (an operator's name, a rule's id) and `principal`,
    the AWS identity the call ran as (STS GetCallerIdentity)."""

    by: str
    principal: str


def caller(by: str | None = None) -> Actor:
    """The caller's AWS identity (STS), recorded as `by` too unless a name is given."""
    principal = client("sts").get_caller_identity()["Arn"]
    return Actor(by=principal if by is None else by, principal=principal)


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    old: Any  # JSON values: str, int (micro-units, decimals), bool, None, list, dict
    new: Any


@dataclass(frozen=True, slots=True)
class AuditEntry:
    tenant: str
    subject: str  # tenant | switch | account
    name: str  # the tenant, switch or account id
    at: datetime
    by: str
    principal: str
    reason: str | None
    changes: tuple[Change, ...]
    change_id: str


def _audit_prefix(subject: str, name: str) -> str:
    if subject not in AUDIT_SUBJECTS:
        raise ValueError(f"invalid audit subject {subject!r}: use one of {AUDIT_SUBJECTS}")
    return f"AUDIT#{subject.upper()}#{check_name(subject, name)}#"


def _audit_entry(item: _AuditItem, subject: str, name: str) -> AuditEntry:
    change_id = item.sk.rsplit("#", 1)[1]
    changes = tuple(Change(c["field"], c["old"], c["new"]) for c in json.loads(item.changes))
    return AuditEntry(
        tenant=item.pk,
        subject=subject,
        name=name,
        at=item.at,
        by=item.by,
        principal=item.principal,
        reason=item.reason,
        changes=changes,
        change_id=change_id,
    )


def list_audit(tenant: str, subject: str, name: str) -> list[AuditEntry]:
    """Every recorded change of a tenant's, switch's or account's settings, oldest first."""
    model = _m().audit
    prefix = _audit_prefix(subject, name)
    items = model.query(check_name("tenant", tenant), model.sk.startswith(prefix))
    return [_audit_entry(item, subject, name) for item in items]


def list_tenant_audit(
    tenant: str, subject: str | None = None, since: datetime | None = None
) -> list[AuditEntry]:
    """Every audit entry of a tenant (of one subject, if given; at or after `since`, if
    given), newest first."""
    model = _m().audit
    if subject is not None and subject not in AUDIT_SUBJECTS:
        raise ValueError(f"invalid audit subject {subject!r}: use one of {AUDIT_SUBJECTS}")
    prefix = "AUDIT#" if subject is None else f"AUDIT#{subject.upper()}#"
    condition = model.sk.startswith(prefix)
    found = []
    for item in model.query(check_name("tenant", tenant), condition):
        kind, name = item.sk.split("#")[1:3]
        if since is None or item.at >= since:
            found.append(_audit_entry(item, kind.lower(), name))
    return sorted(found, key=lambda e: (e.at, e.change_id), reverse=True)


def _check_actor(actor: Actor) -> Actor:
    for what, value in (("by", actor.by), ("principal", actor.principal)):
        if not isinstance(value, str) or not value.strip() or len(value) > _BY_CHARS:
            raise ValueError(f"invalid {what} {value!r}: a name of 1-{_BY_CHARS} characters")
        if not value.isprintable():
            raise ValueError(f"invalid {what} {value!r}: control characters")
    return actor


def _check_reason(reason: str | None, *, required: bool = False) -> str | None:
    if reason is not None:
        reason = reason.strip()
    if not reason:
        if required:
            raise ValueError("a reason is required")
        return None
    if len(reason) > _REASON_CHARS:
        raise ValueError(f"reason is longer than {_REASON_CHARS} characters")
    return reason


class _Stale(Exception):
    """An item the change was decided on changed before it committed: read and decide again."""


def _audit_item(entry: AuditEntry) -> _AuditItem:
    changes = [{"field": c.field, "old": c.old, "new": c.new} for c in entry.changes]
    return _m().audit(
        entry.tenant,
        _audit_prefix(entry.subject, entry.name)
        + f"{entry.at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{entry.change_id}",
        at=entry.at,
        by=entry.by,
        principal=entry.principal,
        reason=entry.reason,
        changes=json.dumps(changes, separators=(",", ":")),
    )


# (model, hash key, range key, condition): an item the change was decided on, as it was read.
_Check = tuple[type, str, str, Any]


def _commit(
    item: Item,
    updates: Sequence[tuple[Any, Any]],
    entry: AuditEntry,
    *,
    also: Sequence[Any] = (),
    condition: Any = None,
    checks: Sequence[_Check] = (),
    touch: Sequence[tuple[Item, list[Any]]] = (),
) -> None:
    """Write `updates` [(attribute, new value)] and the audit entry in one transaction.

    Each updated attribute must still hold the value `item` was read with; `also` are
    further actions (not conditioned), `checks` other items' conditions, `touch` other
    items' unconditioned updates [(item, actions)]. Raises _Stale if any condition failed.
    """
    model = type(item)
    actions, where = list(also), model.pk.exists()
    for attribute, new in updates:
        old = getattr(item, attribute.attr_name)
        where &= attribute.does_not_exist() if old is None else attribute == old
        actions.append(attribute.remove() if new is None else attribute.set(new))
    if condition is not None:
        where &= condition
    audit_model = _m().audit
    audit = _audit_item(entry)
    connection = _m().connection
    for attempt in range(_COMMIT_ATTEMPTS):
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.update(item, actions=actions, condition=where)
                transaction.save(audit, condition=audit_model.pk.does_not_exist())
                for check_model, hash_key, range_key, check in checks:
                    transaction.condition_check(check_model, hash_key, range_key, condition=check)
                for other, other_actions in touch:
                    transaction.update(other, actions=other_actions)
            return
        except TransactWriteError as error:
            codes = {r.code for r in error.cancellation_reasons or [] if r is not None}
            if "ConditionalCheckFailed" in codes:
                raise _Stale from None
            if not codes & {"TransactionConflict", "ThrottlingError"}:
                raise
        time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
    raise ConflictError(f"{entry.subject} {entry.name!r}: still conflicting; run it again")


def audit_put(
    tenant: str,
    subject: str,
    name: str,
    changes: Sequence[Change],
    actor: Actor,
    reason: str | None = None,
) -> tuple[AuditEntry, dict[str, Any]]:
    """An audit entry and its Put action, for another adapter's TransactWriteItems on this
    table (boto3's low-level form): the change it records and the entry commit together."""
    actor = _check_actor(actor)
    entry = _entry(tenant, subject, name, list(changes), actor, _check_reason(reason))
    put = {
        "TableName": _m().audit.Meta.table_name,
        "Item": _audit_item(entry).serialize(),
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    return entry, {"Put": put}


def _changes(current: Any, wanted: Any, fields: Sequence[str], value: Any = None) -> list[Change]:
    """The fields whose value differs, as JSON values (`value(field, v)` converts)."""
    convert = value or (lambda _field, v: v)
    return [
        Change(f, convert(f, getattr(current, f)), convert(f, getattr(wanted, f)))
        for f in fields
        if getattr(current, f) != getattr(wanted, f)
    ]


def _entry(
    tenant: str, subject: str, name: str, changes: list[Change], actor: Actor, reason: str | None
) -> AuditEntry:
    return AuditEntry(
        tenant=tenant,
        subject=subject,
        name=name,
        at=datetime.now(UTC),
        by=actor.by,
        principal=actor.principal,
        reason=reason,
        changes=tuple(changes),
        change_id=uuid.uuid4().hex,
    )


def _check_fields(subject: str, changes: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ValueError(
            f"cannot update {subject} field(s) {', '.join(unknown)}: use {', '.join(allowed)}"
        )


# --- tenants ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant: str
    currency: str
    timezone: str
    authz_fallback: str = DEFAULT_FALLBACK  # open | closed
    authz_fallback_seconds: int = DEFAULT_FALLBACK_SECONDS  # the fail-open cap


def _tenant(item: _TenantItem) -> Tenant:
    return Tenant(
        tenant=item.pk,
        currency=item.currency,
        timezone=item.timezone,
        authz_fallback=item.authz_fallback or DEFAULT_FALLBACK,
        authz_fallback_seconds=item.authz_fallback_seconds or DEFAULT_FALLBACK_SECONDS,
    )


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


def list_tenants() -> list[Tenant]:
    """Every tenant, by id: the one read across tenants (a scan; an operator's command)."""
    model = _m().tenant
    return sorted((_tenant(i) for i in model.scan(model.sk == "TENANT")), key=lambda t: t.tenant)


TENANT_FIELDS = ("currency", "timezone", "authz_fallback", "authz_fallback_seconds")


def check_currency(code: str) -> str:
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError(f"invalid currency {code!r}: use a 3-letter ISO code such as USD")
    return code


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/London"
        ) from None
    return name


def update_tenant(
    tenant: str,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None = None,
    reason: str | None = None,
) -> tuple[Tenant, AuditEntry | None]:
    """Change a tenant's currency (the default of its new accounts; existing accounts keep
    theirs), time zone (statement days; switches keep their own) or authorization fallback
    (`authz_fallback` open|closed, `authz_fallback_seconds`), with its audit entry.

    Returns the tenant as it now is and the entry (None: nothing differed, nothing written).
    """
    _check_fields("tenant", changes, TENANT_FIELDS)
    if "currency" in changes:
        check_currency(changes["currency"])
    if "timezone" in changes:
        check_timezone(changes["timezone"])
    if "authz_fallback" in changes:
        check_fallback(changes["authz_fallback"])
    if "authz_fallback_seconds" in changes:
        check_fallback_seconds(changes["authz_fallback_seconds"])
    reason = _check_reason(reason)
    actor = _check_actor(actor or caller())
    model = _m().tenant
    for _ in range(_UPDATE_ATTEMPTS):
        try:
            item = model.get(check_name("tenant", tenant), "TENANT")
        except DoesNotExist:
            raise NotFoundError(f"unknown tenant {tenant!r}") from None
        current = _tenant(item)
        wanted = dataclasses.replace(current, **changes)
        diffs = _changes(current, wanted, TENANT_FIELDS)
        if not diffs:
            return current, None
        entry = _entry(tenant, "tenant", tenant, diffs, actor, reason)
        updates = [(getattr(model, c.field), c.new) for c in diffs]
        try:
            _commit(item, updates, entry)
        except _Stale:
            continue
        return wanted, entry
    raise ConflictError(f"tenant {tenant!r} kept changing meanwhile; run it again")


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
    # Which of its CSV columns hold which CDR field, for a `mapped` switch (or the renamed
    # columns of a Kamailio one): ColumnMapping's JSON form; None: none set.
    column_mapping: Mapping[str, Any] | None = None


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
        column_mapping=json.loads(item.column_mapping) if item.column_mapping else None,
    )


def check_column_mapping(format: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A switch's column mapping in its stored form, or ValueError (MappingError naming the
    member at fault; a format that reads no mapping)."""
    # Here, not at import: the raters that read switches never load the CSV formats.
    from functions.ingest.formats import MAPPED_FORMATS, column_mapping

    if format not in MAPPED_FORMATS:
        raise ValueError(
            f"column mapping: only a {', '.join(MAPPED_FORMATS)} switch takes one, not {format}"
        )
    return column_mapping(format, mapping).to_dict()


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
    column_mapping: Mapping[str, Any] | None = None,
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
    if column_mapping is not None:
        column_mapping = check_column_mapping(format, column_mapping)
    item = _m().switch(
        tenant,
        f"SWITCH#{check_name('switch', switch)}",
        format=format,
        timezone=timezone or owner.timezone,
        customer_field=customer_field,
        supplier_field=supplier_field,
        default_supplier=default_supplier,
        template=",".join(template) if template else None,
        column_mapping=json.dumps(column_mapping) if column_mapping else None,
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


def set_numbering(
    tenant: str,
    switch: str,
    plan: NumberingPlan,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
) -> Switch:
    """Store how a switch writes numbers; its next files are translated by it (not earlier
    ones: the lake keeps what was ingested)."""
    return update_switch(tenant, switch, {"numbering": plan}, actor=actor, reason=reason)[0]


def set_column_mapping(
    tenant: str,
    switch: str,
    mapping: Mapping[str, Any] | None,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
) -> tuple[Switch, AuditEntry | None]:
    """Store (None: clear) which CSV columns of a switch's files hold which CDR field; its
    next files are read by it. ValueError (naming the member) for a mapping its format
    cannot use."""
    if mapping is not None:
        mapping = check_column_mapping(get_switch(tenant, switch).format, mapping)
    return update_switch(tenant, switch, {"column_mapping": mapping}, actor=actor, reason=reason)


SWITCH_FIELDS = (
    "format",
    "timezone",
    "customer_field",
    "supplier_field",
    "default_supplier",
    "template",
    "numbering",
    "column_mapping",
)


def _switch_value(field: str, value: Any) -> Any:
    """A switch setting as a JSON value for the audit trail."""
    if field == "template":
        return None if value is None else list(value)
    if field == "numbering":
        return {
            "strip": list(value.strip),
            "international_prefix": value.international_prefix,
            "national_prefix": value.national_prefix,
            "country_code": value.country_code,
        }
    return value


def _switch_updates(model: type, field: str, value: Any) -> list[tuple[Any, Any]]:
    """A switch setting as the attributes that store it."""
    if field == "template":
        return [(model.template, ",".join(value) if value else None)]
    if field == "column_mapping":
        return [(model.column_mapping, json.dumps(value) if value else None)]
    if field == "numbering":
        return [
            (model.strip_prefixes, ",".join(value.strip) or None),
            (model.international_prefix, value.international_prefix),
            (model.national_prefix, value.national_prefix),
            (model.country_code, value.country_code),
        ]
    return [(getattr(model, field), value)]


def update_switch(
    tenant: str,
    switch: str,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None = None,
    reason: str | None = None,
) -> tuple[Switch, AuditEntry | None]:
    """Change a switch's settings (its next files are read by them; the lake keeps what was
    ingested), with its audit entry. Returns the switch as it now is and the entry (None:
    nothing differed, nothing written)."""
    _check_fields("switch", changes, SWITCH_FIELDS)
    if changes.get("template") is not None:
        changes = {**changes, "template": tuple(n.strip() for n in changes["template"]) or None}
    if changes.get("column_mapping") is not None:
        changes = {**changes, "column_mapping": dict(changes["column_mapping"])}
    if "numbering" in changes and not isinstance(changes["numbering"], NumberingPlan):
        raise TypeError("numbering must be a NumberingPlan")
    reason = _check_reason(reason)
    actor = _check_actor(actor or caller())
    model = _m().switch
    for _ in range(_UPDATE_ATTEMPTS):
        try:
            item = model.get(check_name("tenant", tenant), f"SWITCH#{check_name('switch', switch)}")
        except DoesNotExist:
            raise NotFoundError(f"unknown switch {switch!r} in tenant {tenant!r}") from None
        current = _switch(item)
        wanted = dataclasses.replace(current, **changes)
        checks = _check_switch(wanted, current)
        diffs = _changes(current, wanted, SWITCH_FIELDS, _switch_value)
        if not diffs:
            return current, None
        entry = _entry(tenant, "switch", switch, diffs, actor, reason)
        updates = [
            u for c in diffs for u in _switch_updates(model, c.field, getattr(wanted, c.field))
        ]
        try:
            _commit(item, updates, entry, checks=checks)
        except _Stale:
            continue
        return wanted, entry
    raise ConflictError(f"switch {switch!r} kept changing meanwhile; run it again")


def _check_switch(wanted: Switch, current: Switch) -> list[_Check]:
    """What create_switch checks, for a switch's new settings; the default supplier's kind
    is checked again in the change's transaction."""
    for field in ("customer_field", "supplier_field"):
        value = getattr(wanted, field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{field.replace('_', ' ')} must not be empty")
    check_timezone(wanted.timezone)
    if wanted.template is not None:
        # Here, not at import: the raters that read switches never load the CSV formats.
        from functions.ingest.formats.freeswitch import CSV_NAME, check_template

        if wanted.format != CSV_NAME:
            raise ValueError(
                f"template: only a {CSV_NAME} switch takes one, not {wanted.format} "
                "(clear the template to change the format)"
            )
        check_template(wanted.template)
    if wanted.column_mapping is not None:
        if wanted.format != current.format and current.column_mapping is not None:
            from functions.ingest.formats import MAPPED_FORMATS

            if wanted.format not in MAPPED_FORMATS:
                raise ValueError(
                    f"column mapping: a {wanted.format} switch takes none (clear it first: "
                    "tollgate switch columns --clear)"
                )
        check_column_mapping(wanted.format, wanted.column_mapping)
    if wanted.default_supplier is None or wanted.default_supplier == current.default_supplier:
        return []
    supplier = get_account(wanted.tenant, wanted.default_supplier)
    if supplier.kind != "supplier":
        raise ValueError(f"default supplier {wanted.default_supplier!r} is a {supplier.kind}")
    model = _m().account
    key = f"ACCOUNT#{supplier.account}"
    return [(model, wanted.tenant, key, model.kind == "supplier")]


# --- trunks: what a switch's CDRs name, mapped to accounts ------------------------------------

# A direction's key names the account of this kind.
TRUNK_DIRECTIONS = {"ingress": "customer", "egress": "supplier"}
# Gateway and peer names, hosts and IPv4/IPv6 addresses; no key separators or spaces.
_TRUNK_KEY = re.compile(r"[A-Za-z0-9_.:@+\[\]-]{1,128}")


class _TrunkItem(_Item):
    account = UnicodeAttribute()
    plan = UnicodeAttribute(null=True)  # ingress only: the rate plan the trunk's calls use


@dataclass(frozen=True, slots=True)
class TrunkMapping:
    tenant: str
    switch: str
    direction: str  # ingress (the customer's trunk) | egress (the supplier's)
    key: str  # a trunk or gateway name, or an IP, exactly as the CDRs write it
    account: str
    plan: str | None = None  # ingress: the customer's rate plan for the trunk's calls


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


def map_trunk(
    tenant: str, switch: str, direction: str, key: str, account: str, plan: str | None = None
) -> TrunkMapping:
    """Map what a switch's CDRs call a trunk (or its IP) to an account: ingress to a
    customer, egress to a supplier; an ingress mapping may name the rate plan of its calls.
    Mapping a key again replaces the mapping."""
    sk = _trunk_sk(switch, direction, key)
    if plan is not None:
        check_name("plan", plan)
        if direction != "ingress":
            raise ValueError("a plan is chosen by the ingress trunk (the customer's), not egress")
    get_switch(tenant, switch)
    kind = TRUNK_DIRECTIONS[direction]
    target = get_account(tenant, account)
    if target.kind != kind:
        raise ValueError(
            f"{direction} {key!r}: account {account!r} is a {target.kind}, not a {kind}"
        )
    item = _m().trunk(tenant, sk, account=account, plan=plan)
    item.created_at = now()
    item.save()
    return TrunkMapping(tenant, switch, direction, key, account, plan)


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
    return TrunkMapping(tenant, switch, direction, key, item.account, item.plan)


def list_trunks(tenant: str, switch: str) -> list[TrunkMapping]:
    """A switch's mappings, ingress then egress, each by key."""
    model = _m().trunk
    prefix = f"TRUNK#{check_name('switch', switch)}#"
    out = []
    for item in model.query(check_name("tenant", tenant), model.sk.startswith(prefix)):
        direction, key = item.sk.removeprefix(prefix).split("#", 1)
        out.append(TrunkMapping(tenant, switch, direction, key, item.account, item.plan))
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
        ingress_plans={
            m.key: m.plan for m in mappings if m.direction == "ingress" and m.plan is not None
        },
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
    # Why the account has its status, and since when (None: as created). Real-time
    # authorization and fraud rules read `status` and these from here.
    status_reason: str | None = None
    status_since: datetime | None = None
    # The active deck version of each plan other than `default` (that one is deck_version).
    plan_versions: Mapping[str, int] = dataclasses.field(default_factory=dict)
    plan_rules: Mapping[str, str] = dataclasses.field(default_factory=dict)  # caller prefix: plan

    def plan_head(self, plan: str) -> int | None:
        """The active deck version of a plan (None: the plan has no deck)."""
        return self.deck_version if plan == DEFAULT_RATE_PLAN else self.plan_versions.get(plan)


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
        status_reason=item.status_reason,
        status_since=item.status_since,
        plan_versions={k: int(v) for k, v in _map(item.plan_decks).items()},
        plan_rules=dict(sorted(_map(item.plan_rules).items())),
    )


def _map(attribute: MapAttribute | None) -> dict[str, Any]:
    return {} if attribute is None else attribute.as_dict()


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
    actor: Actor | None = None,
    reason: str | None = None,
) -> Account:
    """Create an account; the parent, if any, must be a reseller of the same tenant.

    A parent must exist already, so the reseller tree can never hold a cycle. With an
    `actor`, the account and its audit entry (each field from None to its value, as
    update_account records them) are written in one transaction.
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
    if currency is not None:
        check_currency(currency)
    if actor is not None:
        created = _account(item)
        _create_audited(item, created, _check_actor(actor), _check_reason(reason))
        return created
    try:
        item.save(condition=_m().account.pk.does_not_exist())
    except PutError as error:
        if conditional_failed(error):
            raise ConflictError(
                f"account {account!r} already exists in tenant {tenant!r}"
            ) from None
        raise
    return _account(item)


_CREATED_FIELDS = ("kind", "parent", "prepaid", "credit_limit_micro", "currency", "status")


def _create_audited(item: _AccountItem, created: Account, actor: Actor, reason: str | None) -> None:
    """The account's item, only if new, and its audit entry, in one transaction; the
    parent, if any, still a reseller."""
    model = _m().account
    changes = [Change(f, None, getattr(created, f)) for f in _CREATED_FIELDS]
    entry = _entry(created.tenant, "account", created.account, changes, actor, reason)
    connection = _m().connection
    for attempt in range(_COMMIT_ATTEMPTS):
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.save(item, condition=model.pk.does_not_exist())
                transaction.save(_audit_item(entry), condition=_m().audit.pk.does_not_exist())
                if created.parent is not None:
                    transaction.condition_check(
                        model,
                        created.tenant,
                        f"ACCOUNT#{created.parent}",
                        condition=model.kind == "reseller",
                    )
            return
        except TransactWriteError as error:
            codes = {r.code for r in error.cancellation_reasons or [] if r is not None}
            if "ConditionalCheckFailed" in codes:
                # (PynamoDB orders a transaction's actions by kind: which failed is read.)
                try:
                    model.get(created.tenant, item.sk, consistent_read=True)
                except DoesNotExist:
                    raise ChangeRefusedError(
                        f"parent {created.parent!r} is no longer a reseller; run it again"
                    ) from None
                raise ConflictError(
                    f"account {created.account!r} already exists in tenant {created.tenant!r}"
                ) from None
            if not codes & {"TransactionConflict", "ThrottlingError"}:
                raise
        time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
    raise ConflictError(f"account {created.account!r}: still conflicting; run it again")


def _account_item(tenant: str, account: str) -> _AccountItem:
    try:
        return _m().account.get(
            check_name("tenant", tenant), f"ACCOUNT#{check_name('account', account)}"
        )
    except DoesNotExist:
        raise NotFoundError(f"unknown account {account!r} in tenant {tenant!r}") from None


def get_account(tenant: str, account: str) -> Account:
    return _account(_account_item(tenant, account))


def get_accounts_and_balance(
    tenant: str, names: Sequence[str], balance_of: str | None = None
) -> tuple[dict[str, Account], tuple[int, int] | None]:
    """The named accounts that exist (by id) and, if `balance_of` names one, its ledger
    balance and reserved amount in micro-units ((0, 0) if never posted to), in one consistent
    BatchGetItem across the two tables: what the API shows of an account, read in one call."""
    names = list(dict.fromkeys(check_name("account", n) for n in names))
    tenant = check_name("tenant", tenant)
    tables = settings()
    requests: dict[str, Any] = {}
    if names:
        keys = [{"pk": {"S": tenant}, "sk": {"S": f"ACCOUNT#{n}"}} for n in names]
        requests[tables.accounts_table] = {"Keys": keys, "ConsistentRead": True}
    if balance_of is not None:
        key = {"pk": {"S": tenant}, "sk": {"S": f"BALANCE#{check_name('account', balance_of)}"}}
        requests[tables.ledger_table] = {"Keys": [key], "ConsistentRead": True}
    found: dict[str, list[dict[str, Any]]] = {}
    while requests:  # at most 101 keys: one page, unless DynamoDB leaves some for later
        answer = client("dynamodb").batch_get_item(RequestItems=requests)
        for table, items in answer.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        requests = answer.get("UnprocessedKeys") or {}
    model = _m().account
    accounts = {}
    for raw in found.get(tables.accounts_table, []):
        account = _account(model.from_raw_data(raw))
        accounts[account.account] = account
    balance = None
    if balance_of is not None:
        (item,) = found.get(tables.ledger_table) or [{}]
        balance = (
            int(item.get("balance", {}).get("N", "0")),
            int(item.get("reserved", {}).get("N", "0")),
        )
    return accounts, balance


def list_accounts(tenant: str) -> list[Account]:
    model = _m().account
    items = model.query(check_name("tenant", tenant), model.sk.startswith("ACCOUNT#"))
    return [_account(item) for item in items]


def set_account_status(
    tenant: str,
    account: str,
    status: str,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
) -> Account:
    """Suspend or resume an account (see update_account)."""
    return update_account(tenant, account, {"status": status}, actor=actor, reason=reason)[0]


class CycleError(ConflictError):
    """A new parent would put the account above itself (or the chain is too long)."""


class ChangeRefusedError(ConflictError):
    """A kind or currency change the account's history (money, decks, trunks, accounts
    under it) forbids."""


# What update_account may change: Account's fields, and the attribute that stores each.
ACCOUNT_FIELDS = {
    "kind": "kind",
    "parent": "parent",
    "prepaid": "prepaid",
    "credit_limit_micro": "credit_limit",
    "currency": "currency",
    "rounding": "rounding",
    "rounding_decimals": "rounding_decimals",
    "status": "status",
}
_MAX_CHAIN = 90  # resellers above an account, each checked in the change's transaction


def update_account(
    tenant: str,
    account: str,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None = None,
    reason: str | None = None,
    guard: Callable[[Account, Account], None] | None = None,
) -> tuple[Account, AuditEntry | None]:
    """Change an account's settings, with its audit entry, in one transaction.

    `guard(current, wanted)`, if given, is called on each read of the account before
    anything is decided and may raise to refuse the change (a caller's own rule, such as
    who may lift which suspension): a change committed is always one it let through, on
    the values the transaction is conditioned on.

    Refused with ConflictError when the change would break history or the reseller chain:
    a kind or currency change once money has moved for the account (its charges and
    balance are in the old kind's sense and currency), a currency change once it has a rate
    deck (decks are priced in it), a kind change while a switch's trunk or default supplier
    names it or while it is a reseller with accounts under it, and a parent that would make
    a cycle. Rounding, billing, credit limit and status apply from the next charge (and to
    re-rated calls). Returns the account as it now is and the entry (None: nothing differed,
    nothing written).
    """
    _check_fields("account", changes, tuple(ACCOUNT_FIELDS))
    reason = _check_reason(reason)
    actor = _check_actor(actor or caller())
    model = _m().account
    for _ in range(_UPDATE_ATTEMPTS):
        item = _account_item(tenant, account)
        current = _account(item)
        wanted = dataclasses.replace(current, **changes)
        _check_account(wanted)
        if guard is not None:
            guard(current, wanted)
        diffs = _changes(current, wanted, tuple(ACCOUNT_FIELDS))
        if not diffs:
            return current, None
        changed = {c.field for c in diffs}
        checks = _check_account_change(item, current, wanted, changed)
        entry = _entry(tenant, "account", account, diffs, actor, reason)
        updates = [(getattr(model, ACCOUNT_FIELDS[c.field]), c.new) for c in diffs]
        also, condition = [], None
        if "status" in changed:
            wanted = dataclasses.replace(wanted, status_reason=reason, status_since=entry.at)
            also = [
                model.status_since.set(entry.at),
                model.status_reason.remove() if reason is None else model.status_reason.set(reason),
            ]
        if "currency" in changed:
            # A deck upload reserves its number before it commits: none may have begun.
            condition = model.deck_seq.does_not_exist()
        touch = []
        if "supplier" in (current.kind, wanted.kind) and changed & ROUTING_FIELDS:
            touch.append(_routes_bump(tenant))  # routes: rebuilt at the next START
        try:
            _commit(
                item, updates, entry, also=also, condition=condition, checks=checks, touch=touch
            )
        except _Stale:
            continue
        return wanted, entry
    raise ConflictError(f"account {account!r} kept changing meanwhile; run it again")


def _check_account(wanted: Account) -> None:
    """The values create_account accepts."""
    if wanted.kind not in ACCOUNT_KINDS:
        raise ValueError(
            f"invalid account kind {wanted.kind!r}: use one of {', '.join(ACCOUNT_KINDS)}"
        )
    if wanted.status not in ACCOUNT_STATUSES:
        raise ValueError(
            f"invalid status {wanted.status!r}: use one of {', '.join(ACCOUNT_STATUSES)}"
        )
    _check_rounding(wanted.rounding, wanted.rounding_decimals)
    limit = wanted.credit_limit_micro
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"invalid credit limit {limit!r}: an integer of micro-units")
    if limit < 0:
        raise ValueError("credit limit must not be negative")
    if not isinstance(wanted.prepaid, bool):
        raise ValueError(f"invalid prepaid {wanted.prepaid!r}: true or false")
    check_currency(wanted.currency)
    if wanted.parent is not None:
        check_name("account", wanted.parent)
        if wanted.parent == wanted.account:
            raise ValueError(f"account {wanted.account!r} cannot be its own parent")


def _check_account_change(
    item: _AccountItem, current: Account, wanted: Account, changed: set[str]
) -> list[_Check]:
    """Refuse a change that would break history or the chain; the items it was decided on,
    to be checked again in the change's transaction."""
    tenant, name = current.tenant, current.account
    checks: list[_Check] = []
    if changed & {"kind", "currency"}:
        what = " and ".join(sorted(changed & {"kind", "currency"}))
        balance = _m().balance
        key = f"BALANCE#{name}"
        try:
            balance.get(tenant, key, consistent_read=True)
        except DoesNotExist:
            checks.append((balance, tenant, key, balance.pk.does_not_exist()))
        else:
            raise ChangeRefusedError(
                f"account {name!r} has a balance history (charges or payments in "
                f"{current.currency} as a {current.kind}): its {what} cannot change; "
                "create a new account instead"
            )
    if "currency" in changed and item.deck_seq is not None:
        raise ChangeRefusedError(
            f"account {name!r} has rate decks in {current.currency}: its currency cannot "
            "change; create a new account instead"
        )
    if "kind" in changed:
        _check_kind_change(current, wanted)
    if "parent" in changed and wanted.parent is not None:
        checks += _check_parent(wanted)
    return checks


def _check_kind_change(current: Account, wanted: Account) -> None:
    tenant, name = current.tenant, current.account
    model = _m().trunk
    for trunk in model.query(tenant, model.sk.startswith("TRUNK#")):
        if trunk.account == name:
            _, switch, direction, key = trunk.sk.split("#", 3)
            raise ChangeRefusedError(
                f"account {name!r} is mapped on switch {switch!r} ({direction} {key}): its "
                f"kind cannot change; unmap it first"
            )
    for switch in list_switches(tenant):
        if switch.default_supplier == name:
            raise ChangeRefusedError(
                f"account {name!r} is the default supplier of switch {switch.switch!r}: its "
                "kind cannot change; change the switch first"
            )
    if wanted.kind not in DID_ACCOUNT_KINDS:
        rented = sorted({d.number for d in list_dids(tenant) if d.account == name})
        if rented:
            raise ChangeRefusedError(
                f"account {name!r} rents DID {', '.join(rented)}: a {wanted.kind} cannot; "
                "its kind cannot change while it has DIDs"
            )
    if current.kind == "reseller":
        children = sorted(a.account for a in list_accounts(tenant) if a.parent == name)
        if children:
            raise ChangeRefusedError(
                f"reseller {name!r} has accounts under it ({', '.join(children)}): its kind "
                "cannot change; move them to another parent first"
            )


def _check_parent(wanted: Account) -> list[_Check]:
    """The new parent is a reseller and the chain above it does not come back to the
    account: each reseller of the chain as read, checked again in the transaction."""
    tenant, name = wanted.tenant, wanted.account
    model = _m().account
    chain: list[str] = [name]
    checks: list[_Check] = []
    parent: str | None = wanted.parent
    while parent is not None:
        if parent == name:
            raise CycleError(
                f"parent {wanted.parent!r} would make a cycle: {' -> '.join([*chain, name])}"
            )
        if len(chain) > _MAX_CHAIN:
            raise CycleError(f"account {name!r}: more than {_MAX_CHAIN} resellers above it")
        try:
            above = get_account(tenant, parent)
        except NotFoundError:
            raise NotFoundError(f"unknown parent account {parent!r} in tenant {tenant!r}") from None
        if above.kind != "reseller":
            raise ValueError(f"parent {parent!r} is a {above.kind}, not a reseller")
        unchanged = (
            model.parent.does_not_exist() if above.parent is None else model.parent == above.parent
        )
        checks.append((model, tenant, f"ACCOUNT#{parent}", (model.kind == "reseller") & unchanged))
        chain.append(parent)
        parent = above.parent
    return checks


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
    plan = UnicodeAttribute(null=True)  # absent: `default` (every version before plans)


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
    plan: str = DEFAULT_RATE_PLAN  # the rate plan whose timeline this version is


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
        plan=item.plan or DEFAULT_RATE_PLAN,
    )


def reserve_deck_version(tenant: str, account: str) -> int:
    """Hand out the account's next deck version number (atomic; never reused)."""
    item = _account_item(tenant, account)
    model = _m().account
    item.update(actions=[model.deck_seq.add(1)], condition=model.pk.exists())
    return item.deck_seq


def commit_deck_version(
    record: DeckVersion,
    *,
    actor: Actor | None = None,
    reason: str | None = None,
    supplier: bool = False,
) -> DeckVersion:
    """Record a written version and make it the head, if the head is still `record.base`.

    One transaction: the version item (never overwritten), the account's pointer, moved
    only from `record.base` (None: the account has no deck yet), with an `actor` the
    account's audit entry (`deck_version`, or `deck_version[plan]` for another plan, from
    the base to the new version) and, for a `supplier` (its kind as read), the bump of the
    tenant's routing version (functions.store.holds: the next START's routes use it).
    Raises HeadMovedError if another version became the head meanwhile; a retry of a commit
    that went through returns the recorded version.
    """
    tenant = check_name("tenant", record.tenant)
    account = check_name("account", record.account)
    plan = check_name("plan", record.plan)
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
        plan=None if plan == DEFAULT_RATE_PLAN else plan,
    )
    item.created_at = record.uploaded_at or now()
    if plan == DEFAULT_RATE_PLAN:
        pointer = accounts_model.deck_version
    else:
        _ensure_map(tenant, account, accounts_model.plan_decks)
        pointer = accounts_model.plan_decks[plan]
    at_base = pointer.does_not_exist() if record.base is None else pointer == record.base
    audit = None
    if actor is not None:
        field = "deck_version" if plan == DEFAULT_RATE_PLAN else f"deck_version[{plan}]"
        change = Change(field, record.base, record.version)
        entry = _entry(
            tenant, "account", account, [change], _check_actor(actor), _check_reason(reason)
        )
        audit = _audit_item(entry)
    connection = _m().connection
    for attempt in range(_COMMIT_ATTEMPTS):
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.save(item, condition=versions.pk.does_not_exist())
                if audit is not None:
                    transaction.save(audit, condition=_m().audit.pk.does_not_exist())
                transaction.update(
                    accounts_model(tenant, f"ACCOUNT#{account}"),
                    actions=[pointer.set(record.version)],
                    # The account's currency as the deck was checked against: an account
                    # whose currency changed meanwhile refuses the deck.
                    condition=accounts_model.pk.exists()
                    & at_base
                    & (accounts_model.currency == record.currency),
                )
                if supplier:
                    bumped, bump = _routes_bump(tenant)
                    transaction.update(bumped, actions=bump)
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
    """Why a commit's condition failed: a retry of itself, another head first, or the
    account's currency changed."""
    current = get_account(record.tenant, record.account)  # NotFoundError if none
    head = current.plan_head(record.plan)
    if current.currency != record.currency:
        raise ConflictError(
            f"account {record.account!r} is now in {current.currency}, not {record.currency}: "
            "deck not recorded"
        )
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


def list_deck_versions(tenant: str, account: str, plan: str | None = None) -> list[DeckVersion]:
    """Every recorded version of the account's deck (of one plan, if given), oldest first."""
    model = _versions()
    prefix = f"DECK#{check_name('account', account)}#"
    found = [
        _deck(i) for i in model.query(check_name("tenant", tenant), model.sk.startswith(prefix))
    ]
    return found if plan is None else [v for v in found if v.plan == plan]


def active_deck(tenant: str, account: str, plan: str = DEFAULT_RATE_PLAN) -> DeckVersion | None:
    """The deck version of a plan a rater should use now (the head), or None if it has none."""
    head = get_account(tenant, account).plan_head(plan)
    return None if head is None else get_deck_version(tenant, account, head)


def _ensure_map(tenant: str, account: str, attribute: MapAttribute) -> None:
    """Create an empty map attribute on the account item if it has none: DynamoDB refuses to
    set a key of a map that does not exist. Harmless to repeat or race."""
    model = _m().account
    try:
        model(tenant, f"ACCOUNT#{account}").update(
            actions=[attribute.set(attribute | {})], condition=model.pk.exists()
        )
    except UpdateError as error:
        if conditional_failed(error):
            raise NotFoundError(f"unknown account {account!r} in tenant {tenant!r}") from None
        raise


# --- rate plan rules: the calling number chooses a customer's plan ------------------------

PLAN_RULE_KINDS = ("customer", "reseller")  # accounts that send calls


def set_plan_rule(tenant: str, account: str, plan: str, callers: Sequence[str]) -> dict[str, str]:
    """Calls of `account` from numbers starting with these prefixes use `plan` (a prefix
    already ruled moves to it). Returns the account's rules after the change."""
    plan = check_name("plan", plan)
    prefixes = sorted({check_caller_prefix(c) for c in callers})
    if not prefixes:
        raise ValueError("give at least one caller prefix (--callers 33,49)")
    current = get_account(tenant, account)
    if current.kind not in PLAN_RULE_KINDS:
        raise ValueError(
            f"account {account!r} is a {current.kind}: plans are chosen for the calls a "
            "customer or reseller sends"
        )
    model = _m().account
    _ensure_map(tenant, account, model.plan_rules)
    item = model(tenant, f"ACCOUNT#{account}")
    item.update(
        actions=[model.plan_rules[p].set(plan) for p in prefixes], condition=model.pk.exists()
    )
    return get_account(tenant, account).plan_rules


def remove_plan_rule(tenant: str, account: str, callers: Sequence[str]) -> dict[str, str]:
    """Drop the rules of these caller prefixes; NotFoundError names one that has none."""
    prefixes = sorted({check_caller_prefix(c) for c in callers})
    if not prefixes:
        raise ValueError("give at least one caller prefix (--callers 33,49)")
    current = get_account(tenant, account)
    missing = [p for p in prefixes if p not in current.plan_rules]
    if missing:
        raise NotFoundError(f"account {account!r} has no plan rule for caller prefix {missing[0]}")
    model = _m().account
    condition = model.pk.exists()
    for p in prefixes:
        condition &= model.plan_rules[p].exists()
    try:
        model(tenant, f"ACCOUNT#{account}").update(
            actions=[model.plan_rules[p].remove() for p in prefixes], condition=condition
        )
    except UpdateError as error:
        if conditional_failed(error):  # removed by someone else meanwhile
            raise NotFoundError(
                f"account {account!r} has no plan rule for one of {','.join(prefixes)}"
            ) from None
        raise
    return get_account(tenant, account).plan_rules


# --- DIDs: numbers rented to customers and resellers -------------------------------------
#
# One item per period of service of a number: taking a released number again (or giving it
# to another account) adds an item, releasing sets the last day on the one in service.
# Nothing is deleted: the recurring fees and the inbound calls of past periods are priced
# from the whole history (functions.rate.recurring).

DID_ACCOUNT_KINDS = ("customer", "reseller")  # they pay for a number; a supplier never rents one


class _DidItem(_Item):
    account = UnicodeAttribute()
    monthly_units = IntAttribute()
    setup_units = IntAttribute()
    per_minute_e8 = IntAttribute()
    end = UnicodeAttribute(null=True)  # the last day of service, YYYY-MM-DD; absent: open


class _DidNumberItem(_Item):
    """One per number: how many records it has had. Every add moves it in the same
    transaction as its record, conditional on the count its overlap check read, so two adds
    that both checked before either wrote cannot both land."""

    records = IntAttribute()


def _did_number_sk(number: str) -> str:
    return f"DIDNUM#{number}"


def _did_sk(number: str, start: date) -> str:
    return f"DID#{number}#{start.isoformat()}"


def _did(item: _DidItem) -> Did:
    _, number, start = item.sk.split("#")
    return Did(
        number=number,
        account=item.account,
        monthly_units=item.monthly_units,
        setup_units=item.setup_units,
        per_minute_e8=item.per_minute_e8,
        start=date.fromisoformat(start),
        end=None if item.end is None else date.fromisoformat(item.end),
    )


def list_dids(tenant: str, number: str | None = None) -> list[Did]:
    """Every DID record of the tenant (or of one number), released ones included, by number
    then start."""
    model = _m().did
    prefix = "DID#" if number is None else f"DID#{number}#"
    items = model.query(check_name("tenant", tenant), model.sk.startswith(prefix))
    return sorted((_did(item) for item in items), key=lambda d: (d.number, d.start))


def add_did(tenant: str, did: Did) -> Did:
    """Record a number's service from `did.start` for a customer or reseller.

    NotFoundError: no such account; ValueError: the account is a supplier; ConflictError:
    the number is in service on one of those days already (this very record included).
    """
    if not isinstance(did, Did):
        raise TypeError(f"add_did takes a Did, not {type(did).__name__}")
    owner = get_account(tenant, did.account)
    if owner.kind not in DID_ACCOUNT_KINDS:
        raise ValueError(
            f"account {did.account!r} is a {owner.kind}: a DID belongs to a customer or reseller"
        )
    model, counter = _m().did, _m().did_number
    for _ in range(_COMMIT_ATTEMPTS):
        try:
            seen = counter.get(tenant, _did_number_sk(did.number), consistent_read=True).records
        except DoesNotExist:
            seen = 0
        held = list_dids(tenant, did.number)
        try:
            check_dids([*held, did])
        except ValueError as error:
            raise ConflictError(f"DID {did.number} not added: {error}") from None
        item = model(
            tenant,
            _did_sk(did.number, did.start),
            account=did.account,
            monthly_units=did.monthly_units,
            setup_units=did.setup_units,
            per_minute_e8=did.per_minute_e8,
            end=None if did.end is None else did.end.isoformat(),
        )
        item.created_at = now()
        count = counter(tenant, _did_number_sk(did.number), records=seen + 1)
        count.created_at = item.created_at
        unchanged = counter.pk.does_not_exist() if seen == 0 else counter.records == seen
        connection = Connection(region=model.Meta.region, host=model.Meta.host)
        try:
            with TransactWrite(connection=connection) as transaction:
                transaction.save(item, condition=model.pk.does_not_exist())
                transaction.save(count, condition=unchanged)
            return did
        except TransactWriteError as error:
            reasons = [r.code if r is not None else None for r in error.cancellation_reasons or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise ConflictError(
                    f"DID {did.number} from {did.start} already exists in tenant {tenant!r}"
                ) from None
            if "ConditionalCheckFailed" not in reasons and not set(reasons) & {
                "TransactionConflict",
                "ThrottlingError",
            }:
                raise
            # Another add of this number landed since the check: check again against it.
    raise ConflictError(f"DID {did.number} kept changing while it was added; try again")


def release_did(tenant: str, number: str, end: date) -> Did:
    """End the service of `number` in service on day `end`: `end` is its last day.

    NotFoundError: the number is in service on no such day; ValueError: its open service
    starts after `end`; ConflictError: the record changed since it was read.
    """
    if not isinstance(end, date) or isinstance(end, datetime):
        raise ValueError(f"invalid end date {end!r}: a date expected")
    held = list_dids(tenant, number)
    serving = [d for d in held if d.start <= end and (d.end is None or end <= d.end)]
    if not serving:
        later = [d for d in held if d.end is None and d.start > end]
        if later:
            raise ValueError(
                f"invalid end date {end}: DID {number} is in service from {later[0].start}"
            )
        raise NotFoundError(f"DID {number} is not in service on {end} in tenant {tenant!r}")
    (current,) = serving  # records of a number never overlap (add_did)
    model = _m().did
    item = model(tenant, _did_sk(current.number, current.start))
    as_read = (
        model.end.does_not_exist() if current.end is None else model.end == current.end.isoformat()
    )
    try:
        item.update(
            actions=[model.end.set(end.isoformat())],
            condition=model.pk.exists() & (model.account == current.account) & as_read,
        )
    except UpdateError as error:
        if conditional_failed(error):
            raise ConflictError(
                f"DID {number} from {current.start} changed meanwhile; run it again"
            ) from None
        raise
    return dataclasses.replace(current, end=end)


# --- contracts: an account's tiers and bundles -------------------------------------------
#
# One item per account x kind x name, its terms as JSON. Setting a contract again replaces
# its terms from then on (the calls already priced keep theirs; the period's counter goes on).

CONTRACT_ACCOUNT_KINDS = ("customer", "reseller")  # they buy minutes by volume


class _ContractItem(_Item):
    terms = UnicodeAttribute()


@dataclass(frozen=True, slots=True)
class StoredContract:
    account: str
    kind: str  # tier | bundle
    terms: TierSchedule | Bundle
    start: date | None = None  # a bundle's first day of service (its fee's proration)

    @property
    def fee(self) -> BundleFee | None:
        if not isinstance(self.terms, Bundle) or self.start is None:
            return None
        return BundleFee(self.account, self.terms.name, self.terms.fee_units, self.start)


def _contract_sk(account: str, kind: str, name: str) -> str:
    return f"CONTRACT#{account}#{kind}#{name}"


def _terms_json(terms: TierSchedule | Bundle, start: date | None) -> str:
    if isinstance(terms, TierSchedule):
        body: dict[str, Any] = {
            "prefixes": list(terms.prefixes),
            "mode": terms.mode,
            "period": terms.period,
            "tiers": [[t.up_to_seconds, t.rate_e8] for t in terms.tiers],
        }
    else:
        body = {
            "prefixes": list(terms.prefixes),
            "included_seconds": terms.included_seconds,
            "fee_units": terms.fee_units,
            "start": None if start is None else start.isoformat(),
        }
    return json.dumps(body, sort_keys=True)


def _contract(item: _ContractItem) -> StoredContract:
    _, account, kind, name = item.sk.split("#")
    body = json.loads(item.terms)
    if kind == "tier":
        tiers = tuple(Tier(bound, rate) for bound, rate in body["tiers"])
        terms = TierSchedule(name, tuple(body["prefixes"]), body["mode"], tiers, body["period"])
        return StoredContract(account, kind, terms)
    bundle = Bundle(name, tuple(body["prefixes"]), body["included_seconds"], body["fee_units"])
    start = None if body.get("start") is None else date.fromisoformat(body["start"])
    return StoredContract(account, kind, bundle, start)


def list_contracts(tenant: str, account: str | None = None) -> list[StoredContract]:
    """The tenant's tiers and bundles (or one account's), by account, kind and name."""
    model = _m().contract
    prefix = "CONTRACT#" if account is None else f"CONTRACT#{check_name('account', account)}#"
    items = model.query(check_name("tenant", tenant), model.sk.startswith(prefix))
    return [_contract(item) for item in items]


def set_contract(
    tenant: str, account: str, terms: TierSchedule | Bundle, *, start: date | None = None
) -> StoredContract:
    """Give an account a tier schedule or a bundle (from `start`: a bundle's first day),
    replacing the one of that name.

    NotFoundError: no such account; ValueError: a supplier, or a prefix already in another
    contract of that kind on the account (a call falls in one tier group, one bundle).
    """
    owner = get_account(tenant, account)
    if owner.kind not in CONTRACT_ACCOUNT_KINDS:
        raise ValueError(
            f"account {account!r} is a {owner.kind}: tiers and bundles are sold to a customer "
            "or reseller"
        )
    kind = "tier" if isinstance(terms, TierSchedule) else "bundle"
    if kind == "bundle" and start is None:
        raise ValueError("a bundle needs the first day of its service")
    others = [
        c.terms
        for c in list_contracts(tenant, account)
        if c.kind == kind and c.terms.name != terms.name
    ]
    try:
        Contracts(*(([*others, terms], ()) if kind == "tier" else ((), [*others, terms])))
    except ValueError as error:
        raise ValueError(f"{kind} {terms.name} on account {account!r}: {error}") from None
    item = _m().contract(
        tenant, _contract_sk(account, kind, terms.name), terms=_terms_json(terms, start)
    )
    item.created_at = now()
    item.save()
    return StoredContract(account, kind, terms, start if kind == "bundle" else None)


# --- revenue assurance settings (functions.ingest.assurance) -----------------------------
#   pk={tenant}  sk=ASSURANCE#TENANT            the tenant's thresholds (JSON: changed only)
#   pk={tenant}  sk=ASSURANCE#SWITCH#{switch}   a switch's sequence pattern and modulus (JSON)
# Each change is audited: in the switch's trail, or the tenant's for the thresholds.


class _AssuranceItem(_Item):
    values = UnicodeAttribute()  # JSON object


@cache
def _assurance_model(table: str) -> type:
    return bind(_AssuranceItem, table)


def _assurance() -> type:
    return _assurance_model(settings().accounts_table)


SEQUENCE_FIELDS = ("sequence_pattern", "sequence_modulus")


def get_assurance_settings(tenant: str) -> dict[str, Any]:
    """{"thresholds": {name: value changed from the default}, "switches": {switch:
    {"sequence_pattern", "sequence_modulus"}}}: one Query."""
    model = _assurance()
    found: dict[str, Any] = {"thresholds": {}, "switches": {}}
    for item in model.query(check_name("tenant", tenant), model.sk.startswith("ASSURANCE#")):
        values = json.loads(item.values)
        if item.sk == "ASSURANCE#TENANT":
            found["thresholds"] = values
        else:
            found["switches"][item.sk.removeprefix("ASSURANCE#SWITCH#")] = values
    return found


def set_assurance_settings(
    tenant: str,
    changes: Mapping[str, Any],
    *,
    switch: str | None = None,
    actor: Actor | None = None,
    reason: str | None = None,
) -> tuple[dict[str, Any], AuditEntry | None]:
    """Change the tenant's thresholds (`switch` None) or a switch's sequence settings (a
    None value clears one), with its audit entry. Returns the stored values as they now are
    and the entry (None: nothing differed). ValueError names the field at fault."""
    from functions.ingest.assurance import (  # the rules: validation lives with them
        THRESHOLD_FIELDS,
        check_sequence_settings,
        thresholds_from,
    )

    get_tenant(tenant)
    if switch is not None:
        get_switch(tenant, switch)
    allowed = SEQUENCE_FIELDS if switch is not None else THRESHOLD_FIELDS
    _check_fields("switch" if switch is not None else "tenant", changes, allowed)
    reason = _check_reason(reason)
    actor = _check_actor(actor or caller())
    model = _assurance()
    sk = "ASSURANCE#TENANT" if switch is None else f"ASSURANCE#SWITCH#{switch}"
    for _ in range(_UPDATE_ATTEMPTS):
        try:
            item = model.get(tenant, sk, consistent_read=True)
            current = json.loads(item.values)
        except DoesNotExist:
            item, current = None, {}
        wanted = {k: v for k, v in (current | dict(changes)).items() if v is not None}
        if switch is not None:
            modulus = wanted.get("sequence_modulus")
            if modulus is not None:
                try:
                    modulus = int(modulus)
                except (TypeError, ValueError):
                    raise ValueError(f"sequence modulus: {modulus!r} is not a number") from None
                wanted["sequence_modulus"] = modulus
            check_sequence_settings(wanted.get("sequence_pattern"), modulus)
        else:
            checked = thresholds_from(wanted).as_json()
            wanted = {k: checked[k] for k in wanted}
        diffs = [
            Change(f, current.get(f), wanted.get(f))
            for f in allowed
            if current.get(f) != wanted.get(f)
        ]
        if not diffs:
            return current, None
        subject, name = ("switch", switch) if switch is not None else ("tenant", tenant)
        entry = _entry(tenant, subject, name, diffs, actor, reason)
        new = model(tenant, sk, values=json.dumps(wanted, sort_keys=True))
        new.created_at = item.created_at if item is not None else now()
        unchanged = model.pk.does_not_exist() if item is None else model.values == item.values
        try:
            with TransactWrite(connection=_m().connection) as transaction:
                transaction.save(new, condition=unchanged)
                transaction.save(_audit_item(entry), condition=_m().audit.pk.does_not_exist())
        except TransactWriteError as error:
            codes = {r.code for r in error.cancellation_reasons or [] if r is not None}
            if codes & {"ConditionalCheckFailed", "TransactionConflict"}:
                continue
            raise
        return wanted, entry
    raise ConflictError(f"assurance settings of {tenant!r} kept changing meanwhile; run it again")
