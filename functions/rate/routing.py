"""Routes for one call: least cost, then quality, then the margin guard. Pure: no AWS here.

Given the callee, the time, the candidate suppliers (each with its own compiled deck, as the
rating engine prices it), their status, route blocks, quality stats and the customer's own
per-minute price, `order_routes` returns the routes in the order a switch should try them.

* Candidates. Each supplier's deck is matched by its OWN longest live prefix (the sell deck
  may say 4495 where a buy deck says 44: MagnusBilling's pitfall); a supplier that is
  suspended, has no live open rate, or has a block whose prefix starts the callee is never
  offered.
* Cost. The cost of the expected call, exactly as the rating engine would charge it
  (connect fee, increments such as 60/6, minimum, surcharge; `price_numbers`), at an expected
  duration: the destination's ACD over the candidates' stats once they hold `min_calls`
  calls, else `expected_seconds` (60 s, like CGRateS *lc at one minute). Every route is
  priced at the same duration, so costs compare like for like.
* Quality (OpenSIPS qrouting's idea, per supplier x destination): ASR, ACD and PDD over the
  stats window, kept per supplier and the destination name of the supplier deck's matched
  row (`destination_key`: spacing collapsed, case folded; the row's prefix when it has no
  name), so the hundreds of prefixes a deck names India Mobile count together; they count
  only from `min_calls` attempts; a route under a floor (ASR
  below `asr_floor`, ACD below `acd_floor`, PDD above `pdd_ceiling_ms`) ranks as if it cost
  `penalty_percent` more. With the defaults (ASR floor 30 %, penalty 50 %) a route at 0.0062
  with 20 % ASR ranks as 0.0093, below one at 0.0065 with 85 %.
* Margin guard (OpenSIPS rate_cacher's margin = (client - vendor) * 100 / client): against
  the customer's per-minute price, a route whose per-minute cost leaves less than
  `min_margin` (absolute, per minute) or `min_margin_percent` is dropped; when no route
  passes, every route is returned with `flagged: true`, never nothing.
* Ties: penalised cost, then cost, then the supplier's name: the same input, the same order.

Money is exact: costs are compared as integers of 10^-8/60 (the engine's exact amount), and
shown as decimal strings.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa

from functions.rate.rating import (
    CallerNumbers,
    DeckIndex,
    DialledNumbers,
    Pricing,
    price_numbers,
    surcharges,
)
from functions.shared.money import RATE_SCALE, Rounding, to_units, units_to_str

ACTIVE = "active"
QUALITY_OK, QUALITY_POOR, QUALITY_UNKNOWN = "ok", "poor", "unknown"


class PolicyError(ValueError):
    """A routing setting out of range; names the setting."""


@dataclass(frozen=True, slots=True)
class Policy:
    """A tenant's routing settings (each has a default)."""

    asr_floor: Decimal = Decimal(30)  # percent; a route answering less is penalised
    acd_floor: int = 0  # seconds; 0: off
    pdd_ceiling_ms: int = 0  # milliseconds; 0: off
    penalty_percent: Decimal = Decimal(50)  # added to a poor route's cost for its rank
    min_calls: int = 20  # attempts before a route's stats count
    window_hours: int = 24  # the stats' sliding window
    expected_seconds: int = 60  # the call priced when the destination has no counted ACD
    min_margin: Decimal | None = Decimal(0)  # per minute; None: off
    min_margin_percent: Decimal | None = None  # percent of the customer's rate; None: off

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Policy:
        """The defaults with `values` (a stored document: strings or numbers) applied."""
        unknown = sorted(set(values) - set(POLICY_KEYS))
        if unknown:
            keys = ", ".join(POLICY_KEYS)
            raise PolicyError(f"unknown routing setting {unknown[0]!r}: use {keys}")
        policy = cls()
        changes = {key: _setting(key, value) for key, value in values.items()}
        return replace(policy, **changes)

    def as_json(self) -> dict[str, Any]:
        return {key: _text(getattr(self, key)) for key in POLICY_KEYS}


POLICY_KEYS = tuple(f.name for f in fields(Policy))
_WHOLE = {
    "acd_floor": (0, 86_400),
    "pdd_ceiling_ms": (0, 600_000),
    "min_calls": (1, 1_000_000),
    "window_hours": (1, 24 * 14),
    "expected_seconds": (1, 86_400),
}
_OPTIONAL = ("min_margin", "min_margin_percent")


