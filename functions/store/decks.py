"""An account's rate history written: deck upload and rollback, each a new active version.

One code path for `tollgate deck upload|rollback` and the API's PUT /v1/accounts/{id}/deck:
compose onto the plan's head (functions.rate.timeline), write the version's immutable objects
in the lake (functions.store.lake), then record it and move the head in one transaction
(accounts.commit_deck_version), with its audit entry when an actor is given and, for a
supplier, the bump of the tenant's routing version (the next START's route list uses the new
rates at once). Losing the race to another upload composes again on the new head, under a
new number.

Errors: InvalidDeckError (a ValueError naming each line and field) for a deck that cannot be
read or composed, EmptyDeckError for one without rates, ValueError for a currency other than
the account's, NotFoundError for an unknown account or version, ConflictError when other
uploads kept landing first.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.deck import InvalidDeckError, RateDeck, parse_deck
from functions.rate.plans import DEFAULT_PLAN
from functions.rate.timeline import FULL, as_timeline, compose, effective_date, prepare
from functions.store import ConflictError, accounts, lake

_RACE_ATTEMPTS = 10  # uploads to one account at the same moment: each loser composes again


class EmptyDeckError(ValueError):
    """A deck without a single rate: an empty A-Z deck would close every code from its date,
    surely not what was meant. Nothing changed."""


@dataclass(frozen=True, slots=True)
class Uploaded:
    account: accounts.Account  # as read before the upload
    version: accounts.DeckVersion  # the head after the upload
    created: bool  # False: the head already was this file (a retried upload)
    deck: RateDeck  # as parsed: its skipped rows


@dataclass(frozen=True)
class _Planned:
    """A version ready to be written: its timeline, the rows it uploaded, what to record."""

    timeline: pa.Table
    upload: pa.Table | None  # None: a rollback uploads no rows
    fields: dict[str, Any]  # the rest of the DeckVersion record


class _AlreadyHead(Exception):
    """The head already is what was asked for: record nothing (a retried upload, say)."""

    def __init__(self, head: accounts.DeckVersion):
        self.head = head


Plan = Callable[[int | None], Callable[[int], _Planned]]


def _new_version(
    tenant: str,
    account: str,
    plan: Plan,
    rate_plan: str,
    actor: accounts.Actor | None,
    reason: str | None,
) -> accounts.DeckVersion:
    """Compose on the head, write the objects, then record and move the head in one step.

    `plan(head)` checks the request against the head and reads what it needs, raising before
    anything is written, and returns `build(version)` -> _Planned.
    """
    for _ in range(_RACE_ATTEMPTS):
        owner = accounts.get_account(tenant, account)
        head = owner.plan_head(rate_plan)
        supplier = owner.kind == "supplier"
        build = plan(head)
        version = accounts.reserve_deck_version(tenant, account)
        planned = build(version)
        upload_key = None
        if planned.upload is not None:
            upload_key, _ = lake.put_deck_upload(tenant, account, version, planned.upload)
        key, timeline_sha256 = lake.put_deck(tenant, account, version, planned.timeline)
        record = accounts.DeckVersion(
            tenant=tenant,
            account=account,
            version=version,
            key=key,
            upload_key=upload_key,
            timeline_rows=planned.timeline.num_rows,
            timeline_sha256=timeline_sha256,
            base=head,
            uploaded_at=datetime.now(UTC),
            plan=rate_plan,
            **planned.fields,
        )
        try:
            if actor is None:
                return accounts.commit_deck_version(record, supplier=supplier)
            return accounts.commit_deck_version(
                record, actor=actor, reason=reason, supplier=supplier
            )
        except accounts.HeadMovedError:
            continue
    raise ConflictError(
        f"other uploads to {tenant}/{account} (plan {rate_plan}) kept landing first; run it again"
    )


def _record(
    tenant: str,
    account: str,
    plan: Plan,
    rate_plan: str,
    actor: accounts.Actor | None,
    reason: str | None,
) -> tuple[accounts.DeckVersion, bool]:
    """The version `plan` builds, and whether it is new (False: the head already was it)."""
    try:
        return _new_version(tenant, account, plan, rate_plan, actor, reason), True
    except _AlreadyHead as already:
        return already.head, False


def _stamped(table: pa.Table, **meta: object) -> pa.Table:
    return table.replace_schema_metadata(
        {f"tollgate.{name}".encode(): str(value).encode() for name, value in meta.items()}
    )


def upload_deck(
    tenant: str,
    account: str | accounts.Account,
    data: bytes,
    *,
    source: str,
    mode: str = FULL,
    effective: int | None = None,
    currency: str | None = None,
    skip_invalid: bool = False,
    plan: str = DEFAULT_PLAN,
    actor: accounts.Actor | None = None,
    reason: str | None = None,
) -> Uploaded:
    """Add a deck CSV (`data`, named `source`) to an account's rate plan: a new active
    version, unless the head already is this very file, mode and date (a retry).
    `account`: its id, or the account as just read."""
    if isinstance(account, accounts.Account):
        owner = account
    else:
        owner = accounts.get_account(tenant, account)
    account = owner.account
    currency = currency or owner.currency
    if currency != owner.currency:
        raise ValueError(
            f"deck currency {currency} differs from account {owner.account}'s currency "
            f"{owner.currency}"
        )
    deck = parse_deck(data, source=source, currency=currency, skip_invalid=skip_invalid)
    if deck.table.num_rows == 0:
        raise EmptyDeckError(f"{source}: no rates to upload; nothing changed")
    sha256 = hashlib.sha256(data).hexdigest()
    when = effective_date(deck.table, effective, int(time.time()))

    def planned(head: int | None) -> Callable[[int], _Planned]:
        if head is not None:
            current = accounts.get_deck_version(tenant, account, head)
            # The same file, mode and date as the head: a retry after a crash that came
            # once the upload had gone through. Another version would change nothing.
            if (current.sha256, current.mode) == (sha256, mode) and effective in (
                None,
                current.effective,
            ):
                raise _AlreadyHead(current)
        base = None if head is None else as_timeline(lake.get_deck(tenant, account, head), head)
        rows = prepare(deck.table, effective=when, first=base is None, source=source)
        composed = compose(base, rows, mode=mode, effective=when, source=source)
        starts = pc.min_max(rows.column("effective_from")).as_py()

        def build(version: int) -> _Planned:
            meta = {"currency": currency, "source": source, "version": version}
            return _Planned(
                timeline=_stamped(composed.numbered(version), **meta),
                upload=_stamped(rows, **meta, mode=mode, effective=when),
                fields={
                    "mode": mode,
                    "currency": currency,
                    "effective": when,
                    "rows": rows.num_rows,
                    "skipped": len(deck.skipped),
                    "effective_min": starts["min"],
                    "effective_max": starts["max"],
                    "source": source,
                    "sha256": sha256,
                    "added": composed.added,
                    "unchanged": composed.unchanged,
                    "superseded": composed.superseded,
                    "end_dated": composed.end_dated,
                    "closed": composed.closed,
                },
            )

        return build

    recorded, created = _record(tenant, account, planned, plan, actor, reason)
    return Uploaded(owner, recorded, created, deck)


def rollback_deck(
    tenant: str,
    account: str,
    version: int,
    *,
    plan: str = DEFAULT_PLAN,
    actor: accounts.Actor | None = None,
    reason: str | None = None,
) -> tuple[accounts.DeckVersion, bool]:
    """A new active version whose timeline is `version`'s (nothing is deleted); False when
    the head already has its rates."""
    target = accounts.get_deck_version(tenant, account, version)
    if target.plan != plan:
        raise ValueError(
            f"deck v{target.version} of {tenant}/{account} is of plan {target.plan}, not {plan}"
        )

    def planned(head: int | None) -> Callable[[int], _Planned]:
        # A recorded version exists, so the account has a head.
        current = accounts.get_deck_version(tenant, account, head)
        if target.version in (current.version, current.restores):
            raise _AlreadyHead(current)
        timeline = as_timeline(lake.get_deck(tenant, account, target.version), target.version)

        def build(number: int) -> _Planned:
            meta = {"currency": target.currency, "source": "", "version": number}
            return _Planned(
                timeline=_stamped(timeline, **meta, restores=target.version),
                upload=None,
                fields={
                    "mode": "rollback",
                    "currency": target.currency,
                    "effective": None,
                    "rows": 0,
                    "skipped": 0,
                    "effective_min": None,
                    "effective_max": None,
                    "source": "",
                    "sha256": "",
                    "restores": target.version,
                },
            )

        return build

    return _record(tenant, account, planned, plan, actor, reason)


__all__ = ["EmptyDeckError", "InvalidDeckError", "Uploaded", "rollback_deck", "upload_deck"]
