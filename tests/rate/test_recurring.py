"""Recurring fees (DIDs, bundles), proration by day and inbound DID calls, to the micro-unit.

Every amount is checked against the naive Decimal reference below, which counts days one by
one and divides in Decimal; it shares no code with functions.rate.recurring.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.rate.recurring import (
    COMPONENT_RECURRING,
    BundleFee,
    Did,
    RecurringCharge,
    did_amounts,
    did_from_text,
    did_owner,
    prorate,
    recurring_for,
    recurring_reference,
    service_days,
)
from functions.shared.ids import check_token
from functions.shared.money import Rounding

MODES = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "down": ROUND_DOWN}
DAY = dt.timedelta(days=1)
TODAY = dt.date(2026, 3, 5)


# --- the reference ----------------------------------------------------------------------------


def ref_days(period: str, start: dt.date, end: dt.date | None) -> tuple[int, int]:
    """Days of service in the month, counted one by one."""
    year, month = map(int, period.split("-"))
    day, days, total = dt.date(year, month, 1), 0, 0
    while day.month == month:
        total += 1
        days += start <= day and (end is None or day <= end)
        day += DAY
    return days, total


def ref_fee(fee: Decimal, days: int, period_days: int, decimals: int, method: str) -> int:
    """fee·days/period_days rounded once to `decimals` by `method`, in micro-units."""
    with localcontext() as context:
        context.prec = 60  # far beyond any digit the rounding looks at
        exact = fee * days / period_days
        rounded = exact.quantize(Decimal(1).scaleb(-decimals), rounding=MODES[method])
        return int(rounded.scaleb(6))


def ref_owner(callee: str | None, moment: int, dids: list[Did], zone: str) -> int:
    """The index of the DID a call reached, by the call's local day; -1 for none."""
    day = dt.datetime.fromtimestamp(moment, ZoneInfo(zone)).date()
    for index, did in enumerate(dids):
        if callee == did.number and did.start <= day and (did.end is None or day <= did.end):
            return index
    return -1


def micro(text: str) -> int:
    return int(Decimal(text).scaleb(6))


def did(number="442071234567", account="acme", monthly="2.00", start="2026-03-17", **kw) -> Did:
    return did_from_text(number, account, monthly, start=start, today=TODAY, **kw)


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


# --- proration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decimals", "method", "expected"),
    [(2, "half_up", "0.97"), (2, "down", "0.96"), (2, "up", "0.97"), (6, "half_up", "0.967742")],
)
def test_from_17_march_a_31_day_month_pays_15_31_of_the_fee(decimals, method, expected):
    days, period_days = service_days("2026-03", dt.date(2026, 3, 17), None)
    assert (days, period_days) == (15, 31)
    amount = prorate(micro("2.00"), days, period_days, Rounding(decimals, method))
    assert amount == micro(expected) == ref_fee(Decimal("2.00"), 15, 31, decimals, method)


@pytest.mark.parametrize(
    ("period", "start", "end", "days", "period_days"),
    [
        ("2026-04", "2026-01-05", None, 30, 30),  # a whole month
        ("2026-03", "2026-03-10", "2026-03-20", 11, 31),  # start and end in the same month
        ("2026-03", "2026-03-31", "2026-03-31", 1, 31),  # one day
        ("2028-02", "2028-02-10", None, 20, 29),  # February of a leap year
        ("2028-02", "2027-12-01", None, 29, 29),
        ("2027-02", "2027-02-10", None, 19, 28),
        ("2026-03", "2026-01-05", "2026-03-31", 31, 31),  # released on the last day
        ("2026-04", "2026-01-05", "2026-03-31", 0, 30),  # ... so April owes nothing
        ("2026-03", "2026-02-01", "2026-03-01", 1, 31),  # released on the first day
        ("2026-02", "2026-03-17", None, 0, 28),  # before the service starts
    ],
)
@pytest.mark.parametrize("fee", ["2.00", "3.333333", "0.01", "49.99"])
@pytest.mark.parametrize("rounding", [Rounding(2, "half_up"), Rounding(4, "up"), Rounding(0)])
def test_proration_examples(period, start, end, days, period_days, fee, rounding):
    start = dt.date.fromisoformat(start)
    end = end and dt.date.fromisoformat(end)
    assert service_days(period, start, end) == (days, period_days) == ref_days(period, start, end)
    expected = ref_fee(Decimal(fee), days, period_days, rounding.decimals, rounding.method)
    assert prorate(micro(fee), days, period_days, rounding) == expected


