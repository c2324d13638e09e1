"""Velocity per account over every destination: minutes in an hour, spend over a sliding
24 h, and calls started within 60 s (from one file's calls)."""

from __future__ import annotations

from decimal import Decimal

from functions.fraud.alerts import Finding, hour_key
from functions.fraud.counters import ALL, CUSTOMER
from functions.fraud.rules import ROLLING, Evaluation, hours_to, in_hour, level, minutes
from functions.shared.money import AMOUNT_SCALE, units_to_decimal


def findings(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy

    def limit(account: str, key: str, observed: Decimal, unit: str, summary: str, window):
        crossed = level(
            observed,
            policy.value("velocity", key, account),
            policy.value("velocity", f"critical_{key}", account),
        )
        if crossed:
            out.append(
                Finding(
                    rule=f"velocity.{key}",
                    party=CUSTOMER,
                    account=account,
                    scope=ALL,
                    severity=crossed[0],
                    observed=observed,
                    threshold=crossed[1],
                    unit=unit,
                    summary=summary,
                    **window,
                )
            )

    for party, account, group, hour in ev.touched_of(CUSTOMER, "all"):
        if not policy.enabled("velocity", account):
            continue
        spoken = minutes(ev.history.get(party, account, group, hour).seconds)
        limit(
            account,
            "minutes_per_hour",
            spoken,
            "minutes",
            f"{spoken} minutes in one hour over every destination",
            in_hour(hour),
        )
        total = ev.history.total(party, account, group, hour - ROLLING + 1, hour)
        spend = units_to_decimal(total.amount, AMOUNT_SCALE)
        limit(
            account,
            "spend_per_day",
            spend,
            "spend",
            f"spend of {spend} in 24 h over every destination",
            hours_to(hour, ROLLING, per_day=True),
        )
    for burst in ev.bursts:
        if policy.enabled("velocity", burst.account):
            window = {
                "window_start": burst.start,
                "window_end": burst.start + 60,
                "window_key": hour_key(burst.start // 3600),
            }
            limit(
                burst.account,
                "calls_per_minute",
                Decimal(burst.calls),
                "calls",
                f"{burst.calls} calls started within 60 s",
                window,
            )
    return out
