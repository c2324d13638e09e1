"""Recurring charges: DIDs (monthly and setup fees, inbound minutes) and bundle fees, prorated.

A monthly fee covers a calendar month. For a partial month it is prorated by the days of
service, both ends included: a DID in service from 17 March pays 15/31 of March's fee. The
exact amount fee·days/period_days is rounded once, by the account's named rule, and posted
in micro-units. A setup fee is charged once ever per account x DID, in the month its first
service starts.

Every charge carries a deterministic reference per account x item x period (setup: per
account x item), so the scheduled job can run a period any number of times and the ledger's
reference check posts each charge once. Records of the same account x item in one period
(a DID released and taken again, a bundle set anew) add up to one charge, rounded once.

Inbound calls to a DID belong to the DID's owner on the day of the call (`did_owner`): the
callee equals the DID exactly and the call starts within the DID's service, days being
calendar days in the tenant's time zone. The loops below run over DIDs, bundles and distinct
service dates, never over calls.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import InvalidOperation
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.rating import billed_seconds, exact_divisor
from functions.shared.ids import check_name
from functions.shared.money import (
    AMOUNT_SCALE,
    INT64_MAX,
    RATE_SCALE,
    Rounding,
    to_units,
    units_to_str,
)

COMPONENT_RECURRING = "recurring"  # a DID's monthly and setup fees, a bundle's monthly fee
COMPONENT_DID = "did"  # inbound minutes to a DID, charged to its owner
DEFAULT_MONTHLY = "2.00"
# E.164: country code and subscriber number, at most 15 digits; a DID is never shorter
# than the shortest national numbers in use (7 digits with the country code, e.g. Niue).
_E164 = re.compile(r"[1-9][0-9]{6,14}")
_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")
_MAX_FEE_UNITS = 10**15  # 1,000,000,000.000000: far above any fee, far below int64
_MAX_RATE_E8 = 10**13  # 100,000.00000000 a minute
_TIME_BITS = 40  # call keys pack (number id << 40 | seconds + 2^39): ±17,000 years
_TIME_ZERO = 1 << (_TIME_BITS - 1)
_NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class Did:
    """A number the carrier rents to an account, in service from `start` to `end` (inclusive)."""

    number: str  # E.164 digits, no '+'
    account: str
    monthly_units: int  # micro-units a month
    setup_units: int  # micro-units, once ever per account x number
    per_minute_e8: int  # inbound minutes, 10^-8 a minute
    start: dt.date
    end: dt.date | None = None  # the last day of service; None: until released

    def __post_init__(self) -> None:
        if not isinstance(self.number, str) or not _E164.fullmatch(self.number):
            raise ValueError(
                f"invalid DID number {self.number!r}: use the international form, 7 to 15 "
                "digits with the country code (a leading '+' is allowed, not 00)"
            )
        check_name("account", self.account)
        _check_units("monthly fee", self.monthly_units, _MAX_FEE_UNITS, AMOUNT_SCALE)
        _check_units("setup fee", self.setup_units, _MAX_FEE_UNITS, AMOUNT_SCALE)
        _check_units("per-minute rate", self.per_minute_e8, _MAX_RATE_E8, RATE_SCALE)
        _check_dates(self.start, self.end)


@dataclass(frozen=True, slots=True)
class BundleFee:
    """A bundle's monthly fee on an account, in service from `start` to `end` (inclusive)."""

    account: str
    name: str
    fee_units: int  # micro-units a month
    start: dt.date
    end: dt.date | None = None

    def __post_init__(self) -> None:
        check_name("account", self.account)
        check_name("bundle", self.name)
        _check_units("bundle fee", self.fee_units, _MAX_FEE_UNITS, AMOUNT_SCALE)
        _check_dates(self.start, self.end)


@dataclass(frozen=True, slots=True)
class RecurringCharge:
    """One fee to post to one account's balance, once per `reference`."""

    account: str
    component: str  # COMPONENT_RECURRING
    item: str  # did:<number>:monthly, did:<number>:setup, bundle:<name>:monthly
    period: str  # YYYY-MM the charge falls in
    amount_units: int  # micro-units, rounded by the account's rule; the account owes it
    reference: str  # rec:<period>:<account>:<item>; setup: rec:once:<account>:<item>
    description: str