def test_service_days_and_prorate_refuse_nonsense():
    for period in ("2026-3", "2026-13", "2026-00", "26-03", "2026/03", "0000-01"):
        with pytest.raises(ValueError, match="period"):
            service_days(period, dt.date(2026, 3, 1), None)
    with pytest.raises(ValueError, match="days of service"):
        prorate(micro("2.00"), 32, 31, Rounding(2))
    with pytest.raises(ValueError, match="decimals"):
        prorate(micro("2.00"), 3, 31, Rounding(8))


@given(
    start=st.dates(dt.date(2023, 1, 1), dt.date(2029, 12, 31)),
    span=st.integers(1, 800),
    open_end=st.booleans(),
    cents=st.integers(0, 1_000_000),
    decimals=st.integers(0, 6),
    method=st.sampled_from(sorted(MODES)),
    cut=st.floats(0, 1),
)
@settings(max_examples=150, deadline=None)
def test_consecutive_months_add_up_to_whole_fees(
    start, span, open_end, cents, decimals, method, cut
):
    """Whole months pay the fee exactly, partial ones their days' share and never more; the
    days of the months add up to the service; a service split into consecutive records of the
    same account charges what one record does."""
    rounding = Rounding(decimals, method)
    fee = cents * 10 ** (6 - decimals)  # a fee the account's rounding can express
    end = start + (span - 1) * DAY
    whole = Did("442071234567", "acme", fee, 0, 0, start, None if open_end else end)
    split = [whole]
    if span > 1:  # released on `last` and taken again the next day
        last = start + int(cut * (span - 2)) * DAY
        split = [
            Did("442071234567", "acme", fee, 0, 0, start, last),
            Did("442071234567", "acme", fee, 0, 0, last + DAY, whole.end),
        ]
    served = 0
    month = start.replace(day=1)
    while month <= end:
        period = f"{month:%Y-%m}"
        days, period_days = service_days(period, whole.start, whole.end)
        assert (days, period_days) == ref_days(period, start, whole.end)
        served += days
        charges = recurring_for(period, [whole], [], lambda _: rounding)
        amount = sum(c.amount_units for c in charges)
        assert amount == ref_fee(Decimal(fee).scaleb(-6), days, period_days, decimals, method)
        assert amount <= fee
        if days == period_days:
            assert amount == fee
        assert recurring_for(period, split, [], lambda _: rounding) == charges
        month = (month + 32 * DAY).replace(day=1)
    assert served >= span if open_end else served == span


# --- the scheduled job's charges --------------------------------------------------------------


def test_a_did_from_17_march_and_a_bundle_from_10_march():
    dids = [did(setup="5.00", per_minute="0.002")]
    bundles = [BundleFee("acme", "us-100k", micro("50.00"), dt.date(2026, 3, 10))]
    two_decimals = lambda _: Rounding(2)  # noqa: E731
    march = recurring_for("2026-03", dids, bundles, two_decimals)
    assert march == [
        RecurringCharge(
            "acme",
            COMPONENT_RECURRING,
            "bundle:us-100k:monthly",
            "2026-03",
            ref_fee(Decimal("50.00"), 22, 31, 2, "half_up"),  # 35.48
            "rec:2026-03:acme:bundle:us-100k:monthly",
            "bundle us-100k monthly fee 2026-03, 22/31 days",
        ),
        RecurringCharge(
            "acme",
            COMPONENT_RECURRING,
            "did:442071234567:monthly",
            "2026-03",
            micro("0.97"),
            "rec:2026-03:acme:did:442071234567:monthly",
            "DID 442071234567 monthly fee 2026-03, 15/31 days",
        ),
        RecurringCharge(
            "acme",
            COMPONENT_RECURRING,
            "did:442071234567:setup",
            "2026-03",
            micro("5.00"),
            "rec:once:acme:did:442071234567:setup",
            "DID 442071234567 setup fee",
        ),
    ]
    assert march[0].amount_units == micro("35.48")
    april = recurring_for("2026-04", dids, bundles, two_decimals)
    assert [(c.item, c.amount_units, c.reference) for c in april] == [
        ("bundle:us-100k:monthly", micro("50.00"), "rec:2026-04:acme:bundle:us-100k:monthly"),
        ("did:442071234567:monthly", micro("2.00"), "rec:2026-04:acme:did:442071234567:monthly"),
    ]
    assert recurring_for("2026-03", dids, bundles, two_decimals) == march  # a rerun: the same
    assert recurring_for("2026-02", dids, bundles, two_decimals) == []  # before any service


