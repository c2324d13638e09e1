"""Call patterns: a high share of very short answered calls (Wangiri, simbox), and many
distinct callers to one dear number range within an hour (Wangiri callbacks) where the account
does not usually send that much to that destination at that hour."""

from __future__ import annotations

from decimal import Decimal

from functions.fraud.alerts import Finding, quantize
from functions.fraud.counters import ALL, CUSTOMER, SHORT_SECONDS
from functions.fraud.rules import WEEK, Evaluation, hours_to, in_hour


def findings(ev: Evaluation) -> list[Finding]:
    return _short_calls(ev) + _callbacks(ev)


def _short_calls(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy
    for party, account, group, hour in ev.touched_of(CUSTOMER, "all"):
        if not policy.enabled("short_calls", account):
            continue
        window = policy.whole("short_calls", "window_hours", account)
        total = ev.history.total(party, account, group, hour - window + 1, hour)
        if total.answered < policy.value("short_calls", "min_calls", account):
            continue
        share = Decimal(total.short) / Decimal(total.answered)
        limit = policy.value("short_calls", "share", account)
        if share <= limit:
            continue
        out.append(
            Finding(
                rule="short_calls",
                party=party,
                account=account,
                scope=ALL,
                **hours_to(hour, window),
                severity="warning",
                observed=quantize(share, "0.0001"),
                threshold=limit,
                unit="share",
                summary=f"{total.short} of {total.answered} answered calls in {window} h "
                f"lasted {SHORT_SECONDS} s or less",
            )
        )
    return out


def _callbacks(ev: Evaluation) -> list[Finding]:
    out = []
    policy = ev.policy
    for hit in ev.callbacks:
        if not policy.enabled("wangiri", hit.account) or policy.allowed(hit.account, hit.group):
            continue
        warn = policy.value("wangiri", "min_callers", hit.account)
        if hit.callers < warn or _usual(ev, hit):
            continue
        critical = policy.value("wangiri", "critical_callers", hit.account)
        severity = "critical" if hit.callers >= critical or hit.listed else "warning"
        out.append(
            Finding(
                rule="wangiri",
                party=CUSTOMER,
                account=hit.account,
                scope=f"{hit.group} ({hit.number_range}…)",
                **in_hour(hit.hour),
                severity=severity,
                observed=Decimal(hit.callers),
                threshold=critical if severity == "critical" and not hit.listed else warn,
                unit="callers",
                summary=f"{hit.callers} distinct callers made {hit.calls} calls to the range "
                f"{hit.number_range}… in one hour"
                + (" (an IRSF-listed range)" if hit.listed else ""),
                evidence_group=hit.group,
            )
        )
    return out


def _usual(ev: Evaluation, hit) -> bool:
    """Whether the account's calls to the group that hour are within `spike.k` times those of
    the same hour in its busiest earlier week: a busy dear route the account always had, not
    callbacks (which go to ranges its callers never called)."""
    first = ev.history.first_hour(CUSTOMER, hit.account)
    if first is None:
        return False
    weeks = min(ev.policy.whole("spike", "weeks", hit.account), (hit.hour - first) // WEEK)
    if weeks == 0:
        return False
    before = max(
        ev.history.get(CUSTOMER, hit.account, hit.group, hit.hour - WEEK * k).calls
        for k in range(1, weeks + 1)
    )
    now = ev.history.get(CUSTOMER, hit.account, hit.group, hit.hour).calls
    return now < ev.policy.value("spike", "k", hit.account) * before
