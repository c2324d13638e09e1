"""The fraud checks: a rated file counted and judged, and the 5-minute pass over recent hours.

The stores come in as ports (functions.store.fraud, .accounts, .events, .notices), as in
functions.invoice.dunning_job. Exactly once, with no transaction across a file:
- each counter item remembers the files it has counted (a conditional ADD), so a retried or
  redelivered event, or a crash half-way through a file, never counts a call twice;
- a destination group's first sighting names its file, so a retry still sees it as new;
- an alert is one item per account x rule x window; a new or escalated one is written with
  an outbox entry in one transaction, and the outbox is worked off (suspend, publish the
  `FraudAlert` event, notify by SNS, then delete the entry) on this and every later pass, so
  a crash between the alert and its notification delays the notification, never loses it.
The rules themselves are functions.fraud.rules'.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from functions.fraud import alerts as alert_rules
from functions.fraud.counters import (
    ALL,
    CUSTOMER,
    RANGE,
    Evidence,
    FileTally,
    Tally,
    merge_evidence,
)
from functions.fraud.destinations import default_groups
from functions.fraud.policy import Policy
from functions.fraud.ranges import RangeList
from functions.fraud.rules import Evaluation, History, needed_points, needed_spans, run_all
from functions.shared.money import RATE_SCALE, to_units

LOOKBACK_HOURS = 3  # the scheduled pass judges the hours this close to now
ACTOR = "system:fraud"


@dataclass
class CheckOutcome:
    tenant: str
    file_id: str | None
    status: str  # checked | already_checked | evaluated
    calls: int = 0
    counters: int = 0  # counter items written (0 when all were counted before)
    findings: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)  # new or escalated
    suspended: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "file_id": self.file_id,
            "status": self.status,
            "calls": self.calls,
            "counters": self.counters,
            "findings": self.findings,
            "alerts": self.alerts,
            "suspended": self.suspended,
        }


def load_policy(tenant: str, store: Any) -> tuple[Policy, RangeList]:
    return Policy.of(store.get_rules(tenant)), RangeList.of(store.get_ranges(tenant))


def tally_file(parts: Iterable[pa.Table], policy: Policy, ranges: RangeList) -> FileTally:
    tally = Tally(
        default_groups(),
        ranges,
        dear_rate=to_units(str(policy.value("new_destination", "min_rate")), RATE_SCALE),
        masked_digits=policy.whole("wangiri", "masked_digits"),
    )
    for part in parts:
        tally.add(part)
    return tally.finish()


def check_file(
    tenant: str,
    file_id: str,
    parts: Callable[[], Iterable[pa.Table]],
    *,
    store: Any,
    accounts: Any,
    events: Any,
    notices: Any,
    now: dt.datetime,
) -> CheckOutcome:
    """Count a rated file's calls once and judge the hours they touched."""
    if store.file_checked(tenant, file_id):
        outcome = CheckOutcome(tenant, file_id, "already_checked")
        deliver(tenant, outcome, store=store, accounts=accounts, events=events, notices=notices)
        return outcome
    policy, ranges = load_policy(tenant, store)
    tally = tally_file(parts(), policy, ranges)
    outcome = CheckOutcome(tenant, file_id, "checked", calls=tally.calls)
    new_groups = _first_sightings(tenant, file_id, tally, store)
    outcome.counters = store.add_counters(tenant, file_id, tally.counters)
    store.put_evidence(tenant, file_id, _notable(tally, policy))
    store.touch_active(tenant, _last_hours(tally))
    evidence = {(e.account, e.group): e for e in tally.evidence}
    findings = _judge(
        tenant,
        tally.touched(),
        policy,
        ranges,
        store,
        evidence=evidence,
        new_groups=new_groups,
        bursts=tally.bursts,
        callbacks=tally.callbacks,
    )

    def in_file(account: str, group: str | None, first: int, last: int) -> list[Evidence]:
        return [e for e in tally.evidence if e.account == account and group in (None, e.group)]

    _raise(tenant, findings, _explainer(in_file), store, outcome, now)
    deliver(tenant, outcome, store=store, accounts=accounts, events=events, notices=notices)
    store.mark_file_checked(tenant, file_id, {"calls": tally.calls, "findings": len(findings)})
    return outcome


