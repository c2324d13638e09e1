"""The fraud rules' thresholds: defaults, a tenant's values, per-account overrides, allow-lists.

Thresholds are data. Each rule's keys and defaults are in DEFAULTS; a tenant sets its own
values (`tollgate fraud rules T --set velocity.spend_per_day=2000`) and an account's override
wins over the tenant's (`--account A`). `RULE.enabled=0` switches a rule off. An account's
allow-list names destination groups (or IRSF range prefixes) it may call freely: no range,
new-destination, spike or off-hours alert for them (a test number still alerts: IRSF gangs
dial one first, and nobody calls one on purpose).

The defaults are starting points from published practice (docs/fraud.md cites each), sized
for a reseller of a few thousand minutes a day; a carrier tunes them per account. Money is in
the account's currency. Stored form: {"rules": {"rule.key": "value"}, "accounts": {account:
{"rule.key": "value"}}, "allow": {account: [group, ...]}}, values as decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

D = Decimal

DEFAULTS: dict[str, dict[str, Decimal]] = {
    # Any answered call to an IPRN test number range (functions.fraud.ranges, kind `test`).
    "test_number": {"enabled": D(1)},
    # Answered minutes to premium, satellite and high-risk ranges over a sliding 24 h.
    "high_risk": {"enabled": D(1), "minutes": D(10), "critical_minutes": D(120)},
    # First traffic of an account to a destination group it never called, when the group is
    # dear (its dearest rate per minute at least `min_rate`) or on the high-risk list.
    "new_destination": {"enabled": D(1), "min_rate": D("0.05"), "critical_minutes": D(600)},
    # Per account over every destination: answered minutes in an hour of the call, spend over
    # a sliding 24 h, and calls started in any 60 s of one file.
    "velocity": {
        "enabled": D(1),
        "minutes_per_hour": D(3000),
        "critical_minutes_per_hour": D(12000),
        "spend_per_day": D(1000),
        "critical_spend_per_day": D(5000),
        "calls_per_minute": D(120),
        "critical_calls_per_minute": D(600),
    },
    # Minutes per destination group and hour against the same hour of the week over the last
    # `weeks` weeks (fewer for a young account: the mean of all its hours so far).
    "spike": {
        "enabled": D(1),
        "k": D(3),
        "z": D(3),
        "min_minutes": D(60),
        "weeks": D(8),
        "min_weeks": D(4),
        "familiarity_hours": D(24),
        "critical_ratio": D(10),
        "critical_minutes": D(600),
    },
    # The share of answered calls of 6 s or less over a sliding window (Wangiri, simbox).
    "short_calls": {
        "enabled": D(1),
        "share": D("0.20"),
        "min_calls": D(100),
        "window_hours": D(6),
    },
    # Distinct callers of one account to one number range (the last `masked_digits` digits
    # dropped) of a dear or high-risk destination within an hour of one file: callbacks.
    "wangiri": {
        "enabled": D(1),
        "min_callers": D(50),
        "critical_callers": D(200),
        "masked_digits": D(3),
    },
    # Minutes in an hour of the week in which the account was silent in each of its last
    # `weeks` weeks (a hacked PBX at night or over a weekend).
    "off_hours": {
        "enabled": D(1),
        "min_minutes": D(30),
        "critical_minutes": D(600),
        "weeks": D(4),
    },
    # A supplier's ASR to a destination group in an hour against its last 7 days.
    "asr_collapse": {
        "enabled": D(1),
        "min_calls": D(100),
        "ratio": D("0.5"),
        "min_baseline": D("0.2"),
        "days": D(7),
    },
}
RULES = tuple(DEFAULTS)
# Keys that must be whole numbers (counts, hours, weeks, digits); the rest may be decimals.
_WHOLE = frozenset(
    {
        "enabled",
        "min_calls",
        "window_hours",
        "weeks",
        "min_weeks",
        "familiarity_hours",
        "masked_digits",
        "days",
        "min_callers",
        "critical_callers",
        "calls_per_minute",
        "critical_calls_per_minute",
    }
)
_MAX_ALLOWED = 200  # destination groups one account may be allowed


class PolicyError(ValueError):
    """A rule setting that is not one: names the field at fault."""


def parse_setting(text: str) -> tuple[str, str, Decimal]:
    """`RULE.KEY=VALUE` as typed on the command line, checked: (rule, key, value)."""
    name, sep, raw = text.partition("=")
    rule, dot, key = name.strip().partition(".")
    if not sep or not dot:
        raise PolicyError(f"setting {text!r}: write RULE.KEY=VALUE, e.g. spike.k=4")
    return rule, key, check_value(rule, key, raw)


def check_value(rule: str, key: str, raw: object) -> Decimal:
    if rule not in DEFAULTS:
        raise PolicyError(f"rule {rule!r} is not known: use one of {', '.join(RULES)}")
    if key not in DEFAULTS[rule]:
        raise PolicyError(
            f"{rule}.{key} is not a setting: use one of {', '.join(sorted(DEFAULTS[rule]))}"
        )
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise PolicyError(f"{rule}.{key}: {raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise PolicyError(f"{rule}.{key}: {raw!r} must be zero or more")
    if key in _WHOLE and value != value.to_integral_value():
        raise PolicyError(f"{rule}.{key}: {raw!r} must be a whole number")
    if key == "enabled" and value not in (0, 1):
        raise PolicyError(f"{rule}.enabled: {raw!r} must be 1 (on) or 0 (off)")
    return value


@dataclass(frozen=True)
class Policy:
    """A tenant's thresholds as the rules read them."""

    rules: Mapping[str, Decimal] = field(default_factory=dict)  # "rule.key" -> value
    accounts: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    allow: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, stored: Mapping | None) -> Policy:
        """From the stored form; values are checked again (a hand-edited item fails loudly)."""
        stored = stored or {}

        def values(settings: Mapping[str, object]) -> dict[str, Decimal]:
            out = {}
            for name, raw in settings.items():
                rule, _, key = name.partition(".")
                out[name] = check_value(rule, key, raw)
            return out

        return cls(
            rules=values(stored.get("rules", {})),
            accounts={a: values(s) for a, s in stored.get("accounts", {}).items()},
            allow={a: frozenset(groups) for a, groups in stored.get("allow", {}).items()},
        )

    def stored(self) -> dict:
        return {
            "rules": {k: str(v) for k, v in sorted(self.rules.items())},
            "accounts": {
                a: {k: str(v) for k, v in sorted(s.items())}
                for a, s in sorted(self.accounts.items())
                if s
            },
            "allow": {a: sorted(g) for a, g in sorted(self.allow.items()) if g},
        }

    def value(self, rule: str, key: str, account: str | None = None) -> Decimal:
        name = f"{rule}.{key}"
        if account is not None and name in self.accounts.get(account, {}):
            return self.accounts[account][name]
        if name in self.rules:
            return self.rules[name]
        return DEFAULTS[rule][key]

    def whole(self, rule: str, key: str, account: str | None = None) -> int:
        return int(self.value(rule, key, account))

    def enabled(self, rule: str, account: str | None = None) -> bool:
        return self.value(rule, "enabled", account) == 1

    def allowed(self, account: str, *scopes: str) -> bool:
        """Whether the account may call any of these destination groups or ranges freely."""
        mine = self.allow.get(account)
        return bool(mine) and any(scope in mine for scope in scopes)

    def with_settings(self, settings: Mapping[str, Decimal], account: str | None = None) -> Policy:
        if account is None:
            return Policy({**self.rules, **settings}, self.accounts, self.allow)
        accounts = dict(self.accounts)
        accounts[account] = {**accounts.get(account, {}), **settings}
        return Policy(self.rules, accounts, self.allow)

    def with_allowed(self, account: str, add: set[str], remove: set[str]) -> Policy:
        groups = (set(self.allow.get(account, ())) | add) - remove
        if len(groups) > _MAX_ALLOWED:
            raise PolicyError(f"allow: at most {_MAX_ALLOWED} destinations per account")
        allow = dict(self.allow)
        allow[account] = frozenset(groups)
        return Policy(self.rules, self.accounts, allow)

    def table(self, account: str | None = None) -> list[dict[str, str]]:
        """Every rule's every key with the value in force and where it comes from."""
        rows = []
        for rule, keys in DEFAULTS.items():
            for key, default in keys.items():
                name = f"{rule}.{key}"
                source = "default"
                if name in self.rules:
                    source = "tenant"
                if account is not None and name in self.accounts.get(account, {}):
                    source = "account"
                rows.append(
                    {
                        "rule": rule,
                        "key": key,
                        "value": str(self.value(rule, key, account)),
                        "default": str(default),
                        "source": source,
                    }
                )
        return rows
