"""New destination: an account's first traffic to a destination group that is dear (its
dearest rate at least `new_destination.min_rate` per minute). Critical when an established
account sends `critical_minutes` there at once."""

from __future__ import annotations

from decimal import Decimal

from functions.fraud.alerts import Finding, day_key
from functions.fraud.counters import CUSTOMER
from functions.fraud.rules import Evaluation, minutes
from functions.shared.money import RATE_SCALE, to_units, units_to_decimal


def findings(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy
    for account, groups in sorted(ev.new_groups.items()):
        if not policy.enabled("new_destination", account):
            continue
        min_rate = policy.value("new_destination", "min_rate", account)
        for group, first in sorted(groups.items()):
            evidence = ev.evidence.get((account, group))
            if evidence is None or policy.allowed(account, group):
                continue
            if evidence.max_rate < to_units(str(min_rate), RATE_SCALE):
                continue
            seconds = sum(
                ev.history.get(CUSTOMER, account, group, h).seconds
                for h in range(evidence.first_hour, evidence.last_hour + 1)
            )
            observed = minutes(seconds)
            critical = policy.value("new_destination", "critical_minutes", account)
            # An account's very first traffic is new everywhere: the static limits (velocity,
            # high-risk) judge a new account; only an established one (it called a day or
            # more before this group) is suspended here.
            since = ev.history.first_hour(CUSTOMER, account)
            familiar = policy.whole("spike", "familiarity_hours", account)
            established = since is not None and first - since >= familiar
            severity = "critical" if observed >= critical and established else "warning"
            rate = units_to_decimal(evidence.max_rate, RATE_SCALE).normalize()
            out.append(
                Finding(
                    rule="new_destination",
                    party=CUSTOMER,
                    account=account,
                    scope=group,
                    window_start=first * 3600,
                    window_end=(evidence.last_hour + 1) * 3600,
                    window_key=day_key(first),
                    severity=severity,
                    observed=observed,
                    threshold=critical if severity == "critical" else Decimal(0),
                    unit="minutes",
                    summary=f"first traffic to {group}, at up to {rate} per minute: "
                    f"{observed} minutes",
                    evidence_group=group,
                )
            )
    return out