def _text(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _setting(key: str, value: Any) -> Any:
    """One setting checked: whole numbers in range, exact decimals, None/"off" for the guards."""
    if key in _WHOLE:
        low, high = _WHOLE[key]
        try:
            number = int(str(value))
        except ValueError:
            raise PolicyError(f"invalid {key} {value!r}: a whole number {low}..{high}") from None
        if not low <= number <= high:
            raise PolicyError(f"invalid {key} {value!r}: a whole number {low}..{high}")
        return number
    if key in _OPTIONAL and (value is None or str(value).strip().lower() in ("", "off", "none")):
        return None
    if isinstance(value, float):
        raise PolicyError(f"invalid {key} {value!r}: give it as a decimal string")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise PolicyError(f"invalid {key} {value!r}: a decimal number") from None
    if not number.is_finite():
        raise PolicyError(f"invalid {key} {value!r}: a decimal number")
    if key in ("asr_floor", "penalty_percent") and not 0 <= number <= (
        100 if key == "asr_floor" else 10_000
    ):
        raise PolicyError(f"invalid {key} {value!r}: out of range")
    if key == "min_margin_percent" and not -100 <= number <= 100:
        raise PolicyError(f"invalid {key} {value!r}: a percent -100..100")
    if key == "min_margin" and number != number.quantize(Decimal(1).scaleb(-RATE_SCALE)):
        raise PolicyError(f"invalid {key} {value!r}: at most {RATE_SCALE} decimals, as a rate")
    return number


TRANSPORTS = ("udp", "tcp", "tls")
_HOST = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_GATEWAY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_DIGITS = re.compile(r"[0-9#*]{1,16}")


def check_target(
    host: str,
    port: int = 5060,
    transport: str = "udp",
    prefix: str | None = None,
    gateway: str | None = None,
) -> dict[str, Any]:
    """Where a supplier's calls are sent, checked: a SIP host (name or IP address), port,
    transport, an optional tech prefix put before the number, an optional FreeSWITCH
    gateway name. ValueError names the field at fault."""
    host = str(host).strip()
    try:
        host = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        if not _HOST.fullmatch(host):
            raise ValueError(f"invalid host {host!r}: a host name or an IP address") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"invalid port {port!r}: 1..65535")
    if transport not in TRANSPORTS:
        raise ValueError(f"invalid transport {transport!r}: use {', '.join(TRANSPORTS)}")
    if prefix is not None and not _DIGITS.fullmatch(prefix):
        raise ValueError(f"invalid prefix {prefix!r}: 1-16 digits (# and * allowed)")
    if gateway is not None and not _GATEWAY.fullmatch(gateway):
        raise ValueError(f"invalid gateway {gateway!r}: 1-64 letters, digits, '_', '.', ':', '-'")
    target: dict[str, Any] = {"host": host, "port": port, "transport": transport}
    if prefix is not None:
        target["prefix"] = prefix
    if gateway is not None:
        target["gateway"] = gateway
    return target


def check_block(prefix: str) -> str:
    """A route block's callee prefix: 1-18 digits."""
    if not isinstance(prefix, str) or not re.fullmatch(r"[0-9]{1,18}", prefix):
        raise ValueError(f"invalid prefix {prefix!r}: 1-18 digits")
    return prefix


@dataclass(frozen=True, slots=True)
class Stats:
    """A route's quality over the window: attempts, answered, answered seconds, PDD."""

    attempts: int = 0
    answered: int = 0
    seconds: int = 0
    pdd_sum_ms: int = 0
    pdd_count: int = 0

    def __add__(self, other: Stats) -> Stats:
        return Stats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Stats)))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A supplier that may carry the call: its compiled deck and what routing needs of it."""

    supplier: str
    index: DeckIndex
    rounding: Rounding = field(default_factory=Rounding)
    currency: str = "USD"
    status: str = ACTIVE
    blocks: tuple[str, ...] = ()  # callee prefixes this supplier must never be offered
    target: Mapping[str, Any] | None = None  # where to send the call (host, port, ...)


@dataclass(frozen=True, slots=True)
class Match:
    """A candidate's live deck row for the callee: its own longest prefix."""

    candidate: Candidate
    row: int
    prefix: str
    destination: str
    call: _Call  # the callee, time and caller it was matched for, prepared once

    @property
    def key(self) -> tuple[str, str]:
        """The quality stats' key: the supplier and its deck row's destination."""
        return (self.candidate.supplier, destination_key(self.destination, self.prefix))


