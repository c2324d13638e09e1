"""`tollgate deck check|diff|upload|list|show|rollback`: decks, and an account's rate history;
`tollgate deck impact`: a supplier's proposed deck replayed over its last days of calls;
`tollgate plan rule|rules|unrule`: which of an account's rate plans its callers use.

An account may have several rate plans (products), each its own timeline of deck versions
(`--plan NAME`, default `default`); versions are numbered from the account's one sequence.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from functions.cli import CliError, by_flag, currency_code, emit, guarded, json_flag
from functions.rate.deck import InvalidDeckError, RateDeck, load_deck, parse_deck
from functions.rate.deck_diff import DEFAULT_NOTICE_DAYS, DeckDiff, diff_decks
from functions.rate.plans import DEFAULT_PLAN, check_caller_prefix
from functions.rate.timeline import (
    FULL,
    MODES,
    as_timeline,
    in_force,
    instant_text,
)
from functions.shared.money import RATE_SCALE, units_to_str

if TYPE_CHECKING:  # the store imports boto3: not while building the parser
    from functions.store.accounts import DeckVersion


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("deck", help="check, compare or upload A-Z rate decks")
    actions = parser.add_subparsers(dest="deck_action", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="validate a deck and summarise it")
    check.add_argument("deck", help="deck CSV file")
    check.add_argument("--currency", default="USD", help="the deck's currency (default USD)")
    check.add_argument("--skip-invalid", action="store_true", help="drop invalid rows")
    json_flag(check)
    check.set_defaults(run=run_check)

    diff = actions.add_parser("diff", help="what NEW changes against OLD, with notice warnings")
    diff.add_argument("old", help="the deck in force")
    diff.add_argument("new", help="the deck just received")
    diff.add_argument(
        "--notice-date",
        type=_instant,
        default=None,
        help="when NEW was notified: ISO date or datetime (default: today, UTC)",
    )
    diff.add_argument(
        "--notice-days",
        type=int,
        default=DEFAULT_NOTICE_DAYS,
        help=f"minimum notice for increases and closures (default {DEFAULT_NOTICE_DAYS})",
    )
    diff.add_argument("--currency", default="USD", help="both decks' currency (default USD)")
    json_flag(diff)
    diff.set_defaults(run=run_diff)

    upload = actions.add_parser(
        "upload", help="add a deck to an account's rate history (a new active version)"
    )
    upload.add_argument("tenant")
    upload.add_argument("account")
    upload.add_argument("deck", help="deck CSV file")
    upload.add_argument(
        "--mode",
        choices=MODES,
        default=FULL,
        help="full: an A-Z deck, the whole truth from its effective date (default); "
        "changes: a notice, only its rows change",
    )
    upload.add_argument(
        "--effective",
        type=_moment,
        default=None,
        help="the deck's effective date: ISO date (00:00 UTC) or datetime (default: the "
        "earliest effective_from in the file, else now)",
    )
    upload.add_argument("--currency", help="the deck's currency (default: the account's)")
    upload.add_argument("--skip-invalid", action="store_true", help="drop invalid rows")
    _plan_flag(upload, "the rate plan (product) this deck prices (default: default)")
    by_flag(upload)
    json_flag(upload)
    upload.set_defaults(run=run_deck_upload)

    listing = actions.add_parser("list", help="an account's deck versions, the active one marked")
    listing.add_argument("tenant")
    listing.add_argument("account")
    listing.add_argument(
        "--plan", type=_plan_name, default=None, help="only this plan's versions (default: all)"
    )
    json_flag(listing)
    listing.set_defaults(run=run_deck_list)

    show = actions.add_parser("show", help="the rates in force at a moment")
    show.add_argument("tenant")
    show.add_argument("account")
    show.add_argument(
        "--at", type=_moment, default=None, help="ISO date or datetime, UTC (default: now)"
    )
    show.add_argument(
        "--prefix", help="only the codes that could price a number starting with these digits"
    )
    show.add_argument(
        "--version", type=int, default=None, help="read this version's timeline (default: active)"
    )
    _plan_flag(show, "the plan whose active version to show (default: default)")
    json_flag(show)
    show.set_defaults(run=run_deck_show)

    rollback = actions.add_parser(
        "rollback", help="a new active version whose timeline is VERSION's (nothing is deleted)"
    )
    rollback.add_argument("tenant")
    rollback.add_argument("account")
    rollback.add_argument("version", type=int)
    _plan_flag(rollback, "the plan to roll back; VERSION must be one of its (default: default)")
    by_flag(rollback)
    json_flag(rollback)
    rollback.set_defaults(run=run_deck_rollback)

    impact = actions.add_parser(
        "impact",
        help="replay a supplier's recent calls through a proposed deck: cost, margin, losses",
        description="The rated calls of the last DAYS days that SUPPLIER carried, re-priced "
        "through NEW (as it will stand once in force, by the supplier's own rounding): per "
        "destination of NEW and per matched prefix, calls, minutes, old and new cost, the "
        "revenue of those calls and the margins; destinations and routes whose new cost "
        "exceeds their revenue are flagged, and calls NEW leaves unrated counted.",
    )
    impact.add_argument("tenant")
    impact.add_argument("supplier")
    impact.add_argument("deck", help="the proposed deck CSV file")
    impact.add_argument(
        "--days", type=_days_back, default=7, help="how many days back to replay (default 7)"
    )
    impact.add_argument("--currency", help="the deck's currency (default: the supplier's)")
    json_flag(impact)
    impact.set_defaults(run=run_deck_impact)

    plan = subparsers.add_parser(
        "plan", help="rate plans: which plan a customer's calls use by their calling number"
    )
    plan_actions = plan.add_subparsers(dest="plan_action", required=True, metavar="ACTION")
    rule = plan_actions.add_parser(
        "rule",
        help="calls of ACCOUNT from callers starting with these prefixes use PLAN",
        description="The longest caller prefix among the account's rules wins; an ingress "
        "trunk mapped with --plan wins over every rule; calls no rule matches use `default`. "
        "A prefix already ruled moves to PLAN.",
    )
    rule.add_argument("tenant")
    rule.add_argument("account", help="the customer (or reseller) that sends the calls")
    rule.add_argument("plan", type=_plan_name, help="the rate plan, e.g. eea")
    _callers_flag(rule)
    json_flag(rule)
    rule.set_defaults(run=run_plan_rule)

    rules = plan_actions.add_parser("rules", help="an account's caller rules and plan decks")
    rules.add_argument("tenant")
    rules.add_argument("account")
    json_flag(rules)
    rules.set_defaults(run=run_plan_rules)

    unrule = plan_actions.add_parser("unrule", help="drop the rules of these caller prefixes")
    unrule.add_argument("tenant")
    unrule.add_argument("account")
    _callers_flag(unrule)
    json_flag(unrule)
    unrule.set_defaults(run=run_plan_unrule)


def _plan_name(text: str) -> str:
    from functions.shared.ids import check_name

    try:
        return check_name("plan", text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _plan_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--plan", type=_plan_name, default=DEFAULT_PLAN, help=help_text)


def _callers(text: str) -> list[str]:
    try:
        return [check_caller_prefix(part) for part in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _callers_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--callers",
        type=_callers,
        required=True,
        metavar="PREFIX[,PREFIX...]",
        help="calling-number prefixes, country code first (e.g. 33,49 or +3362)",
    )


def run_check(args: argparse.Namespace) -> int:
    data = _read(args.deck)
    started = time.perf_counter()
    try:
        deck = parse_deck(
            data, source=args.deck, currency=args.currency, skip_invalid=args.skip_invalid
        )
    except InvalidDeckError as error:
        print(error, file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    table = deck.table
    codes = len(pc.unique(table.column("prefix")))
    closed = pc.sum(table.column("closed")).as_py() or 0
    payload = {
        "deck": deck.source,
        "currency": deck.currency,
        "codes": codes,
        "rows": table.num_rows,
        "closed": closed,
        "skipped": [str(error) for error in deck.skipped],
        "seconds": round(elapsed, 3),
    }
    text = [
        f"{deck.source}: {codes} codes, {table.num_rows} versions, {closed} closed, "
        f"currency {deck.currency}, compiled in {elapsed:.2f} s"
    ]
    if deck.skipped:
        text.append(f"skipped {len(deck.skipped)} invalid rows:")
        text += [f"  {error}" for error in deck.skipped]
    emit(args, payload, "\n".join(text))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    if args.notice_days < 0:
        raise CliError("--notice-days must not be negative")
    notice = args.notice_date or datetime.now(UTC).date()
    old, new = _load(args.old, args.currency), _load(args.new, args.currency)
    diff = diff_decks(old, new, notice_date=notice, notice_days=args.notice_days)
    if args.json:
        json.dump(diff_as_json(old, new, diff), sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(format_diff(old, new, diff))
    return 0  # notice warnings are for the operator to act on, not a failure


def format_diff(old: RateDeck, new: RateDeck, diff: DeckDiff) -> str:
    lines = [
        f"{old.source} → {new.source} ({new.currency}); notice {_when(diff.notice_at)}, "
        f"minimum {diff.notice_days} days for increases and closures"
    ]
    lines += [f"  {category:<10} {count:>8}" for category, count in diff.counts.items()]
    if not diff.warnings:
        lines.append("no notice warnings")
        return "\n".join(lines)
    lines.append(f"{len(diff.warnings)} notice warnings:")
    for w in diff.warnings:
        terms = f"{_rate(w.old_rate_e8)} → {_rate(w.new_rate_e8)}"
        if w.old_minimum_e8 != w.new_minimum_e8 and w.new_minimum_e8 is not None:
            terms += f", minimum {_rate(w.old_minimum_e8)} → {_rate(w.new_minimum_e8)}"
        if w.old_free_seconds != w.new_free_seconds and w.new_free_seconds is not None:
            terms += f", free seconds {w.old_free_seconds} → {w.new_free_seconds}"
        lines.append(
            f"  WARNING {w.category} {w.prefix}{_from(w.origin)} {w.destination or '-'}: {terms} "
            f"effective {_when(w.effective_at)} ({_days(w.notice_days)} days of notice)"
        )
    return "\n".join(lines)


def diff_as_json(old: RateDeck, new: RateDeck, diff: DeckDiff) -> dict:
    """Counts, warnings and every change except `unchanged` rows; rates as exact decimals."""
    changes = diff.changes.filter(pc.not_equal(diff.changes.column("category"), "unchanged"))

    def entry(row: dict) -> dict:
        return {
            "prefix": row["prefix"],
            "origin": row["origin"],
            "destination": row["destination"],
            "category": row["category"],
            "old_rate": _exact(row["old_rate_e8"]),
            "new_rate": _exact(row["new_rate_e8"]),
            "old_minimum_charge": _exact(row["old_minimum_charge_e8"]),
            "new_minimum_charge": _exact(row["new_minimum_charge_e8"]),
            "old_free_seconds": row["old_free_seconds"],
            "new_free_seconds": row["new_free_seconds"],
            "effective_at": _when(row["effective_at"], always_time=True),
            "notice_days": row["notice_seconds"] / 86_400,
            "warning": row["warning"],
            "old_line": row["old_line"],
            "new_line": row["new_line"],
        }

    rows = [entry(row) for row in changes.to_pylist()]
    return {
        "old": {"source": old.source, "rows": old.table.num_rows},
        "new": {"source": new.source, "rows": new.table.num_rows},
        "currency": new.currency,
        "notice_at": _when(diff.notice_at, always_time=True),
        "notice_days": diff.notice_days,
        "counts": diff.counts,
        "warnings": [row for row in rows if row["warning"]],
        "changes": rows,
    }


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from error


def _load(path: str, currency: str) -> RateDeck:
    try:
        return load_deck(path, currency=currency)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from error
    except InvalidDeckError as error:
        raise CliError(f"invalid deck {error}") from error


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {text!r}") from error
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _exact(units: int | None) -> str | None:
    return None if units is None else units_to_str(units, RATE_SCALE)


def _rate(units: int | None) -> str:
    if units is None:
        return "-"
    # Exact, trimmed to what carriers quote (at least 4 places).
    whole, frac = _exact(units).split(".")
    return f"{whole}.{frac.rstrip('0').ljust(4, '0')}"


def _when(epoch: int, *, always_time: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if not always_time and moment.hour == moment.minute == moment.second == 0:
        return moment.date().isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def _days(days: float) -> str:
    return f"{days:g}"


# --- an account's rate history: deck upload | list | show | rollback -----------------------


def _moment(text: str) -> int:
    """An ISO date (00:00 UTC) or datetime (naive = UTC) as whole epoch seconds."""
    when = _instant(text)
    if when.microsecond:
        raise argparse.ArgumentTypeError(f"times are whole seconds: {text!r}")
    return int(when.timestamp())


def _actor(args: argparse.Namespace) -> Any:
    """Who uploads, for the account's audit trail (--by, $TOLLGATE_OPERATOR, else AWS)."""
    from functions.store import accounts

    return accounts.caller(args.by or os.environ.get("TOLLGATE_OPERATOR") or None)