def _check_units(field: str, units: int, limit: int, scale: int) -> None:
    if isinstance(units, bool) or not isinstance(units, int):
        raise ValueError(f"invalid {field} {units!r}: integer units expected")
    if not 0 <= units < limit:
        shown, bound = units_to_str(units, scale), units_to_str(limit, scale)
        raise ValueError(f"invalid {field} {shown}: must be 0 or more and below {bound}")


def _check_dates(start: dt.date, end: dt.date | None) -> None:
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise ValueError(f"invalid start date {start!r}: a date expected")
    if end is not None:
        if not isinstance(end, dt.date) or isinstance(end, dt.datetime):
            raise ValueError(f"invalid end date {end!r}: a date expected")
        if end < start:
            raise ValueError(f"invalid end date {end}: service ends before it starts ({start})")
        if end >= dt.date.max:
            raise ValueError(f"invalid end date {end}: use an earlier day or none")


# --- the CLI's texts --------------------------------------------------------------------------


def did_from_text(
    number: str,
    account: str,
    monthly: str = DEFAULT_MONTHLY,
    setup: str | None = None,
    per_minute: str | None = None,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    *,
    today: dt.date,
) -> Did:
    """A DID from `tollgate did add` texts, or ValueError naming the field that is wrong."""
    digits = number.strip().replace(" ", "").replace("-", "") if isinstance(number, str) else ""
    digits = digits.removeprefix("+")
    first = _date_text("start date", start) if start is not None else today
    return Did(
        number=digits if digits else str(number),
        account=account,
        monthly_units=_fee_text("monthly fee", monthly),
        setup_units=_fee_text("setup fee", setup) if setup is not None else 0,
        per_minute_e8=_decimal_text("per-minute rate", per_minute, RATE_SCALE)
        if per_minute is not None
        else 0,
        start=first,
        end=_date_text("end date", end) if end is not None else None,
    )


def _fee_text(field: str, text: str) -> int:
    return _decimal_text(field, text, AMOUNT_SCALE)


def _decimal_text(field: str, text: str, scale: int) -> int:
    try:
        units = to_units(str(text).strip(), scale)
    except (InvalidOperation, ValueError) as error:
        detail = str(error) if isinstance(error, ValueError) else "not a number"
        raise ValueError(f"invalid {field} {text!r}: {detail}") from None
    if units < 0:
        raise ValueError(f"invalid {field} {text!r}: must not be negative")
    return units


def _date_text(field: str, value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"invalid {field} {value!r}: use YYYY-MM-DD") from None


# --- proration --------------------------------------------------------------------------------


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """The first and last day of a billing period 'YYYY-MM'."""
    match = _PERIOD.fullmatch(period) if isinstance(period, str) else None
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        raise ValueError(f"invalid period {period!r}: use YYYY-MM, e.g. 2026-03")
    year, month = int(match[1]), int(match[2])
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def service_days(period: str, start: dt.date, end: dt.date | None) -> tuple[int, int]:
    """(days of service in the period, both ends included; the period's days)."""
    first, last = period_bounds(period)
    lo = max(first, start)
    hi = last if end is None else min(last, end)
    return max((hi - lo).days + 1, 0), (last - first).days + 1


def prorate(fee_units: int, days: int, period_days: int, rounding: Rounding) -> int:
    """fee·days/period_days in micro-units, rounded once to the rounding's decimals."""
    if period_days <= 0 or not 0 <= days <= period_days:
        raise ValueError(f"days of service must be 0..{period_days}, got {days}")
    return _rounded(fee_units * days, period_days, rounding)


def _rounded(numerator: int, divisor: int, rounding: Rounding) -> int:
    """numerator/divisor micro-units rounded once by the rule to its decimals, in micro-units."""
    if rounding.decimals > AMOUNT_SCALE:
        raise ValueError(f"fees round to at most {AMOUNT_SCALE} decimals")
    step = 10 ** (AMOUNT_SCALE - rounding.decimals)
    # Python integers: a fee times a month's days never overflows, whatever the fee.
    quotient = rounding.divide(np.array([numerator], dtype=object), divisor * step)
    return int(quotient[0]) * step


