"""The tally of a rated file: every call counted once, in the hour it started, the same
however the file is cut into parts and whichever files of a day arrive first."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.fraud.counters import ALL, CUSTOMER, RANGE, SUPPLIER, merge
from functions.fraud.policy import Policy
from functions.fraud.ranges import RangeList
from functions.fraud.service import tally_file
from tests.fraud.traffic import T0, Flow, calls, hourly_starts

RNG = np.random.default_rng(41)
DAY = pa.concat_tables(
    [
        calls(Flow("a1", "1212", "0.0065"), hourly_starts(np.full(6, 40), T0, RNG), RNG),
        calls(
            Flow("a1", "25261", "0.05", supplier="sup-2"),
            hourly_starts(np.full(6, 7), T0, RNG),
            RNG,
            first_id=10**5,
        ),
        calls(
            Flow("a2", "4420", "0.009"),
            hourly_starts(np.full(6, 25), T0, RNG),
            RNG,
            first_id=2 * 10**5,
        ),
    ]
)


def tally(tables):
    return tally_file(tables, Policy(), RangeList.of())


WHOLE = tally([DAY])


def test_every_call_is_counted_once_in_the_hour_it_started():
    alls = [c for c in WHOLE.counters if c.party == CUSTOMER and c.group == ALL]
    assert sum(c.calls for c in alls) == DAY.num_rows == WHOLE.calls
    assert sum(c.seconds for c in alls) == int(np.sum(DAY["billsec"].to_numpy()))
    hours = DAY["start_time"].cast(pa.int64()).to_numpy() // 3_600_000_000
    per_hour = {int(h): int(n) for h, n in zip(*np.unique(hours, return_counts=True), strict=True)}
    assert {c.hour: c.calls for c in alls if c.account == "a1"}.keys() <= per_hour.keys()
    assert {h: sum(c.calls for c in alls if c.hour == h) for h in per_hour} == per_hour
    # a call to a listed range is in its country's counter and in its range's
    somalia = sum(c.calls for c in WHOLE.counters if c.group == "Somalia" and c.party == CUSTOMER)
    ranged = sum(c.calls for c in WHOLE.counters if c.group == RANGE + "252")
    assert somalia == ranged == 7 * 6
    # the supplier's counters carry its calls, not the customer's money
    supplied = [c for c in WHOLE.counters if c.party == SUPPLIER]
    assert sum(c.calls for c in supplied) == DAY.num_rows and not any(c.amount for c in supplied)
    money = sum(c.amount for c in alls)
    assert money == sum(int(v.scaleb(6)) for v in DAY["customer_amount"].to_pylist())


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, DAY.num_rows), min_size=1, max_size=6), st.randoms())
def test_counts_do_not_depend_on_parts_or_on_which_file_comes_first(cuts, random):
    order = list(range(DAY.num_rows))
    random.shuffle(order)
    shuffled = DAY.take(pa.array(order))
    bounds = sorted({0, DAY.num_rows, *cuts})
    pieces = [shuffled.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    one_file = tally(pieces)  # one file in parts
    files = [tally([piece]) for piece in reversed(pieces)]  # each piece a file, last first
    assert one_file.counters == WHOLE.counters
    assert merge(c for f in files for c in f.counters) == WHOLE.counters
    assert {
        (e.account, e.group, e.max_rate, e.first_hour, e.last_hour) for e in one_file.evidence
    } == {(e.account, e.group, e.max_rate, e.first_hour, e.last_hour) for e in WHOLE.evidence}


def test_evidence_names_the_busiest_numbers_and_the_longest_calls():
    somalia = next(e for e in WHOLE.evidence if e.group == "Somalia")
    rows = DAY.filter(pa.compute.starts_with(DAY["callee"], "25261")).to_pylist()
    per_number: dict[str, int] = {}
    for row in rows:
        per_number[row["callee"]] = per_number.get(row["callee"], 0) + row["billsec"]
    best = max(per_number.values())
    assert somalia.top[0].seconds == best and per_number[somalia.top[0].number] == best
    longest = max(rows, key=lambda r: r["billsec"])
    assert longest["call_id"] in somalia.samples
    assert somalia.max_rate == 5_000_000 and somalia.first_hour == int(T0.timestamp()) // 3600
    assert somalia.last_hour == int((T0 + dt.timedelta(hours=5)).timestamp()) // 3600
