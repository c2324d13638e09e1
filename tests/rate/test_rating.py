"""The rating contract (issue §3), rule by rule, and the vectorised engine against a
per-call Decimal reference on random decks."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.rate.rating import DeckIndex, billed_seconds, price
from functions.shared.money import Rounding
from tests.rate.reference import Entry, deck_table, rate_call

D = Decimal
DAY = 86_400


def rate_one(entries, number, t, seconds, rounding=None):
    index = DeckIndex.build(deck_table(entries))
    pricing = price(
        index, pa.array([number]), np.array([t]), np.array([seconds]), rounding or Rounding()
    )
    decimals = (rounding or Rounding()).decimals
    status = "rated" if pricing.rated[0] else "unrated"
    return (
        status,
        str(pricing.reason[0]),
        int(pricing.billed[0]),
        D(int(pricing.amount[0])).scaleb(-decimals),
    )


@pytest.mark.parametrize(
    ("increment", "answered", "billed"),
    [
        ((60, 6), 61, 66),
        ((60, 6), 95, 96),
        ((30, 6), 7, 30),
        ((30, 6), 31, 36),
        ((60, 60), 61, 120),
        ((1, 1), 61, 61),
        ((6, 6), 205, 210),
        ((60, 6), 60, 60),
        ((60, 6), 1, 60),
        ((60, 6), 0, 0),
    ],
)
def test_billing_increment_rounds_answered_seconds_up_to_the_contract_blocks(
    increment, answered, billed
):
    first, step = increment
    got = billed_seconds(np.array([answered]), np.array([first]), np.array([step]))
    assert int(got[0]) == billed


def test_india_mobile_sold_at_0008_bought_at_00065_leaves_0001500_margin_on_a_minute():
    sell = [Entry("91", D("0.02")), Entry("917", D("0.008"), destination="India - Mobile")]
    buy = [Entry("917", D("0.0065"))]
    assert rate_one(sell, "917012345678", 0, 60)[3] == D("0.008000")
    assert rate_one(buy, "917012345678", 0, 60)[3] == D("0.006500")


def test_longest_prefix_with_a_live_entry_wins():
    deck = [Entry("44", D("0.01")), Entry("447", D("0.05")), Entry("4477", D("0.09"))]
    assert rate_one(deck, "447712345678", 0, 60)[3] == D("0.090000")
    assert rate_one(deck, "447612345678", 0, 60)[3] == D("0.050000")
    assert rate_one(deck, "442071234567", 0, 60)[3] == D("0.010000")


def test_a_longer_prefix_that_is_not_yet_effective_falls_back_to_the_shorter_one():
    deck = [Entry("44", D("0.01")), Entry("447", D("0.05"), effective_from=10 * DAY)]
    assert rate_one(deck, "447712345678", 9 * DAY, 60)[3] == D("0.010000")
    assert rate_one(deck, "447712345678", 10 * DAY, 60)[3] == D("0.050000")


def test_effective_to_is_exclusive():
    deck = [Entry("33", D("0.02"), effective_to=5 * DAY)]
    assert rate_one(deck, "33123", 5 * DAY - 1, 60)[0] == "rated"
    assert rate_one(deck, "33123", 5 * DAY, 60)[:2] == ("unrated", "no_rate")


def test_latest_effective_from_wins_and_an_outlasting_earlier_rate_resumes_after_a_promotion():
    deck = [
        Entry("1", D("0.003"), effective_from=0, effective_to=100 * DAY),
        Entry("1", D("0.001"), effective_from=10 * DAY, effective_to=20 * DAY),
    ]
    assert rate_one(deck, "12025550100", 5 * DAY, 60)[3] == D("0.003000")
    assert rate_one(deck, "12025550100", 15 * DAY, 60)[3] == D("0.001000")
    assert rate_one(deck, "12025550100", 25 * DAY, 60)[3] == D("0.003000")


def test_a_closed_code_leaves_the_call_unrated_without_falling_back_to_a_shorter_prefix():
    deck = [Entry("53", D("0.5")), Entry("535", D("0.6"), effective_from=DAY, closed=True)]
    assert rate_one(deck, "5351234567", 2 * DAY, 60)[:2] == ("unrated", "closed")
    assert rate_one(deck, "5351234567", 0, 60)[3] == D("0.500000")


def test_no_live_entry_for_any_prefix_is_unrated_no_rate():
    assert rate_one([Entry("44", D("0.01"))], "33123456", 0, 60)[:2] == ("unrated", "no_rate")


def test_an_empty_deck_leaves_every_call_unrated_no_rate_at_zero():
    assert rate_one([], "33123456", 0, 60) == ("unrated", "no_rate", 0, D("0.000000"))


def test_a_number_shorter_than_a_prefix_never_matches_it():
    deck = [Entry("4", D("0.1")), Entry("4412", D("0.9"))]
    assert rate_one(deck, "441", 0, 60)[3] == D("0.100000")


def test_leading_zero_prefixes_are_distinct_from_the_same_digits_without_them():
    deck = [Entry("012", D("0.7")), Entry("12", D("0.2"))]
    assert rate_one(deck, "0123", 0, 60)[3] == D("0.700000")
    assert rate_one(deck, "123", 0, 60)[3] == D("0.200000")


def test_connect_fee_is_added_once_and_unanswered_calls_cost_exactly_zero():
    deck = [Entry("44", D("0.012"), connect_fee=D("0.0015"), first=60, step=6)]
    assert rate_one(deck, "4420", 0, 61)[2:] == (66, D("0.014700"))
    assert rate_one(deck, "4420", 0, 0) == ("rated", "", 0, D("0.000000"))


def test_amount_is_computed_exactly_then_rounded_once_half_up_to_six_places():
    # 0.00001 per minute for 1 s = 0.000000166..., which rounds to 0.000000.
    # 0.00003 per minute for 1 s = 0.0000005 exactly: half-up gives 0.000001.
    assert rate_one([Entry("1", D("0.00001"))], "1", 0, 1)[3] == D("0.000000")
    assert rate_one([Entry("1", D("0.00003"))], "1", 0, 1)[3] == D("0.000001")


@pytest.mark.parametrize(
    ("method", "expected"), [("half_up", "0.000001"), ("up", "0.000001"), ("down", "0.000000")]
)
def test_rounding_method_is_configurable(method, expected):
    got = rate_one([Entry("1", D("0.00004"))], "1", 0, 1, Rounding(6, method))  # 0.000000666…
    assert got[3] == D(expected)


def test_rounding_decimals_are_configurable():
    got = rate_one([Entry("1", D("0.0123456"))], "1", 0, 60, Rounding(4, "half_up"))
    assert got[3] == D("0.0123")


def test_rates_with_eight_decimal_places_stay_exact():
    got = rate_one([Entry("1", D("0.12345678"))], "1", 0, 7, Rounding(8, "half_up"))
    # 0.12345678 * 7 / 60 = 0.014403291, to 8 places half-up: 0.01440329
    assert got[3] == D("0.01440329")


def test_a_call_whose_exact_amount_overflows_int64_is_still_exact():
    deck = [Entry("1", D("99999.99999999"))]
    got = rate_one(deck, "1", 0, 10**9)
    exact = (D("99999.99999999") * D(10**9) / D(60)).quantize(D("0.000001"))
    assert got[3] == exact


# --- the engine against the per-call reference -----------------------------------------

DIGITS = st.text(alphabet="0129", min_size=1, max_size=4)
TIMES = st.sampled_from([None, 0, 100, 200, 300])
INCREMENTS = st.sampled_from([(1, 1), (60, 6), (30, 6), (60, 60), (6, 6), (60, 1)]) | st.tuples(
    st.integers(1, 90), st.integers(1, 90)
)
RATES = st.decimals(min_value=0, max_value=5, places=8, allow_nan=False, allow_infinity=False)


@st.composite
def entries(draw):
    prefix = draw(DIGITS)
    start = draw(TIMES)
    end = draw(TIMES)
    if start is not None and end is not None and end <= start:
        end = None
    first, step = draw(INCREMENTS)
    return Entry(
        prefix=prefix,
        rate=draw(RATES),
        connect_fee=draw(st.decimals(min_value=0, max_value=1, places=8, allow_nan=False)),
        first=first,
        step=step,
        effective_from=start,
        effective_to=end,
        closed=draw(st.booleans()) and draw(st.booleans()),
    )


@st.composite
def decks(draw):
    rows = draw(st.lists(entries(), min_size=1, max_size=25))
    unique = {(e.prefix, e.effective_from): e for e in rows}  # the deck importer rejects duplicates
    return list(unique.values())


CALLS = st.lists(
    st.tuples(
        st.text(alphabet="01239", min_size=1, max_size=7),
        st.sampled_from([-50, 0, 50, 100, 150, 199, 200, 250, 300, 350]),
        st.integers(0, 400),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deck=decks(),
    calls=CALLS,
    decimals=st.integers(0, 8),
    method=st.sampled_from(["half_up", "up", "down"]),
)
def test_vectorised_engine_agrees_with_the_per_call_decimal_reference(
    deck, calls, decimals, method
):
    rounding = Rounding(decimals, method)
    index = DeckIndex.build(deck_table(deck))
    pricing = price(
        index,
        pa.array([c[0] for c in calls]),
        np.array([c[1] for c in calls]),
        np.array([c[2] for c in calls]),
        rounding,
    )
    for i, (number, t, seconds) in enumerate(calls):
        status, reason, billed, amount = rate_call(deck, number, t, seconds, decimals, method)
        assert ("rated" if pricing.rated[i] else "unrated", str(pricing.reason[i])) == (
            status,
            reason,
        )
        assert int(pricing.billed[i]) == billed
        assert D(int(pricing.amount[i])).scaleb(-decimals) == amount


@settings(max_examples=200, deadline=None)
@given(
    deck=decks(),
    number=st.text(alphabet="0129", min_size=1, max_size=6),
    t=st.integers(0, 400),
    durations=st.lists(st.integers(0, 5000), min_size=2, max_size=30),
)
def test_a_longer_call_never_costs_less(deck, number, t, durations):
    durations = sorted(durations)
    index = DeckIndex.build(deck_table(deck))
    pricing = price(
        index,
        pa.array([number] * len(durations)),
        np.full(len(durations), t),
        np.array(durations),
        Rounding(),
    )
    assert (np.diff(pricing.amount.astype(np.int64)) >= 0).all()


@settings(max_examples=200, deadline=None)
@given(deck=decks(), calls=CALLS)
def test_rounding_up_never_undercharges_and_down_never_overcharges(deck, calls):
    index = DeckIndex.build(deck_table(deck))
    args = (
        pa.array([c[0] for c in calls]),
        np.array([c[1] for c in calls]),
        np.array([c[2] for c in calls]),
    )
    up = price(index, *args, Rounding(6, "up"))
    down = price(index, *args, Rounding(6, "down"))
    exact = up.exact.astype(object)  # units of 10^-8/60
    assert all(int(a) * 6000 >= int(e) for a, e in zip(up.amount, exact, strict=True))
    assert all(int(a) * 6000 <= int(e) for a, e in zip(down.amount, exact, strict=True))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deck=decks(), calls=CALLS)
def test_an_index_round_trips_through_one_arrow_table_to_the_same_arrays_and_prices(deck, calls):
    built = DeckIndex.build(deck_table(deck))
    sink = pa.BufferOutputStream()
    table = built.to_table()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    restored = DeckIndex.from_table(pa.ipc.open_file(sink.getvalue()).read_all())
    for field in dataclasses.fields(DeckIndex):
        a, b = getattr(restored, field.name), getattr(built, field.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), field.name
        else:
            assert a == b if isinstance(b, str | int) else a.equals(b), field.name
    args = (
        pa.array([c[0] for c in calls]),
        np.array([c[1] for c in calls]),
        np.array([c[2] for c in calls]),
    )
    want, got = price(built, *args, Rounding()), price(restored, *args, Rounding())
    for name in ("row", "rated", "closed", "billed", "amount"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text("0123456789", min_size=1, max_size=24), min_size=1, max_size=50))
def test_dialled_numbers_are_their_first_18_digits_right_padded_with_zeros(numbers):
    from functions.rate.rating import DialledNumbers

    head = DialledNumbers.of(pa.array(numbers)).head
    assert head.tolist() == [int(n[:18].ljust(18, "0")) for n in numbers]