@guarded
def run_deck_upload(args: argparse.Namespace) -> int:
    from functions.store import accounts, decks

    account = accounts.get_account(args.tenant, args.account)
    currency = currency_code(args.currency) if args.currency else None
    path = Path(args.deck)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.deck}: {error.strerror}") from None
    try:
        uploaded = decks.upload_deck(
            args.tenant,
            account,
            data,
            source=path.name,
            mode=args.mode,
            effective=args.effective,
            currency=currency,
            skip_invalid=args.skip_invalid,
            plan=args.plan,
            actor=_actor(args),
            reason=f"deck upload {path.name} ({args.mode})",
        )
    except InvalidDeckError as error:
        raise CliError(f"invalid deck {error}") from None
    recorded, created = uploaded.version, uploaded.created
    payload = {
        **_version_json(recorded, active=True),
        "created": created,
        "currency": recorded.currency,
    }
    deck = uploaded.deck
    who = _who(account, args.plan)
    if created:
        lines = [f"deck v{recorded.version} of {who} active: {_did(recorded)}"]
    else:
        lines = [
            f"deck v{recorded.version} of {who} already is "
            f"{path.name} ({recorded.mode}, effective {instant_text(recorded.effective)}); "
            "nothing changed"
        ]
    if deck.skipped:
        lines.append(f"skipped {len(deck.skipped)} invalid rows:")
        lines += [f"  {error}" for error in deck.skipped]
    emit(args, payload, "\n".join(lines))
    return 0


