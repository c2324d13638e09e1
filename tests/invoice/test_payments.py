"""Allocating payments and credit notes to invoices, and the status that follows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.invoice.payments import (
    Allocation,
    Due,
    allocate,
    allocate_credit_note,
    credit_left,
    outstanding,
    paid_on,
    status,
)
from tests.invoice.samples import credit_note, seed_invoice

D = Decimal
DAY = dt.date(2026, 4, 20)


def due(number: str, amount: str, issued: dt.date, status: str = "issued", currency: str = "EUR"):
    return Due(
        number, "RESELLER_A", issued, issued + dt.timedelta(days=30), currency, D(amount), status
    )


JAN = due("INV-2026-000001", "100.00", dt.date(2026, 2, 2))
FEB = due("INV-2026-000007", "157.93", dt.date(2026, 3, 2))
MAR = due("INV-2026-000012", "40.00", dt.date(2026, 4, 2))
INVOICES = (MAR, JAN, FEB)  # stored order is not the allocation order


def test_oldest_open_first_and_the_rest_is_credit():
    result = allocate(
        payment="BANK-1",
        amount=D("300.00"),
        currency="EUR",
        day=DAY,
        invoices=INVOICES,
        allocations=(),
    )
    assert result.allocations == (
        Allocation("BANK-1", "INV-2026-000001", D("100.00"), DAY),
        Allocation("BANK-1", "INV-2026-000007", D("157.93"), DAY),
        Allocation("BANK-1", "INV-2026-000012", D("40.00"), DAY),
    )
    assert result.credit == D("2.07")
    assert [status(d, result.allocations) for d in (JAN, FEB, MAR)] == ["paid"] * 3


def test_the_named_invoice_first_then_oldest():
    result = allocate(
        payment="pi_3",
        amount=D("60.00"),
        currency="EUR",
        day=DAY,
        invoices=INVOICES,
        allocations=(),
        named=("INV-2026-000012",),
    )
    assert result.allocations == (
        Allocation("pi_3", "INV-2026-000012", D("40.00"), DAY),
        Allocation("pi_3", "INV-2026-000001", D("20.00"), DAY),
    )
    assert result.credit == D("0.00")
    assert status(JAN, result.allocations) == "partially_paid"
    assert outstanding(JAN, result.allocations) == D("80.00")
    assert status(FEB, result.allocations) == "issued"


def test_same_issue_date_goes_by_number():
    a = due("INV-2026-000020", "10.00", dt.date(2026, 4, 2))
    b = due("INV-2026-000019", "10.00", dt.date(2026, 4, 2))
    result = allocate(
        payment="P", amount=D("10.00"), currency="EUR", day=DAY, invoices=(a, b), allocations=()
    )
    assert [r.invoice for r in result.allocations] == ["INV-2026-000019"]


def test_paid_void_and_other_currency_invoices_take_nothing():
    void = due("INV-2026-000002", "50.00", dt.date(2026, 1, 2), status="void")
    usd = due("INV-2026-000003", "50.00", dt.date(2026, 1, 3), currency="USD")
    earlier = (Allocation("OLD", "INV-2026-000001", D("100.00"), DAY),)
    result = allocate(
        payment="P",
        amount=D("30.00"),
        currency="EUR",
        day=DAY,
        invoices=(JAN, void, usd, FEB),
        allocations=earlier,
    )
    assert result.allocations == (Allocation("P", "INV-2026-000007", D("30.00"), DAY),)
    assert status(void, earlier + result.allocations) == "void"
    assert status(usd, result.allocations) == "issued"


def test_a_named_invoice_must_be_the_accounts_and_in_the_payments_currency():
    with pytest.raises(ValueError, match="not one of this account's invoices"):
        allocate(
            payment="P",
            amount=D("1.00"),
            currency="EUR",
            day=DAY,
            invoices=INVOICES,
            allocations=(),
            named=("INV-2026-999999",),
        )
    usd = due("INV-2026-000003", "50.00", dt.date(2026, 1, 3), currency="USD")
    with pytest.raises(ValueError, match="in USD, the payment in EUR"):
        allocate(
            payment="P",
            amount=D("1.00"),
            currency="EUR",
            day=DAY,
            invoices=(usd,),
            allocations=(),
            named=(usd.number,),
        )


def test_sub_cents_stay_credit_and_money_is_never_float():
    result = allocate(
        payment="P", amount=D("100.005"), currency="EUR", day=DAY, invoices=(JAN,), allocations=()
    )
    assert result.allocations[0].amount == D("100.00")
    assert result.credit == D("0.005")
    with pytest.raises(ValueError, match="positive Decimal"):
        allocate(
            payment="P", amount=100.0, currency="EUR", day=DAY, invoices=(JAN,), allocations=()
        )


def test_credit_left_over_is_applied_to_a_later_invoice_the_same_way():
    first = allocate(
        payment="P", amount=D("120.00"), currency="EUR", day=DAY, invoices=(JAN,), allocations=()
    )
    left = credit_left("P", D("120.00"), first.allocations)
    assert left == D("20.00")
    later = allocate(
        payment="P",
        amount=left,
        currency="EUR",
        day=DAY + dt.timedelta(days=1),
        invoices=(JAN, FEB),
        allocations=first.allocations,
    )
    assert later.allocations == (
        Allocation("P", "INV-2026-000007", D("20.00"), DAY + dt.timedelta(days=1)),
    )
    assert credit_left("P", D("120.00"), first.allocations + later.allocations) == D("0.00")


def test_a_credit_note_pays_the_invoice_it_credits_and_the_rest_is_credit():
    invoice = seed_invoice()  # 132.80 + 19 % = 158.03
    note = credit_note()  # CN-2026-000001: 10.00 + 19 % = 11.90 on INV-2026-000001
    assert (note.credits, note.total, invoice.amount_due) == (
        "INV-2026-000001",
        D("11.90"),
        D("158.03"),
    )
    issued = Due(
        note.credits,
        invoice.account,
        invoice.issue_date,
        invoice.due_date,
        invoice.currency,
        invoice.amount_due,
    )
    paid_before = (Allocation("BANK-9", issued.number, invoice.amount_due - D("5.00"), DAY),)
    result = allocate_credit_note(
        note=note.number,
        credits=note.credits,
        total=note.total,
        currency=note.currency,
        day=DAY,
        invoices=(issued,),
        allocations=paid_before,
    )
    assert result.allocations == (Allocation("CN-2026-000001", issued.number, D("5.00"), DAY),)
    assert result.credit == D("6.90")
    assert status(issued, paid_before + result.allocations) == "paid"


def test_nothing_due_is_paid_and_rows_move_issued_and_sent_alike():
    prepaid = due("INV-2026-000030", "0.00", dt.date(2026, 4, 2))
    assert status(prepaid, ()) == "paid"
    sent = due("INV-2026-000031", "10.00", dt.date(2026, 4, 2), status="sent")
    assert status(sent, ()) == "sent"
    assert status(sent, (Allocation("P", sent.number, D("9.99"), DAY),)) == "partially_paid"


# --- invariants ----------------------------------------------------------------------------

cents = st.integers(min_value=1, max_value=500_00).map(lambda c: D(c) / 100)
invoice_sets = st.lists(
    st.tuples(st.integers(0, 60), cents, st.sampled_from(["issued", "sent", "void"])),
    min_size=1,
    max_size=6,
).map(
    lambda rows: tuple(
        due(
            f"INV-2026-{i:06d}", str(amount), dt.date(2026, 1, 1) + dt.timedelta(days=offset), state
        )
        for i, (offset, amount, state) in enumerate(rows, start=1)
    )
)
payments = st.lists(
    st.tuples(st.integers(1, 400_000).map(lambda m: D(m) / 1000), st.booleans()),
    min_size=1,
    max_size=6,
)


def run(invoices, plan, name=True):
    rows: list[Allocation] = []
    credits = []
    for index, (amount, names) in enumerate(plan):
        named = (invoices[index % len(invoices)].number,) if name and names else ()
        result = allocate(
            payment=f"P{index}",
            amount=amount,
            currency="EUR",
            day=DAY,
            invoices=invoices,
            allocations=tuple(rows),
            named=named,
        )
        assert result.allocated + result.credit == amount
        assert result.credit >= 0
        assert all(
            r.amount > 0 and r.amount == r.amount.quantize(D("0.01")) for r in result.allocations
        )
        rows += result.allocations
        credits.append(result.credit)
    return rows, credits


@settings(max_examples=150, deadline=None)
@given(invoice_sets, payments)
def test_allocations_never_exceed_what_is_due_and_add_up_to_the_payments(invoices, plan):
    rows, credits = run(invoices, plan)
    for d in invoices:
        paid = paid_on(d.number, rows)
        assert paid <= (d.amount_due if d.status != "void" else 0)
        assert status(d, rows) == (
            "void"
            if d.status == "void"
            else "paid"
            if paid == d.amount_due
            else "partially_paid"
            if paid
            else d.status
        )
    assert sum((r.amount for r in rows), D(0)) + sum(credits, D(0)) == sum(a for a, _ in plan)
    # a credit is left only when every open invoice is paid, or by less than a cent
    if any(c >= D("0.01") for c in credits):
        assert all(outstanding(d, rows) == 0 for d in invoices)


@settings(max_examples=150, deadline=None)
@given(invoice_sets, payments, st.randoms(use_true_random=False))
def test_without_named_invoices_the_order_of_payments_does_not_change_what_is_paid(
    invoices, plan, random
):
    in_order, credits = run(invoices, plan, name=False)
    shuffled = list(plan)
    random.shuffle(shuffled)
    other, other_credits = run(invoices, shuffled, name=False)
    for d in invoices:
        assert paid_on(d.number, in_order) == paid_on(d.number, other)
    assert sum(credits, D(0)) == sum(other_credits, D(0))
