"""Tier and bundle arithmetic (issue 10 §2, the counting half of §3), against a Decimal reference.

New in issue 10: functions.rate.tiers did not exist, so every test fails on the code before it.
The reference below reads a contract as typed (tier bounds in minutes, rates per minute) and
prices it with plain Decimal arithmetic, one call at a time; it shares no code with the module.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.rate.tiers import (
    Bundle,
    Tier,
    TierSchedule,
    bundle_split,
    graduated_exact,
    graduated_file,
    group_of,
    parse_minutes,
    parse_tiers,
    period_exact,
    period_of,
    tier_seconds,
    volume_exact,
    volume_provisional,
    volume_true_up,
)
from functions.shared.money import Rounding

SEED = "100000:0.0045,:0.0040"  # "0.0045/min for the first 100,000 minutes, then 0.0040/min"
SEED_SECONDS = 7_407_390  # 123,456.5 minutes
CENTS = Rounding(2, "half_up")
METHODS = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "down": ROUND_DOWN}
SETTINGS = settings(max_examples=60, deadline=None)


# ---- the reference: a contract as typed, priced with Decimal ---------------------------------


def contract(text: str) -> list[tuple[Decimal | None, Decimal]]:
    """'100000:0.0045,:0.0040' → [(bound in minutes or None, rate per minute)]."""
    tiers = []
    for part in text.split(","):
        bound, rate = part.split(":")
        tiers.append((Decimal(bound) if bound else None, Decimal(rate)))
    return tiers


def ref_graduated(terms, seconds: int) -> Decimal:
    """The price of a period's first `seconds`: each tier's minutes at the tier's rate."""
    numerator = Decimal(0)  # price x 60: rate per minute x seconds stays exact
    lower = Decimal(0)
    for bound, rate in terms:
        upper = Decimal(seconds) if bound is None else min(Decimal(seconds), bound * 60)
        if upper > lower:
            numerator += rate * (upper - lower)
        if bound is not None:
            lower = bound * 60
    return _per_minute(numerator)


def ref_volume(terms, seconds: int) -> Decimal:
    """The price of a period of `seconds`: all of them at the rate of the tier the total reaches
    (a total equal to a tier's bound is still in that tier)."""
    rate = next(rate for bound, rate in terms if bound is None or seconds <= bound * 60)
    return _per_minute(rate * seconds)


def _per_minute(numerator: Decimal) -> Decimal:
    # One division, correctly rounded to 60 digits: exact whenever the price is a finite
    # decimal (so exact halves stay halves) and far closer than any rounding step otherwise.
    with localcontext() as context:
        context.prec = 60
        return numerator / 60


def exact_price(units: int) -> Decimal:
    """An exact amount of the module (10^-8/60 units) as a Decimal price."""
    return _per_minute(Decimal(units).scaleb(-8))


def money(value: Decimal, rounding: Rounding) -> int:
    """A price rounded by the contract's rule, in units of 10^-decimals."""
    step = Decimal(1).scaleb(-rounding.decimals)
    return int(
        value.quantize(step, rounding=METHODS[str(rounding.method)]).scaleb(rounding.decimals)
    )


def schedule(text: str, mode: str = "graduated", prefixes=("1",)) -> TierSchedule:
    return TierSchedule("us", prefixes, mode, parse_tiers(text))


def charge_files(price_file, files: list[list[int]], rounding: Rounding) -> list[np.ndarray]:
    """Charge files one after another, keeping the period's counter as the pipeline does."""
    before, out = 0, []
    for calls in files:
        out.append(price_file(before, np.array(calls, dtype=np.int64), rounding))
        before += sum(calls)
    return out


# ---- the seed contract ------------------------------------------------------------------------


def test_seed_contract_graduated_543_83_and_volume_493_83():
    graduated, volume = schedule(SEED), schedule(SEED, "volume")
    terms = contract(SEED)
    assert ref_graduated(terms, SEED_SECONDS) == Decimal("543.826")
    assert ref_volume(terms, SEED_SECONDS) == Decimal("493.826")

    assert graduated_exact(graduated, SEED_SECONDS) == 3_262_956_000_000  # 543.826 x 60 x 10^8
    assert volume_exact(volume, SEED_SECONDS) == 2_962_956_000_000
    # A month of calls charged as they arrive comes to the contract's 543.83 ...
    month = [[3_000_000, 3_000_000], [1_000_000, 407_389], [1]]
    charged = charge_files(lambda *a: graduated_file(graduated, *a), month, CENTS)
    assert sum(int(a.sum()) for a in charged) == 54_383
    # ... and the volume contract's provisional charges, trued up at close, to 493.83.
    provisional = charge_files(lambda *a: volume_provisional(volume, *a), month, CENTS)
    paid = sum(int(a.sum()) for a in provisional)
    assert paid == 54_383
    assert volume_true_up(volume, SEED_SECONDS, paid, CENTS) == -5_000
    assert paid + volume_true_up(volume, SEED_SECONDS, paid, CENTS) == 49_383