def _who(account: Any, plan: str) -> str:
    """An account, and its plan unless it is the default one (as before plans)."""
    who = f"{account.tenant}/{account.account}"
    return who if plan == DEFAULT_PLAN else f"{who} plan {plan}"


def _did(v: DeckVersion) -> str:
    """What a version did, in one line."""
    if v.mode == "rollback":
        return f"rollback to v{v.restores} ({v.timeline_rows} entries; v{v.base} was active)"
    return (
        f"{v.mode} deck {v.source}, effective {instant_text(v.effective)}, "
        f"{v.rows} rows in {v.currency} (effective_from {_range_text(v)}): {v.added} added, "
        f"{v.unchanged} unchanged, {v.superseded} superseded, {v.end_dated} end-dated, "
        f"{v.closed} codes closed; {v.timeline_rows} entries in the timeline"
    )


def _range_text(v: DeckVersion) -> str | None:
    """The uploaded rows' effective_from, earliest to latest (None: no rows, a rollback)."""
    low, high = _optional_instant(v.effective_min), _optional_instant(v.effective_max)
    return low if low == high else f"{low} to {high}"


def _optional_instant(seconds: int | None) -> str | None:
    return None if seconds is None else instant_text(seconds)


def _version_json(v: DeckVersion, *, active: bool) -> dict[str, Any]:
    return {
        "tenant": v.tenant,
        "account": v.account,
        "plan": v.plan,
        "version": v.version,
        "active": active,
        "uploaded_at": v.uploaded_at and v.uploaded_at.isoformat().replace("+00:00", "Z"),
        "mode": v.mode,
        "effective": _optional_instant(v.effective),
        "rows": v.rows,
        "skipped": v.skipped,
        "effective_range": {
            "from": _optional_instant(v.effective_min),
            "to": _optional_instant(v.effective_max),
        },
        "timeline_rows": v.timeline_rows,
        "added": v.added,
        "unchanged": v.unchanged,
        "superseded": v.superseded,
        "end_dated": v.end_dated,
        "closed": v.closed,
        "base": v.base,
        "restores": v.restores,
        "source": v.source,
        "sha256": v.sha256,
        "key": v.key,
        "upload_key": v.upload_key,
    }


