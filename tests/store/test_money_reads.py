"""The API's money reads against moto: the tenant's payments in one query, invoices' pointers,
and invoices read by number in batches of 100."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from functions import store
from functions.shared.settings import settings
from functions.store import NotFoundError, billing, ledger
from tests.invoice.samples import seed_invoice


def test_list_payments_is_every_payment_in_booking_order_and_nothing_else(aws, ledger_clock):
    start = ledger_clock.now
    for minutes, account, kind, amount, reference in [
        (3, "cust", "customer", 5_000_001, "B-late"),
        (1, "supp", "supplier", 2_000_000, "A-out"),
        (2, "res", "reseller", 7, "C-mid"),
    ]:
        ledger_clock.now = start + dt.timedelta(minutes=minutes)
        ledger.record_payment("acme", account, amount, reference=reference, account_kind=kind)
    ledger.record_adjustment("acme", "cust", 9, reference="ADJ", reason="not a payment")
    ledger.post_balances("acme", "file-1", {"cust": -1})
    ledger.record_payment("other", "cust", 1, reference="X", account_kind="customer")
    found = ledger.list_payments("acme")
    assert [(e.reference, e.account, e.amount, e.kind) for e in found] == [
        ("A-out", "supp", -2_000_000, "payment"),  # the carrier paid: what it owes fell
        ("C-mid", "res", 7, "payment"),
        ("B-late", "cust", 5_000_001, "payment"),
    ]
    # the same entries the accounts' journals hold
    journal = [e for a in ("supp", "res", "cust") for e in ledger.list_entries("acme", a)]
    assert set(found) == {e for e in journal if e.kind == "payment"}


def test_invoice_pointers_and_a_batch_read_beyond_100(aws):
    first = seed_invoice("RESELLER_A")
    billing.save_draft(first)
    number = billing.number_draft("acme", first.period, "RESELLER_A")
    second = dataclasses.replace(
        seed_invoice("RESELLER_B"), issue_date=dt.date(2026, 4, 3), due_date=dt.date(2026, 5, 3)
    )
    billing.save_draft(second)
    other = billing.number_draft("acme", second.period, "RESELLER_B")
    refs = billing.list_invoice_refs("acme")
    assert [(r.account, r.issue_date, r.number, r.kind) for r in refs] == [
        ("RESELLER_A", dt.date(2026, 4, 2), number, "invoice"),
        ("RESELLER_B", dt.date(2026, 4, 3), other, "invoice"),
    ]
    assert billing.list_invoice_refs("acme", "RESELLER_B") == refs[1:]
    # 150 copies of the first invoice's item under other numbers: two batches
    dynamodb = store.client("dynamodb")
    table = settings().billing_table
    item = dynamodb.get_item(
        TableName=table, Key={"pk": {"S": "acme"}, "sk": {"S": f"INV#{number}"}}
    )
    copies = [f"COPY-{i:03d}" for i in range(150)]
    for copy in copies:
        marked = {**item["Item"], "sk": {"S": f"INV#{copy}"}, "delivery_detail": {"S": copy}}
        dynamodb.put_item(TableName=table, Item=marked)
    wanted = [copies[149], other, *copies[:120], number]
    found = billing.get_invoices("acme", wanted)
    assert len(found) == 123
    assert found[1].invoice.number == other and found[-1].invoice.number == number
    assert [i.detail for i in found] == [copies[149], None, *copies[:120], None]  # as asked
    assert {i.invoice.total for i in found[2:]} | {found[0].invoice.total} == {first.total}
    assert billing.get_invoices("acme", []) == []
    with pytest.raises(NotFoundError, match="NOPE"):
        billing.get_invoices("acme", [number, "NOPE"])
