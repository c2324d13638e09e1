"""IRSF ranges: any answered call to a test number; minutes to premium, satellite and
high-risk ranges over a sliding 24 h (functions.fraud.ranges holds the list)."""

from __future__ import annotations

from decimal import Decimal

from functions.fraud.alerts import Finding
from functions.fraud.counters import CUSTOMER
from functions.fraud.rules import ROLLING, Evaluation, hours_to, in_hour, level, minutes


def findings(ev: Evaluation) -> list[Finding]:
    out = []
    for party, account, group, hour in ev.touched_of(CUSTOMER, "range"):
        listed = ev.range_of(group)
        if listed is None:
            continue
        scope = f"{listed.label} ({listed.prefix})"
        if listed.kind == "test":
            if not ev.policy.enabled("test_number", account):
                continue
            counter = ev.history.get(party, account, group, hour)
            if counter.answered:
                out.append(
                    Finding(
                        rule="test_number",
                        party=party,
                        account=account,
                        scope=scope,
                        **in_hour(hour),
                        severity="critical",
                        observed=Decimal(counter.answered),
                        threshold=Decimal(0),
                        unit="calls",
                        summary=f"{counter.answered} answered calls to the IRSF test range "
                        f"{listed.prefix} ({listed.label}); gangs dial a test number first",
                        evidence_group=group,
                    )
                )
            continue
        if not ev.policy.enabled("high_risk", account) or ev.policy.allowed(
            account, listed.prefix, listed.label
        ):
            continue
        total = ev.history.total(party, account, group, hour - ROLLING + 1, hour)
        observed = minutes(total.seconds)
        crossed = level(
            observed,
            ev.policy.value("high_risk", "minutes", account),
            ev.policy.value("high_risk", "critical_minutes", account),
        )
        if crossed is None or total.answered == 0:
            continue
        out.append(
            Finding(
                rule="high_risk",
                party=party,
                account=account,
                scope=scope,
                **hours_to(hour, ROLLING, per_day=True),
                severity=crossed[0],
                observed=observed,
                threshold=crossed[1],
                unit="minutes",
                summary=f"{observed} minutes in 24 h to the {listed.kind.replace('_', '-')} "
                f"range {listed.prefix} ({listed.label})",
                evidence_group=group,
            )
        )
    return out
