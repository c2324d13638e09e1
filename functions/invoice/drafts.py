"""Invoices and credit notes: lines, taxes and totals from a period's charges. Pure.

What an invoice states (docs/invoicing.md):
- its period's postings: every charge the ledger booked to the account in the period (a CDR
  file's charges, re-rating differences, recurring and bundle fees, tier true-ups), each
  booked once, so an entry is on exactly one invoice; a late file lands on the next one;
- one line per destination and price (per tier price for tiered groups; bundle use and
  surcharges as their own lines): quantity = billed minutes, unit price = the rate, amount =
  what those calls were actually charged (connect fees and minimums included), rounded once
  to cents; one line per fee and true-up; a re-rating line for what the period's postings
  hold beyond the lake's current charges (a file re-rated after it was booked);
- subtotal = the postings' exact sum, converted at one FX rate when the invoice currency is
  not the account's, plus the sub-cent remainder the previous invoice carried, rounded once
  to cents; what the lines' own rounding leaves is a visible `Rounding` line, and what the
  subtotal's rounding leaves (under half a cent) is carried to the next invoice: the invoices
  of an account add up to its postings, never a cent lost or made up;
- tax per category on the summed taxable amount, rounded once (EN 16931 BR-CO-17).
The named rule is ROUND_HALF_UP to cents, for line amounts, the subtotal and each tax.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from functions.invoice.cycles import Period
from functions.invoice.profiles import (
    NOT_SUBJECT,
    REVERSE_CHARGE_REFERENCE,
    BillingProfile,
    TaxTreatment,
    einvoice_gaps,
)

CENT = Decimal("0.01")
QUANTITY = Decimal("0.0001")  # billed minutes to 4 places (a 1-second increment is 1/60)
PRICE = Decimal("0.00000001")  # rates as decks hold them (10^-8)
MICRO = Decimal("0.000001")
ROUNDING = ROUND_HALF_UP  # the one rule, applied once per line, subtotal and tax
KINDS = ("invoice", "credit_note")
STATUSES = ("draft", "issued", "sent", "partially_paid", "paid", "void")
UNIT_MINUTE = "MIN"  # UN/ECE Rec 20 "minute [unit of time]"
UNIT_ONE = "C62"  # UN/ECE Rec 20 "one": a fee, an adjustment
# The order lines are printed in; every line has one of these components.
COMPONENTS = (
    "usage",
    "tier",
    "bundle",
    "surcharge",
    "did",
    "recurring",
    "true_up",
    "adjustment",
    "credit",
    "rounding",
)
_LABEL = {"tier": "tier", "bundle": "in bundle", "surcharge": "surcharge", "did": "DID"}


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUNDING)


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros and never in exponent form: 12500, 40000.5, 0.008."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


@dataclass(frozen=True, slots=True)
class UsageRow:
    """The lake's charges of one account x component x destination x rate in a period."""

    component: str  # usage | tier | bundle | surcharge
    destination: str
    rate: Decimal  # per minute, in the account's currency
    billed_seconds: int
    calls: int
    amount_micro: int  # what those calls were charged, exactly (micro-units, positive: owed)


@dataclass(frozen=True, slots=True)
class FeeRow:
    """A posting of the period that is not a CDR file's: a fee or a tier true-up."""

    component: str  # recurring | true_up
    description: str
    amount_micro: int  # positive: owed


@dataclass(frozen=True, slots=True)
class Conversion:
    """The one FX rate of an invoice: target units per source unit, in force at period end."""

    source_currency: str
    target_currency: str
    rate: Decimal
    day: dt.date
    source: str  # where the rate came from, e.g. "ECB" or "operator"

    def convert(self, amount: Decimal) -> Decimal:
        return amount * self.rate


@dataclass(frozen=True, slots=True)
class Line:
    description: str
    destination: str | None
    quantity: Decimal
    unit: str  # MIN or C62
    unit_price: Decimal
    amount: Decimal  # cents
    component: str
    calls: int = 0

    @property
    def price_difference(self) -> Decimal:
        """What the calls cost beyond minutes x rate (connect fees, minimums, per-call
        rounding): a line charge (or allowance, when negative) in the UBL document, whose rule
        PEPPOL-EN16931-R120 wants line amount = quantity x price + charges - allowances."""
        return self.amount - cents(self.quantity * self.unit_price)


