"""The account against its own past: a spike per destination group and hour of the week, and
traffic in hours of the week in which the account is normally silent.

Baseline (docs/fraud.md): the same hour of the week over the last `spike.weeks` weeks (a week
with no traffic that hour counts as 0, once the account existed). A young account, with fewer
than `spike.min_weeks` weeks, is judged against the mean of its hours so far in the last day
and the weeks it has: an average that adapts. z = (x - mean) / max(std, sqrt(mean), 1): the
square root is Poisson noise, so small counts do not make huge scores. A spike fires only
when x >= min_minutes AND x >= k * mean AND z >= z; it is critical when x >= critical_minutes
and x >= critical_ratio * mean.
"""

from __future__ import annotations

from decimal import Decimal

from functions.fraud.alerts import Finding, quantize
from functions.fraud.counters import ALL, CUSTOMER
from functions.fraud.rules import ROLLING, WEEK, Evaluation, in_hour, level, minutes


def _stats(values: list[Decimal]) -> tuple[Decimal, Decimal]:
    mean = sum(values, Decimal(0)) / len(values)
    variance = sum(((v - mean) ** 2 for v in values), Decimal(0)) / len(values)
    return mean, variance.sqrt()


def findings(ev: Evaluation) -> list[Finding]:
    return _spikes(ev) + _off_hours(ev)


def _spikes(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy
    for party, account, group, hour in ev.touched_of(CUSTOMER, "country"):
        if not policy.enabled("spike", account) or policy.allowed(account, group):
            continue
        first = ev.history.first_hour(party, account)
        if first is None or hour - first < policy.whole("spike", "familiarity_hours", account):
            continue
        x = minutes(ev.history.get(party, account, group, hour).seconds)
        if x < policy.value("spike", "min_minutes", account):
            continue
        weeks = min(policy.whole("spike", "weeks", account), (hour - first) // WEEK)
        values = [
            minutes(ev.history.get(party, account, group, hour - WEEK * k).seconds)
            for k in range(1, weeks + 1)
        ]
        if weeks < policy.whole("spike", "min_weeks", account):
            # Young: every hour it has had in the last day counts too.
            values += [
                minutes(ev.history.get(party, account, group, h).seconds)
                for h in range(max(first, hour - ROLLING + 1), hour)
            ]
        if not values:
            continue
        mean, std = _stats(values)
        noise = max(std, mean.sqrt(), Decimal(1))
        z = (x - mean) / noise
        k = policy.value("spike", "k", account)
        if x < k * mean or z < policy.value("spike", "z", account):
            continue
        critical = x >= policy.value("spike", "critical_minutes", account) and (
            x >= policy.value("spike", "critical_ratio", account) * mean
        )
        ratio = quantize(x / mean) if mean else None
        out.append(
            Finding(
                rule="spike",
                party=party,
                account=account,
                scope=group,
                **in_hour(hour),
                severity="critical" if critical else "warning",
                observed=x,
                threshold=quantize(max(k * mean, policy.value("spike", "min_minutes", account))),
                unit="minutes",
                baseline=quantize(mean),
                ratio=ratio,
                z=quantize(z),
                summary=f"{x} minutes to {group} in one hour against a baseline of "
                f"{quantize(mean)} (same hour, {weeks} weeks"
                + (", young account" if weeks < policy.whole("spike", "min_weeks", account) else "")
                + ")",
                evidence_group=group,
            )
        )
    return out


def _off_hours(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy
    for party, account, _all, hour in ev.touched_of(CUSTOMER, "all"):
        if not policy.enabled("off_hours", account):
            continue
        weeks = policy.whole("off_hours", "weeks", account)
        first = ev.history.first_hour(party, account)
        if first is None or weeks == 0 or hour - first < weeks * WEEK:
            continue
        if any(
            ev.history.get(party, account, ALL, hour - WEEK * k).calls for k in range(1, weeks + 1)
        ):
            continue
        x = minutes(ev.history.get(party, account, ALL, hour).seconds)
        crossed = level(
            x,
            policy.value("off_hours", "min_minutes", account),
            policy.value("off_hours", "critical_minutes", account),
        )
        if crossed is None:
            continue
        out.append(
            Finding(
                rule="off_hours",
                party=party,
                account=account,
                scope=ALL,
                **in_hour(hour),
                severity=crossed[0],
                observed=x,
                threshold=crossed[1],
                unit="minutes",
                baseline=Decimal(0),
                summary=f"{x} minutes in an hour of the week with no call in each of the "
                f"last {weeks} weeks",
            )
        )
    return out