@guarded
def run_deck_list(args: argparse.Namespace) -> int:
    from functions.store import accounts

    account = accounts.get_account(args.tenant, args.account)
    versions = accounts.list_deck_versions(args.tenant, args.account, args.plan)
    heads = _plan_heads(account)
    entries = [_version_json(v, active=heads.get(v.plan) == v.version) for v in versions]
    payload = {
        "tenant": account.tenant,
        "account": account.account,
        "currency": account.currency,
        "active": heads.get(args.plan or DEFAULT_PLAN),
        "plans": heads if args.plan is None else {args.plan: heads.get(args.plan)},
        "versions": entries,
    }
    if not versions:
        who = _who(account, args.plan or DEFAULT_PLAN)
        emit(args, payload, f"{who}: no deck uploaded yet")
        return 0
    # An account with only the default plan lists as it did before plans existed.
    plans = any(v.plan != DEFAULT_PLAN for v in versions)
    header = ("", "version", *(("plan",) if plans else ()), "uploaded at (UTC)", "mode", "rows")
    table = [(*header, "effective", "rows dated", "entries", "file")]
    for v, e in zip(versions, entries, strict=True):
        uploaded = v.uploaded_at.strftime("%Y-%m-%d %H:%M:%S") if v.uploaded_at else "-"
        table.append(
            (
                "*" if e["active"] else "",
                f"v{v.version}",
                *((v.plan,) if plans else ()),
                uploaded,
                v.mode if v.restores is None else f"rollback to v{v.restores}",
                str(v.rows),
                e["effective"] or "-",
                _range_text(v) or "-",
                str(v.timeline_rows),
                v.source or "-",
            )
        )
    active = "* = active in its plan" if plans else "* = active"
    text = [f"{account.tenant}/{account.account} deck versions ({account.currency}, {active}):"]
    text += _columns(table, right=(5, 8) if plans else (4, 7))
    emit(args, payload, "\n".join(text))
    return 0


