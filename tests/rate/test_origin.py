"""Origin-based rates (issue 10 §1): a deck's `origin` column (caller prefix).

The longest destination prefix with a live entry for the caller wins, then the longest origin
among its entries, an empty origin matching any caller; effective dates apply to each
(prefix, origin) entry's history as they do to a prefix. Every test fails on the code before
the column: the importer ignored it, so the last entry of a prefix priced every caller (or the
deck was refused as repeating a prefix). Money is checked to the last unit against the
per-call Decimal reference in tests/rate/reference.py.
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
from functions.rate.parties import Account, Parties, rate_parties
from functions.rate.rating import CallerNumbers, DeckIndex, price
from functions.rate.timeline import FULL, compose, in_force, prepare
from functions.shared.cdr import CDR_SCHEMA
from functions.shared.money import Rounding, RoundingMethod
from tests.rate.reference import Entry, deck_table, rate_call

D = Decimal
DAY = 86_400


def engine(entries, calls, rounding=None):
    """(status, reason, billed, amount) per (callee, caller, start, answered) call."""
    rounding = rounding or Rounding()
    pricing = price(
        DeckIndex.build(deck_table(entries)),
        pa.array([c[0] for c in calls], pa.string()),
        np.array([c[2] for c in calls], dtype=np.int64),
        np.array([c[3] for c in calls], dtype=np.int64),
        rounding,
        caller=pa.array([c[1] for c in calls], pa.string()),
    )
    return [
        (
            "rated" if rated else "unrated",
            str(reason),
            int(billed),
            D(int(amount)).scaleb(-rounding.decimals),
        )
        for rated, reason, billed, amount in zip(
            pricing.rated, pricing.reason, pricing.billed, pricing.amount, strict=True
        )
    ]


def reference(entries, calls, rounding=None):
    rounding = rounding or Rounding()
    return [
        rate_call(
            entries,
            callee,
            t,
            seconds,
            rounding.decimals,
            rounding.method.value,
            caller=_normal(caller),
        )
        for callee, caller, t, seconds in calls
    ]


def _normal(caller: str | None) -> str:
    text = (caller or "").replace(" ", "").replace("-", "")
    text = text[1:] if text.startswith("+") else text[2:] if text.startswith("00") else text
    return text if text.isdigit() else ""


UK_ANY = Entry("44", D("0.0100"), destination="UK")
UK_FROM_FR = Entry("44", D("0.0200"), destination="UK from FR", origin="33")


def test_a_french_caller_is_priced_by_the_origin_entry_and_everyone_else_by_the_empty_one():
    calls = [
        ("442071234567", "33140000000", 0, 60),
        ("442071234567", "+33 1 40 00 00 00", 0, 60),
        ("442071234567", "0033140000000", 0, 60),
        ("442071234567", "4930123456", 0, 60),
        ("442071234567", None, 0, 60),
        ("442071234567", "anonymous", 0, 60),
    ]
    got = engine([UK_ANY, UK_FROM_FR], calls)
    assert [g[3] for g in got] == [D("0.02")] * 3 + [D("0.01")] * 3
    assert got == reference([UK_ANY, UK_FROM_FR], calls)


def test_the_longest_origin_among_a_prefix_entries_wins():
    deck = [UK_ANY, UK_FROM_FR, Entry("44", D("0.0300"), origin="331")]
    calls = [("4420", "331400", 0, 60), ("4420", "332400", 0, 60), ("4420", "49", 0, 60)]
    assert [g[3] for g in engine(deck, calls)] == [D("0.03"), D("0.02"), D("0.01")]
    assert engine(deck, calls) == reference(deck, calls)


def test_a_longer_destination_prefix_beats_a_longer_origin():
    # "then the longest origin among ITS entries": the destination decides first.
    deck = [Entry("44", D("0.0500"), origin="33"), Entry("447", D("0.0700"))]
    calls = [("447700900123", "33140000000", 0, 60)]
    assert engine(deck, calls)[0][3] == D("0.07")
    assert engine(deck, calls) == reference(deck, calls)


def test_a_prefix_whose_only_entries_are_for_another_origin_falls_back_to_a_shorter_prefix():
    deck = [Entry("44", D("0.0100")), Entry("447", D("0.0900"), origin="33")]
    calls = [
        ("447700900123", "33140000000", 0, 60),  # the origin entry
        ("447700900123", "4930123456", 0, 60),  # no entry of 447 for Germany: 44
        ("447700900123", "", 0, 60),
    ]
    assert [g[3] for g in engine(deck, calls)] == [D("0.09"), D("0.01"), D("0.01")]
    assert engine(deck, calls) == reference(deck, calls)


def test_no_entry_for_the_caller_at_any_prefix_is_no_rate():
    deck = [Entry("44", D("0.0100"), origin="33")]
    assert engine(deck, [("4420", "49", 0, 60)]) == [("unrated", "no_rate", 0, D(0))]


def test_effective_dates_apply_to_each_origin_history_on_its_own():
    deck = [
        UK_ANY,
        Entry("44", D("0.0200"), origin="33", effective_to=10 * DAY),
        Entry("44", D("0.0250"), origin="33", effective_from=20 * DAY),
        Entry("44", D("0.0150"), effective_from=15 * DAY),
    ]
    calls = [
        ("4420", "331", 5 * DAY, 60),  # the French rate in force
        ("4420", "331", 12 * DAY, 60),  # it ended: the any-caller entry, then 0.01
        ("4420", "331", 16 * DAY, 60),  # any-caller raised to 0.015
        ("4420", "331", 21 * DAY, 60),  # the new French rate
        ("4420", "49", 21 * DAY, 60),
    ]
    got = engine(deck, calls)
    assert [g[3] for g in got] == [D("0.02"), D("0.01"), D("0.015"), D("0.025"), D("0.015")]
    assert got == reference(deck, calls)


def test_a_closed_origin_entry_leaves_its_callers_unrated_and_others_priced():
    deck = [UK_ANY, Entry("44", D(0), origin="33", closed=True, effective_from=DAY)]
    calls = [("4420", "331", 0, 60), ("4420", "331", 2 * DAY, 60), ("4420", "49", 2 * DAY, 60)]
    got = engine(deck, calls)
    assert got == [
        ("rated", "", 60, D("0.01")),
        ("unrated", "closed", 0, D(0)),
        ("rated", "", 60, D("0.01")),
    ]
    assert got == reference(deck, calls)


def test_a_deck_with_origins_needs_the_callers():
    index = DeckIndex.build(deck_table([UK_ANY, UK_FROM_FR]))
    with pytest.raises(ValueError, match="callers"):
        price(index, pa.array(["4420"]), np.array([0]), np.array([60]), Rounding())


def test_callers_are_normalised_as_callees_are_and_anything_else_is_unknown():
    callers = CallerNumbers.of(pa.array(["+44 20-7", "0033", "12a", None, "", "1" * 20]))
    assert callers.digits.tolist() == [5, 2, 0, 0, 0, 20]


# --- the vectorised engine against the reference, on random decks ----------------------------

_PREFIXES = ("4", "44", "447", "4477", "1", "12")
_ORIGINS = ("", "", "3", "33", "331", "49")


@st.composite
def origin_decks(draw):
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(_PREFIXES), st.sampled_from(_ORIGINS)),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    entries = []
    for prefix, origin in keys:
        for start in sorted(
            draw(st.sets(st.sampled_from([None, 2, 5]), min_size=1, max_size=2)),
            key=lambda s: -1 if s is None else s,
        ):
            entries.append(
                Entry(
                    prefix,
                    D(draw(st.integers(0, 10**6))).scaleb(-8),
                    connect_fee=D(draw(st.integers(0, 3))).scaleb(-3),
                    first=draw(st.sampled_from([1, 6, 30, 60])),
                    step=draw(st.sampled_from([1, 6, 60])),
                    effective_from=None if start is None else start * DAY,
                    effective_to=draw(st.sampled_from([None, 9 * DAY])),
                    closed=draw(st.booleans()) and draw(st.booleans()),
                    origin=origin,
                )
            )
    return entries


CALLS = st.lists(
    st.tuples(
        st.sampled_from(["4", "44", "4477123", "447", "1234", "99"]),
        st.sampled_from(["", "3", "331", "3312", "49", "+33 1", "x"]),
        st.sampled_from([0, 3 * DAY, 6 * DAY, 10 * DAY]),
        st.sampled_from([0, 1, 7, 61]),
    ),
    min_size=1,
    max_size=25,
)
ROUNDINGS = st.sampled_from(
    [Rounding(), Rounding(2, RoundingMethod.UP), Rounding(4, RoundingMethod.DOWN)]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deck=origin_decks(), calls=CALLS, rounding=ROUNDINGS)
def test_the_engine_prices_origin_decks_as_the_reference_does(deck, calls, rounding):
    assert engine(deck, calls, rounding) == reference(deck, calls, rounding)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deck=origin_decks(), calls=CALLS)
def test_a_deck_without_origins_prices_exactly_as_the_same_deck_with_an_empty_origin_column(
    deck, calls
):
    plain = [e for e in deck if not e.origin]
    if not plain:
        return
    # The deck as it was before the column, and as compiled with it all empty.
    before = deck_table(plain).drop_columns(["origin", "surcharge_e8"])
    callee = pa.array([c[0] for c in calls], pa.string())
    start = np.array([c[2] for c in calls], dtype=np.int64)
    answered = np.array([c[3] for c in calls], dtype=np.int64)
    without = price(DeckIndex.build(before), callee, start, answered, Rounding())
    caller = pa.array([c[1] for c in calls], pa.string())
    index = DeckIndex.build(deck_table(plain))
    assert not index.has_origin
    with_empty = price(index, callee, start, answered, Rounding(), caller=caller)
    for name in ("row", "closed", "billed", "rate_e8", "exact", "amount", "rated"):
        assert getattr(without, name).tolist() == getattr(with_empty, name).tolist()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deck=origin_decks(),
    calls=CALLS,
    prefix=st.sampled_from(_PREFIXES),
    origin=st.sampled_from(["3", "33", "331", "49"]),
    rate=st.integers(1, 10**6),
)
def test_adding_an_origin_entry_changes_only_calls_whose_caller_matches_it(
    deck, calls, prefix, origin, rate
):
    if any(e.prefix == prefix and e.origin == origin for e in deck):
        return
    extra = Entry(prefix, D(rate).scaleb(-8), origin=origin)
    before = engine(deck, calls)
    after = engine([*deck, extra], calls)
    for call, old, new in zip(calls, before, after, strict=True):
        if not _normal(call[1]).startswith(origin):
            assert new == old
    assert after == reference([*deck, extra], calls)


# --- the deck column -------------------------------------------------------------------------


def test_the_origin_column_is_read_with_its_aliases_and_normalised():
    for header in ("origin", "Origin Prefix", "Caller Prefix", "A-Number Prefix", "CLI prefix"):
        deck = parse_deck(f"prefix,rate,{header}\n44,0.01,\n44,0.02,+33\n44,0.03,0049\n".encode())
        assert deck.table.column("origin").to_pylist() == ["", "33", "49"]


def test_a_bad_origin_names_the_file_line_and_field():
    with pytest.raises(InvalidDeckError) as caught:
        parse_deck(b"prefix,rate,origin\n44,0.01,33\n44,0.02,FR\n", source="ncli.csv")
    assert "ncli.csv" in str(caught.value)
    [error] = caught.value.errors
    assert (error.line, error.field, error.value) == (3, "origin", "FR")
    assert "digits" in error.message


def test_a_repeated_key_is_prefix_origin_and_effective_from():
    text = b"prefix,rate,origin\n44,0.01,\n44,0.02,33\n44,0.03,33\n"
    with pytest.raises(InvalidDeckError) as caught:
        parse_deck(text)
    [error] = caught.value.errors
    assert error.line == 4
    assert error.message == "duplicate prefix, origin 33 and effective_from (first on line 3)"


def test_a_deck_file_with_origins_prices_through_the_compiled_index():
    deck = parse_deck(b"prefix,rate,origin\n44,0.01,\n44,0.02,33\n447,0.09,33\n")
    index = DeckIndex.build(deck.table)
    got = price(
        index,
        pa.array(["4477", "4477", "4420"]),
        np.zeros(3, np.int64),
        np.full(3, 60),
        Rounding(),
        caller=pa.array(["33", "49", "33"]),
    )
    assert got.amount.tolist() == [90_000, 10_000, 20_000]
    again = DeckIndex.from_table(index.to_table())
    assert again.has_origin
    assert again.lookup(
        pa.array(["4477", "4477"]), np.zeros(2), pa.array(["33", "49"])
    ).tolist() == (
        index.lookup(pa.array(["4477", "4477"]), np.zeros(2), pa.array(["33", "49"])).tolist()
    )


def test_the_timeline_keeps_each_origin_history_and_a_full_deck_closes_a_dropped_origin():
    first = prepare(
        parse_deck(b"prefix,rate,origin\n44,0.01,\n44,0.02,33\n").table, effective=0, first=True
    )
    timeline = compose(None, first, mode=FULL, effective=0).numbered(1)
    assert timeline.num_rows == 2
    later = prepare(
        parse_deck(b"prefix,rate,origin\n44,0.011,\n").table, effective=DAY, first=False
    )
    composed = compose(timeline, later, mode=FULL, effective=DAY)
    assert composed.closed == 1  # 44 for callers from 33
    live = in_force(composed.numbered(2), 2 * DAY)
    assert [(r["prefix"], r["origin"], r["rate_e8"]) for r in live.to_pylist()] == [
        ("44", "", 1_100_000)
    ]
    before = in_force(composed.numbered(2), 0)
    assert [(r["origin"], r["rate_e8"]) for r in before.to_pylist()] == [
        ("", 1_000_000),
        ("33", 2_000_000),
    ]


def test_deck_diff_compares_entries_by_prefix_and_origin():
    old = parse_deck(b"prefix,rate,origin,surcharge\n44,0.01,,\n44,0.02,33,\n45,0.01,,0.001\n")
    new = parse_deck(
        b"prefix,rate,origin,surcharge\n44,0.01,,\n44,0.03,33,\n44,0.04,49,\n45,0.01,,0.002\n"
    )
    diff = diff_decks(old, new, notice_date=date(2024, 1, 1))
    got = [(r["prefix"], r["origin"], r["category"]) for r in diff.changes.to_pylist()]
    assert got == [
        ("44", "", "unchanged"),
        ("44", "33", "increased"),
        ("44", "49", "new"),
        ("45", "", "increased"),  # a higher surcharge costs the customer more
    ]
    assert [(w.prefix, w.origin) for w in diff.warnings] == [("44", "33"), ("45", "")]


def test_every_party_of_a_file_is_priced_by_its_own_callers_origin():
    """Two customers in one file: each block takes its own calls' callers (a subset)."""
    rows = [
        ("a", "331400", "4420", 60),
        ("b", "331400", "4420", 60),
        ("a", "4930", "4420", 60),
        ("b", "4930", "4477", 60),
    ]
    cdrs = pa.Table.from_pylist(
        [
            {
                "line": i + 2,
                "call_id": f"c{i}",
                "caller": caller,
                "callee": callee,
                "start_time": datetime(2024, 5, 1, tzinfo=UTC),
                "billsec": billsec,
                "disposition": "ANSWERED",
                "customer": customer,
                "supplier": "s",
            }
            for i, (customer, caller, callee, billsec) in enumerate(rows)
        ],
        schema=CDR_SCHEMA,
    )
    a_deck = [UK_ANY, UK_FROM_FR]
    b_deck = [Entry("44", D("0.0300")), Entry("447", D("0.0400"), origin="49")]
    s_deck = [Entry("44", D("0.0050"), origin="33"), Entry("4", D("0.0060"))]
    parties = Parties(
        {n: Account(n, "supplier" if n == "s" else "customer") for n in ("a", "b", "s")},
        {
            "a": DeckIndex.build(deck_table(a_deck)),
            "b": DeckIndex.build(deck_table(b_deck)),
            "s": DeckIndex.build(deck_table(s_deck)),
        },
    )
    rated = rate_parties(cdrs, parties).rated.to_pylist()
    decks = {"a": a_deck, "b": b_deck}
    for row, (customer, caller, callee, billsec) in zip(rated, rows, strict=True):
        _, _, _, sell = rate_call(decks[customer], callee, 0, billsec, caller=caller)
        _, _, _, cost = rate_call(s_deck, callee, 0, billsec, caller=caller)
        assert (row["customer_amount"], row["supplier_amount"]) == (sell, cost)
    assert [r["customer_amount"] for r in rated] == [D("0.02"), D("0.03"), D("0.01"), D("0.04")]
    assert [r["supplier_amount"] for r in rated] == [D("0.005"), D("0.005"), D("0.006"), D("0.006")]


def test_the_compiled_deck_cache_keeps_origins_and_surcharges(tmp_path):
    path = tmp_path / "ncli.csv"
    path.write_text("prefix,rate,origin,surcharge\n44,0.01,,0.001\n44,0.02,33,\n447,0.09,33,\n")
    calls = (pa.array(["4477", "4477", "4420"]), np.zeros(3, np.int64), pa.array(["33", "49", "3"]))
    built, _ = load_deck_index(path, cache_dir=tmp_path / "cache")  # a miss: compiled, written
    cached, _ = load_deck_index(path, cache_dir=tmp_path / "cache")  # a hit: memory-mapped
    assert cached.has_origin and cached.has_surcharge
    assert cached.lookup(*calls).tolist() == built.lookup(*calls).tolist()
    rows = cached.lookup(*calls)
    assert cached.deck.column("rate_e8").take(pa.array(rows)).to_pylist() == [
        9_000_000,
        1_000_000,
        1_000_000,
    ]
