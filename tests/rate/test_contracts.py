"""Tiers and bundles applied to an account's deck-priced calls (functions.rate.contracts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.rate.contracts import Contracts, Counter, CounterKey, RunCounters
from functions.rate.parties import Account, Parties, charge_deltas, rate_parties
from functions.rate.rating import DeckIndex
from functions.rate.tiers import Bundle, Tier, TierSchedule
from functions.shared.cdr import CDR_SCHEMA
from tests.rate.reference import Entry, deck_table

D = Decimal
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
US = TierSchedule("us", ("1",), "graduated", (Tier(600, 450_000), Tier(None, 400_000)))
US_VOLUME = TierSchedule("us", ("1",), "volume", (Tier(600, 450_000), Tier(None, 400_000)))
UK_BUNDLE = Bundle("uk", ("44",), included_seconds=300, fee_units=10_000_000)


def calls(rows: list[tuple[str, int]], start: datetime = T0) -> pa.Table:
    """(callee, billsec) per call, one second apart from `start`, all from customer `acme`."""
    return pa.Table.from_pylist(
        [
            {
                "line": i + 2,
                "call_id": f"c{i}",
                "caller": "15551230000",
                "callee": callee,
                "start_time": start + timedelta(seconds=i),
                "billsec": billsec,
                "disposition": "ANSWERED" if billsec else "NO_ANSWER",
                "customer": "acme",
                "supplier": None,
            }
            for i, (callee, billsec) in enumerate(rows)
        ],
        schema=CDR_SCHEMA,
    )


def parties(contracts: Contracts, fee: str = "0") -> Parties:
    entries = [
        Entry("1", D("0.0050"), connect_fee=D(fee), destination="USA"),
        Entry("44", D("0.0100"), connect_fee=D(fee), destination="UK"),
        Entry("91", D("0.0080"), destination="India"),
    ]
    return Parties(
        {"acme": Account("acme", "customer")},
        {"acme": DeckIndex.build(deck_table(entries), "USD")},
        contracts={"acme": contracts},
    )


def graduated(seconds: int) -> Decimal:
    """F: the exact graduated price of a period's first `seconds` (US), naively."""
    first = min(seconds, 600)
    return D(first) * D("0.0045") / 60 + D(seconds - first) * D("0.0040") / 60


def micro(value: Decimal) -> int:
    return int(value.quantize(D("0.000001"), ROUND_HALF_UP) * 1_000_000)


def text(units: int) -> str:
    return f"{D(units) / 1_000_000:.6f}"


def amounts(result) -> list[tuple[str, str, str | None]]:
    """(call, component, amount) per charge of acme, in call order."""
    rows = [r for r in result.charges.to_pylist() if r["account"] == "acme"]
    rows.sort(key=lambda r: r["line"])
    return [
        (r["call_id"], r["component"], None if r["amount"] is None else str(r["amount"]))
        for r in rows
    ]


def test_graduated_calls_are_priced_by_the_tier_each_second_falls_in():
    # 500 s then 200 s crossing 600 s, then 100 s: the counter runs 0 -> 500 -> 700 -> 800.
    result = rate_parties(
        calls([("1212", 500), ("1313", 200), ("1414", 100)]), parties(Contracts(tiers=[US]))
    )
    expected = [
        micro(graduated(500)),
        micro(graduated(700)) - micro(graduated(500)),
        micro(graduated(800)) - micro(graduated(700)),
    ]
    got = amounts(result)
    assert [(c, k) for c, k, _ in got] == [("c0", "tier"), ("c1", "tier"), ("c2", "tier")]
    assert [int(D(a) * 1_000_000) for _, _, a in got] == expected
    assert result.rated.column("customer_rate").to_pylist() == [
        D("0.00450000"), D("0.00400000"), D("0.00400000")
    ]  # fmt: skip
    # The period's total is the contract's price of its total, rounded once.
    assert -charge_deltas(result.charges)["acme"] == micro(graduated(800))


def test_calls_outside_every_group_keep_the_decks_price_and_component():
    result = rate_parties(calls([("9198", 60), ("1212", 60)]), parties(Contracts(tiers=[US])))
    assert amounts(result) == [("c0", "usage", "0.008000"), ("c1", "tier", "0.004500")]


def test_a_tier_keeps_the_entrys_connect_fee_rounded_on_its_own():
    result = rate_parties(
        calls([("1212", 30), ("1212", 0)]), parties(Contracts(tiers=[US]), fee="0.0100005")
    )
    # 30 s at 0.0045/min = 0.00225; the fee 0.0100005 rounds half up to 0.010001 alone.
    # The unanswered call pays no fee and does not move the counter.
    assert amounts(result) == [("c0", "tier", "0.012251"), ("c1", "usage", "0.000000")]


