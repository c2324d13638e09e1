"""Routes: a supplier's ASR to a destination group collapsing against its last days
(misrouting, or fraud on the route). A warning only: nothing suspends a supplier."""

from __future__ import annotations

from decimal import Decimal

from functions.fraud.alerts import Finding, quantize
from functions.fraud.counters import SUPPLIER
from functions.fraud.rules import Evaluation, in_hour


def findings(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy
    for party, supplier, group, hour in ev.touched_of(SUPPLIER, "country"):
        if not policy.enabled("asr_collapse", supplier):
            continue
        now = ev.history.get(party, supplier, group, hour)
        if now.calls < policy.value("asr_collapse", "min_calls", supplier):
            continue
        days = policy.whole("asr_collapse", "days", supplier)
        before = ev.history.total(party, supplier, group, hour - 24 * days, hour - 1)
        if before.calls < policy.value("asr_collapse", "min_calls", supplier):
            continue
        asr = Decimal(now.answered) / Decimal(now.calls)
        usual = Decimal(before.answered) / Decimal(before.calls)
        if usual < policy.value("asr_collapse", "min_baseline", supplier):
            continue
        limit = usual * policy.value("asr_collapse", "ratio", supplier)
        if asr >= limit:
            continue
        out.append(
            Finding(
                rule="asr_collapse",
                party=party,
                account=supplier,
                scope=group,
                **in_hour(hour),
                severity="warning",
                observed=quantize(asr, "0.0001"),
                threshold=quantize(limit, "0.0001"),
                unit="asr",
                baseline=quantize(usual, "0.0001"),
                ratio=quantize(asr / usual) if usual else None,
                summary=f"ASR {quantize(asr * 100)} % on {now.calls} calls to {group} "
                f"against {quantize(usual * 100)} % over the last {days} days",
            )
        )
    return out
