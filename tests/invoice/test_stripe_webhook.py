"""The Stripe-Signature check, against Stripe's own signer, and the events it lets through."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import stripe

from functions.invoice.stripe_webhook import (
    EventError,
    SignatureError,
    minor_unit_exponent,
    parse,
    verify,
)

SECRET = "whsec_test_tollgate"
NOW = 1_777_000_000


def event(amount=15803, currency="eur", **metadata):
    body = {
        "id": "evt_1PzA",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": "pi_3PzA",
                "object": "payment_intent",
                "amount": amount + 100,  # asked; amount_received is what was captured
                "amount_received": amount,
                "currency": currency,
                "metadata": metadata,
            }
        },
    }
    return json.dumps(body, indent=2).encode()


def signed(body: bytes, secret: str = SECRET, at: int = NOW) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=at)


def test_stripes_own_signature_is_accepted_on_the_raw_bytes():
    body = event(invoice_no="INV-2026-000001", account="RESELLER_A")
    verify(body, signed(body), SECRET, now=NOW + 299)
    # and stripe's verifier agrees with the same header (same scheme, same bytes)
    assert stripe.WebhookSignature.verify_header(
        body.decode(), signed(body, at=NOW), SECRET, tolerance=None
    )


@pytest.mark.parametrize(
    "case",
    [
        "tampered body",
        "old timestamp",
        "future timestamp",
        "wrong secret",
        "re-serialised",
        "no header",
        "no v1",
        "empty secret",
    ],
)
def test_refused(case):
    body = event()
    header, check_body, secret, now = signed(body), body, SECRET, NOW
    if case == "tampered body":
        check_body = body.replace(b"15803", b"99999")
    elif case == "old timestamp":
        header = signed(body, at=NOW - 600)
    elif case == "future timestamp":
        header = signed(body, at=NOW + 301)
    elif case == "wrong secret":
        header = signed(body, secret="whsec_someone_else")
    elif case == "re-serialised":
        check_body = json.dumps(json.loads(body)).encode()  # same JSON, other bytes
    elif case == "no header":
        header = ""
    elif case == "no v1":
        header = header.split(",")[0]
    elif case == "empty secret":
        secret = ""
    with pytest.raises(SignatureError):
        verify(check_body, header, secret, now=now)


def test_several_v1_signatures_while_a_secret_is_rolled():
    body = event()
    old = signed(body, secret="whsec_old").split(",")[1]
    header = f"{signed(body)},{old},v0=deadbeef"
    verify(body, header, SECRET, now=NOW)
    verify(body, header, "whsec_old", now=NOW)
    with pytest.raises(SignatureError):
        verify(body, header, "whsec_third", now=NOW)


def test_the_event_amount_in_the_currencys_units_and_its_metadata():
    parsed = parse(event(15803, "eur", invoice_no="INV-2026-000001", account="RESELLER_A"))
    assert (parsed.id, parsed.type, parsed.object_id) == (
        "evt_1PzA",
        "payment_intent.succeeded",
        "pi_3PzA",
    )
    assert parsed.amount == Decimal("158.03") and str(parsed.amount) == "158.03"
    assert (parsed.currency, parsed.invoice_no, parsed.account) == (
        "EUR",
        "INV-2026-000001",
        "RESELLER_A",
    )
    assert parse(event(5000, "jpy")).amount == Decimal(5000)
    assert parse(event(12345, "kwd")).amount == Decimal("12.345")
    assert parse(event()).invoice_no is None
    assert (minor_unit_exponent("usd"), minor_unit_exponent("JPY")) == (2, 0)


def test_unreadable_events():
    for body in (b"not json", b'{"type": "x"}', event(amount=1.5)):
        with pytest.raises(EventError):
            parse(body)
