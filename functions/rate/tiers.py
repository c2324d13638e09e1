"""Tiered volume pricing and bundles over a period's billed seconds, exactly and in any order.

A `TierSchedule` prices an account's calls to a destination group (a set of prefixes) per
billing period. Tier bounds are cumulative billed seconds of the period, each tier ending at its
bound inclusive: "0.0045/min for the first 100,000 minutes, then 0.0040/min" bills minute
100,000 at 0.0045 (seconds 1..6,000,000 are tier 1).

* graduated: each second is priced in the tier it falls in; F(s) is the price of the period's
  first s seconds.
* volume: the tier the period's total reaches prices every second; V(T) = rate(tier(T))·T.

Both are exact integers in units of 10^-8/60 (rate_e8·seconds), as in functions.rate.rating.

Real-time charging telescopes: a file's calls, after `before` seconds of the period, are charged
round(F(before + c_i)) - round(F(before + c_{i-1})) (c_i: running sum of the file's seconds), so
all the files of a period add up to round(F(total)) exactly, whatever their order and split. The
caller keeps the counter `before` per account x group x period and records it with the file's
claim; a redelivered file then gets the same amounts, and counts once.

Volume tiers are charged provisionally at the rate of the tier the period's running total has
reached at each second, which is the graduated price of the same tiers: it telescopes like the
graduated price (order-independent, never negative, no rate known only at close), and with the
usual falling rates it never charges less than the contract's final price before the period
closes. `volume_true_up` posts the difference at close: round(V(total)) - round(F(total)).

A `Bundle` includes a number of seconds per period; `bundle_split` says, call by call in the
order given, how many of each call's billed seconds are still included, with the same counter.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa

from functions.rate.rating import exact_divisor
from functions.shared.ids import check_name
from functions.shared.money import INT64_MAX, RATE_SCALE, Rounding, to_units
from functions.shared.prefixes import longest_prefix

MODES = ("graduated", "volume")
PERIODS = ("month",)  # calendar month in the account's time zone
NO_GROUP = -1


@dataclass(frozen=True, slots=True)
class Tier:
    """Up to `up_to_seconds` of the period (inclusive; None: no end), per minute in 10^-8."""

    up_to_seconds: int | None
    rate_e8: int


@dataclass(frozen=True, slots=True)
class TierSchedule:
    """An account's tiers for one destination group and billing period."""

    name: str
    prefixes: tuple[str, ...]
    mode: Literal["graduated", "volume"]
    tiers: tuple[Tier, ...]
    period: str = "month"

    def __post_init__(self) -> None:
        check_name("tier", self.name)
        object.__setattr__(self, "prefixes", _check_prefixes(self.prefixes))
        if self.mode not in MODES:
            raise ValueError(f"tier mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.period not in PERIODS:
            raise ValueError(f"tier period must be one of {', '.join(PERIODS)}: {self.period!r}")
        object.__setattr__(self, "tiers", _check_tiers(tuple(self.tiers)))


@dataclass(frozen=True, slots=True)
class Bundle:
    """A monthly fee (micro-units) that includes `included_seconds` to a destination group."""

    name: str
    prefixes: tuple[str, ...]
    included_seconds: int
    fee_units: int

    def __post_init__(self) -> None:
        check_name("bundle", self.name)
        object.__setattr__(self, "prefixes", _check_prefixes(self.prefixes))
        for field, value in (("included seconds", self.included_seconds), ("fee", self.fee_units)):
            if not _is_int(value) or value < 0 or value > INT64_MAX:
                raise ValueError(f"bundle {self.name}: {field} must be a whole number >= 0")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    prefixes = tuple(prefixes)
    if not prefixes:
        raise ValueError("a destination group needs at least one prefix")
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.isascii() or not prefix.isdigit():
            raise ValueError(f"prefix {prefix!r} is not a string of digits")
    seen: set[str] = set()
    for prefix in prefixes:
        if prefix in seen:
            raise ValueError(f"prefix {prefix} is listed twice")
        seen.add(prefix)
    return prefixes


def _check_tiers(tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
    if not tiers:
        raise ValueError("a tier schedule needs at least one tier")
    previous = 0
    for number, tier in enumerate(tiers, start=1):
        bound, rate = tier.up_to_seconds, tier.rate_e8
        if not _is_int(rate) or rate < 0 or rate > INT64_MAX:
            raise ValueError(f"tier {number}: the rate must be a whole number of 10^-8 >= 0")
        last = number == len(tiers)
        if bound is None:
            if not last:
                raise ValueError(f"tier {number}: only the last tier may be open-ended")
            continue
        if last:
            raise ValueError(f"tier {number}: the last tier must be open-ended (no bound)")
        if not _is_int(bound) or bound > INT64_MAX:
            raise ValueError(f"tier {number}: the bound must be a whole number of seconds")
        if bound <= previous:
            where = f"{_minutes(previous)}, where tier {number - 1} ends" if previous else "0"
            raise ValueError(f"tier {number}: its bound ({_minutes(bound)}) must be above {where}")
        previous = bound
    return tiers


def _minutes(seconds: int) -> str:
    whole, rest = divmod(seconds, 60)
    return f"{whole} minutes" if not rest else f"{seconds} seconds"


def parse_minutes(text: str) -> int:
    """Minutes as typed (whole or decimal, '2500.5') → whole seconds, or ValueError."""
    try:
        minutes = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number of minutes") from None
    if not minutes.is_finite() or minutes < 0:
        raise ValueError(f"{text!r} is not a number of minutes >= 0")
    seconds = minutes * 60
    if seconds != seconds.to_integral_value():
        raise ValueError(f"{text!r} minutes is not a whole number of seconds")
    return int(seconds)


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """'100000:0.0045,:0.0040' (bound in minutes, rate per minute) → tiers, or ValueError."""
    tiers = []
    for number, part in enumerate(text.split(","), start=1):
        bound_text, colon, rate_text = (piece.strip() for piece in part.partition(":"))
        try:
            if not colon:
                raise ValueError(f"{part.strip()!r} is not MINUTES:RATE (the last one :RATE)")
            bound = parse_minutes(bound_text) if bound_text else None
            if bound == 0:
                raise ValueError("a bound of 0 minutes leaves the tier empty")
            tiers.append(Tier(bound, _parse_rate(rate_text)))
        except ValueError as error:
            raise ValueError(f"tier {number}: {error}") from None
    return _check_tiers(tuple(tiers))


def _parse_rate(text: str) -> int:
    """A rate per minute as typed → integer 10^-8, or ValueError."""
    if not text:
        raise ValueError("the rate is missing")
    try:
        rate = to_units(text, RATE_SCALE)
    except InvalidOperation:
        raise ValueError(f"rate {text!r} is not a number") from None
    except ValueError as error:
        raise ValueError(f"rate {error}") from None
    if rate < 0:
        raise ValueError(f"rate {text!r} is negative")
    return rate


def _seconds(values: int | np.ndarray | Sequence[int], what: str) -> np.ndarray:
    """Whole, non-negative seconds as int64, or object ints where int64 cannot hold them."""
    array = np.asarray(values)
    if array.dtype.kind == "u":
        if array.size and array.max() > INT64_MAX:
            array = array.astype(object)
        else:
            array = array.astype(np.int64)
    elif array.dtype.kind == "i":
        array = array.astype(np.int64, copy=False)
    elif array.dtype.kind != "O" or not all(_is_int(v) for v in array.flat):
        raise ValueError(f"{what} must be whole numbers of seconds")
    if array.size and array.min() < 0:
        raise ValueError(f"{what} must not be negative")
    return array


@dataclass(frozen=True, slots=True)
class _Table:
    """A schedule's tiers as arrays, with the graduated price of the seconds below each tier."""

    upper: np.ndarray
    lower: np.ndarray
    rate: np.ndarray
    base: np.ndarray

    @classmethod
    def of(cls, tiers: tuple[Tier, ...], exact_ints: bool) -> _Table:
        lower = [0] + [t.up_to_seconds for t in tiers[:-1]]
        rates = [t.rate_e8 for t in tiers]
        base = [
            0,
            *itertools.accumulate(
                r * (hi - lo) for r, lo, hi in zip(rates, lower, lower[1:], strict=False)
            ),
        ]
        if exact_ints:
            dtype = object
        else:
            # The base of a tier that starts beyond every point priced is never taken; capped,
            # it keeps the int64 array valid.
            base = [min(b, INT64_MAX) for b in base]
            dtype = np.int64
        return cls(
            upper=np.array(lower[1:], dtype=dtype),
            lower=np.array(lower, dtype=dtype),
            rate=np.array(rates, dtype=dtype),
            base=np.array(base, dtype=dtype),
        )


def _priced(schedule: TierSchedule, seconds: np.ndarray, volume: bool) -> np.ndarray:
    """F or V at every point of `seconds` (validated), int64 or object ints."""
    if seconds.size == 0:
        return np.zeros(seconds.shape, dtype=np.int64)
    top_rate = max(t.rate_e8 for t in schedule.tiers)
    exact_ints = seconds.dtype == object or top_rate * int(seconds.max()) > INT64_MAX
    if exact_ints:
        seconds = seconds.astype(object)
    table = _Table.of(schedule.tiers, exact_ints)
    # side="left": a point equal to a bound is still in the tier that bound ends.
    tier = np.searchsorted(table.upper, seconds, side="left")
    if volume:
        return table.rate[tier] * seconds
    return table.base[tier] + table.rate[tier] * (seconds - table.lower[tier])


def _exact(schedule: TierSchedule, seconds: int | np.ndarray, volume: bool) -> int | np.ndarray:
    if _is_int(seconds):
        points = _seconds(np.array([int(seconds)], dtype=object), "seconds")
        return int(_priced(schedule, points, volume)[0])
    return _priced(schedule, _seconds(seconds, "seconds"), volume)


def graduated_exact(schedule: TierSchedule, seconds: int | np.ndarray) -> int | np.ndarray:
    """F: the graduated price of a period's first `seconds`, in 10^-8/60 units."""
    return _exact(schedule, seconds, volume=False)


def volume_exact(schedule: TierSchedule, seconds: int | np.ndarray) -> int | np.ndarray:
    """V: the volume price of a period of `seconds` in total, in 10^-8/60 units."""
    return _exact(schedule, seconds, volume=True)


def period_exact(schedule: TierSchedule, seconds: int | np.ndarray) -> int | np.ndarray:
    """The contract's price of a period's total by the schedule's own mode."""
    return _exact(schedule, seconds, volume=schedule.mode == "volume")


def tier_seconds(schedule: TierSchedule, total_seconds: int) -> tuple[int, ...]:
    """How many of a period's seconds each tier prices, by the schedule's mode."""
    total = int(_seconds(np.array([total_seconds], dtype=object), "total seconds")[0])
    bounds = [t.up_to_seconds for t in schedule.tiers]
    lower = [0, *bounds[:-1]]
    if schedule.mode == "volume":
        reached = next(i for i, hi in enumerate(bounds) if hi is None or total <= hi)
        return tuple(total if i == reached else 0 for i in range(len(bounds)))
    return tuple(
        max(0, (total if hi is None else min(total, hi)) - lo)
        for lo, hi in zip(lower, bounds, strict=True)
    )


def _running(before: int, calls: np.ndarray) -> np.ndarray:
    """[before, before + c_0, before + c_0 + c_1, ...]: the period's counter at each call end."""
    if calls.dtype != object and before + int(calls.max(initial=0)) * len(calls) <= INT64_MAX:
        return np.concatenate([np.array([before], dtype=np.int64), before + np.cumsum(calls)])
    return np.concatenate(
        [np.array([before], dtype=object), before + np.cumsum(calls.astype(object))]
    )


def _telescoped(
    schedule: TierSchedule, before_seconds: int, call_seconds: np.ndarray, rounding: Rounding
) -> np.ndarray:
    """round(F(after call i)) - round(F(before call i)) per call, in 10^-decimals units."""
    if not _is_int(before_seconds) or before_seconds < 0:
        raise ValueError("the period's counter must be a whole number of seconds >= 0")
    calls = _seconds(call_seconds, "call seconds")
    points = _running(int(before_seconds), calls.ravel())
    rounded = rounding.divide(_priced(schedule, points, volume=False), exact_divisor(rounding))
    return np.diff(rounded).astype(np.int64)


def tier_prices(
    schedule: TierSchedule, before_seconds: int, call_seconds: np.ndarray, rounding: Rounding
) -> tuple[np.ndarray, np.ndarray]:
    """Each call's amount (10^-decimals units, telescoped from `before_seconds`; for volume
    schedules the provisional price) and rate (10^-8 a minute: the tier the call ends in)."""
    calls = _seconds(call_seconds, "call seconds").ravel()
    amounts = _telescoped(schedule, before_seconds, calls, rounding)
    table = _Table.of(schedule.tiers, exact_ints=False)
    ends = _running(int(before_seconds), calls)[1:]
    rates = table.rate[np.searchsorted(table.upper, ends, side="left")].astype(np.int64)
    return amounts, rates


def _require(schedule: TierSchedule, mode: str) -> None:
    if schedule.mode != mode:
        raise ValueError(f"tier {schedule.name} is {schedule.mode}, not {mode}")


def graduated_file(
    schedule: TierSchedule, before_seconds: int, call_seconds: np.ndarray, rounding: Rounding
) -> np.ndarray:
    """Each call's graduated amount (10^-decimals units), the calls following `before`."""
    _require(schedule, "graduated")
    return _telescoped(schedule, before_seconds, call_seconds, rounding)


def volume_provisional(
    schedule: TierSchedule, before_seconds: int, call_seconds: np.ndarray, rounding: Rounding
) -> np.ndarray:
    """Each call's provisional volume amount: the tier reached so far prices each second."""
    _require(schedule, "volume")
    return _telescoped(schedule, before_seconds, call_seconds, rounding)


def volume_true_up(
    schedule: TierSchedule, total_seconds: int, charged_units: int, rounding: Rounding
) -> int:
    """At period close: round(V(total)) minus what the period was charged (may be negative)."""
    _require(schedule, "volume")
    exact = np.array([volume_exact(schedule, total_seconds)], dtype=object)
    return int(rounding.divide(exact, exact_divisor(rounding))[0]) - int(charged_units)


def bundle_split(
    bundle: Bundle, before_seconds: int, call_seconds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(included, beyond) billed seconds per call, the bundle consumed in the order given.

    `before_seconds` is the group's billed seconds already counted in the period.
    """
    if not _is_int(before_seconds) or before_seconds < 0:
        raise ValueError("the period's counter must be a whole number of seconds >= 0")
    calls = _seconds(call_seconds, "call seconds").astype(np.int64)
    left = max(bundle.included_seconds - int(before_seconds), 0)
    earlier = np.cumsum(calls) - calls  # seconds of the file's calls before each call
    included = np.clip(left - earlier, 0, calls)
    return included, calls - included


def group_of(callees: pa.Array | pa.ChunkedArray, groups: Sequence[tuple[str, ...]]) -> np.ndarray:
    """Index of the group whose prefix is the callee's longest match, or -1 (int32 per call).

    The longest prefix across all groups wins (`longest_prefix`).
    """
    owner: dict[str, int] = {}
    for index, prefixes in enumerate(groups):
        for prefix in _check_prefixes(prefixes):
            if prefix in owner and owner[prefix] != index:
                raise ValueError(f"prefix {prefix} is in groups {owner[prefix]} and {index}")
            owner[prefix] = index
    prefixes = list(owner)
    matched = longest_prefix(callees, prefixes)
    groups_of = np.array([owner[p] for p in prefixes] + [NO_GROUP], dtype=np.int32)
    return groups_of[matched]  # -1 (no prefix) takes the last entry: NO_GROUP


def period_of(start_utc_seconds: np.ndarray, timezone: str) -> np.ndarray:
    """The calendar month 'YYYY-MM' of each call's start in `timezone` (str array per call);
    see `month_codes`."""
    labels, codes = month_codes(start_utc_seconds, timezone)
    return labels[codes]


def month_codes(start_utc_seconds: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """The months spanned ('YYYY-MM' labels) and, per call, the index of its start's calendar
    month in `timezone` among them (int64): a code per call, no string per call.

    The zone's month boundaries are found once per month spanned (a loop over months, not
    calls), then one searchsorted places every call. Where clocks fall back across midnight on
    the 1st (St John's, 1 Nov 2009: 00:01 NDT became 23:01 NST), the repeated hour belongs to
    the previous month again, as the local calendar says.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {timezone!r}: use an IANA name") from None
    starts = np.asarray(start_utc_seconds)
    if starts.dtype.kind not in "iu":
        raise ValueError("call starts must be whole epoch seconds")
    starts = starts.astype(np.int64)
    if starts.size == 0:
        return np.array([], dtype="<U7"), np.zeros(0, np.int64)
    try:
        first = _local_month(int(starts.min()), zone)
        last = _local_month(int(starts.max()), zone)
    except (OverflowError, ValueError, OSError):
        raise ValueError("call starts are outside the years 1..9999") from None
    # Months from the one before the first to the one after the last: a fall-back window
    # after a boundary can hold a call whose local month is the earlier one.
    months = list(_months(_shift(first, -1), _shift(last, 1)))
    bounds = []
    windows = []  # (from, to, month index): seconds that fall back into the month before
    for index, month in enumerate(months[1:], start=1):
        start, window = _month_start(month, zone)
        bounds.append(start)
        if window is not None:
            windows.append((*window, index - 1))
    position = np.searchsorted(np.array(bounds, dtype=np.int64), starts, side="right")
    for lo, hi, index in windows:
        position[(starts >= lo) & (starts < hi)] = index
    labels = np.array([f"{y:04d}-{m:02d}" for y, m in months], dtype="<U7")
    return labels, position.astype(np.int64)


def _local_month(second: int, zone: ZoneInfo) -> tuple[int, int]:
    moment = datetime.fromtimestamp(second, UTC).astimezone(zone)
    return moment.year, moment.month


def _shift(month: tuple[int, int], by: int) -> tuple[int, int]:
    year, index = divmod(month[0] * 12 + month[1] - 1 + by, 12)
    return year, index + 1


def _months(first: tuple[int, int], last: tuple[int, int]):
    month = first
    while month <= last:
        yield month
        month = _shift(month, 1)


def _month_start(month: tuple[int, int], zone: ZoneInfo) -> tuple[int, tuple[int, int, int] | None]:
    """The local month's first UTC second, and the window [from, to) reading as the month before."""
    year, number = month
    if not 1 <= year <= 9999:
        # Beyond datetime's calendar: no call can start there (checked above).
        return (-(2**62) if year < 1 else 2**62), None
    early = _epoch(datetime(year, number, 1, tzinfo=zone))
    late = _epoch(datetime(year, number, 1, fold=1, tzinfo=zone))

    def in_month(second: int) -> bool:
        return _local_month(second, zone) >= month

    if late < early:
        # Local midnight falls in a gap: the month starts at the jump, between the two.
        return _first(late, early, in_month), None
    if late == early:
        return early, None
    # Local midnight happens twice: the month starts at the first; the hour the clocks are
    # set back may reach across midnight into the previous day.
    if in_month(late - 1):
        return early, None
    back = _first(early, late - 1, lambda s: not in_month(s))
    return early, (back, late)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _first(lo: int, hi: int, test) -> int:
    """The smallest second in [lo, hi] for which `test` holds (it holds at hi, and from then)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if test(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