# --- what the scheduled job posts -------------------------------------------------------------


def recurring_for(
    period: str,
    dids: Sequence[Did],
    bundles: Sequence[BundleFee],
    rounding_of: Callable[[str], Rounding],
) -> list[RecurringCharge]:
    """The fees of a period, sorted by reference; the same inputs give the same charges.

    `dids` and `bundles` are every record the tenant has, released ones included: a setup
    fee is charged for the earliest service of an account x DID alone.
    """
    first, last = period_bounds(period)
    check_dids(dids)
    check_bundles(bundles)
    charges = [
        *_monthly(period, "did", ((d.account, d.number, d.monthly_units, d) for d in dids)),
        *_monthly(period, "bundle", ((b.account, b.name, b.fee_units, b) for b in bundles)),
    ]
    earliest: dict[tuple[str, str], Did] = {}
    for did in dids:
        key = (did.account, did.number)
        if key not in earliest or did.start < earliest[key].start:
            earliest[key] = did
    for (account, number), did in earliest.items():
        if first <= did.start <= last and did.setup_units:
            item = f"did:{number}:setup"
            charges.append(_Fee(account, item, did.setup_units, 1, f"DID {number} setup fee"))
    out = []
    for fee in charges:
        amount = _rounded(fee.numerator, fee.divisor, rounding_of(fee.account))
        if amount == 0:
            continue  # nothing to post: a fee of 0, or a day's share rounding to 0
        once = fee.item.endswith(":setup")
        out.append(
            RecurringCharge(
                account=fee.account,
                component=COMPONENT_RECURRING,
                item=fee.item,
                period=period,
                amount_units=amount,
                reference=recurring_reference("once" if once else period, fee.account, fee.item),
                description=fee.description,
            )
        )
    return sorted(out, key=lambda charge: charge.reference)


def recurring_reference(period: str, account: str, item: str) -> str:
    """The ledger reference of a fee: one per account x item x period ('once': setup)."""
    # ':' separates: account and bundle ids never hold one, DID numbers and periods neither,
    # so no two (period, account, item) give the same text. At most 156 printable
    # characters (the ledger takes 256); a check_token (128) unless both ids are long.
    return f"rec:{period}:{account}:{item}"


@dataclass(frozen=True, slots=True)
class _Fee:
    account: str
    item: str
    numerator: int  # Σ fee·days of the records, micro-units·days
    divisor: int  # the period's days
    description: str


def _monthly(
    period: str, kind: str, records: Iterable[tuple[str, str, int, Did | BundleFee]]
) -> list[_Fee]:
    """One fee per account x item with any day of service in the period, added up exactly."""
    sums: dict[tuple[str, str], list[int]] = {}
    period_days = 0
    for account, name, fee_units, record in records:
        days, period_days = service_days(period, record.start, record.end)
        if days:
            total = sums.setdefault((account, name), [0, 0])
            total[0] += fee_units * days
            total[1] += days
    label = "DID" if kind == "did" else "bundle"
    return [
        _Fee(
            account,
            f"{kind}:{name}:monthly",
            numerator,
            period_days,
            f"{label} {name} monthly fee {period}, {days}/{period_days} days",
        )
        for (account, name), (numerator, days) in sums.items()
    ]


def check_dids(dids: Sequence[Did]) -> None:
    """ValueError if a number is in service twice on one day (a DID has one owner a day)."""
    _check_disjoint(dids, lambda d: d.number, lambda d: f"DID {d.number} of {d.account}")


def check_bundles(bundles: Sequence[BundleFee]) -> None:
    """ValueError if an account holds the same bundle twice on one day."""
    _check_disjoint(bundles, lambda b: (b.account, b.name), lambda b: f"bundle {b.name}")


def _check_disjoint(records: Sequence, key: Callable, label: Callable) -> None:
    ordered = sorted(records, key=lambda r: (key(r), r.start))
    for before, after in itertools.pairwise(ordered):
        if key(before) == key(after) and (before.end is None or after.start <= before.end):
            raise ValueError(
                f"{label(after)} from {after.start} overlaps {label(before)} from "
                f"{before.start} to {before.end or 'open end'}"
            )


