"""Account statements: opening balance, every posting of a period, closing balance. Pure.

The ledger keeps a journal: every movement of a balance is one entry, written in the same
transaction as the movement. A statement is assembled here from those entries alone, so it
reconciles by construction with the balance the ledger holds. Amounts are integer micro-units,
signed as the balance moved: a customer's or reseller's balance is payments minus charges, a
supplier's is what the carrier owes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

# charges: a CDR file's charges; rerate: a re-rating's difference; payment and adjustment:
# an operator's command, each named by its reference; recurring: a DID's or bundle's fee,
# named by its account x item x period; tier: a volume tier's true-up; tax: an invoice's tax,
# posted when it is issued; credit: a credit note (what it gives back, tax included).
ENTRY_KINDS = ("charges", "rerate", "payment", "adjustment", "recurring", "tier", "tax", "credit")
# What an invoice states: the entries that are charges for service (taxes and credit notes
# come from invoices, payments are not charges).
INVOICED_KINDS = ("charges", "rerate", "adjustment", "recurring", "tier")
ACCOUNT_KINDS = ("customer", "reseller", "supplier")


class StatementError(ValueError):
    """A period that cannot be stated, or entries that do not add up."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One movement of one account's balance, as the journal recorded it."""

    account: str
    booked_at: dt.datetime  # aware, UTC
    kind: str  # one of ENTRY_KINDS
    posting_id: str  # what made the movement exactly once: file id, re-rate id, reference key
    amount: int  # micro-units, signed as the balance moved
    description: str = ""  # file name, re-rate day and file, payment or adjustment reason
    reference: str | None = None  # the bank's or PSP's reference of a payment or adjustment


@dataclass(frozen=True, slots=True)
class Line:
    """An entry on a statement: the day it was booked (tenant's time) and the balance after it."""

    entry: Entry
    day: dt.date
    balance: int


@dataclass(frozen=True, slots=True)
class Statement:
    account: str
    timezone: str
    first_day: dt.date
    last_day: dt.date
    opening: int  # every entry booked before first_day 00:00 in the tenant's time zone
    lines: tuple[Line, ...]  # every entry booked in the period, in booking order
    closing: int  # every entry booked before the day after last_day, 00:00 local

    def totals(self) -> dict[str, int]:
        """The period's movement per entry kind (every kind present)."""
        totals = dict.fromkeys(ENTRY_KINDS, 0)
        for line in self.lines:
            totals[line.entry.kind] += line.entry.amount
        return totals


def payment_delta(account_kind: str, amount: int) -> int:
    """How a payment of `amount` moves an account's balance.

    A customer or reseller pays the carrier: its balance (payments minus charges) rises. The
    carrier pays a supplier: what it owes the supplier falls.
    """
    if account_kind not in ACCOUNT_KINDS:
        raise ValueError(f"invalid account kind {account_kind!r}")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"a payment must be a positive number of micro-units, not {amount!r}")
    return -amount if account_kind == "supplier" else amount


def period_bounds(
    timezone: str, first_day: dt.date, last_day: dt.date
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of calendar days first_day..last_day (inclusive) in `timezone`."""
    if first_day > last_day:
        raise StatementError(f"the period starts ({first_day}) after it ends ({last_day})")
    return _midnight(timezone, first_day), _midnight(timezone, last_day + dt.timedelta(days=1))


def _midnight(timezone: str, day: dt.date) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(timezone))
    return local.astimezone(dt.UTC)


def booking_order(entry: Entry) -> tuple[dt.datetime, str]:
    """Entries in the order they were booked; the posting id breaks ties in one microsecond."""
    return entry.booked_at, entry.posting_id


def build_statement(
    account: str,
    timezone: str,
    first_day: dt.date,
    last_day: dt.date,
    entries: Iterable[Entry],
) -> Statement:
    """The statement of `account` from every journal entry booked before the period's end.

    Entries booked at or after the end are ignored, so the journal may be read to any point.
    """
    start, end = period_bounds(timezone, first_day, last_day)
    zone = ZoneInfo(timezone)
    opening = closing = 0
    in_period: list[Entry] = []
    for entry in entries:
        if entry.account != account:
            raise StatementError(f"entry {entry.posting_id!r} is for {entry.account!r}")
        if entry.kind not in ENTRY_KINDS:
            raise StatementError(f"entry {entry.posting_id!r} has unknown kind {entry.kind!r}")
        if entry.booked_at.utcoffset() is None:
            raise StatementError(f"entry {entry.posting_id!r} has a naive booking time")
        if entry.booked_at >= end:
            continue
        closing += entry.amount
        if entry.booked_at < start:
            opening += entry.amount
        else:
            in_period.append(entry)
    lines = []
    balance = opening
    for entry in sorted(in_period, key=booking_order):
        balance += entry.amount
        lines.append(Line(entry, entry.booked_at.astimezone(zone).date(), balance))
    # The promise every statement makes (closing - opening = its lines, to the micro-unit),
    # checked on every statement rather than assumed, so no change to the split can break it
    # silently.
    if closing - opening != sum(line.entry.amount for line in lines) or balance != closing:
        raise StatementError(
            f"statement of {account!r} does not reconcile: opening {opening}, closing {closing}"
        )
    return Statement(account, timezone, first_day, last_day, opening, tuple(lines), closing)
