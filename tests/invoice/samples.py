"""Invoices the document tests render: the seed's table, a reverse-charge EU customer, a tiered
customer billed in another currency, a reseller's white-label customer, and a credit note."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from functions.invoice.cycles import parse_period
from functions.invoice.drafts import (
    Conversion,
    FeeRow,
    Invoice,
    UsageRow,
    build_credit_note,
    build_invoice,
)
from functions.invoice.profiles import BillingProfile, parse_tax

MARCH = parse_period("2026-03")
ISSUED = dt.date(2026, 4, 2)
SINCE = dt.date(2026, 1, 1)

CARRIER = BillingProfile(
    tenant="acme",
    account=None,
    legal_name="Acme Voice Carrier GmbH",
    address="Friedrichstrasse 123",
    city="Berlin",
    postcode="10117",
    country="DE",
    email="billing@acme-voice.example",
    vat_id="DE123456789",
    iban="DE89370400440532013000",
    series="INV",
    phone="+49 30 1234567",
)


def seed_invoice(account: str = "RESELLER_A") -> Invoice:
    """Reseller A: India Mobile 12,500 min x 0.008 = 100.00, USA Landline 8,200 x 0.004 = 32.80
    (standard VAT 19 %); Reseller B: UK Mobile 6,700 x 0.007 = 46.90."""
    rows = {
        "RESELLER_A": [
            UsageRow("usage", "India Mobile", Decimal("0.008"), 12_500 * 60, 4_100, 100_000_000),
            UsageRow("usage", "USA Landline", Decimal("0.004"), 8_200 * 60, 2_050, 32_800_000),
        ],
        "RESELLER_B": [
            UsageRow("usage", "UK Mobile", Decimal("0.007"), 6_700 * 60, 1_500, 46_900_000),
        ],
    }[account]
    buyer = BillingProfile(
        tenant="acme",
        account=account,
        legal_name=f"{account.replace('_', ' ').title()} Telecom GmbH",
        address="Hauptstrasse 1",
        city="Hamburg",
        postcode="20095",
        country="DE",
        email=f"{account.lower()}@example.com",
        vat_id="DE987654321",
        taxes=(parse_tax("standard:19", SINCE),),
    )
    return build_invoice(
        tenant="acme",
        account=account,
        issuer="carrier",
        period=MARCH,
        issue_date=ISSUED,
        seller=CARRIER,
        buyer=buyer,
        account_currency="EUR",
        usage=rows,
        fees=[],
        posted_micro=sum(r.amount_micro for r in rows),
    )


def reverse_charge_invoice() -> Invoice:
    """A French wholesale customer of a German carrier: EU B2B, reverse charge, a DID fee."""
    rows = [
        UsageRow("usage", "France Mobile", Decimal("0.0125"), 40_000 * 60 + 30, 9_000, 500_006_250),
        UsageRow("usage", "Germany Fixed", Decimal("0.0021"), 1_234 * 60 + 54, 700, 2_593_290),
    ]
    fees = [FeeRow("recurring", "DID +33140000000, March 2026", 1_500_000)]
    buyer = BillingProfile(
        tenant="acme",
        account="PARIS_VOIX",
        legal_name="Paris Voix SAS",
        address="12 rue de Rivoli",
        city="Paris",
        postcode="75001",
        country="FR",
        email="factures@parisvoix.example",
        vat_id="FR12345678901",
        taxes=(parse_tax("reverse_charge", SINCE),),
    )
    return build_invoice(
        tenant="acme",
        account="PARIS_VOIX",
        issuer="carrier",
        period=MARCH,
        issue_date=ISSUED,
        seller=CARRIER,
        buyer=buyer,
        account_currency="EUR",
        usage=rows,
        fees=fees,
        posted_micro=sum(r.amount_micro for r in rows) + 1_500_000,
    )


def tiered_invoice() -> Invoice:
    """Graduated India tiers (0.0045 to 100,000 min, then 0.0040), charged in USD, invoiced in
    EUR at one rate, with a sub-cent remainder carried in from February."""
    rows = [
        UsageRow("tier", "India Mobile", Decimal("0.0045"), 100_000 * 60, 30_000, 450_000_000),
        UsageRow("tier", "India Mobile", Decimal("0.004"), 23_456 * 60 + 30, 7_000, 93_826_000),
    ]
    buyer = BillingProfile(
        tenant="acme",
        account="BLUEWAVE",
        legal_name="Bluewave Communications Ltd",
        address="1 Canada Square",
        city="London",
        postcode="E14 5AB",
        country="GB",
        email="ap@bluewave.example",
        vat_id="GB123456789",
        currency="EUR",
        taxes=(parse_tax("standard:20", SINCE),),
    )
    return build_invoice(
        tenant="acme",
        account="BLUEWAVE",
        issuer="carrier",
        period=MARCH,
        issue_date=ISSUED,
        seller=CARRIER,
        buyer=buyer,
        account_currency="USD",
        usage=rows,
        fees=[],
        posted_micro=543_826_000,
        carried_in=Decimal("0.004"),
        conversion=Conversion("USD", "EUR", Decimal("0.9213"), MARCH.last_day, "ECB"),
    )


def white_label_invoice() -> Invoice:
    """A reseller's own customer, billed under the reseller's name, brand and series."""
    reseller = BillingProfile(
        tenant="acme",
        account="RESELLER_A",
        legal_name="Reseller A Telecom GmbH",
        address="Hauptstrasse 1",
        city="Hamburg",
        postcode="20095",
        country="DE",
        email="billing@reseller-a.example",
        vat_id="DE987654321",
        iban="DE02120300000000202051",
        series="RA",
        brand="SkyLine Voice",
        phone="+49 40 7654321",
    )
    buyer = BillingProfile(
        tenant="acme",
        account="SKYLINE_SHOP",
        legal_name="Skyline Shop UG",
        address="Marktplatz 5",
        city="Bremen",
        postcode="28195",
        country="DE",
        email="shop@skyline.example",
        vat_id="DE276452187",
        taxes=(parse_tax("standard:19", SINCE),),
    )
    rows = [UsageRow("usage", "India Mobile", Decimal("0.0095"), 1_000 * 60, 300, 9_500_000)]
    return build_invoice(
        tenant="acme",
        account="SKYLINE_SHOP",
        issuer="RESELLER_A",
        period=MARCH,
        issue_date=ISSUED,
        seller=reseller,
        buyer=buyer,
        account_currency="EUR",
        usage=rows,
        fees=[],
        posted_micro=9_500_000,
    )


def numbered(invoice: Invoice, number: str) -> Invoice:
    import dataclasses

    return dataclasses.replace(invoice, number=number, status="issued")


def credit_note() -> Invoice:
    original = numbered(seed_invoice(), "INV-2026-000001")
    note = build_credit_note(
        original,
        issue_date=dt.date(2026, 4, 20),
        reason="Disputed India calls",
        amount=Decimal("10.00"),
    )
    return numbered(note, "CN-2026-000001")


ALL = {
    "seed_a": lambda: numbered(seed_invoice("RESELLER_A"), "INV-2026-000001"),
    "seed_b": lambda: numbered(seed_invoice("RESELLER_B"), "INV-2026-000002"),
    "reverse_charge": lambda: numbered(reverse_charge_invoice(), "INV-2026-000003"),
    "tiered": lambda: numbered(tiered_invoice(), "INV-2026-000004"),
    "white_label": lambda: numbered(white_label_invoice(), "RA-2026-000001"),
    "credit_note": credit_note,
}