def test_minute_100000_is_still_tier_1_in_both_modes():
    graduated, volume = schedule(SEED), schedule(SEED, "volume")
    micro = Rounding(6)
    at_bound = 6_000_000
    for tiers in (graduated, volume):
        assert period_exact(tiers, at_bound) == at_bound * 450_000  # all at 0.0045
        assert graduated_file(graduated, 0, np.array([at_bound]), CENTS).tolist() == [45_000]
    assert tier_seconds(volume, at_bound) == (at_bound, 0)
    assert tier_seconds(graduated, at_bound) == (at_bound, 0)
    # One second more: that second is tier 2 (graduated), or the whole period is (volume).
    assert graduated_file(graduated, at_bound, np.array([1]), micro).tolist() == [67]  # 0.004/60
    assert volume_true_up(volume, at_bound + 1, 0, micro) == 400_000_067  # 400.0000666...
    assert tier_seconds(volume, at_bound + 1) == (0, at_bound + 1)
    assert tier_seconds(graduated, at_bound + 1) == (at_bound, 1)


# ---- graduated: order, split, per call, monotone ---------------------------------------------

bounds_6s = st.lists(st.integers(1, 20_000), min_size=0, max_size=3, unique=True)
rates_e8 = st.integers(0, 10_000_000)  # up to 0.1 per minute
roundings = st.builds(Rounding, st.integers(0, 8), st.sampled_from(["half_up", "up", "down"]))


@st.composite
def contracts(draw) -> str:
    """A contract as an operator would type it: bounds in minutes (0.1-minute steps)."""
    bounds = sorted(draw(bounds_6s))
    rates = [draw(rates_e8) for _ in range(len(bounds) + 1)]
    parts = [
        f"{Decimal(b * 6) / 60}:{Decimal(r).scaleb(-8)}"
        for b, r in zip(bounds, rates, strict=False)
    ]
    return ",".join([*parts, f":{Decimal(rates[-1]).scaleb(-8)}"])


@st.composite
def period_of_files(draw, max_seconds: int = 20_000) -> tuple[list[int], list[list[int]]]:
    """A period's calls (billed seconds), and the same calls in another order and split."""
    calls = draw(st.lists(st.integers(0, max_seconds), min_size=0, max_size=25))
    shuffled = draw(st.permutations(calls))
    cuts = sorted(draw(st.lists(st.integers(0, len(calls)), max_size=5)))
    files = [shuffled[a:b] for a, b in itertools.pairwise([0, *cuts, len(calls)])]
    return calls, files


@SETTINGS
@given(contracts(), period_of_files(), roundings)
def test_graduated_any_split_and_order_charges_exactly_the_rounded_period_total(
    text, period, rounding
):
    calls, files = period
    tiers, terms = schedule(text), contract(text)
    charged = charge_files(lambda *a: graduated_file(tiers, *a), files, rounding)
    in_order = graduated_file(tiers, 0, np.array(calls, dtype=np.int64), rounding)

    total = sum(calls)
    expected = money(ref_graduated(terms, total), rounding)
    assert sum(int(a.sum()) for a in charged) == expected
    assert int(in_order.sum()) == expected
    # Each call: the rounded reference at its two cumulative points, and within one unit of
    # the exact price of its own seconds in the tiers they fall in.
    before = 0
    for calls_of_file, amounts in zip(files, charged, strict=True):
        for seconds, amount in zip(calls_of_file, amounts.tolist(), strict=True):
            low, high = ref_graduated(terms, before), ref_graduated(terms, before + seconds)
            assert amount == money(high, rounding) - money(low, rounding)
            assert abs(Decimal(amount).scaleb(-rounding.decimals) - (high - low)) < Decimal(
                1
            ).scaleb(-rounding.decimals)
            before += seconds


