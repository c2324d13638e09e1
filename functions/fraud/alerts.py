"""Findings and alerts: what a rule saw, and the one alert per account x rule x window.

A rule returns `Finding`s; an alert is a finding given an id and the evidence that explains
it. The id is a digest of (tenant, party, account, rule, scope, window), so the same finding
seen again (a second file of the same hour, the 5-minute pass, a retried event) updates the
same alert instead of raising another: no storms. A rising severity escalates it and notifies
again; a finding of the same or a lower severity only moves `last_seen` and keeps the highest
value observed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from functions.fraud.counters import Evidence, TopNumber
from functions.shared.money import AMOUNT_SCALE, units_to_str

SEVERITIES = ("warning", "critical")
RANK = {severity: rank for rank, severity in enumerate(SEVERITIES, start=1)}


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    party: str  # customer | supplier
    account: str
    scope: str  # the destination group, IRSF range or "*" (every destination)
    window_start: int  # epoch seconds, inclusive
    window_end: int  # epoch seconds, exclusive
    window_key: str  # the dedupe window: an hour "2026-11-02T03" or a day "2026-11-02"
    severity: str
    observed: Decimal
    threshold: Decimal
    unit: str  # minutes | spend | calls | share | callers | asr
    summary: str
    baseline: Decimal | None = None
    ratio: Decimal | None = None
    z: Decimal | None = None
    evidence_group: str | None = None  # the group whose Evidence explains it


def hour_key(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y-%m-%dT%H")


def day_key(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).date().isoformat()


def alert_id(tenant: str, finding: Finding) -> str:
    basis = "|".join(
        (tenant, finding.party, finding.account, finding.rule, finding.scope, finding.window_key)
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:20]


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _top(number: TopNumber) -> dict[str, Any]:
    """A called number as an alert shows it: calls, minutes and what they cost the account
    (exact, in its currency), with the seconds they add up from."""
    return {
        "number": number.number,
        "calls": number.calls,
        "seconds": number.seconds,
        "minutes": str(quantize(Decimal(number.seconds) / 60)),
        "amount": units_to_str(number.amount, AMOUNT_SCALE),
    }


def alert_record(
    tenant: str, finding: Finding, evidence: Evidence | None, now: dt.datetime
) -> dict[str, Any]:
    """The alert as stored, published and shown (`tollgate fraud alerts`): JSON values only,
    numbers and money as decimal strings (money in the account's currency)."""
    seen = now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "alert_id": alert_id(tenant, finding),
        "tenant": tenant,
        "party": finding.party,
        "account": finding.account,
        "rule": finding.rule,
        "severity": finding.severity,
        "destination": finding.scope,
        "observed": str(finding.observed),
        "unit": finding.unit,
        "baseline": _text(finding.baseline),
        "threshold": str(finding.threshold),
        "ratio": _text(finding.ratio),
        "z": _text(finding.z),
        "window": {
            "key": finding.window_key,
            "start": _iso(finding.window_start),
            "end": _iso(finding.window_end),
        },
        "summary": finding.summary,
        "top_numbers": [_top(t) for t in evidence.top] if evidence else [],
        "sample_call_ids": list(evidence.samples) if evidence else [],
        "first_seen": seen,
        "last_seen": seen,
        "action": "pending",
    }


def merge(existing: dict[str, Any] | None, new: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The alert after `new` was seen again, and what changed: `new`, `escalated`, `updated`
    (a higher value observed, or later) or `same`."""
    if existing is None:
        return new, "new"
    merged = dict(existing)
    merged["last_seen"] = max(existing["last_seen"], new["last_seen"])
    if RANK[new["severity"]] > RANK[existing["severity"]]:
        keep = {"alert_id", "first_seen", "action"}
        merged.update({k: v for k, v in new.items() if k not in keep})
        merged["last_seen"] = new["last_seen"]
        return merged, "escalated"
    if Decimal(new["observed"]) > Decimal(existing["observed"]):
        for name in (
            "observed",
            "baseline",
            "ratio",
            "z",
            "summary",
            "top_numbers",
            "sample_call_ids",
            "window",
        ):
            merged[name] = new[name]
        return merged, "updated"
    return merged, "same" if merged["last_seen"] == existing["last_seen"] else "updated"


def quantize(value: Decimal, places: str = "0.01") -> Decimal:
    return value.quantize(Decimal(places))
