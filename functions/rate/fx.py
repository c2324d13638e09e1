"""Effective-dated exchange rates, applied as exact ratios.

A rate is quoted "1 FROM = rate TO" with up to 10 decimal places, e.g. `EUR,USD,1.0842`.
The inverse direction is the exact ratio 1/rate (a fraction, not a rounded decimal), so a
table quoted one way serves both and no conversion ever rounds except the final amount.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import numpy as np

FX_SCALE = 10


class FxError(ValueError):
    """An FX table is invalid, or has no rate for a conversion that is needed."""


@dataclass(frozen=True, slots=True)
class FxQuote:
    source: str
    target: str
    effective_from: int  # epoch seconds; the quote applies until the next one for the pair
    rate_units: int  # 1 source = rate_units / 10^FX_SCALE target


@dataclass(frozen=True, slots=True)
class FxTable:
    quotes: tuple[FxQuote, ...]

    def ratio(self, source: str, target: str, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact (numerator, denominator) per time in `at` converting source → target."""
        n = len(at)
        if source == target:
            return np.ones(n, dtype=np.int64), np.ones(n, dtype=np.int64)
        for quotes, inverse in (
            (self._pair(source, target), False),
            (self._pair(target, source), True),
        ):
            if not quotes:
                continue
            starts = np.array([q.effective_from for q in quotes], dtype=np.int64)
            units = np.array([q.rate_units for q in quotes], dtype=np.int64)
            pick = np.searchsorted(starts, at, side="right") - 1
            if (pick < 0).any():
                first = datetime.fromtimestamp(int(at[pick < 0].min()), UTC).isoformat()
                raise FxError(f"no {source}->{target} rate effective at {first}")
            chosen = units[pick]
            scale = np.full(n, 10**FX_SCALE, dtype=np.int64)
            return (scale, chosen) if inverse else (chosen, scale)
        raise FxError(f"the FX table has no {source}/{target} rate")

    def _pair(self, source: str, target: str) -> list[FxQuote]:
        return sorted(
            (q for q in self.quotes if q.source == source and q.target == target),
            key=lambda q: q.effective_from,
        )


def parse_fx(text: str, source: str = "<fx>") -> FxTable:
    """CSV `from_currency,to_currency,rate[,effective_from]`; errors name the line."""
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
    missing = {"from_currency", "to_currency", "rate"} - fields.keys()
    if missing:
        raise FxError(f"{source}: missing column(s) {', '.join(sorted(missing))}")
    quotes = []
    for line, row in enumerate(reader, start=2):
        get = {k: (row.get(v) or "").strip() for k, v in fields.items()}
        try:
            rate = Decimal(get["rate"])
            units = rate.scaleb(FX_SCALE)
            if not rate.is_finite() or rate <= 0 or units != units.to_integral_value():
                raise InvalidOperation
        except InvalidOperation:
            raise FxError(
                f"{source} line {line}: rate {get['rate']!r} is not a positive number "
                f"with at most {FX_SCALE} decimal places"
            ) from None
        when = get.get("effective_from", "")
        try:
            start = _epoch(when) if when else -(2**62)
        except ValueError:
            raise FxError(f"{source} line {line}: effective_from {when!r} is not a date") from None
        quotes.append(
            FxQuote(get["from_currency"].upper(), get["to_currency"].upper(), start, int(units))
        )
    return FxTable(tuple(quotes))


def _epoch(text: str) -> int:
    if len(text) == 10:
        return int(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp())
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