@SETTINGS
@given(contracts(), st.lists(st.integers(0, 200_000), min_size=1, max_size=30), roundings)
def test_graduated_more_seconds_never_cost_less(text, points, rounding):
    tiers = schedule(text)
    points = sorted(points)
    exact = graduated_exact(tiers, np.array(points, dtype=np.int64))
    # The vectorised price is the scalar one, point by point, and the reference.
    assert exact.tolist() == [graduated_exact(tiers, p) for p in points]
    assert [exact_price(e) for e in exact.tolist()] == [
        ref_graduated(contract(text), p) for p in points
    ]
    assert np.all(np.diff(exact) >= 0)
    steps = np.diff(np.array(points))
    amounts = graduated_file(tiers, points[0], steps, rounding)
    assert np.all(amounts >= 0)


def test_prices_beyond_int64_are_exact_python_integers():
    # 10^7 per minute for 10^9 seconds: 10^15 x 10^9 = 10^24 units of 10^-8/60.
    tiers = schedule("1000:10000000,:9000000")
    seconds = 1_000_000_000
    exact = graduated_exact(tiers, np.array([seconds, 60_000], dtype=np.int64))
    assert exact.tolist() == [
        10**15 * 60_000 + 9 * 10**14 * (seconds - 60_000),
        10**15 * 60_000,
    ]
    assert graduated_exact(tiers, seconds) == exact[0]
    assert volume_exact(schedule("1000:10000000,:9000000", "volume"), seconds) == 9 * 10**23
    amounts = graduated_file(tiers, 0, np.array([60_000, seconds - 60_000]), CENTS)
    assert amounts.tolist() == [10**12, 15 * 10**6 * (seconds - 60_000)]  # cents


def test_a_schedule_is_charged_only_by_its_own_mode():
    with pytest.raises(ValueError, match="tier us is volume, not graduated"):
        graduated_file(schedule(SEED, "volume"), 0, np.array([60]), CENTS)
    with pytest.raises(ValueError, match="tier us is graduated, not volume"):
        volume_provisional(schedule(SEED), 0, np.array([60]), CENTS)
    with pytest.raises(ValueError, match="must not be negative"):
        graduated_file(schedule(SEED), 0, np.array([60, -1]), CENTS)
    with pytest.raises(ValueError, match="whole numbers of seconds"):
        graduated_file(schedule(SEED), 0, np.array([60.0]), CENTS)


# ---- volume: provisional, then one true-up ---------------------------------------------------


@SETTINGS
@given(contracts(), period_of_files(), roundings)
def test_volume_provisional_plus_true_up_is_the_rounded_volume_price_in_any_order(
    text, period, rounding
):
    calls, files = period
    tiers, terms = schedule(text, "volume"), contract(text)
    charged = charge_files(lambda *a: volume_provisional(tiers, *a), files, rounding)
    paid = sum(int(a.sum()) for a in charged)
    total = sum(calls)
    # The rule: provisional charges price each second at the tier reached so far, i.e. the
    # graduated price of the same tiers, whatever the order.
    assert paid == money(ref_graduated(terms, total), rounding)
    assert all(np.all(a >= 0) for a in charged)
    true_up = volume_true_up(tiers, total, paid, rounding)
    assert paid + true_up == money(ref_volume(terms, total), rounding)


@SETTINGS
@given(contracts(), st.integers(0, 200_000))
def test_tier_seconds_add_up_to_the_period_and_its_price(text, total):
    for mode in ("graduated", "volume"):
        tiers = schedule(text, mode)
        used = tier_seconds(tiers, total)
        assert sum(used) == total
        assert sum(s * t.rate_e8 for s, t in zip(used, tiers.tiers, strict=True)) == (
            period_exact(tiers, total)
        )
        reference = ref_volume if mode == "volume" else ref_graduated
        assert exact_price(period_exact(tiers, total)) == reference(contract(text), total)


# ---- bundles ---------------------------------------------------------------------------------


def ref_bundle(included: int, calls: list[int]) -> list[int]:
    """Included seconds per call, one call at a time in the order given."""
    left, out = included, []
    for seconds in calls:
        take = min(seconds, left)
        out.append(take)
        left -= take
    return out


@SETTINGS
@given(st.integers(0, 50_000), period_of_files(max_seconds=5_000))
def test_bundle_covers_at_most_its_seconds_in_any_split_and_order(included, period):
    calls, files = period
    bundle = Bundle("us-1000", ("1",), included, 25_000_000)
    before, covered = 0, []
    for calls_of_file in files:
        inside, beyond = bundle_split(bundle, before, np.array(calls_of_file, dtype=np.int64))
        assert (inside + beyond).tolist() == calls_of_file
        assert np.all(inside >= 0) and np.all(beyond >= 0)
        covered.extend(inside.tolist())
        before += sum(calls_of_file)
    assert covered == ref_bundle(included, list(itertools.chain.from_iterable(files)))
    assert sum(covered) == min(included, sum(calls))


