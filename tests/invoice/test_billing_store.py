"""The billing store on moto: profiles, FX, drafts, gap-free numbers, credit notes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from decimal import Decimal

import pytest

from functions.invoice.drafts import build_credit_note
from functions.invoice.profiles import BillingProfile, parse_tax
from functions.store import ConflictError, billing, client
from tests.invoice.samples import seed_invoice, white_label_invoice


def drafts(count: int):
    base = seed_invoice()
    return [dataclasses.replace(base, account=f"C{i:03d}") for i in range(count)]


def test_profiles_round_trip_with_effective_dated_taxes(aws):
    profile = BillingProfile(
        tenant="acme",
        account="BLUEWAVE",
        legal_name="Bluewave Ltd",
        country="GB",
        cycle="weekly",
        terms_days=14,
    )
    profile = profile.with_tax(parse_tax("standard:20", dt.date(2026, 1, 1)))
    profile = profile.with_tax(parse_tax("reverse_charge", dt.date(2026, 7, 1)))
    billing.put_profile(profile)

    stored = billing.get_profile("acme", "BLUEWAVE")
    assert stored == profile
    assert stored.tax_on(dt.date(2026, 6, 30)).rate == Decimal("20")
    assert stored.tax_on(dt.date(2026, 7, 1)).treatment == "reverse_charge"
    assert billing.get_profile("acme") == BillingProfile(tenant="acme", account=None)
    assert billing.list_profiles("acme") == {"BLUEWAVE": profile}


def test_the_fx_rate_in_force_is_the_latest_on_or_before_the_day(aws):
    for day, rate in ((dt.date(2026, 3, 27), "0.9201"), (dt.date(2026, 3, 31), "0.9213")):
        billing.set_fx_rate("acme", billing.FxRate("USD", "EUR", day, Decimal(rate), "ECB"))
    assert billing.fx_rate_on("acme", "USD", "EUR", dt.date(2026, 3, 30)).rate == Decimal("0.9201")
    assert billing.fx_rate_on("acme", "USD", "EUR", dt.date(2026, 4, 5)).rate == Decimal("0.9213")
    assert billing.fx_rate_on("acme", "USD", "EUR", dt.date(2026, 3, 1)) is None
    assert billing.fx_rate_on("acme", "USD", "GBP", dt.date(2026, 4, 5)) is None


def test_200_drafts_each_numbered_twice_in_random_order_get_1_to_200_once(aws):
    for draft in drafts(200):
        assert billing.save_draft(draft) == "created"
    accounts = [f"C{i:03d}" for i in range(200)] * 2
    random.Random(7).shuffle(accounts)
    given: dict[str, str] = {}
    for account in accounts:
        number = billing.number_draft("acme", "2026-03", account)
        assert given.setdefault(account, number) == number  # a re-run gets its own number back
    assert sorted(given.values()) == [f"INV-2026-{n:06d}" for n in range(1, 201)]
    issued = billing.list_invoices("acme")
    assert len(issued) == 200
    assert {i.invoice.number: i.invoice.account for i in issued} == {v: k for k, v in given.items()}
    assert all(
        i.invoice.status == "issued" and i.invoice.total == Decimal("158.03") for i in issued
    )


def test_a_numbered_draft_is_frozen(aws):
    draft = drafts(1)[0]
    billing.save_draft(draft)
    assert billing.save_draft(draft) == "unchanged"
    number = billing.number_draft("acme", "2026-03", "C000")
    changed = dataclasses.replace(draft, subtotal=Decimal("1.00"))
    assert billing.save_draft(changed) == "numbered"
    assert billing.get_invoice("acme", number).invoice.subtotal == Decimal("132.80")


def test_a_crash_inside_numbering_leaves_no_gap_and_no_orphan(aws, monkeypatch):
    for draft in drafts(3):
        billing.save_draft(draft)
    billing.number_draft("acme", "2026-03", "C000")
    dynamodb = client("dynamodb")
    real = dynamodb.transact_write_items
    calls = {"n": 0}

    def dies_once(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # the Lambda dies before its transaction reaches DynamoDB
            raise ConnectionError("connection reset")
        return real(**kwargs)

    monkeypatch.setattr(dynamodb, "transact_write_items", dies_once)
    with pytest.raises(ConnectionError):
        billing.number_draft("acme", "2026-03", "C001")
    assert [i.invoice.number for i in billing.list_invoices("acme")] == ["INV-2026-000001"]
    assert billing.number_draft("acme", "2026-03", "C002") == "INV-2026-000002"
    assert billing.number_draft("acme", "2026-03", "C001") == "INV-2026-000003"


def test_a_stale_counter_cancels_the_whole_transaction_and_numbering_retries(aws, monkeypatch):
    for draft in drafts(2):
        billing.save_draft(draft)
    real_next = billing._next_sequence
    raced = {"done": False}

    def racing(tenant, issuer, series, year, known=None):
        result = real_next(tenant, issuer, series, year, known)
        if not raced["done"]:  # another writer takes the number between our read and write
            raced["done"] = True
            billing.number_draft("acme", "2026-03", "C001")
        return result

    monkeypatch.setattr(billing, "_next_sequence", racing)
    assert billing.number_draft("acme", "2026-03", "C000") == "INV-2026-000002"
    assert billing.get_draft("acme", "2026-03", "C001").number == "INV-2026-000001"
    assert len(billing.list_invoices("acme")) == 2


def test_series_are_per_issuer_and_year(aws):
    billing.save_draft(seed_invoice())
    billing.save_draft(white_label_invoice())
    assert billing.number_draft("acme", "2026-03", "RESELLER_A") == "INV-2026-000001"
    assert billing.number_draft("acme", "2026-03", "SKYLINE_SHOP") == "RA-2026-000001"
    assert [i.invoice.number for i in billing.list_invoices("acme", "SKYLINE_SHOP")] == [
        "RA-2026-000001"
    ]


def test_credit_notes_take_what_is_left_once(aws):
    billing.save_draft(seed_invoice())
    number = billing.number_draft("acme", "2026-03", "RESELLER_A")
    original = billing.get_invoice("acme", number)
    note = build_credit_note(
        original.invoice,
        issue_date=dt.date(2026, 4, 20),
        reason="dispute",
        amount=Decimal("100.00"),
    )
    issued = billing.issue_credit_note("acme", note, original.credited)
    assert issued.number == "CN-2026-000001" and issued.credits == number
    assert billing.get_invoice("acme", number).credited == Decimal("100.00")
    with pytest.raises(ConflictError):  # read before the first credit: refused, not doubled
        billing.issue_credit_note("acme", note, Decimal("0"))
    assert billing.get_invoice("acme", number).credited == Decimal("100.00")
    assert [i.invoice.number for i in billing.list_invoices("acme", "RESELLER_A")] == [
        number,
        "CN-2026-000001",
    ]


def test_delivery_is_claimed_once_and_sent_moves_the_status(aws):
    billing.save_draft(seed_invoice())
    number = billing.number_draft("acme", "2026-03", "RESELLER_A")
    assert billing.claim_delivery("acme", number) is True
    assert billing.claim_delivery("acme", number) is False
    billing.set_delivery("acme", number, "sent", "message-1")
    issued = billing.get_invoice("acme", number)
    assert (issued.delivery, issued.detail, issued.invoice.status) == ("sent", "message-1", "sent")


def test_the_remainder_carried_is_the_latest_earlier_invoices(aws):
    march = dataclasses.replace(seed_invoice(), carried_out=Decimal("0.0031"))
    billing.save_draft(march)
    billing.number_draft("acme", "2026-03", "RESELLER_A")
    assert billing.carried_remainder("acme", "RESELLER_A", dt.date(2026, 4, 1)) == Decimal("0.0031")
    assert billing.carried_remainder("acme", "RESELLER_A", dt.date(2026, 3, 1)) == 0
    assert billing.carried_remainder("acme", "RESELLER_B", dt.date(2026, 4, 1)) == 0
