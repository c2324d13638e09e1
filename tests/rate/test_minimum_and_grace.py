"""Per-entry minimum charge and free seconds (issue 10 §5): deck columns, timeline, pricing.

Each test fails on the code before them: decks had no such columns (the importer ignored
them), so a short answered call was charged its few seconds and a call within the grace its
connect fee and first increment. Money is checked to the last unit against the per-call
Decimal reference in tests/rate/reference.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.rate.deck import InvalidDeckError, load_deck_index, parse_deck
from functions.rate.deck_diff import diff_decks
from functions.rate.rating import INDEX_FORMAT, DeckIndex, price
from functions.rate.timeline import FULL, as_timeline, compose, effective_date, prepare
from functions.shared.money import Rounding
from tests.rate.reference import Entry, deck_table, rate_call

D = Decimal
UPLOADED = int(datetime(2024, 9, 1, 12, tzinfo=UTC).timestamp())


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def engine(entries, calls, rounding=None):
    """(billed seconds, amount as Decimal) per (number, start, answered) call."""
    rounding = rounding or Rounding()
    pricing = price(
        DeckIndex.build(deck_table(entries)),
        pa.array([c[0] for c in calls]),
        np.array([c[1] for c in calls]),
        np.array([c[2] for c in calls]),
        rounding,
    )
    amounts = [D(int(a)).scaleb(-rounding.decimals) for a in pricing.amount]
    return list(zip(pricing.billed.tolist(), amounts, strict=True))


def reference(entries, calls, rounding=None):
    rounding = rounding or Rounding()
    out = []
    for number, t, seconds in calls:
        _, _, billed, amount = rate_call(
            entries, number, t, seconds, rounding.decimals, rounding.method.value
        )
        out.append((billed, amount))
    return out


# --- pricing, rule by rule ---------------------------------------------------------------

# 0.01/min per second with a 0.05 minimum: calls under 5 minutes are charged the minimum.
NIGERIA = Entry("234", D("0.01"), minimum_charge=D("0.05"))


@pytest.mark.parametrize(
    ("answered", "billed", "amount"),
    [
        (0, 0, "0.000000"),  # unanswered: still exactly 0, no minimum
        (1, 1, "0.050000"),  # priced 0.000167: the minimum
        (60, 60, "0.050000"),  # priced 0.01
        (299, 299, "0.050000"),  # priced 0.049833
        (300, 300, "0.050000"),  # priced exactly the minimum
        (301, 301, "0.050167"),  # priced above it: the priced amount
        (600, 600, "0.100000"),
    ],
)
def test_a_minimum_charge_applies_below_it_on_answered_calls_only(answered, billed, amount):
    calls = [("2348031234567", 0, answered)]
    assert engine([NIGERIA], calls) == [(billed, D(amount))]
    assert reference([NIGERIA], calls) == [(billed, D(amount))]


# 60/6 increments, a 0.02 connect fee and 6 free seconds (failed answer supervision).
GRACE = Entry("44", D("0.06"), connect_fee=D("0.02"), first=60, step=6, free_seconds=6)


@pytest.mark.parametrize(
    ("answered", "billed", "amount"),
    [
        (1, 0, "0.000000"),
        (6, 0, "0.000000"),  # N: free, no connect fee, no first increment
        (7, 60, "0.080000"),  # N+1: connect fee and the whole first increment
        (61, 66, "0.086000"),
    ],
)
def test_free_seconds_make_calls_of_up_to_n_seconds_cost_nothing(answered, billed, amount):
    calls = [("442071234567", 0, answered)]
    assert engine([GRACE], calls) == [(billed, D(amount))]
    assert reference([GRACE], calls) == [(billed, D(amount))]


def test_a_minimum_and_a_grace_on_the_same_entry():
    entry = Entry("1", D("0.006"), minimum_charge=D("0.0125"), free_seconds=3)
    calls = [("12125550100", 0, s) for s in (0, 3, 4, 124, 125, 126, 3600)]
    want = [
        (0, D("0")),
        (0, D("0")),  # graced: the minimum does not apply either
        (4, D("0.0125")),
        (124, D("0.0125")),  # priced 0.0124
        (125, D("0.0125")),  # priced exactly 0.0125
        (126, D("0.0126")),
        (3600, D("0.36")),
    ]
    assert engine([entry], calls) == want
    assert reference([entry], calls) == want


@pytest.mark.parametrize(("method", "amount"), [("half_up", "0.000002"), ("down", "0.000001")])
def test_the_minimum_is_compared_exactly_and_rounded_once_by_the_accounts_rule(method, amount):
    """0.0000015 beats a priced 0.000001 (1 s at 0.00006/min) before rounding, then rounds."""
    entry = Entry("1", D("0.00006"), minimum_charge=D("0.0000015"))
    rounding = Rounding(6, method)
    assert engine([entry], [("1", 0, 1)], rounding) == [(1, D(amount))]
    assert reference([entry], [("1", 0, 1)], rounding) == [(1, D(amount))]


def test_a_minimum_beyond_int64_in_exact_units_is_still_exact():
    entry = Entry("1", D("0.01"), minimum_charge=D("9999999999.99999999"))
    [(billed, amount)] = engine([entry], [("1", 0, 1)])
    assert (billed, amount) == (1, D("10000000000.000000"))


def test_a_closed_or_missing_entry_leaves_the_call_unrated_at_zero_whatever_the_minimum():
    closed = Entry("44", D("0"), minimum_charge=D("1"), closed=True)
    pricing = price(
        DeckIndex.build(deck_table([closed])),
        pa.array(["441", "33"]),
        np.array([0, 0]),
        np.array([60, 60]),
        Rounding(),
    )
    assert pricing.reason.tolist() == ["closed", "no_rate"]
    assert pricing.amount.tolist() == [0, 0]


def test_pricing_says_which_calls_were_graced_or_charged_the_minimum():
    entry = Entry("1", D("0.006"), minimum_charge=D("0.0125"), free_seconds=3)
    pricing = price(
        DeckIndex.build(deck_table([entry])),
        pa.array(["1"] * 5),
        np.zeros(5, dtype=np.int64),
        np.array([0, 3, 4, 125, 126]),
        Rounding(),
    )
    assert pricing.graced.tolist() == [False, True, False, False, False]
    assert pricing.at_minimum.tolist() == [False, False, True, False, False]
    assert pricing.minimum_e8.tolist() == [0, 0, 1_250_000, 1_250_000, 1_250_000]


def test_with_rate_reprices_at_another_rate_keeping_increment_fee_minimum_and_grace():
    """A tier's price replaces the deck's rate; everything else is the entry's."""
    entry = Entry("1", D("0.01"), connect_fee=D("0.001"), first=30, step=6)
    entry = Entry(**{**entry.__dict__, "minimum_charge": D("0.004"), "free_seconds": 2})
    calls = [("1", 0, s) for s in (0, 2, 3, 31, 600)]
    pricing = price(
        DeckIndex.build(deck_table([entry])),
        pa.array([c[0] for c in calls]),
        np.zeros(len(calls), dtype=np.int64),
        np.array([c[2] for c in calls]),
        Rounding(),
    )
    tier = pricing.with_rate(np.full(len(calls), 450_000), Rounding())
    at_tier = Entry(**{**entry.__dict__, "rate": D("0.0045")})
    want = [amount for _, amount in reference([at_tier], calls)]
    assert [D(int(a)).scaleb(-6) for a in tier.amount] == want
    assert tier.billed.tolist() == pricing.billed.tolist() == [0, 0, 30, 36, 600]


