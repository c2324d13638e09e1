"""Receiving money: record a payment in the ledger and allocate it to invoices; the Stripe
webhook's handling. The stores come in as ports (functions.store.accounts, .ledger, .billing,
.secrets in the Lambda and the CLI), as in functions.rate.recurring_job.

A payment is recorded once per reference (the ledger) and allocated once per reference
(billing's PAYALLOC marker); each step is safe to repeat, so a retry after a crash between
them finishes the allocation and changes nothing else. A supplier's payment (money the
carrier pays) moves the ledger only: suppliers are not invoiced.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from functions.invoice import payments, stripe_webhook

MICRO_EXPONENT = -6


@dataclass(frozen=True, slots=True)
class Receipt:
    recorded: Any  # functions.store.ledger.Recorded
    allocation: Any | None  # functions.store.billing.PaymentAllocation; None: a supplier's


def micro_to_decimal(micro: int) -> Decimal:
    return Decimal(micro).scaleb(MICRO_EXPONENT)


def check_named(dues: list[Any], named: tuple[str, ...], currency: str) -> None:
    """Refuse a named invoice that is not the account's or not in its currency, before any
    money moves (payments.allocate's own check, on an amount that allocates nothing)."""
    if named:
        payments.allocate(
            payment="-",
            amount=Decimal("0.001"),
            currency=currency,
            day=dt.date.min,
            invoices=dues,
            allocations=(),
            named=named,
        )


def receive_payment(
    tenant: str,
    account_id: str,
    amount_micro: int,
    *,
    reference: str,
    named: tuple[str, ...] = (),
    accounts: Any,
    ledger: Any,
    billing: Any,
) -> Receipt:
    account = accounts.get_account(tenant, account_id)
    if account.kind != "supplier":
        check_named(billing.account_dues(tenant, account_id), named, account.currency)
    elif named:
        raise ValueError(f"account {account_id!r} is a supplier: it is not invoiced")
    recorded = ledger.record_payment(
        tenant, account_id, amount_micro, reference=reference, account_kind=account.kind
    )
    if account.kind == "supplier":
        return Receipt(recorded, None)
    zone = ZoneInfo(accounts.get_tenant(tenant).timezone)
    allocation = billing.allocate_payment(
        tenant,
        account_id,
        recorded.entry.reference,
        micro_to_decimal(recorded.paid),
        account.currency,
        recorded.entry.booked_at.astimezone(zone).date(),
        named=named,
    )
    return Receipt(recorded, allocation)


# --- the Stripe webhook ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int
    body: dict[str, Any]


def _refused(status: int, code: str, message: str) -> WebhookResponse:
    return WebhookResponse(status, {"code": code, "message": message})


def handle_stripe_event(
    tenant: str,
    raw_body: bytes,
    signature: str | None,
    now: int,
    *,
    secrets: Any,
    accounts: Any,
    ledger: Any,
    billing: Any,
) -> WebhookResponse:
    """A webhook delivery for `tenant`: 404 unknown tenant (no signing secret), 400 bad
    signature or unreadable event, 200 otherwise (an ignored type or a repeated event too,
    so Stripe stops retrying). Nothing here ever answers 5xx for the caller's input; a 5xx
    is our failure, and Stripe's retry then finds each step done or not yet done.

    The payment is recorded under the payment intent's id (Stripe may send the same event
    twice, and a new event for an old intent never pays twice) and allocated to
    `metadata.invoice_no` when that names one of the account's invoices, oldest first
    otherwise. The event id is recorded last, once every step is done.
    """
    secret = secrets.stripe_webhook_secret(tenant)
    if secret is None:
        return _refused(404, "unknown_tenant", f"no Stripe endpoint for tenant {tenant!r}")
    try:
        stripe_webhook.verify(raw_body, signature, secret, now=now)
        event = stripe_webhook.parse(raw_body)
    except stripe_webhook.SignatureError as error:
        return _refused(400, "bad_signature", str(error))
    except stripe_webhook.EventError as error:
        return _refused(400, "bad_event", str(error))
    if event.type != stripe_webhook.PAYMENT_SUCCEEDED:
        return WebhookResponse(200, {"event": event.id, "outcome": "ignored"})
    try:
        seen = billing.stripe_event_seen(tenant, event.id)
    except ValueError as error:  # an id that cannot be a key
        return _refused(400, "bad_event", str(error))
    if seen:
        return WebhookResponse(200, {"event": event.id, "outcome": "duplicate"})
    if not event.account or not event.object_id or event.amount is None:
        return _refused(400, "bad_event", "a payment needs metadata.account, an id and an amount")
    try:
        account = accounts.get_account(tenant, event.account)
    except (LookupError, ValueError):  # the store's NotFoundError is a LookupError
        return _refused(400, "unknown_account", f"no account {event.account!r}")
    if event.currency != account.currency or account.kind == "supplier":
        return _refused(
            400,
            "bad_event",
            f"account {event.account} is billed in {account.currency}, "
            f"the payment is in {event.currency}",
        )
    named: tuple[str, ...] = ()
    if event.invoice_no:
        try:
            dues = billing.account_dues(tenant, account.account)
            check_named(dues, (event.invoice_no,), account.currency)
            named = (event.invoice_no,)
        except ValueError:
            named = ()  # not this account's invoice: the money still counts, oldest first
    micro = int(event.amount.scaleb(-MICRO_EXPONENT))
    receipt = receive_payment(
        tenant,
        account.account,
        micro,
        reference=event.object_id,
        named=named,
        accounts=accounts,
        ledger=ledger,
        billing=billing,
    )
    billing.mark_stripe_event(tenant, event.id, event.type, "recorded")
    allocation = receipt.allocation
    return WebhookResponse(
        200,
        {
            "event": event.id,
            "outcome": "recorded" if receipt.recorded.recorded else "already recorded",
            "payment": event.object_id,
            "allocations": [
                {"invoice": a.invoice, "amount": str(a.amount)} for a in allocation.allocations
            ],
            "credit": str(allocation.credit),
        },
    )