@dataclass(frozen=True, slots=True)
class TaxLine:
    category: str  # UNCL5305: S, AE, E, O
    rate: Decimal  # percent
    taxable: Decimal
    amount: Decimal
    exemption_code: str | None = None
    exemption_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """One side of an invoice as printed: from a billing profile, snapshotted."""

    account: str | None
    name: str  # legal name, else the account id
    address: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None
    email: str | None = None
    vat_id: str | None = None
    iban: str | None = None
    phone: str | None = None

    @classmethod
    def of(cls, profile: BillingProfile) -> Party:
        return cls(
            account=profile.account,
            name=profile.legal_name or profile.account or profile.tenant,
            address=profile.address,
            city=profile.city,
            postcode=profile.postcode,
            country=profile.country,
            email=profile.email,
            vat_id=profile.vat_id,
            iban=profile.iban,
            phone=profile.phone,
        )


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice or credit note, as drafted, numbered and issued (never edited after)."""

    tenant: str
    kind: str  # invoice | credit_note
    account: str
    issuer: str  # "carrier", or the reseller account that bills its customer (white label)
    series: str
    period: str  # the period's name; a credit note: its invoice's
    period_from: dt.date
    period_to: dt.date
    issue_date: dt.date
    due_date: dt.date
    currency: str
    brand: str
    seller: Party
    buyer: Party
    lines: tuple[Line, ...]
    subtotal: Decimal
    taxes: tuple[TaxLine, ...]
    total: Decimal
    amount_due: Decimal
    number: str | None = None
    status: str = "draft"
    terms_days: int = 30
    conversion: Conversion | None = None
    carried_in: Decimal = Decimal(0)  # sub-cent remainder taken from the previous invoice
    carried_out: Decimal = Decimal(0)  # sub-cent remainder left to the next one
    notes: tuple[str, ...] = ()
    credits: str | None = None  # a credit note: the number of the invoice it credits
    reason: str | None = None  # a credit note's reason
    gaps: tuple[str, ...] = ()  # what a valid e-invoice needs and the profiles lack

    @property
    def tax_total(self) -> Decimal:
        return sum((t.amount for t in self.taxes), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        """`tollgate invoice show --json`: decimals as strings, dates ISO."""
        return {
            "number": self.number,
            "kind": self.kind,
            "account": self.account,
            "issuer": self.issuer,
            "period": self.period,
            "period_from": self.period_from.isoformat(),
            "period_to": self.period_to.isoformat(),
            "issue_date": self.issue_date.isoformat(),
            "due_date": self.due_date.isoformat(),
            "currency": self.currency,
            "lines": [
                {
                    "description": line.description,
                    "destination": line.destination,
                    "quantity": str(line.quantity),
                    "unit": line.unit,
                    "unit_price": str(line.unit_price),
                    "amount": str(line.amount),
                    "component": line.component,
                }
                for line in self.lines
            ],
            "subtotal": str(self.subtotal),
            "taxes": [
                {
                    "category": tax.category,
                    "rate": str(tax.rate),
                    "taxable": str(tax.taxable),
                    "amount": str(tax.amount),
                }
                for tax in self.taxes
            ],
            "total": str(self.total),
            "amount_due": str(self.amount_due),
            "status": self.status,
            "credits": self.credits,
            "fx": None
            if self.conversion is None
            else {
                "from": self.conversion.source_currency,
                "rate": str(self.conversion.rate),
                "day": self.conversion.day.isoformat(),
                "source": self.conversion.source,
            },
            "carried_in": str(plain(self.carried_in)),
            "carried_out": str(plain(self.carried_out)),
            "gaps": list(self.gaps),
        }


def _taxes(taxable: Decimal, treatment: TaxTreatment | None) -> tuple[TaxLine, ...]:
    if treatment is None:
        return (
            TaxLine(
                NOT_SUBJECT,
                Decimal(0),
                taxable,
                Decimal("0.00"),
                "VATEX-EU-O",
                "Not subject to VAT",
            ),
        )
    amount = cents(taxable * treatment.rate / 100) if treatment.treatment == "standard" else None
    return (
        TaxLine(
            treatment.category,
            treatment.rate,
            taxable,
            amount if amount is not None else Decimal("0.00"),
            treatment.exemption_code,
            treatment.exemption_reason,
        ),
    )


def _notes(treatment: TaxTreatment | None) -> tuple[str, ...]:
    if treatment is not None and treatment.treatment == "reverse_charge":
        return ("Reverse charge", REVERSE_CHARGE_REFERENCE)
    return ()


def usage_line(row: UsageRow, conversion: Conversion | None) -> Line:
    rate = row.rate if conversion is None else conversion.convert(row.rate).quantize(PRICE)
    amount = Decimal(row.amount_micro) * MICRO
    if conversion is not None:
        amount = conversion.convert(amount)
    label = _LABEL.get(row.component)
    name = row.destination or ("Inbound calls" if row.component == "did" else "Other calls")
    return Line(
        description=f"{name} ({label})" if label else name,
        destination=row.destination,
        quantity=plain((Decimal(row.billed_seconds) / 60).quantize(QUANTITY, rounding=ROUNDING)),
        unit=UNIT_MINUTE,
        unit_price=plain(rate),
        amount=cents(amount),
        component=row.component,
        calls=row.calls,
    )


def _one(description: str, amount: Decimal, component: str) -> Line:
    return Line(description, None, Decimal(1), UNIT_ONE, amount, amount, component)


def _sorted(lines: list[Line]) -> tuple[Line, ...]:
    order = {name: index for index, name in enumerate(COMPONENTS)}
    # a tiered destination's first (dearest) tier first
    return tuple(
        sorted(lines, key=lambda x: (order[x.component], x.destination or "", -x.unit_price))
    )


def build_invoice(
    *,
    tenant: str,
    account: str,
    issuer: str,
    period: Period,
    issue_date: dt.date,
    seller: BillingProfile,
    buyer: BillingProfile,
    account_currency: str,
    usage: Sequence[UsageRow],
    fees: Sequence[FeeRow],
    posted_micro: int,
    prepaid: bool = False,
    carried_in: Decimal = Decimal(0),
    conversion: Conversion | None = None,
) -> Invoice:
    """The draft of `account`'s invoice for `period` (unnumbered, status draft).

    `posted_micro` is the exact sum the invoice covers (functions.invoice.cycle: the postings
    since the previous invoice for calls before the period's end; positive: owed), in the
    account's currency: the invoice adds up to it.
    A prepaid account has paid from its balance already: nothing is due.
    """
    currency = buyer.currency or account_currency
    if (conversion is None) != (currency == account_currency):
        raise ValueError(
            f"{account}: the invoice is in {currency} and the charges in {account_currency}: "
            "one FX rate is needed exactly when they differ"
        )
    if conversion is not None and (
        conversion.source_currency != account_currency or conversion.target_currency != currency
    ):
        raise ValueError(f"{account}: the FX rate converts the wrong currencies")

    def money(micro: int) -> Decimal:
        value = Decimal(micro) * MICRO
        return value if conversion is None else conversion.convert(value)

    lines = [usage_line(row, conversion) for row in usage if row.billed_seconds or row.amount_micro]
    lines += [_one(fee.description, cents(money(fee.amount_micro)), fee.component) for fee in fees]
    residual = posted_micro - sum(r.amount_micro for r in usage) - sum(f.amount_micro for f in fees)
    if residual:
        lines.append(
            _one(
                "Adjustments to earlier periods (re-rating, late calls)",
                cents(money(residual)),
                "adjustment",
            )
        )
    exact = money(posted_micro) + carried_in
    subtotal = cents(exact)
    rounding = subtotal - sum((line.amount for line in lines), Decimal(0))
    if rounding:
        lines.append(_one("Rounding", rounding, "rounding"))
    treatment = buyer.tax_on(period.last_day)
    taxes = _taxes(subtotal, treatment)
    total = subtotal + sum((t.amount for t in taxes), Decimal(0))
    return Invoice(
        tenant=tenant,
        kind="invoice",
        account=account,
        issuer=issuer,
        series=seller.series or "INV",
        period=period.name,
        period_from=period.first_day,
        period_to=period.last_day,
        issue_date=issue_date,
        due_date=issue_date + dt.timedelta(days=buyer.terms_days),
        currency=currency,
        brand=seller.display_name,
        seller=Party.of(seller),
        buyer=Party.of(buyer),
        lines=_sorted(lines),
        subtotal=subtotal,
        taxes=taxes,
        total=total,
        amount_due=Decimal("0.00") if prepaid else total,
        terms_days=buyer.terms_days,
        conversion=conversion,
        carried_in=carried_in,
        carried_out=exact - subtotal,
        notes=_notes(treatment),
        gaps=einvoice_gaps(seller, buyer, treatment),
    )


def build_credit_note(
    invoice: Invoice,
    *,
    issue_date: dt.date,
    reason: str,
    amount: Decimal | None = None,
    credited_before: Decimal = Decimal(0),
) -> Invoice:
    """A credit note against an issued invoice: all of what is left to credit, or `amount`
    (before tax) of it. Tax follows the invoice's treatment; amounts are positive (UBL 381)."""
    if invoice.kind != "invoice" or invoice.number is None:
        raise ValueError("only an issued invoice can be credited")
    if not reason or not reason.strip():
        raise ValueError("a credit note needs a --reason")
    left = invoice.subtotal - credited_before
    if amount is None:
        amount = left
    elif amount != cents(amount) or amount <= 0:
        raise ValueError(f"invalid --amount {amount}: a positive amount in cents")
    if amount > left or amount <= 0:
        raise ValueError(
            f"invoice {invoice.number} has {left} {invoice.currency} left to credit, not {amount}"
        )
    if amount == invoice.subtotal:
        lines = invoice.lines
    else:
        lines = (_one(f"Credit on invoice {invoice.number}: {reason.strip()}", amount, "credit"),)
    [tax] = invoice.taxes
    rate = tax.rate
    taxes = (
        dataclasses.replace(
            tax,
            taxable=amount,
            amount=cents(amount * rate / 100) if tax.category == "S" else Decimal("0.00"),
        ),
    )
    total = amount + taxes[0].amount
    return dataclasses.replace(
        invoice,
        kind="credit_note",
        series="CN" if invoice.series == "INV" else f"{invoice.series}CN"[:10],
        number=None,
        status="draft",
        issue_date=issue_date,
        due_date=issue_date,
        lines=lines,
        subtotal=amount,
        taxes=taxes,
        total=total,
        amount_due=Decimal("0.00"),
        carried_in=Decimal(0),
        carried_out=Decimal(0),
        credits=invoice.number,
        reason=reason.strip(),
    )


# --- storage form ---------------------------------------------------------------------------
# Every field, exactly (decimals as strings), so a stored invoice reads back equal to itself
# and renders to the same bytes years later.


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    if dataclasses.is_dataclass(value):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def invoice_record(invoice: Invoice) -> dict[str, Any]:
    """The invoice as plain JSON-able data, every field kept exactly."""
    return _encode(invoice)


def _decimal(data: Any) -> Decimal:
    return Decimal(data["$d"])


def _date(data: Any) -> dt.date:
    return dt.date.fromisoformat(data["$date"])


def _plain_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        value = data[f.name]
        if isinstance(value, dict) and "$d" in value:
            value = _decimal(value)
        elif isinstance(value, dict) and "$date" in value:
            value = _date(value)
        out[f.name] = value
    return out


def invoice_from_record(data: dict[str, Any]) -> Invoice:
    fields = _plain_fields(Invoice, data)
    fields["seller"] = Party(**_plain_fields(Party, data["seller"]))
    fields["buyer"] = Party(**_plain_fields(Party, data["buyer"]))
    fields["lines"] = tuple(Line(**_plain_fields(Line, x)) for x in data["lines"])
    fields["taxes"] = tuple(TaxLine(**_plain_fields(TaxLine, x)) for x in data["taxes"])
    fields["notes"] = tuple(data["notes"])
    fields["gaps"] = tuple(data["gaps"])
    if data["conversion"] is not None:
        fields["conversion"] = Conversion(**_plain_fields(Conversion, data["conversion"]))
    return Invoice(**fields)