def test_bundle_split_after_the_counter_and_when_used_up():
    bundle = Bundle("us", ("1",), 600, 0)
    inside, beyond = bundle_split(bundle, 400, np.array([60, 120, 30, 90]))
    assert inside.tolist() == [60, 120, 20, 0]
    assert beyond.tolist() == [0, 0, 10, 90]
    inside, beyond = bundle_split(bundle, 900, np.array([60]))
    assert (inside.tolist(), beyond.tolist()) == ([0], [60])


# ---- groups and periods ----------------------------------------------------------------------


def test_group_of_longest_prefix_across_groups():
    groups = [("1",), ("1242", "1246"), ("44", "447")]
    callees = pa.chunked_array(
        [["12425550100", "15550100", "12465550100"], ["447700900123", "4420", "33", None, "1"]]
    )
    assert group_of(callees, groups).tolist() == [1, 0, 1, 2, 2, -1, -1, 0]
    assert group_of(callees, groups).dtype == np.int32
    with pytest.raises(ValueError, match="prefix 1242 is in groups 0 and 1"):
        group_of(callees, [("1242",), ("1242", "1")])


@SETTINGS
@given(
    st.lists(
        st.lists(st.text("0123", min_size=1, max_size=4), min_size=1, max_size=4, unique=True),
        max_size=4,
    ),
    st.lists(st.one_of(st.none(), st.text("0123", max_size=6)), max_size=30),
)
def test_group_of_matches_a_per_call_longest_prefix(groups, callees):
    owner = {}
    for index, prefixes in enumerate(groups):
        for prefix in prefixes:
            owner.setdefault(prefix, index)
    groups = [tuple(p for p in ps if owner[p] == i) for i, ps in enumerate(groups)]
    groups = [g for g in groups if g]

    def reference(number):
        if number is None:
            return -1
        found = [(len(p), i) for i, ps in enumerate(groups) for p in ps if number.startswith(p)]
        return max(found)[1] if found else -1

    result = group_of(pa.array(callees, pa.string()), groups)
    assert result.tolist() == [reference(c) for c in callees]


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def test_period_is_the_calendar_month_in_the_accounts_time_zone():
    starts = np.array(
        [epoch("2026-03-31T22:30:00+00:00"), epoch("2026-04-01T03:59:59+00:00")], dtype=np.int64
    )
    assert period_of(starts, "UTC").tolist() == ["2026-03", "2026-04"]
    assert period_of(starts, "Europe/Berlin").tolist() == ["2026-04", "2026-04"]
    assert period_of(starts, "America/New_York").tolist() == ["2026-03", "2026-03"]
    assert period_of(np.array([], dtype=np.int64), "UTC").tolist() == []
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        period_of(starts, "Mars/Olympus")


def test_period_follows_the_clock_back_across_midnight_and_over_a_gap():
    # St John's, 1 Nov 2009: at 00:01 NDT (02:31 UTC) clocks went back to 23:01 NST on
    # 31 October, so an hour after November began, the local calendar read October again.
    starts = [
        "2009-11-01T02:30:59+00:00",  # 00:00:59 NDT, 1 November
        "2009-11-01T02:31:00+00:00",  # 23:01 NST, 31 October again
        "2009-11-01T03:29:59+00:00",  # 23:59:59 NST, 31 October
        "2009-11-01T03:30:00+00:00",  # 00:00 NST, 1 November for good
    ]
    seconds = np.array([epoch(s) for s in starts], dtype=np.int64)
    assert period_of(seconds, "America/St_Johns").tolist() == [
        "2009-11",
        "2009-10",
        "2009-10",
        "2009-11",
    ]
    # Casablanca, 1 June 2008: midnight never happened (00:00 WET became 01:00 WEST).
    starts = ["2008-05-31T23:59:59+00:00", "2008-06-01T00:00:00+00:00"]
    seconds = np.array([epoch(s) for s in starts], dtype=np.int64)
    assert period_of(seconds, "Africa/Casablanca").tolist() == ["2008-05", "2008-06"]


ZONES = [
    "UTC",
    "America/St_Johns",
    "America/Havana",
    "Africa/Casablanca",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/Sao_Paulo",
]


@SETTINGS
@given(
    st.lists(st.integers(epoch("1990-01-01T00:00:00+00:00"), epoch("2040-01-01T00:00:00+00:00"))),
    st.sampled_from(ZONES),
)
def test_period_matches_the_local_calendar_call_by_call(starts, zone):
    expected = [
        datetime.fromtimestamp(s, UTC).astimezone(ZoneInfo(zone)).strftime("%Y-%m") for s in starts
    ]
    assert period_of(np.array(starts, dtype=np.int64), zone).tolist() == expected