# --- decks: columns, aliases, errors -------------------------------------------------------


def compiled(text: str):
    return parse_deck(text.encode(), source="deck.csv").table.to_pylist()


@pytest.mark.parametrize(
    "header",
    [
        "prefix,rate,minimum_charge,free_seconds",
        "Code,Rate,Min Charge,Grace Seconds",
        "Dial Code,Rate (USD/min),Minimum Charge (USD),Free Seconds",
    ],
)
def test_a_deck_carries_minimum_charge_and_free_seconds_under_their_aliases(header):
    [row] = compiled(f"{header}\n234,0.01,0.05000001,6\n")
    assert (row["minimum_charge_e8"], row["free_seconds"]) == (5_000_001, 6)


def test_a_deck_without_the_columns_has_no_minimum_and_no_free_seconds():
    [row] = compiled("prefix,rate,min,interval\n44,0.01,60,6\n")
    assert (row["minimum_charge_e8"], row["free_seconds"]) == (0, 0)
    assert (row["increment_first"], row["increment_next"]) == (60, 6)  # "min" is not money


@pytest.mark.parametrize(
    ("minimum", "free", "field", "value", "message"),
    [
        ("-0.05", "", "minimum_charge", "-0.05", "must not be negative"),
        ("five", "", "minimum_charge", "five", "not a plain decimal number"),
        ("0.123456789", "", "minimum_charge", "0.123456789", "more than 8 decimal places"),
        ("", "-3", "free_seconds", "-3", "must not be negative"),
        ("", "2.5", "free_seconds", "2.5", "must be whole seconds (an integer >= 0)"),
        ("", "six", "free_seconds", "six", "must be whole seconds (an integer >= 0)"),
    ],
)
def test_a_bad_minimum_or_grace_is_refused_naming_line_and_field(
    minimum, free, field, value, message
):
    text = f"prefix,rate,min_charge,grace_seconds\n44,0.01,,\n234,0.01,{minimum},{free}\n"
    with pytest.raises(InvalidDeckError) as raised:
        parse_deck(text.encode(), source="deck.csv")
    [error] = raised.value.errors
    assert (error.line, error.field, error.value, error.message) == (3, field, value, message)
    assert f"line 3: {field} '{value}'" in str(raised.value)


