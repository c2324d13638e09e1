"""The matching core: clock offset, one-to-one best-first pairing, classes and exact totals."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.reconcile import matching
from functions.reconcile.matching import best_pairs_first, reconcile, seconds_of
from functions.reconcile.result import CLASSES, PARTY_SCHEMA, ROW_SCHEMA
from functions.shared.money import decimal_array, units_from_decimal_array

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
DAY = T0.date()
RATE_UNITS = 150  # micro-units a second: 0.009 a minute


def side(rows: list[tuple]) -> pa.Table:
    """PARTY_SCHEMA rows from (line, callee, start seconds, billsec, amount or None)."""
    return pa.Table.from_pylist(
        [
            {
                "line": line,
                "call_id": f"id{line}",
                "callee": callee,
                "start_time": T0 + dt.timedelta(seconds=start),
                "billsec": billsec,
                "amount": amount,
            }
            for line, callee, start, billsec, amount in rows
        ],
        schema=PARTY_SCHEMA,
    )


def run(ours: pa.Table, theirs: pa.Table, **options):
    return reconcile(
        ours, theirs, partner="carrier-x", role="supplier", currency="USD",
        date_from=DAY, date_to=DAY, **options,
    )  # fmt: skip


def pairs(result) -> set[tuple]:
    rows = result.rows.select(["class", "our_line", "their_line"]).to_pylist()
    return {(r["class"], r["our_line"], r["their_line"]) for r in rows}


# Anchors: calls both sides agree on exactly, to pin the clock offset at 0 in small cases.
ANCHORS = [(100 + i, f"3300{i}", 1000 + 500 * i, 60, Decimal("0.54")) for i in range(5)]


def test_classes_amounts_and_offset_on_a_small_case():
    ours = side([
        (1, "441", 0, 60, Decimal("1.5")),
        (2, "442", 100, 30, Decimal("0.5")),
        (3, "443", 200, 30, Decimal("0.5")),
        (4, "444", 300, 30, Decimal("0.5")),
    ])  # fmt: skip
    theirs = side([
        (11, "441", 7, 60, Decimal("1.5")),
        (12, "442", 107, 31, Decimal("0.61")),
        (13, "443", 206, 36, Decimal("0.6")),
        (14, "446", 500, 30, Decimal("2")),
    ])  # fmt: skip
    result = run(ours, theirs)
    assert result.clock_offset_seconds == Decimal("7")
    assert pairs(result) == {
        ("matched", 1, 11),
        ("rate_mismatch", 2, 12),
        ("duration_mismatch", 3, 13),
        ("missing_ours", None, 14),
        ("missing_theirs", 4, None),
    }
    assert result.rows.schema == ROW_SCHEMA
    t = result.totals
    assert (t["matched"].count, t["matched"].seconds, t["matched"].difference) == (1, 60, 0)
    assert (t["rate_mismatch"].seconds, t["rate_mismatch"].difference) == (31, Decimal("0.11"))
    assert (t["duration_mismatch"].seconds, t["duration_mismatch"].difference) == (
        36,
        Decimal("0.1"),
    )
    assert (t["missing_ours"].seconds, t["missing_ours"].difference) == (30, Decimal("2"))
    assert (t["missing_theirs"].seconds, t["missing_theirs"].difference) == (30, Decimal("-0.5"))
    assert t["duration_mismatch"].minutes == Decimal("0.6")
    assert result.our_amount == Decimal("3.0") and result.their_amount == Decimal("4.71")
    assert result.difference == Decimal("1.71")
    by_class = {r["class"]: r for r in result.rows.to_pylist()}
    assert by_class["rate_mismatch"]["difference"] == Decimal("0.11")
    # Their start as they wrote it, before the offset.
    assert by_class["rate_mismatch"]["their_start"] == T0 + dt.timedelta(seconds=107)
    assert by_class["missing_ours"]["difference"] is None


def test_best_pairs_first_takes_the_closest_start_and_no_cdr_twice():
    # Ours at 0 and 1.5 s, theirs at 1 and 3 s, same callee (offset pinned at 0 by anchors):
    # greedy takes (ours@1.5, theirs@1) at 0.5 s first, then (ours@0, theirs@3) at 3 s.
    ours = side([(1, "449", 0, 60, None), (2, "449", 1.5, 60, None), *ANCHORS])
    theirs = side([(11, "449", 1, 60, None), (12, "449", 3, 60, None), *ANCHORS])
    result = run(ours, theirs)
    assert result.clock_offset_seconds == 0
    assert {p for p in pairs(result) if p[1] in (1, 2)} == {("matched", 2, 11), ("matched", 1, 12)}
    # A third of ours at 4 s is 1 s from theirs@3, closer than ours@0 (3 s): ours@0 is left.
    ours = side(
        [(1, "449", 0, 60, None), (2, "449", 1.5, 60, None), (3, "449", 4, 60, None), *ANCHORS]
    )
    result = run(ours, theirs)
    assert {p for p in pairs(result) if p[2] in (11, 12) or p[1] in (1, 2, 3)} == {
        ("matched", 2, 11),
        ("matched", 3, 12),
        ("missing_theirs", 1, None),
    }


def test_equal_starts_are_ranked_by_duration_difference():
    ours = side([(1, "449", 0, 60, None), (2, "449", 0, 90, None), *ANCHORS])
    theirs = side([(11, "449", 0, 89, None), *ANCHORS])
    result = run(ours, theirs)
    assert {p for p in pairs(result) if p[1] in (1, 2)} == {
        ("matched", 2, 11),
        ("missing_theirs", 1, None),
    }


def test_rows_equal_but_for_the_call_id_are_told_apart_by_it_whatever_the_order():
    # Two files' rows with the same line, start and duration (call ids b and a): the one
    # with the smaller call id takes their CDR, in any input order.
    rows = [(7, "449", 0, 60, None), (7, "449", 0, 60, None), *ANCHORS]
    ours = side(rows).set_column(1, "call_id", pa.array(["b", "a", *(f"x{i}" for i in range(5))]))
    theirs = side([(11, "449", 0, 60, None), *ANCHORS])
    for order in ([0, 1, 2, 3, 4, 5, 6], [1, 0, 6, 5, 4, 3, 2]):
        result = run(ours.take(pa.array(order)), theirs)
        rows = result.rows.filter(pc.equal(result.rows.column("callee"), "449")).to_pylist()
        assert [(r["class"], r["our_call_id"]) for r in rows] == [
            ("matched", "a"),
            ("missing_theirs", "b"),
        ]


def test_a_pair_within_the_start_tolerance_but_far_in_duration_is_a_duration_mismatch():
    ours = side([(1, "449", 0, 60, Decimal("1")), *ANCHORS])
    theirs = side([(11, "449", 3, 63, Decimal("1")), *ANCHORS])
    assert ("duration_mismatch", 1, 11) in pairs(run(ours, theirs))
    assert ("matched", 1, 11) in pairs(run(ours, theirs, duration_tolerance_seconds=3))
    theirs = side([(11, "449", 3.5, 60, Decimal("1")), *ANCHORS])  # beyond 3 s: no pair
    assert {("missing_theirs", 1, None), ("missing_ours", None, 11)} <= pairs(run(ours, theirs))
    assert ("matched", 1, 11) in pairs(run(ours, theirs, start_tolerance_seconds=4))


def test_amount_tolerance_and_sides_without_amounts():
    ours = side([(1, "449", 0, 60, Decimal("1.000000")), *ANCHORS])
    theirs = side([(11, "449", 0, 60, Decimal("1.000004")), *ANCHORS])
    assert ("rate_mismatch", 1, 11) in pairs(run(ours, theirs))
    assert ("matched", 1, 11) in pairs(run(ours, theirs, amount_tolerance=Decimal("0.00001")))
    # Their file has no amounts: no rate mismatch; a pair then moves no money.
    bare = side([(11, "449", 0, 60, None), *[(*a[:4], None) for a in ANCHORS]])
    result = run(ours, bare)
    assert ("matched", 1, 11) in pairs(result)
    assert result.totals["matched"].difference == 0
    assert result.their_amount == 0


def test_clipping_to_the_period_keeps_pairs_by_our_start():
    day = 86_400
    ours = side([
        (1, "449", day - 2, 60, Decimal("1")),  # D 23:59:58, theirs after midnight: in
        (2, "448", -1, 60, Decimal("1")),  # D-1 23:59:59, theirs in D: out (our start)
        (3, "447", day, 60, Decimal("1")),  # D+1 00:00:00 alone: out
        *ANCHORS,
    ])  # fmt: skip
    theirs = side([
        (11, "449", day + 5, 60, Decimal("1")),
        (12, "448", 6, 60, Decimal("1")),
        (13, "446", day + 8, 60, Decimal("1")),  # D+1 00:00:01 after the offset: out
        (14, "445", 7, 60, Decimal("1")),  # D 00:00:00 after the offset: in, alone
        *[(a[0], a[1], a[2] + 7, a[3], a[4]) for a in ANCHORS],
    ])  # fmt: skip
    result = run(ours, theirs, clip_to_period=True)
    assert result.clock_offset_seconds == 7
    found = pairs(result)
    assert {p for p in found if p[1] not in range(100, 105)} == {
        ("matched", 1, 11),
        ("missing_ours", None, 14),
    }
    assert result.our_amount == Decimal("3.7") and result.their_amount == Decimal("4.7")
    assert run(ours, theirs).totals["matched"].count == 7  # unclipped: all pairs


def test_coarse_start_buckets_find_the_same_pairs(monkeypatch):
    """Many callees over a long period leave the sort key fewer bits per microsecond: starts
    then share buckets, and the exact filter and tie-breaks must give the same result."""
    rng = np.random.default_rng(7)
    starts = rng.integers(0, 40 * 86_400, 300)
    ours = side([(k, f"44{k % 40:03d}", int(s), 60, Decimal("0.3")) for k, s in enumerate(starts)])
    theirs = side([
        (1000 + k, f"44{k % 40:03d}", int(s) + 5 + int(rng.integers(-2, 3)), 60 + k % 4,
         Decimal("0.3"))
        for k, s in enumerate(starts) if k % 9
    ])  # fmt: skip
    fine = run(ours, theirs)
    monkeypatch.setattr(matching, "KEY_BITS", 16)
    coarse = run(ours, theirs)
    assert coarse.rows.equals(fine.rows) and coarse.totals == fine.totals
    assert fine.clock_offset_seconds == 5 and fine.totals["missing_theirs"].count == 34


def test_empty_sides():
    empty = PARTY_SCHEMA.empty_table()
    result = run(empty, empty)
    assert result.rows.num_rows == 0 and result.clock_offset_seconds == 0
    assert all(result.totals[c].count == 0 for c in CLASSES)
    result = run(side(ANCHORS), empty)
    assert result.totals["missing_theirs"].count == 5
    assert result.totals["missing_theirs"].difference == Decimal("-2.7")


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="role"):
        reconcile(side(ANCHORS), side(ANCHORS), partner="x", role="reseller", currency="USD",
                  date_from=DAY, date_to=DAY)  # fmt: skip
    with pytest.raises(ValueError, match="lacks column"):
        run(side(ANCHORS).drop_columns(["billsec"]), side(ANCHORS))


def test_money_units_round_trip_exactly():
    values = [Decimal("999999999999.999999"), Decimal("-999999999999.999999"), None, Decimal("0")]
    array = pa.array(values, PARTY_SCHEMA.field("amount").type)
    units = units_from_decimal_array(array.slice(1), 6)
    assert units.tolist() == [-999999999999999999, 0, 0]
    valid = np.array([True, True, False, True])
    back = decimal_array(units_from_decimal_array(array, 6), 6, mask=~valid)
    assert back.to_pylist() == values
    assert str(seconds_of(7_000_000)) == "7" and str(seconds_of(-2_500_000)) == "-2.5"


# --- the greedy reference, and generated partner files -----------------------------------


def greedy(oi, ti, adt, addur) -> set[tuple[int, int]]:
    order = sorted(range(len(oi)), key=lambda k: (adt[k], addur[k], oi[k], ti[k]))
    used_o, used_t, taken = set(), set(), set()
    for k in order:
        if oi[k] not in used_o and ti[k] not in used_t:
            used_o.add(oi[k])
            used_t.add(ti[k])
            taken.add((oi[k], ti[k]))
    return taken


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 3), st.integers(0, 3)),
        unique_by=lambda c: (c[0], c[1]),
        max_size=40,
    )
)
def test_mutual_best_rounds_take_exactly_the_greedy_pairs(candidates):
    oi, ti, adt, addur = (np.array([c[i] for c in candidates], np.int64) for i in range(4))
    o, t = best_pairs_first(oi, ti, adt, addur, 8, 8)
    assert set(zip(o.tolist(), t.tolist(), strict=True)) == greedy(
        oi.tolist(), ti.tolist(), adt.tolist(), addur.tolist()
    )


FATES = ("matched", "jitter", "inflated", "rate", "drop_theirs", "extra_theirs")

call = st.tuples(
    st.sampled_from(FATES),
    st.integers(0, 2),  # callee from a pool of 3 (calls are 350+ s apart: no confusion)
    st.integers(0, 50),  # start within the call's slot
    st.integers(1, 3600),  # our billsec
    st.integers(-1, 1),  # their start jitter (s)
    st.sampled_from([-2, -1, 1, 2]),  # a duration jitter within the tolerance
    st.integers(3, 120),  # an inflation beyond it
    st.integers(-5000, 5000).filter(bool),  # a rate difference in micro-units
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(call, max_size=40),
    st.integers(-110, 110),
    st.randoms(use_true_random=False),
)
def test_generated_partner_files_are_classed_exactly(calls, offset, random):
    ours_rows, theirs_rows = [], []
    expected: dict[str, list] = {c: [] for c in CLASSES}
    for k, (fate, pool, slot, billsec, jitter, wobble, inflate, repriced) in enumerate(calls):
        callee, start = f"4420700{pool}", 400 * k + slot
        amount = billsec * RATE_UNITS
        our_line, their_line = k + 1, 1000 + k
        their_start = start + offset + jitter
        their_sec, their_amount = billsec, amount
        if fate == "jitter":
            their_sec = max(billsec + wobble, 1)  # same money: a rounding difference
        elif fate == "inflated":
            their_sec = billsec + inflate
            their_amount = their_sec * RATE_UNITS
        elif fate == "rate":
            their_amount = amount + repriced
        if fate != "extra_theirs":
            ours_rows.append((our_line, callee, start, billsec, _money(amount)))
        if fate != "drop_theirs":
            theirs_rows.append((their_line, callee, their_start, their_sec, _money(their_amount)))
        name = {
            "matched": "matched", "jitter": "matched", "inflated": "duration_mismatch",
            "rate": "rate_mismatch", "drop_theirs": "missing_theirs",
            "extra_theirs": "missing_ours",
        }[fate]  # fmt: skip
        row = (
            name,
            None if fate == "extra_theirs" else our_line,
            None if fate == "drop_theirs" else their_line,
        )
        seconds = their_sec if fate == "extra_theirs" else max(billsec, their_sec)
        if fate == "drop_theirs":
            seconds, money = billsec, -amount
        elif fate == "extra_theirs":
            money = their_amount
        else:
            money = their_amount - amount
        expected[name].append((row, seconds, money))

    ours, theirs = side(ours_rows), side(theirs_rows)
    result = run(ours, theirs)
    assert pairs(result) == {row for rows in expected.values() for row, _, _ in rows}
    for name in CLASSES:
        total = result.totals[name]
        assert total.count == len(expected[name])
        assert total.seconds == sum(s for _, s, _ in expected[name])
        assert total.difference == _money(sum(m for _, _, m in expected[name]))
    assert result.our_amount == sum((r[4] for r in ours_rows), Decimal(0))
    assert result.their_amount == sum((r[4] for r in theirs_rows), Decimal(0))
    # Every CDR of either side in exactly one row.
    lines = result.rows.to_pydict()
    assert Counter(x for x in lines["our_line"] if x is not None) == Counter(
        r[0] for r in ours_rows
    )
    assert Counter(x for x in lines["their_line"] if x is not None) == Counter(
        r[0] for r in theirs_rows
    )
    paired = [row for rows in expected.values() for row, _, _ in rows if None not in row[1:]]
    if paired:
        assert abs(result.clock_offset_seconds - offset) <= 1
    # The same result whatever the rows' order.
    shuffled = run(_shuffled(ours, random), _shuffled(theirs, random))
    assert shuffled.rows.equals(result.rows)
    assert shuffled.totals == result.totals
    assert shuffled.clock_offset_seconds == result.clock_offset_seconds


def _money(units: int) -> Decimal:
    return Decimal(units).scaleb(-6)


def _shuffled(table: pa.Table, random) -> pa.Table:
    order = list(range(table.num_rows))
    random.shuffle(order)
    return table.take(pa.array(order, pa.int64()))
