"""Getting paid, end to end on moto: payments allocated to issued invoices (CLI), the Stripe
webhook through Chalice's test client, and the dunning job with SES and EventBridge."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pytest
import stripe
from chalice.test import Client
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from functions.cli import CliError
from functions.shared.settings import settings
from functions.store import accounts, billing, client, ledger
from tests.cli.conftest import last_json, tollgate
from tests.invoice.samples import seed_invoice

D = Decimal
SECRET = "whsec_acme_test"


def issue(account: str, period: str, issued: dt.date) -> str:
    """A seed invoice (A: 158.03 EUR, B: 55.81 EUR) of `period`, issued on `issued`, net 30."""
    invoice = dataclasses.replace(
        seed_invoice(account), period=period, issue_date=issued,
        due_date=issued + dt.timedelta(days=30),
    )  # fmt: skip
    billing.save_draft(invoice)
    return billing.number_draft("acme", period, account)


@pytest.fixture
def acme(aws, ledger_clock):
    accounts.create_tenant("acme", currency="EUR", timezone="Europe/Berlin")
    for name in ("RESELLER_A", "RESELLER_B"):
        accounts.create_account("acme", name, kind="reseller")
    accounts.create_account("acme", "carrier-x", kind="supplier")
    feb = issue("RESELLER_A", "2026-02", dt.date(2026, 3, 2))
    mar = issue("RESELLER_A", "2026-03", dt.date(2026, 4, 2))
    return feb, mar


def status_of(number: str) -> str:
    return billing.get_invoice("acme", number).invoice.status


# --- payments ------------------------------------------------------------------------------


def test_a_payment_pays_the_oldest_open_invoice_first_and_the_rest_is_credit(acme, capsys):
    feb, mar = acme
    assert (feb, mar) == ("INV-2026-000001", "INV-2026-000002")
    tollgate("payment", "record", "acme", "RESELLER_A", "200", "--reference", "SEPA 1", "--json")
    out = last_json(capsys)
    assert out["allocations"] == [
        {"invoice": feb, "amount": "158.03", "day": "2024-05-02"},
        {"invoice": mar, "amount": "41.97", "day": "2024-05-02"},
    ]
    assert out["credit"] == "0.000000"
    assert (status_of(feb), status_of(mar)) == ("paid", "partially_paid")
    # the same reference again: nothing recorded, nothing allocated twice
    tollgate("payment", "record", "acme", "RESELLER_A", "200", "--reference", "SEPA 1", "--json")
    again = last_json(capsys)
    assert (again["recorded"], again["allocations"]) == (False, out["allocations"])
    assert ledger.get_balance("acme", "RESELLER_A")[0] == 200_000_000
    tollgate("payment", "record", "acme", "RESELLER_A", "120", "--reference", "SEPA 2")
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"  paid 116.06 EUR on invoice {mar}",
        "  account credit 3.940000 EUR",
    ]
    assert status_of(mar) == "paid"
    assert sum(a.amount for a in billing.list_allocations("acme", "RESELLER_A")) == D("316.06")


def test_the_named_invoice_is_paid_first_and_an_unknown_one_refused_before_money_moves(
    acme, capsys
):
    feb, mar = acme
    tollgate("payment", "record", "acme", "RESELLER_A", "160", "--reference", "R-9",
             "--invoice", mar, "--json")  # fmt: skip
    assert [(a["invoice"], a["amount"]) for a in last_json(capsys)["allocations"]] == [
        (mar, "158.03"),
        (feb, "1.97"),
    ]
    assert (status_of(feb), status_of(mar)) == ("partially_paid", "paid")
    with pytest.raises(CliError, match="not one of this account's invoices"):
        tollgate("payment", "record", "acme", "RESELLER_B", "5", "--reference", "R-10",
                 "--invoice", feb)  # fmt: skip
    assert ledger.get_balance("acme", "RESELLER_B")[0] == 0


def test_payment_list_shows_each_payment_and_what_it_paid(acme, capsys):
    feb, _ = acme
    tollgate("payment", "record", "acme", "RESELLER_A", "100", "--reference", "P-1")
    tollgate("payment", "record", "acme", "carrier-x", "7", "--reference", "OUT-1")
    capsys.readouterr()
    tollgate("payment", "list", "acme", "--json")
    rows = last_json(capsys)
    assert [(r["account"], r["reference"], r["amount"], r["allocations"], r["credit"])
            for r in rows] == [
        ("RESELLER_A", "P-1", "100.000000",
         [{"invoice": feb, "amount": "100.00", "day": "2024-05-02"}], "0.000000"),
    ]  # fmt: skip


def test_a_credit_note_pays_what_it_credits(acme):
    feb, _ = acme
    original = billing.get_invoice("acme", feb).invoice
    from functions.invoice.drafts import build_credit_note

    note = billing.issue_credit_note(
        "acme",
        build_credit_note(original, issue_date=dt.date(2026, 4, 20), reason="dispute",
                          amount=D("10.00")),
        D(0),
    )  # fmt: skip
    result = billing.allocate_credit_note("acme", note)
    assert [(a.invoice, a.amount) for a in result.allocations] == [(feb, D("11.90"))]
    assert status_of(feb) == "partially_paid"
    assert billing.allocate_credit_note("acme", note).new is False


# --- the Stripe webhook --------------------------------------------------------------------


def stripe_body(event_id: str, amount: int, **metadata) -> bytes:
    return json.dumps({
        "id": event_id, "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_3Abc", "object": "payment_intent", "amount": amount,
                            "amount_received": amount, "currency": "eur",
                            "metadata": metadata}},
    }).encode()  # fmt: skip


@pytest.fixture
def webhook(acme):
    client("secretsmanager").create_secret(
        Name="tollgate/acme/stripe-webhook-secret", SecretString=SECRET
    )
    from app import app

    with Client(app) as test_client:
        yield test_client


def post(test_client, body: bytes, secret: str = SECRET, tenant: str = "acme", at=None):
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at)
    return test_client.http.post(
        f"/v1/webhooks/stripe/{tenant}",
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
        body=body,
    )


def test_a_stripe_payment_counts_once_and_pays_the_invoice_in_its_metadata(webhook, acme):
    feb, mar = acme
    body = stripe_body("evt_1", 15803, account="RESELLER_A", invoice_no=mar)
    first = post(webhook, body)
    assert first.status_code == 200
    assert first.json_body["allocations"] == [{"invoice": mar, "amount": "158.03"}]
    again = post(webhook, body)  # Stripe delivers again
    assert (again.status_code, again.json_body["outcome"]) == (200, "duplicate")
    other = post(webhook, stripe_body("evt_2", 15803, account="RESELLER_A"))  # same intent
    assert other.json_body["outcome"] == "already recorded"
    assert ledger.get_balance("acme", "RESELLER_A")[0] == 158_030_000
    payments = [e for e in ledger.list_entries("acme", "RESELLER_A") if e.kind == "payment"]
    assert [(e.reference, e.amount) for e in payments] == [("pi_3Abc", 158_030_000)]
    assert (status_of(feb), status_of(mar)) == ("issued", "paid")


def test_the_webhook_refuses_without_5xx(webhook):
    body = stripe_body("evt_9", 100, account="RESELLER_A")
    bad = post(webhook, body, secret="whsec_wrong")
    assert bad.status_code == 400 and bad.json_body["code"] == "bad_signature"
    old = post(webhook, body, at=1_600_000_000)
    assert old.status_code == 400 and old.json_body["code"] == "bad_signature"
    assert post(webhook, body, tenant="nobody").status_code == 404
    ignored = json.dumps({"id": "evt_10", "type": "customer.created", "data": {"object": {}}})
    assert post(webhook, ignored.encode()).json_body["outcome"] == "ignored"
    assert ledger.get_balance("acme", "RESELLER_A")[0] == 0


# --- dunning -------------------------------------------------------------------------------


def sent_messages():
    return ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages


@pytest.fixture
def dunning(acme):
    client("ses").verify_email_identity(EmailAddress=settings().mail_from)
    return acme


def dun(day: str, capsys) -> dict:
    tollgate("dunning", "run", "acme", "--day", day, "--json")
    return last_json(capsys)


def test_reminders_once_each_suspension_and_its_lift_when_paid(dunning, capsys):
    feb, _ = dunning  # due 2026-04-01 (and 2026-05-02)
    first = dun("2026-04-04", capsys)
    assert [(s["invoice"], s["step"], s["to"]) for s in first["sent"]] == [
        (feb, "reminder-1", "reseller_a@example.com")
    ]
    assert dun("2026-04-04", capsys)["sent"] == []  # the same day again: nothing twice
    assert len(sent_messages()) == 1
    assert sent_messages()[0].subject == f"Payment reminder: invoice {feb} is 3 days overdue"
    late = dun("2026-04-12", capsys)  # missed 7 and 10: only the final notice goes out
    assert [(s["step"], s["kind"]) for s in late["sent"]] == [("final", "final_notice")]
    assert [s["step"] for s in late["recorded"]] == ["reminder-2"]
    suspended = dun("2026-04-15", capsys)
    assert [s["invoice"] for s in suspended["suspended"]] == [feb]
    account = accounts.get_account("acme", "RESELLER_A")
    assert (account.status, account.status_reason) == (
        "suspended", f"dunning: invoice {feb} 14 days overdue")  # fmt: skip
    audit = accounts.list_audit("acme", "account", "RESELLER_A")[-1]
    assert audit.by == "system:dunning"
    assert len(sent_messages()) == 2
    tollgate("payment", "record", "acme", "RESELLER_A", "158.03", "--reference", "late")
    assert dun("2026-04-16", capsys)["resumed"] == ["RESELLER_A"]
    assert accounts.get_account("acme", "RESELLER_A").status == "active"


def test_a_fraud_suspension_is_never_lifted_by_dunning(dunning, capsys):
    accounts.set_account_status("acme", "RESELLER_A", "suspended",
                                actor=accounts.Actor("fraud-rule-7", "arn:test"),
                                reason="fraud: FAS calls")  # fmt: skip
    tollgate("payment", "record", "acme", "RESELLER_A", "400", "--reference", "all")
    report = dun("2026-05-20", capsys)
    assert report["resumed"] == [] and report["suspended"] == []
    assert accounts.get_account("acme", "RESELLER_A").status_reason == "fraud: FAS calls"


def test_policy_per_account(dunning, capsys):
    feb, _ = dunning
    tollgate("dunning", "policy", "set", "acme", "RESELLER_A", "--reminders", "1",
             "--final", "none", "--suspend", "2")  # fmt: skip
    tollgate("dunning", "policy", "show", "acme", "RESELLER_A", "--json")
    assert last_json(capsys) == {"tenant": "acme", "account": "RESELLER_A", "reminders": [1],
                                 "final": None, "suspend": 2, "source": "account"}  # fmt: skip
    assert [s["step"] for s in dun("2026-04-02", capsys)["sent"]] == ["reminder-1"]
    assert [s["invoice"] for s in dun("2026-04-03", capsys)["suspended"]] == [feb]


def test_credit_limit_warning_then_suspension_once_per_level(dunning, capsys):
    accounts.create_account("acme", "postpaid", kind="customer", credit_limit_micro=100_000_000)
    ledger.post_balances("acme", "file-1", {"postpaid": -80_000_000})
    report = dun("2026-03-01", capsys)
    assert report["credit_warnings"] == [
        {"account": "postpaid", "exposure_micro": 80_000_000, "limit_micro": 100_000_000}
    ]
    assert dun("2026-03-02", capsys)["credit_warnings"] == []
    ledger.post_balances("acme", "file-2", {"postpaid": -20_000_000})
    report = dun("2026-03-03", capsys)
    assert [s["account"] for s in report["suspended"]] == ["postpaid"]
    assert accounts.get_account("acme", "postpaid").status_reason == (
        "dunning: credit limit reached (100.000000 of 100.000000 EUR)"
    )
    tollgate("payment", "record", "acme", "postpaid", "50", "--reference", "top-up")
    assert dun("2026-03-04", capsys)["resumed"] == ["postpaid"]