def test_each_account_is_charged_by_its_own_rounding():
    dids = [did(account="acme"), did("442071234568", account="bolt")]
    rules = {"acme": Rounding(2, "down"), "bolt": Rounding(6)}
    charges = recurring_for("2026-03", dids, [], rules.__getitem__)
    assert [(c.account, c.amount_units) for c in charges] == [
        ("acme", micro("0.96")),
        ("bolt", micro("0.967742")),
    ]


def test_a_month_outside_the_service_charges_nothing():
    dids = [did(start="2026-03-17", end="2026-04-30", setup="5.00")]
    bundles = [BundleFee("acme", "eu", micro("9.00"), dt.date(2026, 3, 17), dt.date(2026, 4, 30))]
    for period in ("2026-02", "2026-05", "2027-03"):
        assert recurring_for(period, dids, bundles, lambda _: Rounding(2)) == []


def test_setup_is_charged_once_ever_per_account_and_did():
    """Released and taken again by the same account: the setup fee of the first service only;
    another account taking the number pays its own setup."""
    dids = [
        did(start="2026-01-10", end="2026-02-15", setup="5.00"),
        did(start="2026-06-01", end="2026-07-31", setup="7.00"),
        did(account="bolt", start="2026-09-01", setup="3.00"),
    ]
    setups = [
        (c.account, c.period, c.amount_units, c.reference)
        for month in range(1, 13)
        for c in recurring_for(f"2026-{month:02d}", dids, [], lambda _: Rounding(2))
        if c.item.endswith(":setup")
    ]
    assert setups == [
        ("acme", "2026-01", micro("5.00"), "rec:once:acme:did:442071234567:setup"),
        ("bolt", "2026-09", micro("3.00"), "rec:once:bolt:did:442071234567:setup"),
    ]


def test_a_did_reassigned_mid_month_charges_each_owner_its_days():
    dids = [did(start="2026-01-01", end="2026-03-10"), did(account="bolt", start="2026-03-11")]
    charges = recurring_for("2026-03", dids, [], lambda _: Rounding(2))
    assert [(c.account, c.amount_units, c.description) for c in charges] == [
        ("acme", ref_fee(Decimal(2), 10, 31, 2, "half_up"), "DID 442071234567 monthly fee "
         "2026-03, 10/31 days"),
        ("bolt", ref_fee(Decimal(2), 21, 31, 2, "half_up"), "DID 442071234567 monthly fee "
         "2026-03, 21/31 days"),
    ]  # fmt: skip
    assert [c.amount_units for c in charges] == [micro("0.65"), micro("1.35")]


def test_records_of_one_item_in_a_period_are_rounded_once_together():
    """Released on 10 March and taken again on 20 March at another fee: one charge, the exact
    sum of both shares rounded once (each share alone would round to 0.00)."""
    dids = [
        did(monthly="0.01", start="2026-01-01", end="2026-03-10"),
        did(monthly="0.012", start="2026-03-20"),
    ]
    (charge,) = recurring_for("2026-03", dids, [], lambda _: Rounding(2))
    exact = Decimal("0.01") * 10 + Decimal("0.012") * 12
    assert charge.amount_units == ref_fee(exact, 1, 31, 2, "half_up") == micro("0.01")
    assert prorate(micro("0.01"), 10, 31, Rounding(2)) == 0  # alone: nothing
    assert prorate(micro("0.012"), 12, 31, Rounding(2)) == 0
    assert charge.description == "DID 442071234567 monthly fee 2026-03, 22/31 days"


def test_overlapping_service_is_refused():
    twice = [did(start="2026-01-01", end="2026-03-17"), did(account="bolt", start="2026-03-17")]
    with pytest.raises(ValueError, match="DID 442071234567 of bolt from 2026-03-17 overlaps"):
        recurring_for("2026-03", twice, [], lambda _: Rounding(2))
    with pytest.raises(ValueError, match="overlaps"):
        did_owner(pa.array(["442071234567"]), twice, np.array([0]))
    open_twice = [did(start="2026-01-01"), did(start="2027-01-01")]
    with pytest.raises(ValueError, match="open end"):
        recurring_for("2026-03", open_twice, [], lambda _: Rounding(2))
    bundles = [
        BundleFee("acme", "eu", 1, dt.date(2026, 1, 1)),
        BundleFee("acme", "eu", 2, dt.date(2026, 2, 1)),
    ]
    with pytest.raises(ValueError, match="bundle eu"):
        recurring_for("2026-03", [], bundles, lambda _: Rounding(2))


