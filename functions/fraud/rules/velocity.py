"""Velocity per account over every destination: minutes in an hour, spend over a sliding
24 h, and calls started within 60 s (from one file's calls)."""

from __future__ import annotations

from decimal import Decimal

from functions.fraud.alerts import Finding, day_key, hour_key
from functions.fraud.counters import ALL, CUSTOMER
from functions.fraud.rules import ROLLING, Evaluation, minutes
from functions.shared.money import AMOUNT_SCALE, units_to_decimal


def _level(observed: Decimal, warn: Decimal, critical: Decimal) -> str | None:
    if observed >= critical:
        return "critical"
    return "warning" if observed >= warn else None


def findings(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy
    for party, account, group, hour in ev.touched_of(CUSTOMER, "all"):
        if not policy.enabled("velocity", account):
            continue
        counter = ev.history.get(party, account, group, hour)
        observed = minutes(counter.seconds)
        warn = policy.value("velocity", "minutes_per_hour", account)
        critical = policy.value("velocity", "critical_minutes_per_hour", account)
        severity = _level(observed, warn, critical)
        if severity:
            out.append(
                Finding(
                    rule="velocity.minutes_per_hour",
                    party=party,
                    account=account,
                    scope=ALL,
                    window_start=hour * 3600,
                    window_end=(hour + 1) * 3600,
                    window_key=hour_key(hour),
                    severity=severity,
                    observed=observed,
                    threshold=critical if severity == "critical" else warn,
                    unit="minutes",
                    summary=f"{observed} minutes in one hour over every destination",
                )
            )
        total = ev.history.total(party, account, group, hour - ROLLING + 1, hour)
        spend = units_to_decimal(total.amount, AMOUNT_SCALE)
        warn = policy.value("velocity", "spend_per_day", account)
        critical = policy.value("velocity", "critical_spend_per_day", account)
        severity = _level(spend, warn, critical)
        if severity:
            out.append(
                Finding(
                    rule="velocity.spend_per_day",
                    party=party,
                    account=account,
                    scope=ALL,
                    window_start=(hour - ROLLING + 1) * 3600,
                    window_end=(hour + 1) * 3600,
                    window_key=day_key(hour),
                    severity=severity,
                    observed=spend,
                    threshold=critical if severity == "critical" else warn,
                    unit="spend",
                    summary=f"spend of {spend} in 24 h over every destination",
                )
            )
    for burst in ev.bursts:
        if not policy.enabled("velocity", burst.account):
            continue
        observed = Decimal(burst.calls)
        warn = policy.value("velocity", "calls_per_minute", burst.account)
        critical = policy.value("velocity", "critical_calls_per_minute", burst.account)
        severity = _level(observed, warn, critical)
        if severity:
            out.append(
                Finding(
                    rule="velocity.calls_per_minute",
                    party=CUSTOMER,
                    account=burst.account,
                    scope=ALL,
                    window_start=burst.start,
                    window_end=burst.start + 60,
                    window_key=hour_key(burst.start // 3600),
                    severity=severity,
                    observed=observed,
                    threshold=critical if severity == "critical" else warn,
                    unit="calls",
                    summary=f"{burst.calls} calls started within 60 s",
                )
            )
    return out
