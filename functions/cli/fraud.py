"""`tollgate fraud evaluate|alerts|rules|ranges`: the fraud checks, on demand and tuned.

    tollgate fraud evaluate TENANT [--at 2026-03-02T05:10Z] [--hours 3]
    tollgate fraud alerts TENANT [--account A]
    tollgate fraud rules TENANT [--account A] [--set spike.k=4 ...] [--allow Somalia ...]
    tollgate fraud ranges TENANT [--add 25261:premium:Somalia mobile ...] [--remove 239 ...]

`evaluate` is the 5-minute pass (functions.fraud.service.evaluate) forced now or as of a
moment. `rules` and `ranges` change the thresholds and the IRSF ranges in force; both write
only if nobody changed them since they were read. A suspended account is resumed with
`tollgate account resume`, which records who and why.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import Any

from functions.cli import CliError, by_flag, emit, guarded, json_flag

# `fraud alerts`: the columns of the table (--json has these keys and the rest of each alert).
ALERT_COLUMNS = (
    "alert_id",
    "account",
    "rule",
    "severity",
    "destination",
    "observed",
    "baseline",
    "threshold",
    "first_seen",
    "last_seen",
    "action",
)


def _moment(text: str) -> dt.datetime:
    """An ISO time; without an offset it is UTC (the schedule's clock)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2026-03-02T05:10Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _hours(text: str) -> int:
    try:
        hours = int(text)
    except ValueError:
        hours = 0
    if not 1 <= hours <= 24 * 7:
        raise argparse.ArgumentTypeError(f"invalid hours {text!r}: a whole number 1..168")
    return hours


def register(subparsers: argparse._SubParsersAction) -> None:
    fraud = subparsers.add_parser("fraud", help="fraud checks: alerts, rules, IRSF ranges")
    actions = fraud.add_subparsers(dest="fraud_action", required=True, metavar="ACTION")

    evaluate = actions.add_parser(
        "evaluate",
        help="run the scheduled fraud pass now (or as of --at)",
        description="Every rule over the last hours of every account active in them, from the "
        "stored counters; critical alerts suspend the customer. Running it again raises no "
        "alert twice.",
    )
    evaluate.add_argument("tenant")
    evaluate.add_argument("--at", type=_moment, metavar="ISO-TIME", help="default: now (UTC)")
    evaluate.add_argument(
        "--hours", type=_hours, default=3, metavar="N", help="hours judged back from --at (3)"
    )
    json_flag(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    alerts = actions.add_parser("alerts", help="a tenant's fraud alerts, most severe first")
    alerts.add_argument("tenant")
    alerts.add_argument("--account", metavar="A", help="only this account's")
    json_flag(alerts)
    alerts.set_defaults(run=run_alerts)

    rules = actions.add_parser(
        "rules",
        help="the rules' thresholds in force, or change them",
        description="Without changes: every rule key with its value, default and source "
        "(default, tenant or account). --set without --account sets the tenant's value; with "
        "--account the account's, which wins over the tenant's.",
    )
    rules.add_argument("tenant")
    rules.add_argument("--account", metavar="A", help="the account's values and allow-list")
    rules.add_argument("--set", dest="settings", action="append", default=[],
                       metavar="RULE.KEY=VALUE", help="e.g. spike.k=4 (repeatable)")  # fmt: skip
    rules.add_argument("--allow", action="append", default=[], metavar="GROUP",
                       help="a destination group or range prefix the account may call freely "
                       "(needs --account; repeatable)")  # fmt: skip
    rules.add_argument("--disallow", action="append", default=[], metavar="GROUP",
                       help="take it off the account's allow-list (repeatable)")  # fmt: skip
    by_flag(rules)
    json_flag(rules)
    rules.set_defaults(run=run_rules)

    ranges = actions.add_parser(
        "ranges",
        help="the IRSF ranges in force (seeded and edited), or edit them",
        description="KIND is test, satellite, premium or high_risk (strongest first). An added "
        "prefix replaces the range of that exact prefix; a removed one stops being watched.",
    )
    ranges.add_argument("tenant")
    ranges.add_argument("--add", action="append", default=[], metavar="PREFIX:KIND[:LABEL]",
                        help="e.g. 25261:premium:Somalia mobile (repeatable)")  # fmt: skip
    ranges.add_argument("--remove", action="append", default=[], metavar="PREFIX",
                        help="stop watching this exact prefix (repeatable)")  # fmt: skip
    by_flag(ranges)
    json_flag(ranges)
    ranges.set_defaults(run=run_ranges)


def _columns(header: tuple[str, ...], rows: list[list[str]]) -> str:
    table = [list(header), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def _actor(args: argparse.Namespace) -> str:
    from functions.store import accounts

    return accounts.caller(args.by or os.environ.get("TOLLGATE_OPERATOR") or None).by


# --- evaluate, alerts ----------------------------------------------------------------------


@guarded
def run_evaluate(args: argparse.Namespace) -> int:
    from functions.fraud.service import evaluate
    from functions.store import accounts, events, fraud, notices

    accounts.get_tenant(args.tenant)
    now = args.at or dt.datetime.now(dt.UTC)
    outcome = evaluate(
        args.tenant,
        store=fraud,
        accounts=accounts,
        events=events,
        notices=notices,
        now=now,
        hours=args.hours,
    )
    at = now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    payload = {**outcome.as_json(), "at": at, "hours": args.hours}
    lines = [
        f"fraud pass of {args.tenant} at {at} over {args.hours} hours: "
        f"{outcome.findings} findings, {len(outcome.alerts)} alerts new or escalated"
    ]
    lines += [
        f"  {a['severity']} {a['rule']} {a['account']} {a['destination']}: {a['observed']} "
        f"{a['unit']} (threshold {a['threshold']}), alert {a['alert_id']}"
        for a in outcome.alerts
    ]
    lines += [f"  suspended {account}" for account in outcome.suspended]
    emit(args, payload, "\n".join(lines))
    return 0


@guarded
def run_alerts(args: argparse.Namespace) -> int:
    from functions.store import accounts, fraud

    accounts.get_tenant(args.tenant)
    if args.account:
        accounts.get_account(args.tenant, args.account)
    found = fraud.list_alerts(args.tenant, args.account)
    rows = [[str(a[c] if a[c] is not None else "-") for c in ALERT_COLUMNS] for a in found]
    whose = f"{args.tenant}/{args.account}" if args.account else args.tenant
    emit(args, found, _columns(ALERT_COLUMNS, rows) if found else f"no fraud alerts for {whose}")
    return 0


# --- rules ---------------------------------------------------------------------------------


def _allowable(name: str, ranges: Any) -> str:
    """An allow-list entry: a destination group, a range prefix or a range's label, as the
    rules match them (functions.fraud.policy.Policy.allowed); a typo would allow nothing."""
    from functions.fraud.destinations import default_groups

    entry = name.strip()
    if entry.isascii() and entry.isdigit() and len(entry) <= 15:
        return entry
    if entry in default_groups().names or entry in {r.label for r in ranges.ranges}:
        return entry
    raise CliError(
        f"--allow {name!r}: not a destination group (e.g. Somalia), a range prefix or a "
        "range's label"
    )


@guarded
def run_rules(args: argparse.Namespace) -> int:
    from functions.fraud.policy import Policy, PolicyError, parse_setting
    from functions.fraud.ranges import RangeList
    from functions.store import accounts, fraud

    accounts.get_tenant(args.tenant)
    if args.account:
        accounts.get_account(args.tenant, args.account)
    elif args.allow or args.disallow:
        raise CliError("--allow and --disallow need --account: an allow-list is an account's")
    document, version = fraud.get_rules_versioned(args.tenant)
    policy = Policy.of(document)
    changed: list[str] = []
    if args.settings:
        settings = {}
        for text in args.settings:
            try:
                rule, key, value = parse_setting(text)
            except PolicyError as error:
                raise CliError(f"--set: {error}") from None
            settings[f"{rule}.{key}"] = value
            changed.append(f"{rule}.{key}={value}")
        policy = policy.with_settings(settings, args.account)
    if args.allow or args.disallow:
        ranges = RangeList.of(fraud.get_ranges(args.tenant))
        add = {_allowable(name, ranges) for name in args.allow}
        remove = {name.strip() for name in args.disallow}
        both = sorted(add & remove)
        if both:
            raise CliError(f"--allow and --disallow both name {both[0]!r}")
        try:
            policy = policy.with_allowed(args.account, add, remove)
        except PolicyError as error:
            raise CliError(str(error)) from None
        changed += [f"allow {name}" for name in sorted(add)]
        changed += [f"disallow {name}" for name in sorted(remove)]
    if changed:
        fraud.put_rules(args.tenant, policy.stored(), version=version, actor=_actor(args))
        version += 1
    allow = {
        a: sorted(groups)
        for a, groups in sorted(policy.allow.items())
        if groups and args.account in (None, a)
    }
    table = policy.table(args.account)
    payload = {
        "tenant": args.tenant,
        "account": args.account,
        "version": version,
        "changed": changed,
        "rules": table,
        "allow": allow,
    }
    whose = f"{args.tenant}/{args.account}" if args.account else args.tenant
    lines = [f"changed {whose}: {', '.join(changed)}"] if changed else []
    lines.append(
        _columns(
            ("setting", "value", "default", "source"),
            [[f"{r['rule']}.{r['key']}", r["value"], r["default"], r["source"]] for r in table],
        )
    )
    lines += [f"allowed for {a}: {', '.join(groups)}" for a, groups in allow.items()]
    emit(args, payload, "\n".join(lines))
    return 0


# --- ranges --------------------------------------------------------------------------------


def _range_edit(text: str) -> dict[str, Any]:
    """PREFIX:KIND[:LABEL] checked; without a label, the prefix's destination group."""
    from functions.fraud.destinations import default_groups
    from functions.fraud.ranges import check_edit

    prefix, _, rest = text.strip().partition(":")
    kind, _, label = rest.partition(":")
    edit = {"prefix": prefix.strip(), "kind": kind.strip(), "label": label.strip()}
    try:
        checked = check_edit(edit)
    except ValueError as error:
        raise CliError(f"--add {text!r}: {error}") from None
    if not checked["label"]:
        checked["label"] = default_groups().name_of(checked["prefix"])
    return checked


def _range_payload(entry: Any) -> dict[str, str]:
    return {
        "prefix": entry.prefix,
        "kind": entry.kind,
        "label": entry.label,
        "source": entry.source,
    }


def _compact(edits: list[dict]) -> list[dict]:
    """The last edit of each prefix, in the order of those last edits: the same list in force
    (RangeList.of) and a document that does not grow with every change."""
    seen: set[str] = set()
    kept = []
    for edit in reversed(edits):
        if edit["prefix"] not in seen:
            seen.add(edit["prefix"])
            kept.append(edit)
    return kept[::-1]


@guarded
def run_ranges(args: argparse.Namespace) -> int:
    from functions.fraud.ranges import RangeList, check_edit
    from functions.store import accounts, fraud

    accounts.get_tenant(args.tenant)
    edits, version = fraud.get_ranges_versioned(args.tenant)
    before = RangeList.of(edits)
    added = [_range_edit(text) for text in args.add]
    removed = []
    for text in args.remove:
        try:
            removal = check_edit({"prefix": text.strip(), "removed": True})
        except ValueError as error:
            raise CliError(f"--remove {text!r}: {error}") from None
        if removal["prefix"] not in {r.prefix for r in before.ranges}:
            raise CliError(f"--remove {text!r}: prefix: {removal['prefix']} is not listed")
        removed.append(removal)
    both = sorted({e["prefix"] for e in added} & {e["prefix"] for e in removed})
    if both:
        raise CliError(f"--add and --remove both name prefix {both[0]}")
    now_in_force = before
    if added or removed:
        edits = _compact([*edits, *added, *removed])
        now_in_force = RangeList.of(edits)
        fraud.put_ranges(args.tenant, edits, version=version, actor=_actor(args))
    # --json: the list in force either way (an edit's range has source "operator edit").
    listed = [_range_payload(r) for r in now_in_force.ranges]
    if added or removed:
        lines = [f"added {e['prefix']} ({e['kind']}: {e['label']})" for e in added]
        lines += [f"removed {e['prefix']}" for e in removed]
        lines.append(f"{len(listed)} ranges in force for {args.tenant}")
        text = "\n".join(lines)
    else:
        rows = [[r["prefix"], r["kind"], r["label"], r["source"]] for r in listed]
        text = _columns(("prefix", "kind", "label", "source"), rows)
    emit(args, listed, text)
    return 0