@guarded
def run_deck_show(args: argparse.Namespace) -> int:
    from functions.store import accounts, lake

    account = accounts.get_account(args.tenant, args.account)
    version = args.version if args.version is not None else account.plan_head(args.plan)
    if version is None:
        raise CliError(f"{_who(account, args.plan)} has no deck yet")
    recorded = accounts.get_deck_version(args.tenant, args.account, version)  # or NotFoundError
    at = args.at if args.at is not None else int(time.time())
    prefix = None if args.prefix is None else _digits(args.prefix)
    timeline = as_timeline(lake.get_deck(args.tenant, account.account, version), version)
    rows = in_force(timeline, at, prefix).to_pylist()
    entries = [
        {
            "prefix": row["prefix"],
            "origin": row["origin"],
            "destination": row["destination"],
            "rate": _exact(row["rate_e8"]),
            "connect_fee": _exact(row["connect_fee_e8"]),
            "increment": f"{row['increment_first']}/{row['increment_next']}",
            "minimum_charge": _exact(row["minimum_charge_e8"]),
            "free_seconds": row["free_seconds"],
            "surcharge": _exact(row["surcharge_e8"]),
            "effective_from": instant_text(row["effective_from"]),
            "effective_to": instant_text(row["effective_to"]),
            "status": "closed" if row["closed"] else "open",
            "version": row["version"],
        }
        for row in rows
    ]
    payload = {
        "tenant": account.tenant,
        "account": account.account,
        "plan": recorded.plan,
        "version": version,
        "at": _when(at, always_time=True),
        "prefix": prefix,
        "currency": account.currency,
        "entries": entries,
    }
    where = f", codes for {prefix}" if prefix else ""
    text = [
        f"{_who(account, recorded.plan)} deck v{version} in force at "
        f"{_when(at, always_time=True)}{where}: {len(entries)} codes ({account.currency})"
    ]
    if entries:
        # Origin and surcharge columns only for decks that use them.
        origin = ("origin",) if any(e["origin"] for e in entries) else ()
        extra = ("surcharge",) if any(r["surcharge_e8"] for r in rows) else ()
        fields = ("prefix", *origin, "destination", "rate", "connect_fee", "increment")
        fields += ("minimum_charge", "free_seconds", *extra, "effective_from", "effective_to")
        fields += ("status", "version")
        table = [fields]
        table += [
            tuple(f"v{e[f]}" if f == "version" else e[f] or "-" for f in fields) for e in entries
        ]
        text += _columns(table, right=(fields.index("rate"), fields.index("connect_fee")))
    emit(args, payload, "\n".join(text))
    return 0


