"""A deliberately naive, per-call Decimal implementation of the rating contract.

It shares no code with the vectorised engine: the property tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

ROUNDING = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "down": ROUND_DOWN}


@dataclass(frozen=True)
class Entry:
    prefix: str
    rate: Decimal
    connect_fee: Decimal = Decimal(0)
    first: int = 1
    step: int = 1
    effective_from: int | None = None  # epoch seconds; None = always
    effective_to: int | None = None  # exclusive; None = never
    closed: bool = False
    destination: str = ""
    minimum_charge: Decimal = Decimal(0)  # per answered call
    free_seconds: int = 0  # answered calls of up to this many seconds cost 0
    origin: str = ""  # caller prefix; "" = any caller
    surcharge: Decimal = Decimal(0)  # per minute, its own charge


def live_entry(entries: list[Entry], number: str, t: int, caller: str = "") -> Entry | None:
    """Longest prefix with a live entry for the caller; then the longest origin; then the
    latest effective_from."""
    for length in range(len(number), 0, -1):
        head = number[:length]
        live = [
            e
            for e in entries
            if e.prefix == head
            and caller.startswith(e.origin)
            and (e.effective_from is None or e.effective_from <= t)
            and (e.effective_to is None or t < e.effective_to)
        ]
        if live:
            return max(
                live,
                key=lambda e: (
                    len(e.origin),
                    -(2**62) if e.effective_from is None else e.effective_from,
                ),
            )
    return None


def billed(seconds: int, first: int, step: int) -> int:
    if seconds <= 0:
        return 0
    if seconds <= first:
        return first
    over = seconds - first
    return first + ((over + step - 1) // step) * step


def rate_call(
    entries: list[Entry],
    number: str,
    t: int,
    seconds: int,
    decimals: int = 6,
    method: str = "half_up",
    caller: str = "",
) -> tuple[str, str, int, Decimal]:
    """(status, reason, billed seconds, amount) for one call."""
    entry = live_entry(entries, number, t, caller)
    if entry is None:
        return "unrated", "no_rate", 0, Decimal(0)
    if entry.closed:
        return "unrated", "closed", 0, Decimal(0)
    secs = billed(seconds, entry.first, entry.step)
    if seconds <= 0 or seconds <= entry.free_seconds:
        return "rated", "", 0, Decimal(0).quantize(Decimal(1).scaleb(-decimals))
    exact = entry.connect_fee + entry.rate * Decimal(secs) / Decimal(60)
    exact = max(exact, entry.minimum_charge)
    amount = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUNDING[method])
    return "rated", "", secs, amount


def surcharge_call(
    entries: list[Entry],
    number: str,
    t: int,
    seconds: int,
    decimals: int = 6,
    method: str = "half_up",
    caller: str = "",
) -> Decimal | None:
    """The call's surcharge amount, or None when it has no surcharge charge."""
    entry = live_entry(entries, number, t, caller)
    if entry is None or entry.closed or entry.surcharge == 0:
        return None
    if seconds <= 0 or seconds <= entry.free_seconds:
        return None
    secs = billed(seconds, entry.first, entry.step)
    exact = entry.surcharge * Decimal(secs) / Decimal(60)
    return exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUNDING[method])


ALWAYS = -(2**62)
NEVER = 2**62


def deck_table(entries: list[Entry]):
    """The compiled-deck table (functions.rate.deck.DECK_SCHEMA) for reference entries."""
    import pyarrow as pa

    def units(value: Decimal) -> int:
        return int(value.scaleb(8))

    return pa.table(
        {
            "prefix": pa.array([e.prefix for e in entries], pa.string()),
            "origin": pa.array([e.origin for e in entries], pa.string()),
            "destination": pa.array([e.destination for e in entries], pa.string()),
            "rate_e8": pa.array([units(e.rate) for e in entries], pa.int64()),
            "connect_fee_e8": pa.array([units(e.connect_fee) for e in entries], pa.int64()),
            "increment_first": pa.array([e.first for e in entries], pa.int32()),
            "increment_next": pa.array([e.step for e in entries], pa.int32()),
            "minimum_charge_e8": pa.array([units(e.minimum_charge) for e in entries], pa.int64()),
            "free_seconds": pa.array([e.free_seconds for e in entries], pa.int32()),
            "surcharge_e8": pa.array([units(e.surcharge) for e in entries], pa.int64()),
            "effective_from": pa.array(
                [ALWAYS if e.effective_from is None else e.effective_from for e in entries],
                pa.int64(),
            ),
            "effective_to": pa.array(
                [NEVER if e.effective_to is None else e.effective_to for e in entries], pa.int64()
            ),
            "closed": pa.array([e.closed for e in entries], pa.bool_()),
            "line": pa.array(range(2, 2 + len(entries)), pa.int64()),
        }
    )
