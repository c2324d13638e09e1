"""The max-duration oracle (issue 14 §1): how long a call may last for the money available.

Hand-computed examples to the second and the micro-unit, then properties against the rating
engine itself: a one-call CDR rated by `rate_parties` (deck, contracts, surcharge) and read
back as the account's balance change, exactly what the call's rated CDR will post.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from functions.ingest.numbers import MAX_DIGITS as INGEST_MAX_DIGITS
from functions.rate import allowance
from functions.rate.allowance import MAX_CAP_SECONDS, MAX_DIGITS, Quote, quote, quote_for
from functions.rate.contracts import Contracts, Counter, RunCounters
from functions.rate.parties import Account, Parties, charge_deltas, rate_parties
from functions.rate.rating import DeckIndex
from functions.rate.tiers import Bundle, Tier, TierSchedule
from functions.shared.cdr import CDR_SCHEMA
from functions.shared.money import Rounding, RoundingMethod
from tests.rate.reference import Entry, deck_table

D = Decimal
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
CHANGE = T0 + timedelta(days=1)  # a rate change in the property decks
US = TierSchedule("us", ("1",), "graduated", (Tier(600, 450_000), Tier(None, 400_000)))


def deck(*entries: Entry) -> DeckIndex:
    return DeckIndex.build(deck_table(list(entries)), "USD")


UK = Entry("44", D("0.06"), connect_fee=D("0.01"), first=60, step=6, destination="UK")
USA = Entry("1", D("0.006"), destination="USA")
PLAIN = deck(UK, USA, Entry("999", D("0.5"), closed=True, destination="Closed"))


# --- the engine as the reference -----------------------------------------------------------


def cdr(callee: str, start: datetime, billsec: int, caller: str = "15551230000") -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "line": 2,
                "call_id": "c1",
                "caller": caller,
                "callee": callee,
                "start_time": start,
                "answer_time": start if billsec else None,
                "billsec": billsec,
                "disposition": "ANSWERED" if billsec else "NO_ANSWER",
                "customer": "acme",
                "supplier": None,
            }
        ],
        schema=CDR_SCHEMA,
    )


def engine_micro(
    index: DeckIndex,
    callee: str,
    start: datetime,
    seconds: int,
    rounding: Rounding | None = None,
    contracts: Contracts | None = None,
    before: int = 0,
) -> int:
    """What rating a call of `seconds` takes from acme's balance, in micro-units."""
    parties = Parties(
        {"acme": Account("acme", "customer", rounding=rounding or Rounding())},
        {"acme": index},
        contracts={"acme": contracts} if contracts else {},
    )
    counters = RunCounters(lambda key: Counter(seconds=before))
    charges = rate_parties(cdr(callee, start, seconds), parties, counters=counters).charges
    return -charge_deltas(charges).get("acme", 0)


# --- hand-computed examples ----------------------------------------------------------------


def test_connect_fee_and_60_6_increments_to_the_second():
    # 0.01 + 0.06/min: 1.00 buys 0.99 of minutes = 990 s, a 6 s step end after the first 60.
    q = quote(PLAIN, "447700900123", T0, 1_000_000)
    assert q == Quote(True, "ok", 990, 1_000_000, 70_000, D("0.06"), "UK", "44")
    # 0.075: 60 s (0.07) fits, the next step (66 s, 0.076) does not.
    assert quote(PLAIN, "447700900123", T0, 75_000).max_duration_seconds == 60
    assert quote(PLAIN, "447700900123", T0, 75_000).hold_micro == 70_000
    assert quote(PLAIN, "447700900123", T0, 76_000).max_duration_seconds == 66
    assert quote(PLAIN, "447700900123", T0, 76_000).hold_micro == 76_000


def test_money_short_of_the_connect_fee_and_first_increment_is_refused():
    q = quote(PLAIN, "447700900123", T0, 69_999)
    assert (q.allow, q.reason, q.max_duration_seconds, q.hold_micro) == (
        False,
        "insufficient_funds",
        0,
        0,
    )
    assert q.first_increment_micro == 70_000
    assert quote(PLAIN, "447700900123", T0, -5).reason == "insufficient_funds"
    assert quote(PLAIN, "447700900123", T0, 70_000).max_duration_seconds == 60