@guarded
def run_deck_rollback(args: argparse.Namespace) -> int:
    from functions.store import accounts, decks

    account = accounts.get_account(args.tenant, args.account)
    target = accounts.get_deck_version(args.tenant, args.account, args.version)
    if target.plan != args.plan:
        raise CliError(
            f"deck v{target.version} of {account.tenant}/{account.account} is of plan "
            f"{target.plan}, not {args.plan}: give --plan {target.plan}"
        )
    recorded, created = decks.rollback_deck(
        args.tenant,
        account.account,
        target.version,
        plan=args.plan,
        actor=_actor(args),
        reason=f"deck rollback to v{target.version}",
    )
    payload = {**_version_json(recorded, active=True), "created": created}
    who = _who(account, args.plan)
    if created:
        text = f"deck v{recorded.version} of {who} active: {_did(recorded)}"
    else:
        text = f"deck v{recorded.version} of {who} already has v{target.version}'s rates: no change"
    emit(args, payload, text)
    return 0


def _from(origin: str | None) -> str:
    """ " from 33" for an entry for callers of an origin; nothing for any caller."""
    return f" from {origin}" if origin else ""


def _digits(text: str) -> str:
    """A prefix as typed ("+44 20", "0044-20") as its E.164 digits."""
    digits = re.sub(r"[\s-]", "", text)
    digits = re.sub(r"^(?:\+|00)", "", digits)
    if not re.fullmatch(r"[0-9]{1,18}", digits):
        raise CliError(f"invalid prefix {text!r}: use the digits a number starts with, e.g. 4420")
    return digits