names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,12}", fullmatch=True)
items = st.one_of(
    st.from_regex(r"did:[1-9][0-9]{6,14}:(monthly|setup)", fullmatch=True),
    names.map(lambda name: f"bundle:{name}:monthly"),
)
periods = st.builds(lambda y, m: f"{y}-{m:02d}", st.integers(2020, 2030), st.integers(1, 12))


@given(st.tuples(periods, names, items), st.tuples(periods, names, items))
@settings(max_examples=150, deadline=None)
def test_references_are_distinct_per_account_item_and_period(one, other):
    first, second = recurring_reference(*one), recurring_reference(*other)
    assert (first == second) == (one == other)
    assert check_token("posting id", first) == first  # a posting id and a ledger reference


@st.composite
def services(draw):
    """DIDs and bundles of a few accounts, never two services of one item on one day."""
    dids, bundles = [], []
    for number in draw(st.lists(st.sampled_from(["4420", "4930", "1212"]), unique=True)):
        day = draw(st.dates(dt.date(2025, 10, 1), dt.date(2026, 3, 1)))
        for _ in range(draw(st.integers(1, 3))):
            last = day + draw(st.integers(0, 120)) * DAY
            account = draw(st.sampled_from(["acme", "bolt"]))
            cents = draw(st.integers(0, 5_000))
            setup = draw(st.integers(0, 900))
            dids.append(
                Did(f"{number}5550100", account, cents * 10**4, setup * 10**4, 0, day, last)
            )
            day = last + draw(st.integers(1, 60)) * DAY
    for account, name in draw(st.lists(st.sampled_from([("acme", "us"), ("bolt", "eu")]))):
        if any(b.account == account and b.name == name for b in bundles):
            continue
        start = draw(st.dates(dt.date(2025, 10, 1), dt.date(2026, 6, 1)))
        bundles.append(BundleFee(account, name, draw(st.integers(0, 10**8)), start, None))
    return dids, bundles


@given(services(), st.sampled_from([Rounding(2), Rounding(0, "up"), Rounding(6, "down")]))
@settings(max_examples=60, deadline=None)
def test_a_year_of_runs_posts_each_fee_once_under_its_own_reference(service, rounding):
    """Over a year of periods: references never repeat, a rerun gives the same charges, one
    setup per account x DID, and the fees add up to the reference's per-month shares."""
    dids, bundles = service
    seen: set[str] = set()
    setups = 0
    for month in range(12):
        period = f"{2025 + (9 + month) // 12}-{(9 + month) % 12 + 1:02d}"
        charges = recurring_for(period, dids, bundles, lambda _: rounding)
        assert recurring_for(period, list(reversed(dids)), bundles, lambda _: rounding) == charges
        references = [c.reference for c in charges]
        assert len(set(references)) == len(references) and not seen & set(references)
        seen |= set(references)
        setups += sum(c.item.endswith(":setup") for c in charges)
        for charge in charges:
            assert charge.amount_units > 0 and charge.period == period
            if charge.item.endswith(":setup"):
                continue
            kind, name, _ = charge.item.split(":")
            records = (
                [d for d in dids if d.number == name and d.account == charge.account]
                if kind == "did"
                else [b for b in bundles if b.name == name and b.account == charge.account]
            )
            exact = sum(
                Decimal(r.monthly_units if kind == "did" else r.fee_units).scaleb(-6)
                * ref_days(period, r.start, r.end)[0]
                for r in records
            )
            period_days = ref_days(period, dt.date.min, None)[1]
            expected = ref_fee(exact, 1, period_days, rounding.decimals, rounding.method)
            assert charge.amount_units == expected
    first_services: dict[tuple[str, str], Did] = {}
    for d in sorted(dids, key=lambda d: d.start):
        first_services.setdefault((d.account, d.number), d)
    assert setups == sum(
        1
        for d in first_services.values()
        if rounding.quantize(Decimal(d.setup_units).scaleb(-6)) != 0
        and dt.date(2025, 10, 1) <= d.start <= dt.date(2026, 9, 30)
    )


# --- the CLI's texts --------------------------------------------------------------------------