def test_one_second_increments_and_the_cap():
    # 0.006/min = 100 micro a second: 1.00 buys exactly 10,000 s.
    q = quote(PLAIN, "15551234567", T0, 1_000_000)
    assert (q.max_duration_seconds, q.hold_micro, q.first_increment_micro) == (
        10_000,
        1_000_000,
        100,
    )
    assert quote(PLAIN, "15551234567", T0, 999_999).max_duration_seconds == 9_999
    # More money than 3 h costs: the cap, and its price held.
    capped = quote(PLAIN, "15551234567", T0, 100_000_000)
    assert (capped.max_duration_seconds, capped.hold_micro) == (10_800, 1_080_000)
    assert quote(PLAIN, "15551234567", T0, 100_000_000, cap_seconds=60).hold_micro == 6_000


def test_the_cap_is_bounded():
    assert quote(PLAIN, "1555", T0, 10**12, cap_seconds=MAX_CAP_SECONDS).max_duration_seconds == (
        MAX_CAP_SECONDS
    )
    for bad in (MAX_CAP_SECONDS + 1, -1, 1.5, True):
        with pytest.raises(ValueError, match="cap_seconds"):
            quote(PLAIN, "1555", T0, 1, cap_seconds=bad)


def test_a_minimum_charge_is_the_first_increments_price():
    index = deck(Entry("33", D("0.012"), minimum_charge=D("0.05"), destination="France"))
    # 0.012/min reaches the 0.05 minimum at 250 s: the minimum buys 250 s, not 1.
    q = quote(index, "33123456789", T0, 50_000)
    assert (q.allow, q.max_duration_seconds, q.hold_micro, q.first_increment_micro) == (
        True,
        250,
        50_000,
        50_000,
    )
    assert quote(index, "33123456789", T0, 50_200).max_duration_seconds == 251
    assert quote(index, "33123456789", T0, 49_999).reason == "insufficient_funds"


def test_free_seconds_then_fee_and_increments():
    index = deck(Entry("49", D("0.06"), connect_fee=D("0.01"), free_seconds=5))
    # The first charged call lasts 6 s: 0.01 + 6 s at 0.001/s.
    q = quote(index, "4930123456", T0, 16_000)
    assert (q.allow, q.max_duration_seconds, q.first_increment_micro) == (True, 6, 16_000)
    refused = quote(index, "4930123456", T0, 15_999)
    assert (refused.reason, refused.first_increment_micro) == ("insufficient_funds", 16_000)
    # 60/60 after a 5 s grace: any charged call bills a whole minute.
    minute = deck(Entry("49", D("0.06"), first=60, step=60, free_seconds=5))
    assert quote(minute, "4930123456", T0, 60_000).max_duration_seconds == 60
    assert quote(minute, "4930123456", T0, 119_999).max_duration_seconds == 60
    # A cap within the grace: nothing is ever charged.
    assert quote(index, "4930123456", T0, 0, cap_seconds=5) == Quote(
        True, "ok", 5, 0, 16_000, D("0.06"), "", "49"
    )


def test_a_free_destination_gets_the_cap():
    index = deck(Entry("800", D("0")))
    q = quote(index, "800123", T0, 0)
    assert (q.allow, q.max_duration_seconds, q.hold_micro, q.first_increment_micro) == (
        True,
        10_800,
        0,
        0,
    )


def test_a_surcharge_is_held_with_the_usage():
    index = deck(Entry("34", D("0.01"), surcharge=D("0.002")))
    q = quote(index, "34911234567", T0, 12_000)
    assert (q.max_duration_seconds, q.hold_micro) == (60, 12_000)
    assert engine_micro(index, "34911234567", T0, 60) == 12_000


def test_the_rate_in_force_at_the_start_prices_the_whole_call():
    later = int(CHANGE.timestamp())
    index = deck(
        Entry("234", D("0.012"), effective_to=later, destination="Nigeria"),
        Entry("234", D("0.015"), effective_from=later, destination="Nigeria"),
    )
    assert (
        quote(index, "2348031234567", CHANGE - timedelta(seconds=1), 60_000).max_duration_seconds
        == 300
    )
    assert quote(index, "2348031234567", CHANGE, 60_000).max_duration_seconds == 240
    assert quote(index, "2348031234567", int(CHANGE.timestamp()), 60_000).rate == D("0.015")