def evaluate(
    tenant: str,
    *,
    store: Any,
    accounts: Any,
    events: Any,
    notices: Any,
    now: dt.datetime,
    hours: int = LOOKBACK_HOURS,
) -> CheckOutcome:
    """The scheduled pass: every rule over the last `hours` hours of every account active in
    them, from the stored counters alone. It sees what several files added up to when each
    file's own check ran before the others were counted, and delivers what a crash left in
    the outbox."""
    policy, ranges = load_policy(tenant, store)
    last = int(now.timestamp()) // 3600
    active = store.active_accounts(tenant, since_hour=last - hours + 1)
    recent = store.get_spans(tenant, dict.fromkeys(active, (last - hours + 1, last)))
    touched = {counter.key for counter in recent}
    outcome = CheckOutcome(tenant, None, "evaluated")
    if touched:
        findings = _judge(tenant, touched, policy, ranges, store)
        explain = _explainer(
            lambda a, g, first, last: store.get_evidence(tenant, a, g, first, last)
        )
        _raise(tenant, findings, explain, store, outcome, now)
    deliver(tenant, outcome, store=store, accounts=accounts, events=events, notices=notices)
    return outcome


def _first_sightings(
    tenant: str, file_id: str, tally: FileTally, store: Any
) -> dict[str, dict[str, int]]:
    """Destination groups this file is the first to bring for each account (and the
    account's first hour). A sighting is stored with its file, so a retry of the same file
    finds it its own and still calls it new."""
    earliest: dict[tuple[str, str], int] = {}
    for counter in tally.counters:
        if counter.party != CUSTOMER or counter.group == ALL or counter.group.startswith(RANGE):
            continue
        key = (counter.account, counter.group)
        earliest[key] = min(earliest.get(key, counter.hour), counter.hour)
    new: dict[str, dict[str, int]] = {}
    seen: dict[str, dict[str, str]] = {}
    for (account, group), hour in sorted(earliest.items()):
        if account not in seen:  # one read per account: most groups were seen before
            seen[account] = store.sightings(tenant, account)
        first = seen[account].get(group)
        if first is None:
            first = store.first_sighting(tenant, account, group, hour, file_id)
        if first == file_id:
            new.setdefault(account, {})[group] = hour
    return new


def _last_hours(tally: FileTally) -> dict[tuple[str, str], tuple[int, int]]:
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for counter in tally.counters:
        key = (counter.party, counter.account)
        first, last = spans.get(key, (counter.hour, counter.hour))
        spans[key] = (min(first, counter.hour), max(last, counter.hour))
    return spans


def _judge(
    tenant: str,
    touched: set[tuple[str, str, str, int]],
    policy: Policy,
    ranges: RangeList,
    store: Any,
    **context: Any,
) -> list[alert_rules.Finding]:
    spans = needed_spans(touched, policy)
    counters = store.get_spans(tenant, spans)
    first_hours = store.first_hours(tenant, sorted(spans))
    history = History(counters, first_hours)
    points = needed_points(touched, history, policy, context.get("callbacks", ()))
    history = History(counters + store.get_counters(tenant, points), first_hours)
    return run_all(Evaluation(tenant, touched, history, policy, ranges, **context))


def _notable(tally: FileTally, policy: Policy) -> list[Evidence]:
    """The evidence worth keeping for a later pass: of IRSF ranges, of dear groups, and of
    groups with minutes enough for a baseline rule to fire. The rest of an A-Z account's
    groups explain no alert, and storing them would cost as much as the counters."""
    seconds: dict[tuple[str, str], int] = {}
    for c in tally.counters:
        if c.party == CUSTOMER:
            seconds[(c.account, c.group)] = seconds.get((c.account, c.group), 0) + c.seconds
    dear = to_units(str(policy.value("new_destination", "min_rate")), RATE_SCALE)
    kept = []
    for item in tally.evidence:
        floor = min(
            policy.value("spike", "min_minutes", item.account),
            policy.value("off_hours", "min_minutes", item.account),
        )
        if (
            item.group.startswith(RANGE)
            or item.max_rate >= dear
            or seconds.get((item.account, item.group), 0) >= floor * 60
        ):
            kept.append(item)
    return kept


def _explainer(
    found: Callable[[str, str | None, int, int], list[Evidence]],
) -> Callable[[alert_rules.Finding], Evidence | None]:
    """What explains a finding: the evidence of its group in its window, or for a rule over
    every destination, of all the account's groups (their top numbers together)."""

    def explain(finding: alert_rules.Finding) -> Evidence | None:
        first, last = finding.window_start // 3600, (finding.window_end - 1) // 3600
        items = found(finding.account, finding.evidence_group, first, last)
        if finding.evidence_group is None:  # a range's calls are in their country's too
            items = [e for e in items if not e.group.startswith(RANGE)]
        return merge_evidence(items) if items else None

    return explain