def test_did_from_text_defaults_and_forms():
    made = did_from_text(" +44 20-7123-4567 ", "acme", today=TODAY)
    assert made == Did("442071234567", "acme", micro("2.00"), 0, 0, TODAY, None)
    made = did_from_text(
        "12125550100", "acme", "1.5", "25", "0.00123456", "2026-04-01", "2026-12-31", today=TODAY
    )
    assert made == Did(
        "12125550100",
        "acme",
        1_500_000,
        25_000_000,
        123_456,
        dt.date(2026, 4, 1),
        dt.date(2026, 12, 31),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"number": "00442071234567"}, "DID number '00442071234567'"),
        ({"number": "0207123456"}, "DID number"),
        ({"number": "44 abc"}, "DID number"),
        ({"number": "1234567890123456"}, "DID number"),  # 16 digits: longer than E.164
        ({"number": "123456"}, "DID number"),
        ({"account": "ac#me"}, "account id 'ac#me'"),
        ({"monthly": "two"}, "monthly fee 'two'"),
        ({"monthly": "-2.00"}, "monthly fee '-2.00': must not be negative"),
        ({"monthly": "2.0000001"}, "monthly fee '2.0000001': .* more than 6 decimal places"),
        ({"monthly": "nan"}, "monthly fee 'nan'"),
        ({"setup": "5,00"}, "setup fee '5,00'"),
        ({"per_minute": "0.000000001"}, "per-minute rate '0.000000001'"),
        ({"per_minute": "-0.01"}, "per-minute rate '-0.01'"),
        ({"start": "2026-02-30"}, "start date '2026-02-30': use YYYY-MM-DD"),
        ({"end": "31/03/2026"}, "end date '31/03/2026'"),
        ({"start": "2026-03-17", "end": "2026-03-16"}, "end date 2026-03-16: service ends before"),
        ({"monthly": "1000000000"}, "monthly fee 1000000000.000000: must be .* below"),
    ],
)
def test_did_from_text_names_the_wrong_field(kwargs, message):
    arguments = {"number": "442071234567", "account": "acme", **kwargs}
    with pytest.raises(ValueError, match=message):
        did_from_text(**arguments, today=TODAY)


def test_a_bundle_checks_its_ids_and_dates():
    with pytest.raises(ValueError, match="bundle id"):
        BundleFee("acme", "us:100k", 1, TODAY)
    with pytest.raises(ValueError, match="bundle fee"):
        BundleFee("acme", "us", -1, TODAY)
    with pytest.raises(ValueError, match="end date"):
        BundleFee("acme", "us", 1, TODAY, TODAY - DAY)


# --- inbound calls ----------------------------------------------------------------------------


def test_did_owner_matches_the_number_exactly():
    dids = [did(per_minute="0.002")]
    callees = pa.array(
        ["442071234567", "44207123456", "4420712345678", "0442071234567", None, "442071234567"]
    )
    moment = np.full(6, utc("2026-03-20T12:00:00"))
    owner, rate = did_owner(callees, dids, moment)
    assert owner.tolist() == [0, -1, -1, -1, -1, 0]
    assert rate.tolist() == [200_000, 0, 0, 0, 0, 200_000]
    assert owner.dtype == np.int32 and rate.dtype == np.int64


@pytest.mark.parametrize(
    ("zone", "moments"),
    [
        (
            "UTC",
            {
                "2026-03-16T23:59:59": -1,
                "2026-03-17T00:00:00": 0,
                "2026-03-31T23:59:59": 0,
                "2026-04-01T00:00:00": -1,
            },
        ),
        (  # London is on summer time (UTC+1) from 29 March 2026: the last day ends at 23:00Z
            "Europe/London",
            {
                "2026-03-16T23:59:59": -1,
                "2026-03-17T00:00:00": 0,
                "2026-03-31T22:59:59": 0,
                "2026-03-31T23:00:00": -1,
            },
        ),
        (  # New York (UTC-4 in March 2026): 17 March starts at 04:00Z, 1 April at 04:00Z
            "America/New_York",
            {
                "2026-03-17T03:59:59": -1,
                "2026-03-17T04:00:00": 0,
                "2026-04-01T03:59:59": 0,
                "2026-04-01T04:00:00": -1,
            },
        ),
    ],
)
def test_did_owner_respects_the_service_days_in_the_tenants_zone(zone, moments):
    dids = [did(start="2026-03-17", end="2026-03-31", per_minute="0.002")]
    callees = pa.array(["442071234567"] * len(moments))
    owner, _ = did_owner(callees, dids, np.array([utc(m) for m in moments]), timezone=zone)
    assert owner.tolist() == list(moments.values())