# ---- parsing and validation ------------------------------------------------------------------


def test_parse_tiers_reads_minutes_and_exact_rates():
    assert parse_tiers(SEED) == (Tier(6_000_000, 450_000), Tier(None, 400_000))
    assert parse_tiers(" 2500.5 : 0.01 , 5000:0.00999999,:0") == (
        Tier(150_030, 1_000_000),
        Tier(300_000, 999_999),
        Tier(None, 0),
    )
    assert parse_minutes("0.25") == 15


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("100000:0.0045", "tier 1: the last tier must be open-ended"),
        ("100:0.01,:0.02,:0.03", "tier 2: only the last tier may be open-ended"),
        ("100:0.01,100:0.02,:0.03", "tier 2: its bound (100 minutes) must be above 100 minutes"),
        ("100:0.01,50:0.02,:0.03", "tier 2: its bound (50 minutes) must be above 100 minutes"),
        ("100:0.01,2500.123:0.02,:0.03", "tier 2: '2500.123' minutes is not a whole number"),
        ("100:0.01,abc:0.02,:0.03", "tier 2: 'abc' is not a number of minutes"),
        ("100:0.01,-5:0.02,:0.03", "tier 2: '-5' is not a number of minutes >= 0"),
        ("0:0.01,:0.02", "tier 1: a bound of 0 minutes leaves the tier empty"),
        ("100:0.01,:0.000000001", "tier 2: rate '0.000000001' has more than 8 decimal places"),
        ("100:0.01,:-0.002", "tier 2: rate '-0.002' is negative"),
        ("100:0.01,:x", "tier 2: rate 'x' is not a number"),
        ("100:0.01,:", "tier 2: the rate is missing"),
        ("100:0.01,0.004", "tier 2: '0.004' is not MINUTES:RATE"),
        ("100:0.01,:inf", "tier 2: rate 'inf' is not a finite number"),
    ],
)
def test_parse_tiers_names_the_tier_at_fault(text, message):
    with pytest.raises(ValueError) as raised:
        parse_tiers(text)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefixes": ()}, "at least one prefix"),
        ({"prefixes": ("1", "+44")}, "prefix '\\+44' is not a string of digits"),
        ({"prefixes": ("1", "44", "1")}, "prefix 1 is listed twice"),
        ({"mode": "flat"}, "tier mode must be one of graduated, volume"),
        ({"period": "week"}, "tier period must be one of month"),
        ({"name": "us#1"}, "invalid tier id"),
        ({"tiers": ()}, "at least one tier"),
        ({"tiers": (Tier(60, -1), Tier(None, 1))}, "tier 1: the rate must be"),
        ({"tiers": (Tier(120, 1), Tier(60, 1), Tier(None, 1))}, "tier 2: its bound"),
    ],
)
def test_tier_schedule_refuses_what_cannot_be_priced(kwargs, message):
    fields = {"name": "us", "prefixes": ("1",), "mode": "graduated", "tiers": parse_tiers(SEED)}
    with pytest.raises(ValueError, match=message):
        TierSchedule(**(fields | kwargs))


def test_bundle_refuses_negative_minutes_or_fee():
    with pytest.raises(ValueError, match="included seconds must be a whole number >= 0"):
        Bundle("us", ("1",), -60, 0)
    with pytest.raises(ValueError, match="fee must be a whole number >= 0"):
        Bundle("us", ("1",), 60, -1)
    with pytest.raises(ValueError, match="not a string of digits"):
        Bundle("us", ("1x",), 60, 0)


@SETTINGS
@given(contracts(), st.integers(0, 10**9), roundings)
def test_with_falling_rates_provisional_charges_are_never_below_the_volume_price(
    text, total, rounding
):
    """Why volume tiers are charged at the graduated price until close: when each tier is
    cheaper than the one before (the usual contract), the month is never charged less than
    it will finally cost, so the true-up is a refund or nothing."""
    falling = ",".join(
        f"{bound}:{rate}"
        for (bound, _), rate in zip(
            contract(text),
            sorted((r for _, r in contract(text)), reverse=True),
            strict=True,
        )
    ).replace("None", "")
    tiers = schedule(falling, "volume")
    charged = volume_provisional(tiers, 0, np.array([total]), rounding)
    assert volume_true_up(tiers, total, int(charged.sum()), rounding) <= 0
