"""Money for the API's money routes, written into a `world` (tests/api/conftest.py) at fixed
booking times: postings (a CDR file's name and an adjustment naming the supplier CARRIER_X),
invoices issued by the carrier and by the reseller RES_A, their documents, and payments
allocated to them. `seed()` is called once per test module, inside the world's moto account.

RES_A's journal (micro-units; the world's payment SEPA-1, +123_456_789, is booked at the real
time the world was made):
    2026-02-27 09:00            charges  -3_000_000    before March: the opening
    2026-03-01 00:00:00.000000  charges -12_345_678    the first instant of March
    2026-03-15 12:00            rerate      +45_678
    2026-03-20 08:30            adjust.  +1_000_000    names CARRIER_X: hidden below tenant
    2026-03-31 23:59:59.999999  charges          -1    the last instant of March
    2026-04-01 00:00:00.000000  charges          -7    April: not on March's statement
    2026-04-02 06:00            tax     -25_230_000    on invoice INV-2026-000002
    2026-04-10 10:00            payment+100_000_000    SEPA-RES-2, 100.00 paid on INV-...02
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from functions.invoice.cycles import parse_period
from functions.invoice.drafts import UsageRow, build_credit_note, build_invoice
from functions.invoice.profiles import BillingProfile, parse_tax
from functions.invoice.receipts import receive_payment
from functions.store import accounts, billing, documents, ledger

UTC = dt.UTC
MARCH = parse_period("2026-03")
PDF = b"%PDF-1.4 the API test's invoice\n"
XML = b"<?xml version='1.0'?><Invoice/>"
SUPPLIER_FILE = "sbc1_CARRIER_X_trunk7_20260301.csv"
SUPPLIER_NAME = "Globex Wholesale Ltd."  # CARRIER_X's legal name
SUPPLIER_REASON = "goodwill for the Carrier-X outage of 19 March"


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


@dataclass(frozen=True)
class Money:
    direct_invoice: str  # INV-2026-000001, issued 2026-04-01 by the carrier to DIRECT
    reseller_invoice: str  # INV-2026-000002, issued 2026-04-02 by the carrier to RES_A
    customer_invoice: str  # RESA-2026-000001, issued 2026-04-02 by RES_A to CUST_A1 (prepaid)
    credit_invoice: str  # CN-2026-000001, issued 2026-04-20 by the carrier on DIRECT's invoice


def _invoice(account: str, issuer: str, series: str, issued: dt.date, rows, prepaid=False):
    seller = BillingProfile(
        tenant="acme",
        account=None if issuer == "carrier" else issuer,
        legal_name="Acme Voice Carrier GmbH" if issuer == "carrier" else "Reseller A GmbH",
        country="DE",
        vat_id="DE123456789",
        series=series,
    )
    buyer = BillingProfile(
        tenant="acme",
        account=account,
        legal_name=f"{account} Ltd",
        country="DE",
        taxes=(parse_tax("standard:19", dt.date(2026, 1, 1)),),
    )
    invoice = build_invoice(
        tenant="acme",
        account=account,
        issuer=issuer,
        period=MARCH,
        issue_date=issued,
        seller=seller,
        buyer=buyer,
        account_currency="EUR",
        usage=rows,
        fees=[],
        posted_micro=sum(r.amount_micro for r in rows),
        prepaid=prepaid,
    )
    billing.save_draft(invoice)
    return billing.number_draft("acme", MARCH.name, account)


def _store(number: str, formats: tuple[str, ...]) -> None:
    keys = {}
    for fmt in formats:
        keys[fmt] = f"invoices/acme/{number}/{number}.{fmt}"
        body, kind = (PDF, "application/pdf") if fmt == "pdf" else (XML, "application/xml")
        documents.put(keys[fmt], body + number.encode(), kind)
    keys["summary"] = f"invoices/acme/{number}/{number}-summary.csv"  # never handed out
    billing.set_documents("acme", number, keys)


def seed() -> Money:
    clock = [at(2026, 2, 27, 9)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger, "_now", lambda: clock[0])

        def when(moment: dt.datetime) -> None:
            clock[0] = moment

        ledger.post_balances(
            "acme",
            "file-0227",
            {"RES_A": -3_000_000, "CUST_A1": -1_000_000, "DIRECT": -2_000_000,
             "CARRIER_X": 4_000_000},
            description="sbc1_CARRIER_X_trunk7_20260227.csv",
        )  # fmt: skip
        when(at(2026, 3, 1))
        ledger.post_balances(
            "acme",
            "file-0301",
            {"RES_A": -12_345_678, "CUST_A1": -2_000_001, "DIRECT": -5_500_000,
             "CARRIER_X": 7_000_000},
            description=SUPPLIER_FILE,
        )  # fmt: skip
        when(at(2026, 3, 15, 12))
        ledger.post_balances(
            "acme",
            "rerate-0315",
            {"RES_A": 45_678, "CARRIER_X": -1_000},
            kind="rerate",
            description="re-rate 2026-03-01 file-0301 (CARRIER_X deck)",
        )
        when(at(2026, 3, 20, 8, 30))
        ledger.record_adjustment(
            "acme", "RES_A", 1_000_000, reference="ADJ-7 carrier_x", reason=SUPPLIER_REASON
        )
        when(at(2026, 3, 21, 9))
        ledger.record_adjustment("acme", "DIRECT", -250_000, reference="ADJ-8", reason="late fee")
        billing.put_profile(
            BillingProfile(tenant="acme", account="CARRIER_X", legal_name=SUPPLIER_NAME)
        )
        when(at(2026, 3, 22, 9))
        ledger.record_adjustment(
            "acme", "DIRECT", 300_000, reference="ADJ-9", reason=f"refund: {SUPPLIER_NAME} failed"
        )
        when(at(2026, 3, 31, 23, 59, 59, 999_999))
        ledger.post_balances("acme", "file-0331", {"RES_A": -1}, description=SUPPLIER_FILE)
        when(at(2026, 4, 1))
        ledger.post_balances("acme", "file-0401", {"RES_A": -7}, description=SUPPLIER_FILE)

        usage = [
            UsageRow("usage", "India Mobile", Decimal("0.008"), 12_500 * 60, 4_100, 100_000_000),
            UsageRow("usage", "USA Landline", Decimal("0.004"), 8_200 * 60, 2_050, 32_800_000),
        ]
        small = [UsageRow("usage", "UK Mobile", Decimal("0.007"), 300 * 60, 90, 2_100_000)]
        direct = _invoice("DIRECT", "carrier", "INV", dt.date(2026, 4, 1), small)
        reseller = _invoice("RES_A", "carrier", "INV", dt.date(2026, 4, 2), usage)
        customer = _invoice("CUST_A1", "RES_A", "RESA", dt.date(2026, 4, 2), small, prepaid=True)
        _store(direct, ("pdf", "xml"))
        _store(reseller, ("pdf", "xml"))
        _store(customer, ("pdf",))
        when(at(2026, 4, 2, 6))
        ledger.record_invoice_posting(
            "acme",
            "RES_A",
            25_230_000,
            kind="tax",
            reference=f"invoice:{reseller}",
            description=f"tax on invoice {reseller}",
        )
        ports = {"accounts": accounts, "ledger": ledger, "billing": billing}
        for moment, account, amount, reference in [
            (at(2026, 4, 10, 10), "RES_A", 100_000_000, "SEPA-RES-2"),
            (at(2026, 4, 11, 10), "CARRIER_X", 5_000_000, "OUT-1"),
            (at(2026, 4, 12, 10), "DIRECT", 10_500_000, "CARD-1"),
            (at(2026, 4, 13, 10), "CUST_A1", 20_000_000, "CARD-2"),
        ]:
            when(moment)
            receive_payment("acme", account, amount, reference=reference, **ports)
        # a credit note of 1.00 (+ 0.19 tax) on DIRECT's invoice, paid already: account credit
        original = billing.get_invoice("acme", direct).invoice
        note = billing.issue_credit_note(
            "acme",
            build_credit_note(
                original, issue_date=dt.date(2026, 4, 20), reason="dispute", amount=Decimal("1.00")
            ),
            Decimal(0),
        )
        billing.allocate_credit_note("acme", note)
        _store(note.number, ("pdf",))
        when(at(2026, 4, 20, 6))
        ledger.record_invoice_posting(
            "acme",
            "DIRECT",
            1_190_000,
            kind="credit",
            reference=f"credit:{note.number}",
            description=f"credit note {note.number} on {direct}",
        )
    return Money(direct, reseller, customer, note.number)
