"""Billing cycles and their periods: which days an invoice covers. Pure.

A period is named so that its name says its cycle:

    monthly      2026-03      1 to 31 March
    semimonthly  2026-03-1    1 to 15 March;   2026-03-2   16 March to the month's last day
    weekly       2026-W10     ISO week 10 (Monday to Sunday)

The days are calendar days in the account's time zone; an entry belongs to a period when it
was booked between the first day's midnight and the midnight after the last day, local time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

CYCLES = ("monthly", "semimonthly", "weekly")
_MONTHLY = re.compile(r"(\d{4})-(\d{2})")
_SEMIMONTHLY = re.compile(r"(\d{4})-(\d{2})-([12])")
_WEEKLY = re.compile(r"(\d{4})-W(\d{2})")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    first_day: dt.date
    last_day: dt.date
    cycle: str
    name: str

    def __str__(self) -> str:
        return self.name

    @property
    def end(self) -> dt.date:
        """The day after the last: where the next period starts."""
        return self.last_day + dt.timedelta(days=1)

    def next(self) -> Period:
        return period_of(self.cycle, self.end)


def check_cycle(cycle: str) -> str:
    if cycle not in CYCLES:
        raise ValueError(f"invalid cycle {cycle!r}: use one of {', '.join(CYCLES)}")
    return cycle


def parse_period(text: str) -> Period:
    """The period a name denotes (2026-03, 2026-03-2, 2026-W10); ValueError naming the form."""
    text = str(text).strip()
    try:
        if found := _MONTHLY.fullmatch(text):
            year, month = int(found[1]), int(found[2])
            last = calendar.monthrange(year, month)[1]
            return Period(dt.date(year, month, 1), dt.date(year, month, last), "monthly", text)
        if found := _SEMIMONTHLY.fullmatch(text):
            year, month, half = int(found[1]), int(found[2]), int(found[3])
            last = calendar.monthrange(year, month)[1]
            first_day = dt.date(year, month, 1 if half == 1 else 16)
            last_day = dt.date(year, month, 15 if half == 1 else last)
            return Period(first_day, last_day, "semimonthly", text)
        if found := _WEEKLY.fullmatch(text):
            monday = dt.date.fromisocalendar(int(found[1]), int(found[2]), 1)
            return Period(monday, monday + dt.timedelta(days=6), "weekly", text)
    except ValueError:
        pass
    raise ValueError(
        f"invalid period {text!r}: use YYYY-MM (monthly), YYYY-MM-1 or YYYY-MM-2 "
        "(semimonthly halves) or YYYY-Www (ISO week)"
    )


def period_of(cycle: str, day: dt.date) -> Period:
    """The period of `cycle` that holds `day`."""
    check_cycle(cycle)
    if cycle == "monthly":
        return parse_period(f"{day:%Y-%m}")
    if cycle == "semimonthly":
        return parse_period(f"{day:%Y-%m}-{1 if day.day <= 15 else 2}")
    year, week, _ = day.isocalendar()
    return parse_period(f"{year}-W{week:02d}")


def last_closed(cycle: str, today: dt.date) -> Period:
    """The latest period of `cycle` that ended before `today`."""
    return period_of(cycle, period_of(cycle, today).first_day - dt.timedelta(days=1))