def _columns(rows: list[tuple[str, ...]], *, right: tuple[int, ...] = ()) -> list[str]:
    """Rows as aligned text columns; the columns in `right` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _plan_heads(account: Any) -> dict[str, int]:
    """Each plan's active version, `default` first."""
    heads = {} if account.deck_version is None else {DEFAULT_PLAN: account.deck_version}
    return heads | dict(sorted(account.plan_versions.items()))


def _rules_payload(account: Any) -> dict[str, Any]:
    return {
        "tenant": account.tenant,
        "account": account.account,
        "rules": [{"callers": p, "plan": plan} for p, plan in sorted(account.plan_rules.items())],
        "plans": _plan_heads(account),
    }


def _rules_text(account: Any, head: str) -> str:
    lines = [head]
    heads = _plan_heads(account)
    for prefix, plan in sorted(account.plan_rules.items()):
        deck = f"v{heads[plan]}" if plan in heads else "no deck: its calls stay unrated"
        lines.append(f"  callers {prefix}...  -> {plan} ({deck})")
    if not account.plan_rules:
        lines.append("  no caller rules: calls use their trunk's plan, else default")
    plans = ", ".join(f"{p} v{v}" for p, v in heads.items()) or "none"
    lines.append(f"  plan decks: {plans}")
    return "\n".join(lines)


@guarded
def run_plan_rule(args: argparse.Namespace) -> int:
    from functions.store import accounts

    accounts.set_plan_rule(args.tenant, args.account, args.plan, args.callers)
    account = accounts.get_account(args.tenant, args.account)
    callers = ",".join(sorted(set(args.callers)))
    head = f"{account.tenant}/{account.account}: callers {callers} use plan {args.plan}"
    emit(args, _rules_payload(account), _rules_text(account, head))
    return 0


@guarded
def run_plan_rules(args: argparse.Namespace) -> int:
    from functions.store import accounts

    account = accounts.get_account(args.tenant, args.account)
    head = f"{account.tenant}/{account.account} rate plans (longest caller prefix wins):"
    emit(args, _rules_payload(account), _rules_text(account, head))
    return 0


@guarded
def run_plan_unrule(args: argparse.Namespace) -> int:
    from functions.store import accounts

    accounts.remove_plan_rule(args.tenant, args.account, args.callers)
    account = accounts.get_account(args.tenant, args.account)
    callers = ",".join(sorted(set(args.callers)))
    head = f"{account.tenant}/{account.account}: rules for callers {callers} removed"
    emit(args, _rules_payload(account), _rules_text(account, head))
    return 0


# --- deck impact: a proposed supplier deck replayed over the calls it would have priced ------