def test_rounding_is_the_accounts():
    index = deck(Entry("7", D("0.001")))  # a cent every 600 s
    up = Rounding(2, RoundingMethod.UP)
    # Rounded up to cents, every call of up to 600 s costs 0.01; 601 s costs 0.02.
    assert quote(index, "7495", T0, 10_000, rounding=up).max_duration_seconds == 600
    assert quote(index, "7495", T0, 10_000, rounding=up).hold_micro == 10_000
    down = Rounding(2, RoundingMethod.DOWN)
    assert quote(index, "7495", T0, 0, rounding=down).max_duration_seconds == 599


def test_a_graduated_tier_prices_the_next_seconds_from_the_accounts_counter():
    index = deck(Entry("1", D("0.0050")))
    tiers = Contracts(tiers=[US])
    # 540 s into the month: 60 s left at 0.0045, then 0.0040.
    counters = RunCounters(lambda key: Counter(seconds=540))
    q = quote(index, "1212555", T0, 4_500, account="acme", contracts=tiers, counters=counters)
    assert (q.max_duration_seconds, q.hold_micro, q.rate) == (60, 4_500, D("0.0045"))
    counters = RunCounters(lambda key: Counter(seconds=540))
    q = quote(index, "1212555", T0, 8_500, account="acme", contracts=tiers, counters=counters)
    assert (q.max_duration_seconds, q.hold_micro, q.rate) == (120, 8_500, D("0.0040"))
    assert engine_micro(index, "1212555", T0, 120, contracts=tiers, before=540) == 8_500
    assert engine_micro(index, "1212555", T0, 121, contracts=tiers, before=540) == 8_567
    # Without contracts the deck's 0.0050 prices it: 102 s for the same money.
    assert quote(index, "1212555", T0, 8_500).max_duration_seconds == 102


def test_a_tier_rate_given_as_an_override_replaces_the_decks_rate():
    index = deck(Entry("1", D("0.0050"), connect_fee=D("0.001")))
    q = quote(index, "1212555", T0, 5_000, rate_override_e8=400_000)
    assert (q.max_duration_seconds, q.hold_micro, q.rate) == (60, 5_000, D("0.004"))
    with pytest.raises(ValueError, match="not both"):
        quote(index, "1212", T0, 1, contracts=Contracts(tiers=[US]), rate_override_e8=1)
    with pytest.raises(ValueError, match="name the account"):
        quote(index, "1212", T0, 1, contracts=Contracts(tiers=[US]))


def test_a_bundle_covers_its_seconds_then_the_deck_prices_the_rest():
    index = deck(Entry("44", D("0.01")))
    bundles = Contracts(bundles=[Bundle("uk", ("44",), included_seconds=300, fee_units=0)])
    q = quote(index, "4477", T0, 0, account="acme", contracts=bundles)
    assert (q.allow, q.max_duration_seconds, q.hold_micro, q.first_increment_micro) == (
        True,
        300,
        0,
        0,
    )
    used = RunCounters(lambda key: Counter(seconds=290))
    q = quote(index, "4477", T0, 1_000, account="acme", contracts=bundles, counters=used)
    # 10 s left in the bundle, then 0.01/min: 1,000 micro buys 6 s more.
    assert (q.max_duration_seconds, q.hold_micro) == (16, 1_000)
    assert engine_micro(index, "4477", T0, 16, contracts=bundles, before=290) == 1_000
    assert engine_micro(index, "4477", T0, 17, contracts=bundles, before=290) == 1_167