def test_free_seconds_of_zero_are_no_grace():
    [row] = compiled("prefix,rate,free_seconds\n44,0.01,0\n")
    assert row["free_seconds"] == 0


# --- old decks, caches, the timeline and the diff ------------------------------------------


def test_a_deck_stored_without_the_columns_prices_exactly_as_before():
    entries = [Entry("44", D("0.0123"), connect_fee=D("0.01"), first=60, step=6)]
    legacy = deck_table(entries).drop_columns(["minimum_charge_e8", "free_seconds"])
    calls = [("441", 0, s) for s in (0, 1, 59, 61, 3601)]
    args = (pa.array([c[0] for c in calls]), np.zeros(5, np.int64), np.array([c[2] for c in calls]))
    old = price(DeckIndex.build(legacy), *args, Rounding())
    assert [D(int(a)).scaleb(-6) for a in old.amount] == [a for _, a in reference(entries, calls)]
    timeline = as_timeline(legacy, 3)
    assert timeline.column("minimum_charge_e8").to_pylist() == [0]
    assert timeline.column("free_seconds").to_pylist() == [0]


def test_the_cached_index_carries_minimum_and_grace_and_its_format_was_bumped(tmp_path):
    assert INDEX_FORMAT != "deck-index-1"  # indexes cached without the two terms are rebuilt
    path = tmp_path / "deck.csv"
    path.write_bytes(b"prefix,rate,minimum_charge,free_seconds\n234,0.01,0.05,6\n")
    calls = (pa.array(["234"] * 3), np.zeros(3, np.int64), np.array([6, 7, 600]))
    built, _ = load_deck_index(path, cache_dir=tmp_path / "cache")
    cached, _ = load_deck_index(path, cache_dir=tmp_path / "cache")
    assert cached.minimum_charge_e8.tolist() == [5_000_000]
    assert cached.free_seconds.tolist() == [6]
    for index in (built, cached):
        assert price(index, *calls, Rounding()).amount.tolist() == [0, 50_000, 100_000]


class Account:
    """One account's uploads composed in order, as `deck upload` does."""

    def __init__(self) -> None:
        self.timeline: pa.Table | None = None
        self.versions = 0

    def upload(self, csv: str, effective: str | None = None):
        rows = parse_deck(csv.encode(), source="deck.csv").table
        when = effective_date(rows, None if effective is None else at(effective), UPLOADED)
        prepared = prepare(rows, effective=when, first=self.timeline is None)
        done = compose(self.timeline, prepared, mode=FULL, effective=when)
        self.versions += 1
        self.timeline = done.numbered(self.versions)
        return done

    def charge(self, when: str, answered: int) -> Decimal:
        pricing = price(
            DeckIndex.build(self.timeline),
            pa.array(["2348031234567"]),
            np.array([at(when)]),
            np.array([answered]),
            Rounding(),
        )
        return D(int(pricing.amount[0])).scaleb(-6)


def test_the_timeline_keeps_each_entrys_minimum_and_grace_from_its_own_date():
    account = Account()
    account.upload("prefix,rate,min_charge,effective_from\n234,0.01,0.05,2024-04-01\n")
    done = account.upload(
        "prefix,rate,min_charge,grace_seconds,effective_from\n"
        "234,0.01,0.05,,2024-04-01\n"  # an A-Z deck repeats the code's original row
        "234,0.01,0.08,4,2024-05-01\n"  # same rate, a higher minimum and a grace: a change
    )
    assert done.added == 1
    assert account.charge("2024-04-30T23:59:59", 4) == D("0.05")
    assert account.charge("2024-04-30T23:59:59", 60) == D("0.05")
    assert account.charge("2024-05-01", 4) == D("0")
    assert account.charge("2024-05-01", 60) == D("0.08")
    again = account.upload(
        "prefix,rate,min_charge,grace_seconds,effective_from\n234,0.01,0.08,4,2024-05-01\n"
    )
    assert (again.added, again.unchanged) == (0, 1)  # a repetition adds nothing