def test_a_bundle_includes_its_seconds_then_the_deck_prices_the_rest():
    rows = [("4420", 200), ("4420", 150), ("4420", 60), ("4420", 0)]
    result = rate_parties(calls(rows), parties(Contracts(bundles=[UK_BUNDLE]), fee="0.001"))
    # 300 s included: the first call inside, the second crosses (50 s beyond + its fee),
    # the third is past it (60 s and its fee at the deck's 0.01/min).
    assert amounts(result) == [
        ("c0", "bundle", "0.000000"),
        ("c1", "bundle", "0.009333"),  # 0.001 + 50 x 0.01 / 60 = 0.0093333...
        ("c2", "usage", "0.011000"),
        ("c3", "usage", "0.000000"),
    ]


def test_a_bundle_and_a_tier_on_one_group_price_the_seconds_beyond_the_bundle_by_tier():
    bundle = Bundle("us-pack", ("1",), included_seconds=400, fee_units=0)
    result = rate_parties(
        calls([("1212", 300), ("1212", 300), ("1212", 600)]),
        parties(Contracts(tiers=[US], bundles=[bundle])),
    )
    # The tier counts only what it prices: 200 s beyond the bundle, then 600 s (to 800).
    assert amounts(result) == [
        ("c0", "bundle", "0.000000"),
        ("c1", "bundle", text(micro(graduated(200)))),
        ("c2", "tier", text(micro(graduated(800)) - micro(graduated(200)))),
    ]


def test_a_run_reads_each_counter_once_and_moves_it_by_what_it_priced():
    reads = []

    def load(key: CounterKey) -> Counter:
        reads.append(key)
        return Counter(seconds=550, charged=4_125, version=3)

    counters = RunCounters(load)
    result = rate_parties(
        calls([("1212", 60), ("1313", 60)]), parties(Contracts(tiers=[US])), counters=counters
    )
    key = CounterKey("acme", "tier", "us", "2026-03")
    assert reads == [key]
    (move,) = counters.moves()
    charged = micro(graduated(670)) - micro(graduated(550))
    assert (move.key, move.read.version, move.seconds, move.charged) == (key, 3, 120, charged)
    assert move.after == Counter(670, 4_125 + charged, 4)
    assert -charge_deltas(result.charges)["acme"] == charged
    assert counters.marks == {"": {key.text: 550}}


def test_calls_of_two_months_move_two_counters_in_the_accounts_time_zone():
    # 2026-04-01 03:00 UTC is still March in New York.
    late_march = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
    counters = RunCounters(lambda key: Counter())
    rate_parties(
        calls([("1212", 60), ("1212", 60)], start=late_march - timedelta(seconds=0)),
        parties(Contracts(tiers=[US], timezone="America/New_York")),
        counters=counters,
    )
    assert [m.key.period for m in counters.moves()] == ["2026-03"]
    counters = RunCounters(lambda key: Counter())
    rate_parties(
        calls([("1212", 60), ("1212", 60)], start=datetime(2026, 4, 1, 3, 59, 59, tzinfo=UTC)),
        parties(Contracts(tiers=[US], timezone="America/New_York")),
        counters=counters,
    )
    assert [(m.key.period, m.seconds) for m in counters.moves()] == [
        ("2026-03", 60),
        ("2026-04", 60),
    ]


def test_replay_starts_each_counter_where_the_committed_run_started():
    key = CounterKey("acme", "tier", "us", "2026-03")
    first = RunCounters(lambda k: Counter(seconds=580))
    original = rate_parties(calls([("1212", 60)]), parties(Contracts(tiers=[US])), counters=first)
    again = rate_parties(
        calls([("1212", 60)]),
        parties(Contracts(tiers=[US])),
        counters=RunCounters.replay(first.marks[""]),
    )
    assert again.charges.equals(original.charges)
    assert first.marks[""] == {key.text: 580}


def test_two_contracts_of_a_kind_may_not_share_a_name_or_a_prefix():
    with pytest.raises(ValueError, match="share a name"):
        Contracts(tiers=[US, US_VOLUME])
    other = TierSchedule("usx", ("1",), "graduated", (Tier(None, 1),))
    with pytest.raises(ValueError, match="prefix 1"):
        Contracts(tiers=[US, other])


def _commit_in_order(files: list[list[int]]) -> int:
    """Price each file as a run against a store counter, committing its moves; total charged."""
    store: dict[CounterKey, Counter] = {}
    total = 0
    for seconds in files:
        counters = RunCounters(lambda key: store.get(key, Counter()))
        result = rate_parties(
            calls([("1212", s) for s in seconds]),
            parties(Contracts(tiers=[US])),
            counters=counters,
        )
        for move in counters.moves():
            store[move.key] = move.after
        total += -charge_deltas(result.charges).get("acme", 0)
    return total


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 400), min_size=1, max_size=5), min_size=1, max_size=5),
    st.randoms(use_true_random=False),
)
def test_a_periods_graduated_total_does_not_depend_on_file_order_or_split(files, random):
    shuffled = list(files)
    random.shuffle(shuffled)
    total = sum(sum(f) for f in files)
    assert _commit_in_order(files) == _commit_in_order(shuffled) == micro(graduated(total))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 900), min_size=1, max_size=8), st.integers(1, 900))
def test_more_minutes_never_cost_less(seconds, extra):
    assert _commit_in_order([[*seconds, extra]]) >= _commit_in_order([seconds])