def _raise(
    tenant: str,
    findings: list[alert_rules.Finding],
    explain: Callable[[alert_rules.Finding], Evidence | None],
    store: Any,
    outcome: CheckOutcome,
    now: dt.datetime,
) -> None:
    """Store each finding as its alert; a new or escalated one goes to the outbox with it."""
    outcome.findings += len(findings)
    for finding in findings:
        record = alert_rules.alert_record(tenant, finding, explain(finding), now)
        stored, change = store.put_alert(tenant, record)
        if change in ("new", "escalated"):
            outcome.alerts.append(stored)


def deliver(
    tenant: str, outcome: CheckOutcome, *, store: Any, accounts: Any, events: Any, notices: Any
) -> None:
    """Work off the outbox: suspend on a critical alert, publish each alert's `FraudAlert`
    event (for machines), send one notice per account (for people: an incident that trips
    seven rules is one e-mail, not seven), then forget them."""
    by_account: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for alert in store.outbox(tenant):
        action = _act(tenant, alert, accounts)
        if action.startswith("suspended"):
            outcome.suspended.append(alert["account"])
        alert = store.set_action(tenant, alert["alert_id"], action)
        events.publish_fraud_alert(alert)
        by_account.setdefault((alert["party"], alert["account"]), []).append(alert)
    for (_, account), alerts in sorted(by_account.items()):
        alerts.sort(key=lambda a: (-alert_rules.RANK[a["severity"]], a["rule"], a["alert_id"]))
        notices.publish_alert(
            _subject(tenant, account, alerts),
            "\n\n".join(_message(alert) for alert in alerts),
            {
                "severity": alerts[0]["severity"],
                "tenant": tenant,
                "account": account,
                "rules": ",".join(sorted({a["rule"] for a in alerts})),
            },
        )
        for alert in alerts:
            store.delivered(tenant, alert["alert_id"], alert["severity"])


def _act(tenant: str, alert: dict[str, Any], accounts: Any) -> str:
    """`critical` on a customer suspends it (the reason names the alert); a supplier's or a
    warning's alert notifies only."""
    if alert["severity"] != "critical" or alert["party"] != CUSTOMER:
        return "notified"
    account = accounts.get_account(tenant, alert["account"])
    reason = f"fraud: alert {alert['alert_id']} ({alert['rule']}, {alert['destination']})"
    if account.status == "suspended":
        if account.status_reason == reason:
            return "suspended"  # by this alert, on an earlier try
        return "notified (already suspended)"
    accounts.set_account_status(
        tenant,
        alert["account"],
        "suspended",
        actor=accounts.caller(ACTOR),
        reason=reason,
    )
    return "suspended"


def _subject(tenant: str, account: str, alerts: list[dict[str, Any]]) -> str:
    worst = alerts[0]
    more = f" and {len(alerts) - 1} more" if len(alerts) > 1 else ""
    return (
        f"[{worst['severity']}] fraud {worst['rule']}: {account} {worst['destination']}"
        f"{more} ({tenant})"
    )


def _message(alert: dict[str, Any]) -> str:
    lines = [
        alert["summary"],
        "",
        f"tenant: {alert['tenant']}",
        f"account: {alert['account']} ({alert['party']})",
        f"rule: {alert['rule']}   severity: {alert['severity']}   action: {alert['action']}",
        f"destination: {alert['destination']}",
        f"observed: {alert['observed']} {alert['unit']}   threshold: {alert['threshold']}"
        f"   baseline: {alert['baseline'] or '-'}   ratio: {alert['ratio'] or '-'}"
        f"   z: {alert['z'] or '-'}",
        f"window: {alert['window']['start']} to {alert['window']['end']}",
        f"alert: {alert['alert_id']}   first seen {alert['first_seen']}, "
        f"last seen {alert['last_seen']}",
    ]
    if alert["top_numbers"]:
        lines += ["", "top called numbers (calls, minutes, amount):"]
        lines += [
            f"  {t['number']}: {t['calls']}, {t['minutes']}, {t['amount']}"
            for t in alert["top_numbers"]
        ]
    if alert["sample_call_ids"]:
        lines += ["", "sample calls: " + ", ".join(alert["sample_call_ids"])]
    return "\n".join(lines)
