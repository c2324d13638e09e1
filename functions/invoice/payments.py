"""Allocating payments and credit notes to invoices, and the invoice status that follows. Pure.

A payment goes first to the invoice(s) its reference names (a remittance reference, Stripe's
`metadata.invoice_no`), in the order named, then to the oldest open invoices (by issue date,
then number); what is left is account credit (Zuora's unapplied amount, iDempiere's
"Allocate Oldest First"). A credit note is allocated the same way, named by its own number and
naming the invoice it credits.

Allocations are rows (payment reference, invoice number, amount, day), appended and never
rewritten; an invoice's paid amount and status are derived from them, so a retried
allocation can be recognised and the history read back. Money is Decimal in the invoice
currency, allocated in whole cents (an invoice's amount due is in cents; a payment's sub-cent
remainder stays credit). Only invoices in the payment's currency take part: a payment in EUR
never pays a USD invoice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
OPEN_STATUSES = ("issued", "sent", "partially_paid")
# What the allocation rows can move an invoice between; draft and void are never touched.
PAYABLE_STATUSES = (*OPEN_STATUSES, "paid")


@dataclass(frozen=True, slots=True)
class Due:
    """An issued invoice as allocation sees it: what was due on it when issued."""

    number: str
    account: str
    issue_date: dt.date
    due_date: dt.date
    currency: str
    amount_due: Decimal  # cents, as issued (a prepaid account's invoice: 0)
    status: str = "issued"  # as stored: issued | sent | ... | void


@dataclass(frozen=True, slots=True)
class Allocation:
    """One row: `amount` of payment (or credit note) `payment` paid on invoice `invoice`."""

    payment: str  # the payment's reference, or the credit note's number
    invoice: str
    amount: Decimal  # cents, > 0
    day: dt.date


@dataclass(frozen=True, slots=True)
class Allocated:
    """What one payment did: the new rows and the credit it leaves on the account."""

    allocations: tuple[Allocation, ...]
    credit: Decimal  # the unallocated remainder, >= 0 (may hold sub-cents)

    @property
    def allocated(self) -> Decimal:
        return sum((a.amount for a in self.allocations), ZERO)


def paid_on(invoice: str, allocations: Iterable[Allocation]) -> Decimal:
    return sum((a.amount for a in allocations if a.invoice == invoice), ZERO)


def outstanding(due: Due, allocations: Iterable[Allocation]) -> Decimal:
    """What is still to pay on an invoice (0 for a void one: nothing is owed on it)."""
    if due.status not in PAYABLE_STATUSES:
        return ZERO
    return max(ZERO, due.amount_due - paid_on(due.number, allocations))


def status(due: Due, allocations: Iterable[Allocation]) -> str:
    """The invoice's status from its rows: issued/sent -> partially_paid -> paid.

    Void (and draft) stay as they are. An invoice with nothing due (a prepaid account's) is
    paid. Without rows an invoice keeps its stored issued/sent.
    """
    if due.status not in PAYABLE_STATUSES:
        return due.status
    paid = paid_on(due.number, allocations)
    if paid >= due.amount_due:
        return "paid"
    if paid > 0:
        return "partially_paid"
    return due.status if due.status in ("issued", "sent") else "issued"


def oldest_first(invoices: Iterable[Due]) -> list[Due]:
    return sorted(invoices, key=lambda d: (d.issue_date, d.number))


def allocate(
    *,
    payment: str,
    amount: Decimal,
    currency: str,
    day: dt.date,
    invoices: Sequence[Due],
    allocations: Sequence[Allocation],
    named: Sequence[str] = (),
) -> Allocated:
    """Allocate a payment of `amount` (> 0) to the account's `invoices`, given the rows so far.

    `named`: the invoice numbers the payment's reference names; each must be one of
    `invoices` in the payment's currency (ValueError otherwise: the caller checks what it was
    told before money moves). A named invoice already paid takes nothing; the rest goes
    oldest-first. Account credit left by an earlier payment is applied to later invoices the
    same way, with `amount` = its credit_left.
    """
    if not isinstance(amount, Decimal) or amount <= 0:
        raise ValueError(f"a payment to allocate is a positive Decimal, not {amount!r}")
    by_number = {d.number: d for d in invoices}
    for number in named:
        due = by_number.get(number)
        if due is None:
            raise ValueError(f"invoice {number!r} is not one of this account's invoices")
        if due.currency != currency:
            raise ValueError(
                f"invoice {number} is in {due.currency}, the payment in {currency}: "
                "it cannot pay it"
            )
    order = [by_number[n] for n in dict.fromkeys(named)]
    order += [d for d in oldest_first(invoices) if d.number not in named and d.currency == currency]
    left = amount
    rows: list[Allocation] = []
    seen = list(allocations)
    for due in order:
        usable = left.quantize(CENT, rounding=ROUND_DOWN)  # whole cents only
        share = min(usable, outstanding(due, seen))
        if share <= 0:
            continue
        row = Allocation(payment, due.number, share, day)
        rows.append(row)
        seen.append(row)
        left -= share
    return Allocated(tuple(rows), left)


def allocate_credit_note(
    *,
    note: str,
    credits: str,
    total: Decimal,
    currency: str,
    day: dt.date,
    invoices: Sequence[Due],
    allocations: Sequence[Allocation],
) -> Allocated:
    """A credit note (number `note`, `total` incl. tax) against the invoice it credits: like a
    payment naming that invoice; what that invoice no longer needs is account credit."""
    return allocate(
        payment=note,
        amount=total,
        currency=currency,
        day=day,
        invoices=invoices,
        allocations=allocations,
        named=(credits,),
    )


def credit_left(payment: str, amount: Decimal, allocations: Iterable[Allocation]) -> Decimal:
    """A payment's unallocated remainder: its amount less its rows."""
    return amount - sum((a.amount for a in allocations if a.payment == payment), ZERO)
