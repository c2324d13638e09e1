"""An account's volume contracts applied to its deck-priced calls: bundles, then tiers.

The deck prices every call first (destination, increments, connect fee, minimum, grace). Then,
for the calls of an account that has contracts, per billing period (the calendar month of the
call's start in the account's time zone):

1. a bundle whose destination group holds the call consumes its billed seconds, in start
   order, while the period's included seconds last (functions.rate.tiers.bundle_split). A call
   inside the bundle costs nothing; the one call that crosses its end pays the seconds beyond
   it (and its connect fee) at the rate that would have priced it; after the bundle, calls are
   priced as if there were none. A call that used the bundle shows component `bundle`.
2. a tier schedule whose group holds the call prices its (remaining) billed seconds by the
   tier they fall in, telescoped from the period's counter (functions.rate.tiers), plus the
   entry's connect fee rounded on its own; the tier's rate replaces the deck's, and the entry's
   minimum does not apply (flooring calls one by one would break the period's exact total).
   Component `tier`.

Every counter a run touches is a `RunCounters` entry keyed by account, contract and period: the
run reads each once (lazily, through the port it is given), advances it as it prices, and hands
the moves to the store, which commits them with the run (functions.rate.service), so a file
counts once and the period's total does not depend on the order its files arrive in.

Loops run over contracts and periods (a handful per account), each pricing its calls
column-wise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from functions.rate.rating import Pricing, exact_amount, exact_divisor
from functions.rate.tiers import (
    Bundle,
    TierSchedule,
    bundle_split,
    group_of,
    month_codes,
    tier_prices,
    volume_true_up,
)
from functions.shared.money import AMOUNT_SCALE, Rounding

USAGE, TIER, BUNDLE = "usage", "tier", "bundle"
WHAT_IF = "what-if"  # the account and the one period of an offline run (`tollgate rate`)
COMPONENTS = (USAGE, TIER, BUNDLE)  # `Applied.component` codes index this


@dataclass(frozen=True, slots=True, order=True)
class CounterKey:
    """One account's contract in one period: the unit the exactly-once counter counts."""

    account: str
    kind: str  # tier | bundle
    name: str
    period: str  # YYYY-MM

    @property
    def text(self) -> str:
        return f"{self.account}#{self.kind}#{self.name}#{self.period}"

    @classmethod
    def parse(cls, text: str) -> CounterKey:
        account, kind, name, period = text.split("#")
        return cls(account, kind, name, period)


@dataclass(frozen=True, slots=True)
class Counter:
    """A period's billed seconds and what its tier charged (micro-units) so far; `version`
    counts the runs committed on it (0: none yet)."""

    seconds: int = 0
    charged: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class Move:
    """What one run adds to one counter, read at `read`."""

    key: CounterKey
    read: Counter
    seconds: int
    charged: int

    @property
    def after(self) -> Counter:
        return Counter(
            self.read.seconds + self.seconds,
            self.read.charged + self.charged,
            self.read.version + 1,
        )


@dataclass(frozen=True)
class Contracts:
    """One account's tiers and bundles, and the time zone its periods are months of."""

    tiers: Sequence[TierSchedule] = ()
    bundles: Sequence[Bundle] = ()
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        for kind, items in ((TIER, self.tiers), (BUNDLE, self.bundles)):
            names = [item.name for item in items]
            if len(set(names)) != len(names):
                raise ValueError(f"two {kind} contracts share a name")
        # Each call falls in at most one group of each kind (group_of refuses overlaps).
        group_of(pa.array([], pa.string()), [t.prefixes for t in self.tiers])
        group_of(pa.array([], pa.string()), [b.prefixes for b in self.bundles])


class RunCounters:
    """The counters one pricing run reads and advances.

    `load` reads a counter from the store the first time the run meets it. `marks` records,
    per `section` (a day of the file), each counter's seconds when the section first used it,
    so that re-rating a day can price its calls from the same point (`replay`).
    """

    def __init__(self, load: Callable[[CounterKey], Counter | None]) -> None:
        self._load = load
        self._read: dict[CounterKey, Counter] = {}
        self._seconds: dict[CounterKey, int] = {}
        self._charged: dict[CounterKey, int] = {}
        self._skipped: set[CounterKey] = set()
        self.section = ""
        self.marks: dict[str, dict[str, int]] = {}

    @classmethod
    def replay(cls, marks: Mapping[str, int]) -> RunCounters:
        """Counters that start where a committed run's section started. A contract the run
        did not price by (set after the file was rated) does not apply: without its place in
        the period, its calls keep the deck's price."""
        starts = {CounterKey.parse(text): int(seconds) for text, seconds in marks.items()}
        return cls(lambda key: Counter(seconds=starts[key]) if key in starts else None)

    def applies(self, key: CounterKey) -> bool:
        """Whether the contract of `key` prices this run's calls (always, unless replayed)."""
        if key not in self._read and key not in self._skipped:
            found = self._load(key)
            if found is None:
                self._skipped.add(key)
            else:
                self._read[key] = found
                self._seconds[key] = found.seconds
                self._charged[key] = 0
        return key in self._read

    def seconds(self, key: CounterKey) -> int:
        if not self.applies(key):
            raise KeyError(f"counter {key.text} does not apply to this run")
        self.marks.setdefault(self.section, {}).setdefault(key.text, self._seconds[key])
        return self._seconds[key]

    def advance(self, key: CounterKey, seconds: int, charged: int = 0) -> None:
        self.seconds(key)
        self._seconds[key] += int(seconds)
        self._charged[key] += int(charged)

    def moves(self) -> list[Move]:
        """What the run adds to each counter it read, in key order (the store's lock order)."""
        return [
            Move(key, read, self._seconds[key] - read.seconds, self._charged[key])
            for key, read in sorted(self._read.items())
        ]