# --- inbound minutes --------------------------------------------------------------------------


def did_owner(
    callees: pa.Array | pa.ChunkedArray,
    dids: Sequence[Did],
    start_utc_seconds: np.ndarray,
    *,
    timezone: str = "UTC",
) -> tuple[np.ndarray, np.ndarray]:
    """Per call, the index into `dids` of the DID it reached (-1: none) and its rate (10^-8).

    A call reaches a DID when the callee is the DID's number exactly and the call starts on a
    day of its service, days being calendar days in `timezone` (the tenant's).
    """
    if isinstance(callees, pa.ChunkedArray):
        callees = callees.combine_chunks()
    start = np.asarray(start_utc_seconds, dtype=np.int64)
    count = len(callees)
    if len(start) != count:
        raise ValueError(f"{count} callees but {len(start)} start times")
    owner = np.full(count, -1, dtype=np.int32)
    rate = np.zeros(count, dtype=np.int64)
    if not dids or not count:
        return owner, rate
    check_dids(dids)
    numbers = sorted({d.number for d in dids})
    number_of = {number: index for index, number in enumerate(numbers)}
    value_set = pa.array(numbers, type=callees.type)
    called = pc.fill_null(pc.index_in(callees, value_set=value_set), -1)
    called = called.to_numpy().astype(np.int64)

    # The DIDs' service as [from, to) instants, sorted by (number, from): one searchsorted
    # finds the latest service of the callee's number that began before the call.
    record_number = np.array([number_of[d.number] for d in dids], dtype=np.int64)
    since, until = _service_instants(dids, timezone)
    order = np.lexsort((since, record_number))
    keys = (record_number[order] << _TIME_BITS) | _clip(since[order])
    call_keys = (np.maximum(called, 0) << _TIME_BITS) | _clip(start)
    position = np.searchsorted(keys, call_keys, side="right") - 1
    record = order[np.maximum(position, 0)]
    hit = (
        (called >= 0)
        & (position >= 0)
        & (record_number[record] == called)
        & (start < until[record])
    )
    per_minute = np.array([d.per_minute_e8 for d in dids], dtype=np.int64)
    owner[hit] = record[hit]
    rate[hit] = per_minute[record[hit]]
    return owner, rate


def did_amounts(
    per_minute_e8: np.ndarray, answered: np.ndarray, rounding: Rounding
) -> tuple[np.ndarray, np.ndarray]:
    """(billed seconds, micro-units) of inbound DID calls: per second, rounded once."""
    answered = np.asarray(answered, dtype=np.int64)
    one = np.ones(len(answered), dtype=np.int64)
    billed = billed_seconds(answered, one, one)
    rate = np.asarray(per_minute_e8, dtype=np.int64)
    # rate·billed in 10^-8/60 units (no connect fee on a DID); Python integers only where
    # int64 could overflow (a call of days at a huge rate), as rating does.
    if len(rate) and int(rate.max()) * int(billed.max()) > INT64_MAX:
        rate = rate.astype(object)
    exact = rate * billed
    amount = rounding.divide(exact, exact_divisor(rounding)).astype(np.int64)
    return billed, amount * 10 ** (AMOUNT_SCALE - rounding.decimals)


def _service_instants(dids: Sequence[Did], timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Each DID's first second of service and first second after it, UTC epoch seconds."""
    zone = ZoneInfo(timezone)
    days = {d.start for d in dids} | {d.end + dt.timedelta(days=1) for d in dids if d.end}
    # A loop over distinct days (a few hundred), not over calls or even DIDs.
    midnight = {
        day: int(dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()) for day in days
    }
    since = np.array([midnight[d.start] for d in dids], dtype=np.int64)
    until = np.array(
        [_NEVER if d.end is None else midnight[d.end + dt.timedelta(days=1)] for d in dids],
        dtype=np.int64,
    )
    return since, until


def _clip(seconds: np.ndarray) -> np.ndarray:
    return np.clip(seconds, -_TIME_ZERO, _TIME_ZERO - 1) + _TIME_ZERO
