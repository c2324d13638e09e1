"""Statements from journal entries (pure): periods in the tenant's days, exact sums, chaining.

All of this is new in issue 8: the old code kept no journal and had no statement, so every
test here fails on it (functions.invoice.statement did not exist).
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.invoice.statement import (
    ENTRY_KINDS,
    Entry,
    StatementError,
    build_statement,
    payment_delta,
    period_bounds,
)

UTC = dt.UTC
MAY = dt.date(2024, 5, 1)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def entry(when: str, amount: int, kind: str = "charges", posting: str = "", **extra) -> Entry:
    return Entry("cust", at(when), kind, posting or f"p-{when}", amount, **extra)


def test_a_payment_raises_a_customers_balance_and_lowers_what_is_owed_to_a_supplier():
    """The old ledger added every payment: a supplier paid was owed more, not less."""
    assert payment_delta("customer", 10_000_001) == 10_000_001
    assert payment_delta("reseller", 5) == 5
    assert payment_delta("supplier", 10_000_001) == -10_000_001
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="positive"):
            payment_delta("customer", bad)
    with pytest.raises(ValueError, match="kind"):
        payment_delta("carrier", 5)


def test_period_bounds_are_the_tenants_midnights_in_utc():
    assert period_bounds("UTC", MAY, MAY) == (at("2024-05-01T00:00"), at("2024-05-02T00:00"))
    # Kolkata is UTC+05:30: its 2 May starts at 18:30 UTC on 1 May.
    assert period_bounds("Asia/Kolkata", dt.date(2024, 5, 2), dt.date(2024, 5, 2)) == (
        at("2024-05-01T18:30"),
        at("2024-05-02T18:30"),
    )
    # London moves to summer time on 31 March 2024: that day is 23 hours long.
    start, end = period_bounds("Europe/London", dt.date(2024, 3, 31), dt.date(2024, 3, 31))
    assert (start, end) == (at("2024-03-31T00:00"), at("2024-03-31T23:00"))
    with pytest.raises(StatementError, match="starts"):
        period_bounds("UTC", dt.date(2024, 5, 2), MAY)


def test_a_posting_at_2330_utc_falls_on_the_next_day_in_kolkata():
    late = entry("2024-05-01T23:30", -1_234_567)
    utc = build_statement("cust", "UTC", MAY, MAY, [late])
    assert [(line.day, line.balance) for line in utc.lines] == [(MAY, -1_234_567)]
    first_in_kolkata = build_statement("cust", "Asia/Kolkata", MAY, MAY, [late])
    assert (first_in_kolkata.lines, first_in_kolkata.closing) == ((), 0)
    second = build_statement(
        "cust", "Asia/Kolkata", dt.date(2024, 5, 2), dt.date(2024, 5, 2), [late]
    )
    assert [(line.day, line.entry) for line in second.lines] == [(dt.date(2024, 5, 2), late)]
    assert (second.opening, second.closing) == (0, -1_234_567)


def test_opening_lines_running_balance_and_closing_to_the_micro_unit():
    entries = [
        entry("2024-05-03T09:00", 1_000_000, "payment", reference="wire 1"),  # after the period
        entry("2024-04-30T23:59:59.999999", -7_000_001),  # before: opening
        entry("2024-05-02T10:00", 250_000, "adjustment", description="goodwill", reference="r1"),
        entry("2024-05-01T00:00", -3_000_000, description="day1.csv"),  # first instant: in
        entry("2024-05-02T23:59:59.999999", -1, "rerate", description="re-rate 2024-05-01"),
    ]
    statement = build_statement("cust", "UTC", MAY, dt.date(2024, 5, 2), entries)
    assert statement.opening == -7_000_001
    assert [(line.entry.amount, line.balance) for line in statement.lines] == [
        (-3_000_000, -10_000_001),
        (250_000, -9_750_001),
        (-1, -9_750_002),
    ]
    assert statement.closing == -9_750_002
    assert statement.totals() == {
        "charges": -3_000_000,
        "rerate": -1,
        "payment": 0,
        "adjustment": 250_000,
        "recurring": 0,
        "tier": 0,
        "tax": 0,
        "credit": 0,
    }


def test_entries_booked_in_one_microsecond_are_ordered_by_posting_id():
    same = "2024-05-01T12:00"
    entries = [entry(same, -2, posting="file-b"), entry(same, -1, posting="file-a")]
    statement = build_statement("cust", "UTC", MAY, MAY, entries)
    assert [line.entry.posting_id for line in statement.lines] == ["file-a", "file-b"]


def test_entries_that_cannot_be_on_the_statement_are_refused():
    with pytest.raises(StatementError, match="for 'other'"):
        build_statement(
            "cust", "UTC", MAY, MAY, [Entry("other", at("2024-05-01"), "charges", "f", 1)]
        )
    naive = Entry("cust", dt.datetime(2024, 5, 1), "charges", "f", 1)
    with pytest.raises(StatementError, match="naive"):
        build_statement("cust", "UTC", MAY, MAY, [naive])
    with pytest.raises(StatementError, match="unknown kind"):
        build_statement("cust", "UTC", MAY, MAY, [entry("2024-05-01T01:00", 1, "refund")])


# --- invariants over random journals --------------------------------------------------------

ZONES = ("UTC", "Asia/Kolkata", "America/New_York", "Europe/London", "Pacific/Chatham")
FIRST = dt.date(2024, 3, 28)  # spans London's and New York's spring-forward weeks

journal_entries = st.lists(
    st.builds(
        lambda minute, kind, amount, n: Entry(
            "cust",
            dt.datetime(2024, 3, 27, tzinfo=UTC) + dt.timedelta(minutes=minute),
            kind,
            f"{kind}:{n}",
            amount,
        ),
        st.integers(0, 14 * 24 * 60),
        st.sampled_from(ENTRY_KINDS),
        st.integers(-(2**62), 2**62).filter(bool),
        st.integers(0, 10**6),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    entries=journal_entries,
    zone=st.sampled_from(ZONES),
    cuts=st.lists(st.integers(0, 11), min_size=1, max_size=5, unique=True).map(sorted),
)
def test_consecutive_statements_chain_and_each_reconciles(entries, zone, cuts):
    days = [FIRST + dt.timedelta(days=c) for c in cuts]
    periods = list(zip([FIRST, *[d + dt.timedelta(days=1) for d in days[:-1]]], days, strict=True))
    statements = [build_statement("cust", zone, a, b, entries) for a, b in periods]
    for statement in statements:
        assert statement.closing - statement.opening == sum(
            line.entry.amount for line in statement.lines
        )
        assert sum(statement.totals().values()) == statement.closing - statement.opening
    for before, after in itertools.pairwise(statements):
        assert before.closing == after.opening
    # every entry of the whole span is on exactly one statement, and on the one of its day
    start, end = period_bounds(zone, FIRST, days[-1])
    spanned = sorted((e for e in entries if start <= e.booked_at < end), key=id)
    listed = sorted((line.entry for s in statements for line in s.lines), key=id)
    assert listed == spanned
    assert statements[0].opening == sum(e.amount for e in entries if e.booked_at < start)
    for statement in statements:
        for line in statement.lines:
            assert statement.first_day <= line.day <= statement.last_day