@pytest.mark.parametrize(
    ("callee", "reason"),
    [
        ("9990001", "closed"),
        ("5551234", "no_rate"),
        ("1" * (MAX_DIGITS + 1), "bad_number"),
        ("", "bad_number"),
        (None, "bad_number"),
        ("+4477", "bad_number"),
        ("44 77", "bad_number"),
        ("٤٤٧٧", "bad_number"),  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_reasons_for_refusing(callee, reason):
    q = quote(PLAIN, callee, T0, 10**9)
    assert (q.allow, q.reason, q.max_duration_seconds, q.hold_micro) == (False, reason, 0, 0)
    if reason == "closed":
        assert (q.prefix, q.destination) == ("999", "Closed")


def test_no_deck_is_no_rate_and_the_digit_limit_is_ingests():
    assert quote(None, "4477", T0, 10**9).reason == "no_rate"
    assert MAX_DIGITS == INGEST_MAX_DIGITS
    assert quote(PLAIN, "1" * MAX_DIGITS, T0, 10**9).reason == "ok"  # 32 digits: dialable


def test_an_origin_deck_prices_by_the_caller():
    index = deck(Entry("44", D("0.06")), Entry("44", D("0.12"), origin="1"))
    assert quote(index, "4477", T0, 60_000, caller="15551234").max_duration_seconds == 30
    assert quote(index, "4477", T0, 60_000, caller="33123").max_duration_seconds == 60
    assert quote(index, "4477", T0, 60_000, caller=None).max_duration_seconds == 60


def test_quote_for_takes_the_accounts_plan_deck_rounding_and_contracts():
    parties = Parties(
        {"acme": Account("acme", "customer", rounding=Rounding(2, RoundingMethod.UP))},
        {"acme": deck(Entry("44", D("0.06")))},
        contracts={
            "acme": Contracts(
                tiers=[TierSchedule("uk", ("44",), "graduated", (Tier(None, 3_000_000),))]
            )
        },
        plan_decks={("acme", "eea"): deck(Entry("44", D("0.03")))},
        plan_rules={"acme": {"33": "eea"}},
    )
    # The tier's 0.03/min prices both plans' calls: 0.30 buys 600 s.
    assert quote_for(parties, "acme", "4477", T0, 300_000).max_duration_seconds == 600
    plain = Parties(
        parties.accounts,
        parties.decks,
        plan_decks=parties.plan_decks,
        plan_rules=parties.plan_rules,
    )
    assert quote_for(plain, "acme", "4477", T0, 300_000).max_duration_seconds == 300
    assert (
        quote_for(plain, "acme", "4477", T0, 300_000, caller="+33 1 23").max_duration_seconds == 600
    )
    assert quote_for(plain, "acme", "4477", T0, 300_000, plan="eea").max_duration_seconds == 600
    assert quote_for(plain, "acme", "4477", T0, 300_000, plan="other").reason == "no_rate"
    # Rounded up to cents: 0.01 buys 10 s at 0.06/min.
    assert quote_for(plain, "acme", "4477", T0, 10_000).max_duration_seconds == 10
    with pytest.raises(KeyError):
        quote_for(plain, "nobody", "4477", T0, 1)


def test_the_steps_are_priced_in_at_most_two_vectorised_engine_calls(monkeypatch):
    seen = []
    real = allowance.price_numbers

    def counting(index, numbers, start, answered, rounding, callers=None):
        seen.append(len(answered))
        return real(index, numbers, start, answered, rounding, callers)

    monkeypatch.setattr(allowance, "price_numbers", counting)
    # 1/1 up to a 600 s cap: one engine call, the shortest charged call and 600 step ends.
    assert quote(PLAIN, "15551234567", T0, 100_000_000, cap_seconds=600).hold_micro == 60_000
    assert seen == [601]
    # Up to 3 h: the shortest call and every 103rd step end from the first (105) and the cap,
    # then the 104 step ends from the last one covered to the first one not covered.
    seen.clear()
    q = quote(PLAIN, "15551234567", T0, 654_321)
    assert (q.max_duration_seconds, q.hold_micro) == (6_543, 654_300)
    assert seen == [1 + 105 + 1, 104]
    # The answer on a coarse step end itself (ends[103] = 104 s): the second pass has it.
    seen.clear()
    q = quote(PLAIN, "15551234567", T0, 10_450)
    assert (q.max_duration_seconds, q.hold_micro, seen) == (104, 10_400, [107, 104])
    seen.clear()
    assert quote(PLAIN, "15551234567", T0, 10**9).max_duration_seconds == 10_800
    assert seen == [107]  # the cap is covered: no second pass


# --- properties against the engine --------------------------------------------------------


def e8(low: int, high: int, *usual: int) -> st.SearchStrategy[Decimal]:
    """An amount of whole 10^-8 units: 0, one of the `usual` or any from low to high."""
    units = st.one_of(st.just(0), st.sampled_from(usual or (low,)), st.integers(low, high))
    return units.map(lambda n: D(n).scaleb(-8))


@st.composite
def terms(draw) -> dict:
    return {
        "rate": draw(e8(100_000, 100_000_000, 450_000, 1_200_000, 6_000_000, 35_000_000)),
        "connect_fee": draw(e8(1, 5_000_000, 1_000_000)),
        "first": draw(st.sampled_from([1, 6, 30, 60, 7])),
        "step": draw(st.sampled_from([1, 6, 30, 60, 13])),
        "minimum_charge": draw(st.one_of(st.just(D(0)), e8(1, 20_000_000, 5_000_000))),
        "free_seconds": draw(st.sampled_from([0, 0, 3, 6, 61])),
        "surcharge": draw(st.one_of(st.just(D(0)), e8(1, 2_000_000, 120_000))),
    }


ROUNDINGS = st.builds(Rounding, st.integers(0, 6), st.sampled_from(list(RoundingMethod)))


@st.composite
def cases(draw):
    old, new = draw(terms()), draw(terms())
    change = int(CHANGE.timestamp())
    index = deck(
        Entry("1", effective_to=change, destination="USA", **old),
        Entry("1", effective_from=change, destination="USA", **new),
        Entry("12", **draw(terms()), destination="USA-12"),
    )
    callee = draw(st.sampled_from(["15551234567", "12125551234"]))
    start = CHANGE + timedelta(seconds=draw(st.integers(-3 * 86_400, 3 * 86_400)))
    contracts = None
    before = 0
    if draw(st.booleans()):
        rates = draw(st.lists(st.integers(0, 3_000_000), min_size=1, max_size=3))
        bounds = sorted(
            draw(st.sets(st.integers(1, 5_000), min_size=len(rates) - 1, max_size=len(rates) - 1))
        )
        tiers = tuple(Tier(b, r) for b, r in zip([*bounds, None], rates, strict=True))
        schedule = TierSchedule("us", ("1",), draw(st.sampled_from(["graduated", "volume"])), tiers)
        bundles = []
        if draw(st.booleans()):
            bundles = [Bundle("b", ("12",), draw(st.integers(0, 600)), 0)]
        contracts = Contracts(tiers=[schedule], bundles=bundles)
        before = draw(st.one_of(st.integers(0, 300), st.integers(0, 6_000)))
    available = draw(st.one_of(st.integers(-10, 100_000), st.integers(0, 5_000_000)))
    cap = draw(st.sampled_from([10_800, 10_800, 86_400, 3_000, 600, 61, 5, 0]))
    return index, callee, start, draw(ROUNDINGS), contracts, before, available, cap


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_longest_call_is_what_the_engine_charges_within_the_money(case):
    index, callee, start, rounding, contracts, before, available, cap = case
    counters = RunCounters(lambda key: Counter(seconds=before))
    q = quote(
        index, callee, start, available,
        rounding=rounding, cap_seconds=cap, account="acme", contracts=contracts, counters=counters,
    )  # fmt: skip

    def engine(seconds: int) -> int:
        return engine_micro(index, callee, start, seconds, rounding, contracts, before)

    capped = "capped" if q.max_duration_seconds == cap else "within"
    event(f"{q.reason} {capped if q.allow else ''} contracts={contracts is not None}")
    row = int(index.lookup(pa.array([callee]), np.array([int(start.timestamp())]))[0])
    shortest = int(index.free_seconds[row]) + 1
    assert q.first_increment_micro == engine(shortest)
    if not q.allow:
        assert q.reason == "insufficient_funds"
        assert engine(shortest) > available and cap >= shortest
        return
    longest = q.max_duration_seconds
    assert 0 <= longest <= cap
    assert q.hold_micro == engine(longest) <= max(available, 0)
    if longest < cap:
        assert engine(longest + 1) > available


@settings(max_examples=60, deadline=None)
@given(cases(), st.integers(0, 10_800), st.integers(1, 120))
def test_longer_calls_never_cost_less_and_more_money_never_buys_less(case, seconds, more):
    index, callee, start, rounding, contracts, before, available, cap = case
    assert engine_micro(index, callee, start, seconds, rounding, contracts, before) <= engine_micro(
        index, callee, start, seconds + more, rounding, contracts, before
    )
    kwargs = {"rounding": rounding, "cap_seconds": cap, "account": "acme", "contracts": contracts}
    less = quote(
        index,
        callee,
        start,
        available,
        **kwargs,
        counters=RunCounters(lambda k: Counter(seconds=before)),
    )
    richer = quote(
        index,
        callee,
        start,
        available + more * 1_000,
        **kwargs,
        counters=RunCounters(lambda k: Counter(seconds=before)),
    )
    assert less.max_duration_seconds <= richer.max_duration_seconds
    assert less.hold_micro <= richer.hold_micro