DESTINATION_KEY_CHARS = 256


def destination_key(destination: str | None, prefix: str) -> str:
    """The destination a supplier deck row's quality stats are kept under: its destination
    name with control and format characters dropped, spacing collapsed and case folded
    ("India  Mobile" and "india mobile" are one), at most 256 characters; the row's prefix
    when nothing is left of the name (a deck without names keeps per-prefix stats)."""
    text = "".join(ch for ch in destination or "" if not unicodedata.category(ch).startswith("C")
                   or ch.isspace())  # fmt: skip
    name = " ".join(text.split()).casefold()[:DESTINATION_KEY_CHARS].rstrip()
    return name or prefix


@dataclass(frozen=True, slots=True)
class _Call:
    numbers: DialledNumbers
    start: np.ndarray
    callers: CallerNumbers | None

    def price(self, index: DeckIndex, seconds: int, rounding: Rounding) -> Pricing:
        answered = np.array([seconds], dtype=np.int64)
        return price_numbers(index, self.numbers, self.start, answered, rounding, self.callers)


def blocked(callee: str, blocks: Sequence[str]) -> bool:
    return any(callee.startswith(prefix) for prefix in blocks)


def match_routes(
    callee: str, at: int, candidates: Sequence[Candidate], caller: str | None = None
) -> list[Match]:
    """The candidates that may carry the call, each matched by its own deck's longest live
    prefix at `at` (epoch seconds); suspended, blocked and unpriced ones left out."""
    call = _Call(
        DialledNumbers.of(pa.array([callee], pa.string())),
        np.array([at], dtype=np.int64),
        # An unknown caller matches only the entries for any caller (a deck with origins).
        CallerNumbers.of(pa.array([caller or ""], pa.string())),
    )
    found = []
    for candidate in sorted(candidates, key=lambda c: c.supplier):
        if candidate.status != ACTIVE or blocked(callee, candidate.blocks):
            continue
        index = candidate.index
        # The engine's lookup (a live, open row of the longest prefix), as price_numbers does.
        row = int(index.lookup_numbers(call.numbers, call.start, call.callers)[0])
        if row < 0 or index.closed[row]:
            continue
        found.append(
            Match(
                candidate,
                row,
                index.deck.column("prefix")[row].as_py(),
                index.deck.column("destination")[row].as_py() or "",
                call,
            )
        )
    return found


def _percent(part: int, whole: int) -> Decimal:
    return (Decimal(part * 100) / Decimal(whole)).quantize(Decimal("0.1"))