def _days_back(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 1 <= days <= 366:
        raise argparse.ArgumentTypeError(f"--days must be 1..366, got {days}")
    return days


def _stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@guarded
def run_deck_impact(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from functions.rate import deck_impact
    from functions.rate.service import rounding_of
    from functions.store import accounts, lake

    data = _read(args.deck)
    account = accounts.get_account(args.tenant, args.supplier)
    if account.kind != "supplier":
        raise CliError(f"{args.tenant}/{args.supplier} is a {account.kind}, not a supplier")
    currency = currency_code(args.currency) if args.currency else account.currency
    if currency != account.currency:
        raise CliError(
            f"deck currency {currency} differs from supplier {account.account}'s currency "
            f"{account.currency}"
        )
    try:
        deck = parse_deck(data, source=args.deck, currency=currency)
    except InvalidDeckError as error:
        print(error, file=sys.stderr)
        return 2
    until = int(time.time())
    since = until - args.days * 86_400
    index, as_of = deck_impact.proposed_index(deck.table, currency, until)
    rounding = rounding_of(account)  # the supplier's own contract rule, as the rater's
    # Days are the calls' partitions; one more each side, the window itself cuts exactly.
    first = datetime.fromtimestamp(since, UTC).date() - timedelta(days=1)
    last = datetime.fromtimestamp(until, UTC).date() + timedelta(days=1)
    found = lake.day_files(args.tenant, first, last)
    charges_columns = (*deck_impact.CHARGES_COLUMNS, "destination")
    parts, without_charges = [], 0
    for _, rated, charges in lake.read_file_pairs(
        args.tenant, found, deck_impact.RATED_COLUMNS, charges_columns
    ):
        if charges is None:  # a table from before charges were stored: no old cost to compare
            without_charges += 1
            continue
        parts.append(
            deck_impact.file_impact(
                rated, charges, supplier=account.account, currency=currency, index=index,
                rounding=rounding, since=since, until=until,
            )
        )  # fmt: skip
    impact = deck_impact.summarise(parts)
    payload = {
        "tenant": account.tenant,
        "supplier": account.account,
        "deck": deck.source,
        "currency": currency,
        "since": _stamp(since),
        "until": _stamp(until),
        "days": args.days,
        "as_of": _stamp(as_of),
        "files_without_charges": without_charges,
        **deck_impact.impact_json(impact),
    }
    emit(args, payload, format_impact(payload))
    return 0


_IMPACT_FIELDS = (
    "calls", "minutes", "old_cost", "new_cost", "difference", "revenue", "old_margin",
    "new_margin",
)  # fmt: skip


def format_impact(payload: dict[str, Any]) -> str:
    lines = [
        f"{payload['tenant']}/{payload['supplier']}: {payload['deck']} ({payload['currency']}) "
        f"over the calls of {payload['since']} .. {payload['until']} "
        f"({payload['days']} days)"
    ]
    total = payload["total"]
    if not total["calls"] and not payload["unrated"]["calls"]:
        lines.append("no rated calls of this supplier in the period")
        return "\n".join(lines)
    header = ("destination", *(f.replace("_", " ") for f in _IMPACT_FIELDS), "")
    table = [header]
    for d in payload["destinations"]:
        table.append((d["destination"], *(str(d[f]) for f in _IMPACT_FIELDS), _loss(d)))
        if len(d["routes"]) > 1 or d["routes"][0]["loses_money"] != d["loses_money"]:
            table += [
                (f"  {r['prefix']}", *(str(r[f]) for f in _IMPACT_FIELDS), _loss(r))
                for r in d["routes"]
            ]
    table.append(("total priced", *(str(total[f]) for f in _IMPACT_FIELDS), ""))
    for u in payload["unrated"]["destinations"]:
        cells = ("-" if u[f] is None else str(u[f]) for f in _IMPACT_FIELDS)
        table.append((f"{u['destination']} (no rate)", *cells, "UNRATED"))
    lines += _columns(table, right=tuple(range(1, len(_IMPACT_FIELDS) + 1)))
    losing = payload["losing_destinations"]
    if losing:
        lines.append(f"LOSES MONEY (new cost above revenue): {', '.join(losing)}")
        routes = [r for r in payload["losing_routes"] if r.rsplit(" ", 1)[0] not in losing]
        if routes:
            lines.append(f"losing routes: {', '.join(routes)}")
    elif payload["losing_routes"]:
        lines.append(f"losing routes: {', '.join(payload['losing_routes'])}")
    else:
        lines.append("no destination loses money")
    unrated = payload["unrated"]
    if unrated["calls"]:
        names = ", ".join(u["destination"] for u in unrated["destinations"])
        noun = "call" if unrated["calls"] == 1 else "calls"
        lines.append(f"UNRATED by the proposed deck: {unrated['calls']} {noun} ({names})")
    if payload["other_currency_calls"]:
        lines.append(
            f"{payload['other_currency_calls']} calls earn revenue in another currency: "
            "not counted as revenue"
        )
    if payload["files_without_charges"]:
        lines.append(f"{payload['files_without_charges']} files without charges skipped")
    return "\n".join(lines)


def _loss(figures: dict[str, Any]) -> str:
    return "LOSS" if figures["loses_money"] else ""
