"""In-memory stand-ins for the fraud service's ports that hold state the way the real stores
do (functions.store.fraud's per-file counter claims, first sightings, alert merge and
outbox), for the scenario tests that run months of traffic: moto would make them minutes.
tests/fraud/test_fraud_store.py runs the same service against the real adapter on moto."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from functions.fraud.alerts import merge
from functions.fraud.counters import FIELDS, Counter, Evidence


class MemoryFraudStore:
    def __init__(self) -> None:
        self.counters: dict[tuple, Counter] = {}
        self.by_account: dict[tuple[str, str], set[tuple]] = {}  # what get_span reads
        self.counted: dict[tuple, set[str]] = {}
        self.evidence: dict[tuple, Evidence] = {}
        self.seen: dict[tuple[str, str], str] = {}
        self.active: dict[tuple[str, str], list[int]] = {}
        self.files: set[str] = set()
        self.rules: dict | None = None
        self.ranges: list[dict] = []
        self.alerts: dict[str, dict] = {}
        self.pending: dict[str, str] = {}
        self.writes = 0  # counter updates that added something

    def file_checked(self, tenant, file_id):
        return file_id in self.files

    def mark_file_checked(self, tenant, file_id, summary):
        self.files.add(file_id)

    def get_rules(self, tenant):
        return self.rules

    def get_ranges(self, tenant):
        return self.ranges

    def add_counters(self, tenant, file_id, counters):
        added = 0
        for counter in counters:
            files = self.counted.setdefault(counter.key, set())
            if file_id in files:
                continue
            files.add(file_id)
            held = self.counters.get(counter.key)
            self.counters[counter.key] = held.plus(counter) if held else counter
            self.by_account.setdefault(counter.key[:2], set()).add(counter.key)
            added += 1
        self.writes += added
        return added

    def put_evidence(self, tenant, file_id, evidence):
        for item in evidence:
            self.evidence[(item.account, item.group, item.first_hour, file_id)] = item

    def get_evidence(self, tenant, account, group, first, last):
        return [
            e
            for (a, g, first_hour, _), e in sorted(self.evidence.items())
            if a == account and group in (None, g) and first_hour <= last and e.last_hour >= first
        ]

    def touch_active(self, tenant, spans):
        for key, (first, last) in spans.items():
            held = self.active.setdefault(key, [first, last])
            held[0], held[1] = min(held[0], first), max(held[1], last)

    def active_accounts(self, tenant, since_hour):
        return sorted(k for k, (_, last) in self.active.items() if last >= since_hour)

    def first_hours(self, tenant, keys):
        return {k: self.active[k][0] for k in keys if k in self.active}

    def sightings(self, tenant, account):
        return {g: f for (a, g), f in self.seen.items() if a == account}

    def first_sighting(self, tenant, account, group, hour, file_id):
        return self.seen.setdefault((account, group), file_id)

    def get_span(self, tenant, party, account, first, last):
        keys = self.by_account.get((party, account), ())
        return [self.counters[k] for k in sorted(keys) if first <= k[3] <= last]

    def get_spans(self, tenant, spans):
        return [c for (party, account), (first, last) in sorted(spans.items())
                for c in self.get_span(tenant, party, account, first, last)]  # fmt: skip

    def get_counters(self, tenant, keys):
        return [self.counters[k] for k in keys if k in self.counters]

    def put_alert(self, tenant, record):
        merged, change = merge(self.alerts.get(record["alert_id"]), record)
        if change != "same":
            self.alerts[record["alert_id"]] = merged
        if change in ("new", "escalated"):
            self.pending[record["alert_id"]] = merged["severity"]
        return merged, change

    def outbox(self, tenant):
        return [dict(self.alerts[a]) for a in sorted(self.pending)]

    def set_action(self, tenant, alert_id, action):
        self.alerts[alert_id] = {**self.alerts[alert_id], "action": action}
        return dict(self.alerts[alert_id])

    def delivered(self, tenant, alert_id, severity):
        if self.pending.get(alert_id) == severity:
            del self.pending[alert_id]

    def list_alerts(self, tenant, account=None):
        return [a for a in self.alerts.values() if account in (None, a["account"])]

    def total(self, party, account, group) -> dict[str, int]:
        sums = dict.fromkeys(FIELDS, 0)
        for (p, a, g, _), c in self.counters.items():
            if (p, a, g) == (party, account, group):
                for name in FIELDS:
                    sums[name] += getattr(c, name)
        return sums


@dataclass
class Account:
    account: str
    status: str = "active"
    status_reason: str | None = None


@dataclass
class MemoryAccounts:
    accounts: dict[str, Account] = field(default_factory=dict)
    changes: list[tuple[str, str, str, str]] = field(default_factory=list)  # who, acct, status, why

    def get_account(self, tenant, account):
        return self.accounts.setdefault(account, Account(account))

    def caller(self, by=None):
        return by

    def set_account_status(self, tenant, account, status, *, actor, reason):
        self.accounts[account] = replace(self.get_account(tenant, account), status=status,
                                         status_reason=reason)  # fmt: skip
        self.changes.append((actor, account, status, reason))


@dataclass
class Published:
    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[tuple[str, str, dict]] = field(default_factory=list)

    def publish_fraud_alert(self, detail):
        self.events.append(detail)

    def publish_alert(self, subject, message, attributes):
        self.notices.append((subject, message, attributes))
        return str(len(self.notices))


def ports(store=None, accounts=None, published=None) -> dict[str, Any]:
    published = published or Published()
    return {
        "store": store or MemoryFraudStore(),
        "accounts": accounts or MemoryAccounts(),
        "events": published,
        "notices": published,
        "now": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    }