def expected_duration(matches: Sequence[Match], stats: Mapping, policy: Policy) -> int:
    """The destination's ACD over every candidate's counted stats, else the default."""
    pooled = Stats()
    for match in matches:
        one = stats.get(match.key)
        if one is not None and one.attempts >= policy.min_calls:
            pooled = pooled + one
    if pooled.answered == 0:
        return policy.expected_seconds
    return max(1, (2 * pooled.seconds + pooled.answered) // (2 * pooled.answered))


def _quality(one: Stats | None, policy: Policy) -> tuple[str, list[str], dict[str, Any]]:
    """(ok | poor | unknown, the floors missed, the shown metrics)."""
    one = one or Stats()
    shown: dict[str, Any] = {
        "calls": one.attempts,
        "asr": str(_percent(one.answered, one.attempts)) if one.attempts else None,
        "acd": (2 * one.seconds + one.answered) // (2 * one.answered) if one.answered else None,
        "pdd": (2 * one.pdd_sum_ms + one.pdd_count) // (2 * one.pdd_count)
        if one.pdd_count
        else None,
    }
    if one.attempts < policy.min_calls:
        return QUALITY_UNKNOWN, [], shown
    missed = []
    if one.answered * 100 < policy.asr_floor * one.attempts:
        missed.append("asr")
    if policy.acd_floor and one.answered and one.seconds < policy.acd_floor * one.answered:
        missed.append("acd")
    if (
        policy.pdd_ceiling_ms
        and one.pdd_count
        and one.pdd_sum_ms > policy.pdd_ceiling_ms * one.pdd_count
    ):
        missed.append("pdd")
    return (QUALITY_POOR if missed else QUALITY_OK), missed, shown


def rank_routes(
    matches: Sequence[Match],
    stats: Mapping[tuple[str, str], Stats],
    policy: Policy,
    quote_rate: Decimal | None = None,
    quote_currency: str | None = None,
) -> list[dict[str, Any]]:
    """The matched routes priced at the expected duration, ordered, margin-guarded.

    `quote_rate` is the customer's per-minute price, in `quote_currency` when given: a route
    priced in another currency has no margin to show and never passes the guard (its margin
    cannot be proven without an FX rate)."""
    seconds = expected_duration(matches, stats, policy)
    quote_e8 = None if quote_rate is None else to_units(str(quote_rate), RATE_SCALE)
    ranked = []
    for match in matches:
        candidate = match.candidate
        index = candidate.index
        pricing = match.call.price(index, seconds, candidate.rounding)
        surcharge_rate, surcharge_amount = surcharges(index, pricing, candidate.rounding)
        rate_e8 = int(index.rate_e8[match.row]) + int(index.surcharge_e8[match.row])
        exact = int(pricing.exact[0]) + int(surcharge_rate[0]) * int(pricing.billed[0])
        amount = int(pricing.amount[0]) + int(surcharge_amount[0])
        quality, missed, shown = _quality(stats.get(match.key), policy)
        # Integer rank key: the exact cost, times (100 + penalty) for a poor route.
        penalty = policy.penalty_percent if quality == QUALITY_POOR else Decimal(0)
        weight = int((Decimal(100) + penalty) * 100)
        route: dict[str, Any] = {
            "supplier": candidate.supplier,
            "prefix": match.prefix,
            "destination": match.destination,
            "currency": candidate.currency,
            "cost_per_minute": units_to_str(rate_e8, RATE_SCALE),
            "cost": units_to_str(amount, candidate.rounding.decimals),
            "expected_seconds": seconds,
            "connect_fee": units_to_str(int(index.connect_fee_e8[match.row]), RATE_SCALE),
            "increment": f"{int(index.increment_first[match.row])}/"
            f"{int(index.increment_next[match.row])}",
            **shown,
            "quality": quality,
            "below": missed,
            "penalty": str(penalty),
            "margin": None,
            "margin_percent": None,
            "flagged": False,
            "target": dict(candidate.target) if candidate.target else None,
        }
        passes = True
        if quote_e8 is not None and quote_currency not in (None, candidate.currency):
            passes = False
        elif quote_e8 is not None:
            margin_e8 = quote_e8 - rate_e8
            route["margin"] = units_to_str(margin_e8, RATE_SCALE)
            percent = None
            if quote_e8 > 0:
                percent = (Decimal(margin_e8 * 100) / Decimal(quote_e8)).quantize(Decimal("0.01"))
                route["margin_percent"] = str(percent)
            if policy.min_margin is not None:
                passes &= margin_e8 >= to_units(str(policy.min_margin), RATE_SCALE)
            if policy.min_margin_percent is not None:
                # Exact: margin * 100 >= min% * quote, compared without rounding the percent.
                passes &= quote_e8 > 0 and Decimal(margin_e8 * 100) >= (
                    policy.min_margin_percent * quote_e8
                )
        ranked.append(((exact * weight, exact, candidate.supplier), passes, route))
    ranked.sort(key=lambda item: item[0])
    passing = [route for _, ok, route in ranked if ok]
    if passing:
        return passing
    return [{**route, "flagged": True} for _, _, route in ranked]


def order_routes(
    callee: str,
    at: int,
    candidates: Sequence[Candidate],
    stats: Mapping[tuple[str, str], Stats],
    policy: Policy | None = None,
    quote_rate: Decimal | None = None,
    caller: str | None = None,
    quote_currency: str | None = None,
) -> list[dict[str, Any]]:
    """`match_routes` then `rank_routes`: the ordered routes for one call."""
    policy = policy or Policy()
    matches = match_routes(callee, at, candidates, caller)
    return rank_routes(matches, stats, policy, quote_rate, quote_currency)


__all__ = [
    "Candidate",
    "Match",
    "Policy",
    "PolicyError",
    "Stats",
    "destination_key",
    "match_routes",
    "order_routes",
    "rank_routes",
]
