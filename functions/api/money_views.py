"""What the API's money routes show: statements, invoices and payments (plain Python, no AWS).

Amounts are decimal strings with exactly 6 places (micro-units), whatever the store holds
(ledger integers, invoice Decimals in cents), so a client adds them without a float. A key
that sees no supplier (below tenant level, or a tenant-wide read-only one) is shown its own
money only: journal texts the platform does not write in a known form (a CDR file's name, an
operator's free text) may name the carrier's suppliers, switches or trunks, so they read as
the entry kind's plain name; below tenant level an invoice's issuer is not named either.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from functions.api.requests import ApiError, QueryError, parse_day
from functions.api.scope import CARRIER_ROLES, AccountLike, Caller, visible
from functions.invoice.payments import PAYABLE_STATUSES
from functions.invoice.statement import Entry, Statement
from functions.shared.money import AMOUNT_SCALE, to_units, units_to_str

MAX_STATEMENT_DAYS = 366
DOCUMENT_FORMATS = ("pdf", "xml")  # what the API hands out; the CSVs stay with the carrier
LINK_SECONDS = 300  # a pre-signed link's life: long enough to follow, short enough to leak
_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Journal texts below tenant level, per entry kind: what the platform writes itself (a
# payment's "payment received", a tax's "tax on invoice INV-...", a recurring fee's item and
# period, a tier's name and period) is shown; a CDR file's name and a re-rating's file are not.
_PLAIN_TEXT = {
    "charges": "call charges",
    "rerate": "re-rated call charges",
    "adjustment": "adjustment",
}


def money(value: int | Decimal) -> str:
    """Micro-units (int) or an exact Decimal as a 6-place decimal string; never rounds."""
    if isinstance(value, Decimal):
        value = to_units(str(value), AMOUNT_SCALE)  # ValueError beyond 6 places: a bug
    return units_to_str(value, AMOUNT_SCALE)


def stamp(moment: dt.datetime) -> str:
    """An aware time as RFC 3339 UTC with microseconds (the journal's own precision)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} in this key's view")


# --- statements ------------------------------------------------------------------------------


def statement_period(query: Mapping[str, str]) -> tuple[dt.date, dt.date]:
    """`from` and `to` (both required, inclusive); `to` is at fault for a reversed or too long
    period (a client usually moves the end)."""
    first, last = parse_day(query, "from"), parse_day(query, "to")
    if last < first:
        raise QueryError("to", f"'to' ({last}) is before 'from' ({first})")
    if (last - first).days + 1 > MAX_STATEMENT_DAYS:
        raise QueryError("to", f"a statement covers at most {MAX_STATEMENT_DAYS} days")
    return first, last


def sees_suppliers(caller: Caller) -> bool:
    """The carrier's own roles: the journal's texts as recorded. Every other key (a tenant-wide
    read-only one too, which sees no supplier) reads them as `shown_text` allows."""
    return caller.tenant_level and caller.role in CARRIER_ROLES


def needs_supplier_names(caller: Caller, statement: Statement) -> bool:
    """Whether showing the statement checks texts against the suppliers' names."""
    return not sees_suppliers(caller) and any(
        line.entry.kind == "adjustment" for line in statement.lines
    )


def shown_text(caller: Caller, entry: Entry, suppliers: Iterable[str]) -> tuple[str, str | None]:
    """(description, reference) of a journal entry as the caller may read them.

    The carrier's roles: as recorded. Any other key: a CDR file's name (charges, re-rating)
    never; an operator's adjustment text only when it names none of the tenant's suppliers
    (`suppliers`: their account ids and profile names, compared case-insensitively without
    spaces or punctuation); every other kind is text the platform wrote about the account's
    own money.
    """
    if sees_suppliers(caller):
        return entry.description, entry.reference
    if entry.kind in ("charges", "rerate"):
        return _PLAIN_TEXT[entry.kind], None
    if entry.kind == "adjustment":
        names = [_squash(s) for s in suppliers]
        description = entry.description
        reference = entry.reference
        if any(n and n in _squash(description) for n in names):
            description = _PLAIN_TEXT["adjustment"]
        if reference is not None and any(n and n in _squash(reference) for n in names):
            reference = None
        return description, reference
    return entry.description, entry.reference


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def statement_view(
    account: AccountLike, statement: Statement, caller: Caller, suppliers: Iterable[str]
) -> dict[str, Any]:
    suppliers = list(suppliers)
    lines = []
    for line in statement.lines:
        description, reference = shown_text(caller, line.entry, suppliers)
        lines.append(
            {
                "day": line.day.isoformat(),
                "booked_at": stamp(line.entry.booked_at),
                "kind": line.entry.kind,
                "description": description,
                "reference": reference,
                "amount": money(line.entry.amount),
                "balance": money(line.balance),
            }
        )
    return {
        "account": account.account,
        "currency": account.currency,
        "timezone": statement.timezone,
        "from": statement.first_day.isoformat(),
        "to": statement.last_day.isoformat(),
        "opening": money(statement.opening),
        "closing": money(statement.closing),
        "lines": lines,
    }


# --- invoices --------------------------------------------------------------------------------


class InvoiceLike(Protocol):
    number: str | None
    kind: str
    account: str
    issuer: str
    period: str
    period_from: dt.date
    period_to: dt.date
    issue_date: dt.date
    due_date: dt.date
    currency: str
    subtotal: Decimal
    total: Decimal
    amount_due: Decimal
    status: str
    credits: str | None

    @property
    def tax_total(self) -> Decimal: ...


class IssuedLike(Protocol):
    invoice: InvoiceLike
    credited: Decimal
    delivery: str | None
    documents: dict[str, str]
    paid: Decimal


def check_number(number: str) -> str:
    """An invoice number as a path segment; anything else is no invoice (404, never 400: the
    answer is the same as for a number outside the caller's view)."""
    if not _NUMBER.fullmatch(number):
        raise not_found(f"invoice {number[:64]!r}")
    return number


def open_amount(invoice: InvoiceLike, paid: Decimal) -> Decimal:
    """What is still to pay (functions.invoice.payments.outstanding from the invoice's paid
    total); a credit note or a void invoice: nothing."""
    if invoice.kind != "invoice" or invoice.status not in PAYABLE_STATUSES:
        return Decimal(0)
    return max(Decimal(0), invoice.amount_due - paid)


def invoice_view(issued: IssuedLike, caller: Caller) -> dict[str, Any]:
    invoice = issued.invoice
    paid = issued.paid if invoice.kind == "invoice" else Decimal(0)
    view: dict[str, Any] = {
        "number": invoice.number,
        "kind": invoice.kind,
        "account": invoice.account,
        "credits": invoice.credits,
        "issue_date": invoice.issue_date.isoformat(),
        "due_date": invoice.due_date.isoformat(),
        "period": invoice.period,
        "period_from": invoice.period_from.isoformat(),
        "period_to": invoice.period_to.isoformat(),
        "currency": invoice.currency,
        "net": money(invoice.subtotal),
        "tax": money(invoice.tax_total),
        "total": money(invoice.total),
        "amount_due": money(invoice.amount_due),
        "paid": money(paid),
        "open": money(open_amount(invoice, paid)),
        "credited": money(issued.credited),
        "status": invoice.status,
        "delivery": issued.delivery,
        "documents": [f for f in DOCUMENT_FORMATS if f in issued.documents],
    }
    if caller.tenant_level:  # below it, the issuer may be a reseller above the caller
        view["issuer"] = invoice.issuer
    return view


def visible_invoices(
    caller: Caller, invoices: Iterable[IssuedLike], accounts: Iterable[AccountLike]
) -> list[IssuedLike]:
    """The invoices issued to an account the caller sees: a reseller its own (the carrier's
    to it) and its subtree's (its own to its customers, theirs to theirs), a customer its own."""
    seen = {a.account for a in visible(caller, accounts)}
    return [i for i in invoices if i.invoice.account in seen]


class InvoiceRefLike(Protocol):
    account: str
    issue_date: dt.date
    number: str


def invoice_order(ref: InvoiceRefLike) -> str:
    """The invoices' paging key: issue date, then number (each issuer's series in order)."""
    return f"{ref.issue_date.isoformat()}|{ref.number}"


def document_key(issued: IssuedLike, fmt: str) -> str:
    key = issued.documents.get(fmt)
    if key is None:
        raise not_found(f"{fmt} document of invoice {issued.invoice.number}")
    return key


# --- payments --------------------------------------------------------------------------------


class AllocationLike(Protocol):
    reference: str
    allocations: Sequence[Any]  # functions.invoice.payments.Allocation
    credit: Decimal


def payment_order(entry: Entry) -> str:
    """The payments' paging key: booking time, then the payment's id (one per reference)."""
    return f"{stamp(entry.booked_at)}|{entry.posting_id}"


def payment_view(
    account: AccountLike, entry: Entry, allocation: AllocationLike | None
) -> dict[str, Any]:
    """A payment as its journal entry holds it: received from a customer or reseller (its
    balance rose), or made to a supplier (what the carrier owes it fell)."""
    return {
        "payment_id": entry.posting_id,
        "account": account.account,
        "currency": account.currency,
        "direction": "received" if entry.amount > 0 else "made",
        "amount": money(abs(entry.amount)),
        "reference": entry.reference,
        "booked_at": stamp(entry.booked_at),
        "allocations": []
        if allocation is None
        else [
            {"invoice": a.invoice, "amount": money(a.amount), "day": a.day.isoformat()}
            for a in allocation.allocations
        ],
        "credit": None if allocation is None else money(allocation.credit),
    }


def payment_period(query: Mapping[str, str]) -> tuple[dt.date | None, dt.date | None]:
    """`from` and `to` of a payment list, each optional (days in the tenant's time zone)."""
    first = parse_day(query, "from") if "from" in query else None
    last = parse_day(query, "to") if "to" in query else None
    if first is not None and last is not None and last < first:
        raise QueryError("to", f"'to' ({last}) is before 'from' ({first})")
    return first, last
