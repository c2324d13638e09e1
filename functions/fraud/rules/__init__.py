"""The fraud rules, a module per family, and what they read.

Each rule is a function of an `Evaluation` (the hours to judge, the counters around them, the
tenant's policy, a file's evidence) returning `Finding`s. Pure: the service loads what
`needed_spans` and then `needed_points` ask for, and stores what the rules find.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from functions.fraud.alerts import Finding, day_key, hour_key
from functions.fraud.counters import ALL, FIELDS, RANGE, Callback, CallBurst, Counter, Evidence
from functions.fraud.policy import Policy
from functions.fraud.ranges import RangeList

WEEK = 168  # hours
ROLLING = 24  # hours of the sliding windows (spend, high-risk minutes, short calls)


class History:
    """Counters by key; a key never counted reads as zero."""

    def __init__(self, counters: Iterable[Counter], first_hours: Mapping[tuple[str, str], int]):
        self._counters = {c.key: c for c in counters}
        self._first = dict(first_hours)

    def get(self, party: str, account: str, group: str, hour: int) -> Counter:
        found = self._counters.get((party, account, group, hour))
        return found if found is not None else Counter(party, account, group, hour)

    def total(self, party: str, account: str, group: str, first: int, last: int) -> Counter:
        """The counters of hours first..last (inclusive) added up."""
        sums = dict.fromkeys(FIELDS, 0)
        for hour in range(first, last + 1):
            found = self._counters.get((party, account, group, hour))
            if found is not None:
                for name in FIELDS:
                    sums[name] += getattr(found, name)
        return Counter(party, account, group, last, **sums)

    def first_hour(self, party: str, account: str) -> int | None:
        return self._first.get((party, account))


@dataclass
class Evaluation:
    tenant: str
    touched: set[tuple[str, str, str, int]]  # (party, account, group, hour) to judge
    history: History
    policy: Policy
    ranges: RangeList
    evidence: Mapping[tuple[str, str], Evidence] = field(default_factory=dict)
    new_groups: Mapping[str, Mapping[str, int]] = field(
        default_factory=dict
    )  # account: group->hour
    bursts: list[CallBurst] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)

    def range_of(self, group: str):
        """The IRSF range a `range:PREFIX` group counts, or None if it was removed since."""
        prefix = group.removeprefix(RANGE)
        return next((r for r in self.ranges.ranges if r.prefix == prefix), None)

    def touched_of(self, party: str, kind: str) -> list[tuple[str, str, str, int]]:
        """Touched keys of a party whose group is `*` (all), `range` or `country`."""

        def kind_of(group: str) -> str:
            return "all" if group == ALL else "range" if group.startswith(RANGE) else "country"

        return sorted(k for k in self.touched if k[0] == party and kind_of(k[2]) == kind)


def needed_spans(
    touched: Iterable[tuple[str, str, str, int]], policy: Policy
) -> dict[tuple[str, str], tuple[int, int]]:
    """The hours the rules read around the touched ones, every group at once: per (party,
    account) one span, the sliding windows' 24 h for a customer, `asr_collapse.days` for a
    supplier."""
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for party, account, _, hour in touched:
        back = ROLLING - 1 if party == "customer" else 24 * policy.whole("asr_collapse", "days")
        first, last = spans.get((party, account), (hour - back, hour))
        spans[(party, account)] = (min(first, hour - back), max(last, hour))
    return spans


def needed_points(
    touched: Iterable[tuple[str, str, str, int]],
    history: History,
    policy: Policy,
    callbacks: Iterable[Callback] = (),
) -> set[tuple[str, str, str, int]]:
    """The same hour of earlier weeks, for the baselines, only where a rule will read it:
    a group's hour with at least `spike.min_minutes`, an account's hour with at least
    `off_hours.min_minutes`, a callback range's group. The others cannot fire, so their
    weeks are never read."""
    points: set[tuple[str, str, str, int]] = set()

    def weeks_back(party, account, group, hour, weeks):
        points.update((party, account, group, hour - WEEK * k) for k in range(1, weeks + 1))

    for party, account, group, hour in touched:
        if party != "customer" or group.startswith(RANGE):
            continue
        seconds = history.get(party, account, group, hour).seconds
        if group == ALL:
            if minutes(seconds) >= policy.value("off_hours", "min_minutes", account):
                weeks_back(party, account, group, hour, policy.whole("off_hours", "weeks", account))
        elif minutes(seconds) >= policy.value("spike", "min_minutes", account):
            weeks_back(party, account, group, hour, policy.whole("spike", "weeks", account))
    for hit in callbacks:
        if hit.callers >= policy.value("wangiri", "min_callers", hit.account):
            weeks = policy.whole("spike", "weeks", hit.account)
            weeks_back("customer", hit.account, hit.group, hit.hour, weeks)
    return points


def in_hour(hour: int) -> dict[str, int | str]:
    """A finding's window: one hour of the calls, its own dedupe window."""
    return {
        "window_start": hour * 3600,
        "window_end": (hour + 1) * 3600,
        "window_key": hour_key(hour),
    }


def hours_to(hour: int, hours: int, *, per_day: bool = False) -> dict[str, int | str]:
    """A sliding window of `hours` hours ending with `hour`; deduped per hour, or per day of
    its end (a 24 h rule: one alert a day, however often the window slides)."""
    return {
        "window_start": (hour - hours + 1) * 3600,
        "window_end": (hour + 1) * 3600,
        "window_key": day_key(hour) if per_day else hour_key(hour),
    }


def level(observed: Decimal, warn: Decimal, critical: Decimal) -> tuple[str, Decimal] | None:
    """The severity a value reaches and the threshold it crossed, or None under both."""
    if observed >= critical:
        return "critical", critical
    return ("warning", warn) if observed >= warn else None


def minutes(seconds: int) -> Decimal:
    return (Decimal(seconds) / 60).quantize(Decimal("0.01"))


def run_all(evaluation: Evaluation) -> list[Finding]:
    from functions.fraud.rules import baseline, hotlist, novelty, patterns, routes, velocity

    findings: list[Finding] = []
    for module in (hotlist, novelty, velocity, baseline, patterns, routes):
        findings += module.findings(evaluation)
    return findings