def test_a_full_deck_changing_only_the_minimum_is_added_to_the_timeline():
    account = Account()
    account.upload("prefix,rate,min_charge\n234,0.01,0.05\n")
    done = account.upload("prefix,rate,min_charge\n234,0.01,0.06\n", effective="2024-06-01")
    assert done.added == 1
    assert account.charge("2024-05-31", 60) == D("0.05")
    assert account.charge("2024-06-01", 60) == D("0.06")


@pytest.mark.parametrize(
    ("old", "new", "category", "warning"),
    [
        ("0.01,0.05,0", "0.01,0.06,0", "increased", True),  # a higher minimum
        ("0.01,0.05,6", "0.01,0.05,3", "increased", True),  # less grace
        ("0.01,0.05,0", "0.009,0.07,0", "increased", True),  # cheaper minutes, dearer short calls
        ("0.01,0.05,0", "0.01,0.04,0", "decreased", False),
        ("0.01,0.05,0", "0.01,0.05,6", "decreased", False),
        ("0.01,0.05,6", "0.01,0.05,6", "unchanged", False),
    ],
)
def test_the_diff_treats_a_changed_minimum_or_grace_as_a_change_in_price(
    old, new, category, warning
):
    header = "prefix,rate,minimum_charge,free_seconds,effective_from\n"
    result = diff_decks(
        parse_deck(f"{header}234,{old},2024-04-01\n".encode()),
        parse_deck(f"{header}234,{new},2024-05-03\n".encode()),
        notice_date=date(2024, 5, 1),
    )
    [row] = result.changes.to_pylist()
    assert (row["category"], row["warning"]) == (category, warning)
    old_terms = [int(D(old.split(",")[1]).scaleb(8)), int(old.split(",")[2])]
    new_terms = [int(D(new.split(",")[1]).scaleb(8)), int(new.split(",")[2])]
    assert [row["old_minimum_charge_e8"], row["old_free_seconds"]] == old_terms
    assert [row["new_minimum_charge_e8"], row["new_free_seconds"]] == new_terms


# --- invariants ------------------------------------------------------------------------------

MONEY = st.decimals(min_value=0, max_value=2, places=8, allow_nan=False, allow_infinity=False)


@st.composite
def entries(draw):
    return Entry(
        prefix=draw(st.text(alphabet="012", min_size=1, max_size=3)),
        rate=draw(MONEY),
        connect_fee=draw(st.sampled_from([D(0), D("0.01"), D("0.00000007")])),
        first=draw(st.sampled_from([1, 6, 30, 60])),
        step=draw(st.sampled_from([1, 6, 60])),
        effective_from=draw(st.sampled_from([None, 100])),
        minimum_charge=draw(st.sampled_from([D(0)]) | MONEY),
        free_seconds=draw(st.sampled_from([0, 0, 1, 6, 30])),
    )


def decks():
    return st.lists(entries(), min_size=1, max_size=12).map(
        lambda rows: list({(e.prefix, e.effective_from): e for e in rows}.values())
    )


ROUNDINGS = st.builds(Rounding, st.integers(0, 8), st.sampled_from(["half_up", "up", "down"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deck=decks(),
    calls=st.lists(
        st.tuples(
            st.text(alphabet="0123", min_size=1, max_size=5),
            st.sampled_from([0, 100, 200]),
            st.integers(0, 400),
        ),
        min_size=1,
        max_size=30,
    ),
    rounding=ROUNDINGS,
)
def test_the_engine_agrees_with_the_per_call_reference_to_the_last_unit(deck, calls, rounding):
    assert engine(deck, calls, rounding) == reference(deck, calls, rounding)


@settings(max_examples=150, deadline=None)
@given(
    entry=entries(),
    durations=st.lists(st.integers(0, 4000), min_size=2, max_size=30),
    rounding=ROUNDINGS,
)
def test_with_a_minimum_and_a_grace_a_longer_call_never_costs_less(entry, durations, rounding):
    durations = sorted(durations)
    calls = [(entry.prefix, 200, s) for s in durations]
    amounts = [amount for _, amount in engine([entry], calls, rounding)]
    assert amounts == sorted(amounts)


@settings(max_examples=150, deadline=None)
@given(entry=entries(), answered=st.integers(1, 4000), rounding=ROUNDINGS)
def test_every_answered_call_beyond_the_grace_costs_at_least_the_rounded_minimum(
    entry, answered, rounding
):
    [(_, amount)] = engine([entry], [(entry.prefix, 200, answered)], rounding)
    if answered <= entry.free_seconds:
        assert amount == 0
    else:
        assert amount >= rounding.quantize(entry.minimum_charge)