class PeriodCounters(RunCounters):
    """The counters of a what-if run: the file is one period (`WHAT_IF`), priced part by part
    from zero, each tier schedule counted under its name."""

    def __init__(self) -> None:
        super().__init__(lambda key: Counter())

    def totals(self, name: str, rounding: Rounding) -> tuple[int, int]:
        """A schedule's billed seconds and what its calls were charged (10^-decimals units)."""
        key = CounterKey(WHAT_IF, TIER, name, WHAT_IF)
        if key not in self._read:
            return 0, 0
        charged = self._charged[key] // 10 ** (AMOUNT_SCALE - rounding.decimals)
        return self._seconds[key], charged

    def true_ups(self, tiers: Sequence[TierSchedule], rounding: Rounding) -> dict[str, int]:
        """Per volume schedule: round(V(total)) minus what its calls were charged."""
        return {
            t.name: volume_true_up(t, *self.totals(t.name, rounding), rounding)
            for t in tiers
            if t.mode == "volume"
        }


@dataclass
class Applied:
    """An account's calls after its contracts: per call, its component, amount and rate."""

    component: np.ndarray  # int8 per call: an index into COMPONENTS
    amount: np.ndarray  # 10^-decimals units
    rate_e8: np.ndarray


def apply_contracts(
    account: str,
    contracts: Contracts,
    pricing: Pricing,
    callee: pa.Array | pa.ChunkedArray,
    start: np.ndarray,
    rounding: Rounding,
    counters: RunCounters,
    period: str | None = None,
) -> Applied:
    """The calls of `account` (priced by its deck in `pricing`) under its contracts; with
    `period`, every call counts in that one period (a what-if run), not its month's."""
    n = len(pricing.row)
    component = np.zeros(n, dtype=np.int8)  # usage
    amount = np.asarray(pricing.amount).astype(np.int64)
    rate = np.asarray(pricing.rate_e8).astype(np.int64)
    billed = np.asarray(pricing.billed).astype(np.int64)
    # Only charged calls count: unanswered, graced or unrated calls neither use a bundle nor
    # move a tier.
    charged = pricing.rated & (billed > 0)
    if not charged.any() or not (contracts.tiers or contracts.bundles):
        return Applied(component, amount, rate)
    if period is None:
        labels, periods = month_codes(start, contracts.timezone)
    else:
        labels, periods = np.array([period]), np.zeros(n, np.int64)
    fee = np.asarray(pricing.connect_fee_e8, dtype=np.int64)
    divisor = exact_divisor(rounding)
    remaining = billed.copy()  # seconds a tier or the deck still prices

    if contracts.bundles:
        group = np.where(charged, group_of(callee, [b.prefixes for b in contracts.bundles]), -1)
        for k, bundle in enumerate(contracts.bundles):
            for period, rows in _by_period(group == k, labels, periods, start):
                key = CounterKey(account, BUNDLE, bundle.name, period)
                if not counters.applies(key):
                    continue
                included, beyond = bundle_split(bundle, counters.seconds(key), billed[rows])
                counters.advance(key, int(billed[rows].sum()))
                used = included > 0
                remaining[rows] = beyond
                component[rows[used]] = COMPONENTS.index(BUNDLE)
                inside = rows[used & (beyond == 0)]
                amount[inside] = 0
                crossing = rows[used & (beyond > 0)]
                if len(crossing):
                    exact = exact_amount(fee[crossing], rate[crossing], beyond[used & (beyond > 0)])
                    amount[crossing] = rounding.divide(exact, divisor).astype(np.int64)

    if contracts.tiers:
        group = np.where(charged, group_of(callee, [t.prefixes for t in contracts.tiers]), -1)
        scale = 10 ** (AMOUNT_SCALE - rounding.decimals)
        for k, schedule in enumerate(contracts.tiers):
            for period, rows in _by_period(group == k, labels, periods, start):
                # A call wholly inside a bundle has nothing left for the tier to price.
                rows = rows[remaining[rows] > 0]
                if not len(rows):
                    continue
                key = CounterKey(account, TIER, schedule.name, period)
                if not counters.applies(key):
                    continue
                seconds = remaining[rows]
                priced, rate[rows] = tier_prices(schedule, counters.seconds(key), seconds, rounding)
                counters.advance(key, int(seconds.sum()), int(priced.sum()) * scale)
                fees = rounding.divide(fee[rows] * 60, divisor).astype(np.int64)
                amount[rows] = priced + fees
                component[rows[component[rows] == 0]] = COMPONENTS.index(TIER)
    return Applied(component, amount, rate)


def _by_period(mask: np.ndarray, labels: np.ndarray, periods: np.ndarray, start: np.ndarray):
    """(period, rows in start order) for the calls in `mask`, a period at a time."""
    rows = np.flatnonzero(mask)
    if not len(rows):
        return
    for code in np.flatnonzero(np.bincount(periods[rows], minlength=len(labels))):
        picked = rows[periods[rows] == code]
        yield str(labels[code]), picked[np.argsort(start[picked], kind="stable")]
