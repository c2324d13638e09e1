"""Stripe webhooks: the signature on the raw body, and the event it carries. Pure.

Stripe signs `f"{t}.{raw_body}"` with HMAC-SHA256 under the endpoint's signing secret and
sends `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]` (several v1 while a secret is
being rolled; v0 entries are test-mode leftovers and ignored). The check runs on the bytes as
received: re-serialising the JSON would change them. A timestamp more than 300 s from now is
refused (a replayed capture), and every comparison is constant-time.

We act on `payment_intent.succeeded`: it fires once per successful payment, carries the
amount received and the metadata set on the intent (`invoice_no`, `account`), and its id
(`pi_...`) is the payment's reference in the ledger. `charge.succeeded` would fire for every
charge attempt of the intent as well, so it is not used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal

TOLERANCE_SECONDS = 300
PAYMENT_SUCCEEDED = "payment_intent.succeeded"
# ISO 4217 minor-unit exponents other than 2 among Stripe's currencies (docs.stripe.com
# "zero-decimal" and "three-decimal" currencies).
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class SignatureError(ValueError):
    """The request is not a webhook signed with this secret, or is too old."""


class EventError(ValueError):
    """A correctly signed body that is not an event we can read."""


def verify(raw_body: bytes, header: str | None, secret: str, *, now: int) -> None:
    """Raise SignatureError unless `header` signs `raw_body` under `secret` within 300 s of
    `now` (Unix seconds)."""
    if not secret or not secret.strip():
        raise SignatureError("no signing secret to check against")
    if not header:
        raise SignatureError("no Stripe-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise SignatureError("the Stripe-Signature header has no timestamp or no v1 signature")
    signed = timestamp.encode() + b"." + raw_body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    # compare with every v1, without stopping at the first match: constant time per entry
    matched = False
    for signature in signatures:
        matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureError("no signature matches the body under this endpoint's secret")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureError(f"the signature's timestamp is more than {TOLERANCE_SECONDS} s off")


def minor_unit_exponent(currency: str) -> int:
    code = currency.upper()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


@dataclass(frozen=True, slots=True)
class Event:
    id: str  # evt_...: each counts once
    type: str
    object_id: str | None  # the payment intent's pi_...: the ledger reference
    amount: Decimal | None  # in the currency's major unit, exact
    currency: str | None  # upper case ISO code
    invoice_no: str | None
    account: str | None


def parse(raw_body: bytes) -> Event:
    """The event a (verified) body carries. For a payment intent the amount is
    `amount_received` (what was captured), else `amount`."""
    try:
        data = json.loads(raw_body)
        event_id, event_type = data["id"], data["type"]
        obj = data.get("data", {}).get("object", {}) or {}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise EventError(f"not a Stripe event: {error}") from None
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise EventError("a Stripe event's id and type are strings")
    currency = obj.get("currency")
    minor = obj.get("amount_received", obj.get("amount"))
    amount = None
    if minor is not None:
        if isinstance(minor, bool) or not isinstance(minor, int) or not currency:
            raise EventError(f"event {event_id}: the amount is not integer minor units")
        amount = Decimal(minor).scaleb(-minor_unit_exponent(currency))
    metadata = obj.get("metadata") or {}
    return Event(
        id=event_id,
        type=event_type,
        object_id=obj.get("id"),
        amount=amount,
        currency=currency.upper() if currency else None,
        invoice_no=metadata.get("invoice_no") or None,
        account=metadata.get("account") or None,
    )