def test_did_owner_follows_a_reassigned_number():
    dids = [
        did("12125550100", "acme", per_minute="0.01"),
        did(start="2026-01-01", end="2026-03-10", per_minute="0.002"),
        did(account="bolt", start="2026-03-11", per_minute="0.003"),
    ]
    callees = pa.chunked_array(
        [["442071234567", "442071234567"], ["442071234567", "12125550100", "999"]],
        pa.large_string(),
    )
    moments = ["2025-12-31T12:00", "2026-03-10T23:59", "2026-03-11T00:00", "2026-03-20T00:00"]
    owner, rate = did_owner(callees, dids, np.array([utc(m) for m in [*moments, moments[0]]]))
    assert owner.tolist() == [-1, 1, 2, 0, -1]
    assert rate.tolist() == [0, 200_000, 300_000, 1_000_000, 0]


@st.composite
def calls_to_dids(draw):
    numbers = ["442071234567", "442071234568", "12125550100"]
    dids = []
    for number in draw(st.lists(st.sampled_from(numbers), unique=True)):
        day = draw(st.dates(dt.date(2026, 1, 1), dt.date(2026, 2, 1)))
        for _ in range(draw(st.integers(1, 3))):
            end = None if draw(st.booleans()) else day + draw(st.integers(0, 20)) * DAY
            rate = draw(st.integers(0, 10**7))
            dids.append(Did(number, draw(st.sampled_from(["a", "b"])), 0, 0, rate, day, end))
            if end is None:
                break
            day = end + draw(st.integers(1, 5)) * DAY
    dids = draw(st.permutations(dids))
    count = draw(st.integers(0, 40))
    callees = draw(st.lists(st.sampled_from([*numbers, "4420712345", None]), min_size=count,
                            max_size=count))  # fmt: skip
    low, high = utc("2025-12-30T00:00:00"), utc("2026-05-01T00:00:00")
    moments = draw(st.lists(st.integers(low, high), min_size=count, max_size=count))
    return dids, callees, moments


@given(calls_to_dids(), st.sampled_from(["UTC", "Europe/London", "Asia/Kolkata", "Pacific/Apia"]))
@settings(max_examples=150, deadline=None)
def test_did_owner_is_the_per_call_reference(case, zone):
    dids, callees, moments = case
    owner, rate = did_owner(pa.array(callees, pa.string()), dids, np.array(moments), timezone=zone)
    expected = [ref_owner(c, m, dids, zone) for c, m in zip(callees, moments, strict=True)]
    assert owner.tolist() == expected
    assert rate.tolist() == [dids[i].per_minute_e8 if i >= 0 else 0 for i in expected]


def test_did_owner_without_dids_or_calls():
    owner, rate = did_owner(pa.array(["442071234567"]), [], np.array([0]))
    assert owner.tolist() == [-1] and rate.tolist() == [0]
    owner, rate = did_owner(pa.array([], pa.string()), [did()], np.array([], np.int64))
    assert len(owner) == len(rate) == 0
    with pytest.raises(ValueError, match="2 callees but 1 start times"):
        did_owner(pa.array(["1", "2"]), [did()], np.array([0]))


@given(
    st.lists(st.tuples(st.integers(0, 10**13 - 1), st.integers(-5, 2_000_000)), max_size=30),
    st.integers(0, 6),
    st.sampled_from(sorted(MODES)),
)
@settings(max_examples=150, deadline=None)
def test_did_amounts_per_second_rounded_once(calls, decimals, method):
    """Inbound minutes: billed per second (1/1), no connect fee, rate·seconds/60 rounded once,
    Python integers where int64 would overflow (10^13·2·10^6 > 2^63)."""
    rates = np.array([r for r, _ in calls], dtype=np.int64)
    answered = np.array([s for _, s in calls], dtype=np.int64)
    billed, amount = did_amounts(rates, answered, Rounding(decimals, method))
    assert billed.tolist() == [max(s, 0) for _, s in calls]
    expected = [
        ref_fee(Decimal(r).scaleb(-8) * max(s, 0), 1, 60, decimals, method) for r, s in calls
    ]
    assert amount.tolist() == expected


def test_did_amounts_example():
    """0.002 a minute for 61 seconds is 0.0020333...: 0.002033 at 6 decimals, 0.01 rounding up."""
    rates, answered = np.array([200_000, 200_000, 200_000]), np.array([61, 0, 1])
    assert did_amounts(rates, answered, Rounding(6))[1].tolist() == [2_033, 0, 33]
    assert did_amounts(rates, answered, Rounding(2, "up"))[1].tolist() == [10_000, 0, 10_000]
