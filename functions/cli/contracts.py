"""`tollgate tier|bundle`: volume contracts on an account's minutes to a destination group.

A tier schedule replaces the deck's rate for calls to its prefixes by the tier the period's
minutes fall in (graduated) or reach (volume, trued up at `tier close`); a bundle includes a
number of minutes a month for a fee. The deck still names the destination and gives the
increments and connect fee. Periods are calendar months in the tenant's time zone; the
counters behind them move once per file, with the file's pricing (functions.rate.contracts).
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from functions.cli import (
    CliError,
    OperationError,
    day_arg,
    emit,
    guarded,
    json_flag,
    money_text,
    tenant_today,
)
from functions.shared.money import RATE_SCALE, units_to_str

MINUTE = Decimal(60)


def register(subparsers: argparse._SubParsersAction) -> None:
    tier = subparsers.add_parser("tier", help="tiered volume pricing per destination group")
    actions = tier.add_subparsers(dest="tier_action", required=True, metavar="ACTION")
    put = actions.add_parser(
        "set",
        help="give an account a tier schedule (replaces the one of that name)",
        description="Example: tollgate tier set acme-telecom retail-1 us --prefixes 1 --mode "
        "graduated --tiers 100000:0.0045,:0.0040 (0.0045/min for the first 100,000 minutes "
        "of each month, then 0.0040/min).",
    )
    put.add_argument("tenant")
    put.add_argument("account")
    put.add_argument("name")
    put.add_argument("--prefixes", required=True, metavar="P[,P...]", help="e.g. 1,1242")
    put.add_argument("--mode", required=True, choices=("graduated", "volume"))
    put.add_argument(
        "--tiers",
        required=True,
        metavar="MIN:RATE,...,:RATE",
        help="each tier's last minute (inclusive) and its rate per minute; the last open",
    )
    put.add_argument("--period", default="month", choices=("month",))
    json_flag(put)
    put.set_defaults(run=run_tier_set)

    listing = actions.add_parser("list", help="an account's tier schedules")
    listing.add_argument("tenant")
    listing.add_argument("account")
    json_flag(listing)
    listing.set_defaults(run=run_tier_list)

    show = actions.add_parser("show", help="a tier's minutes and amounts in a period")
    show.add_argument("tenant")
    show.add_argument("account")
    show.add_argument("name")
    show.add_argument("--period", required=True, metavar="YYYY-MM")
    json_flag(show)
    show.set_defaults(run=run_tier_show)

    close = actions.add_parser(
        "close",
        help="true up a period's volume tiers (again: posts only what is still owed)",
        description="What the scheduled job does on the 3rd of each month for the month "
        "before, for one tenant and any period.",
    )
    close.add_argument("tenant")
    close.add_argument("--period", required=True, metavar="YYYY-MM")
    json_flag(close)
    close.set_defaults(run=run_tier_close)

    bundle = subparsers.add_parser("bundle", help="monthly bundles of included minutes")
    bundle_actions = bundle.add_subparsers(dest="bundle_action", required=True, metavar="ACTION")
    put = bundle_actions.add_parser(
        "set",
        help="give an account a bundle (replaces the one of that name)",
        description="A monthly fee (prorated by day in the first month, posted by `recurring "
        "run`) that includes N minutes a month to the prefixes; minutes beyond are priced by "
        "the deck or the account's tier.",
    )
    put.add_argument("tenant")
    put.add_argument("account")
    put.add_argument("name")
    put.add_argument("--prefixes", required=True, metavar="P[,P...]")
    put.add_argument("--minutes", required=True, metavar="N", help="minutes included a month")
    put.add_argument("--fee", required=True, metavar="AMOUNT", help="monthly fee, e.g. 150.00")
    put.add_argument(
        "--from",
        dest="first",
        type=day_arg,
        metavar="D",
        help="first day of service (default: today)",
    )
    json_flag(put)
    put.set_defaults(run=run_bundle_set)

    listing = bundle_actions.add_parser("list", help="an account's bundles")
    listing.add_argument("tenant")
    listing.add_argument("account")
    json_flag(listing)
    listing.set_defaults(run=run_bundle_list)


def _prefixes(text: str) -> tuple[str, ...]:
    prefixes = tuple(p.strip().removeprefix("+") for p in text.split(","))
    if not all(prefixes):
        raise CliError(f"invalid --prefixes {text!r}: digits separated by commas, e.g. 1,1242")
    return prefixes


def _minutes(seconds: int) -> str:
    return str((Decimal(seconds) / MINUTE).quantize(Decimal("0.01")))


def _tier_payload(tenant: str, stored: Any) -> dict[str, Any]:
    schedule = stored.terms
    return {
        "tenant": tenant,
        "account": stored.account,
        "name": schedule.name,
        "prefixes": list(schedule.prefixes),
        "mode": schedule.mode,
        "period": schedule.period,
        "tiers": [
            {
                "up_to_minutes": None if t.up_to_seconds is None else _minutes(t.up_to_seconds),
                "rate": units_to_str(t.rate_e8, RATE_SCALE),
            }
            for t in schedule.tiers
        ],
    }


def _tier_text(p: dict[str, Any]) -> str:
    tiers = ", ".join(
        f"{t['rate']}/min" + (f" to minute {t['up_to_minutes']}" if t["up_to_minutes"] else "")
        for t in p["tiers"]
    )
    return f"{p['account']} tier {p['name']} ({p['mode']}, {','.join(p['prefixes'])}): {tiers}"


@guarded
def run_tier_set(args: argparse.Namespace) -> int:
    from functions.rate.tiers import TierSchedule, parse_tiers
    from functions.store import accounts

    try:
        schedule = TierSchedule(
            args.name, _prefixes(args.prefixes), args.mode, parse_tiers(args.tiers), args.period
        )
    except ValueError as error:
        raise CliError(f"invalid tier {args.name!r}: {error}") from None
    stored = accounts.set_contract(args.tenant, args.account, schedule)
    payload = _tier_payload(args.tenant, stored)
    emit(args, payload, f"set {_tier_text(payload)}")
    return 0


def _contracts(tenant: str, account: str, kind: str) -> list[Any]:
    from functions.store import accounts

    accounts.get_account(tenant, account)  # NotFoundError names an unknown tenant or account
    return [c for c in accounts.list_contracts(tenant, account) if c.kind == kind]


@guarded
def run_tier_list(args: argparse.Namespace) -> int:
    payload = [_tier_payload(args.tenant, c) for c in _contracts(args.tenant, args.account, "tier")]
    emit(args, payload, "\n".join(_tier_text(p) for p in payload) or "no tiers")
    return 0


@guarded
def run_tier_show(args: argparse.Namespace) -> int:
    from functions.rate.contracts import TIER, CounterKey
    from functions.rate.service import rounding_of
    from functions.rate.tier_close import final_price, rounded_micro
    from functions.rate.tiers import tier_seconds
    from functions.store import accounts, files

    found = [c for c in _contracts(args.tenant, args.account, "tier") if c.terms.name == args.name]
    if not found:
        raise CliError(f"account {args.account!r} has no tier {args.name!r}")
    schedule = found[0].terms
    rounding = rounding_of(accounts.get_account(args.tenant, args.account))
    stored = files.get_counter(
        args.tenant, CounterKey(args.account, TIER, args.name, files.check_period(args.period))
    )
    seconds = stored.counter.seconds
    rows = []
    for number, (tier, used) in enumerate(
        zip(schedule.tiers, tier_seconds(schedule, seconds), strict=True), start=1
    ):
        rows.append(
            {
                "tier": number,
                "up_to_minutes": None
                if tier.up_to_seconds is None
                else _minutes(tier.up_to_seconds),
                "rate": units_to_str(tier.rate_e8, RATE_SCALE),
                "seconds": used,
                "minutes": _minutes(used),
                "amount": money_text(rounded_micro(tier.rate_e8 * used, rounding)),
            }
        )
    total = final_price(schedule, seconds, rounding)
    payload = {
        "tenant": args.tenant,
        "account": args.account,
        "name": args.name,
        "mode": schedule.mode,
        "period": args.period,
        "seconds": seconds,
        "minutes": _minutes(seconds),
        "tiers": rows,
        # The contract's price of the period's total, rounded once (tiers' amounts are each
        # rounded for display and need not add up to it to the last digit).
        "total": money_text(total),
        "charged": money_text(stored.counter.charged),
        "trued_up": money_text(stored.trued_up),
        "owed_at_close": money_text(total - stored.counter.charged - stored.trued_up),
    }
    lines = [
        f"{args.account} tier {args.name} ({schedule.mode}) {args.period}: "
        f"{payload['minutes']} minutes, total {payload['total']}",
        *(
            f"  tier {r['tier']}: {r['minutes']:>14} min at {r['rate']:>12}  {r['amount']:>18}"
            for r in rows
        ),
        f"  charged {payload['charged']}, trued up {payload['trued_up']}, "
        f"owed at close {payload['owed_at_close']}",
    ]
    emit(args, payload, "\n".join(lines))
    return 0


@guarded
def run_tier_close(args: argparse.Namespace) -> int:
    from functions.rate.tier_close import close_period
    from functions.store import accounts, files, ledger

    files.check_period(args.period)
    accounts.get_tenant(args.tenant)
    try:
        done = close_period(args.tenant, args.period, files=files, accounts=accounts, ledger=ledger)
    except RuntimeError as error:
        raise OperationError(str(error)) from None
    payload = [
        {
            "account": t.account,
            "tier": t.tier,
            "period": t.period,
            "minutes": _minutes(t.seconds),
            "charged": money_text(t.charged),
            "final": money_text(t.final),
            "true_up": money_text(t.amount),
            "reference": t.reference,
            "recorded": t.recorded,
        }
        for t in done
    ]
    lines = [
        f"{p['account']:<20}{p['tier']:<12}{p['minutes']:>14} min  charged {p['charged']:>16}"
        f"  final {p['final']:>16}  true-up {p['true_up']:>14}  "
        + (p["reference"] or "nothing owed")
        + ("" if p["recorded"] or not p["reference"] else " (posted before)")
        for p in payload
    ]
    lines.append(
        f"{args.tenant} {args.period}: {len(payload)} volume tier(s), "
        f"{sum(p['recorded'] for p in payload)} true-up(s) posted"
    )
    emit(args, payload, "\n".join(lines))
    return 0


def _bundle_payload(tenant: str, stored: Any) -> dict[str, Any]:
    bundle = stored.terms
    return {
        "tenant": tenant,
        "account": stored.account,
        "name": bundle.name,
        "prefixes": list(bundle.prefixes),
        "minutes": _minutes(bundle.included_seconds),
        "fee": money_text(bundle.fee_units),
        "from": stored.start.isoformat(),
    }


def _bundle_text(p: dict[str, Any]) -> str:
    return (
        f"{p['account']} bundle {p['name']} ({','.join(p['prefixes'])}): {p['minutes']} "
        f"minutes a month for {p['fee']}, from {p['from']}"
    )


@guarded
def run_bundle_set(args: argparse.Namespace) -> int:
    from functions.cli import parse_amount
    from functions.rate.tiers import Bundle, parse_minutes
    from functions.store import accounts

    tenant = accounts.get_tenant(args.tenant)
    first = args.first if args.first is not None else tenant_today(tenant)
    try:
        bundle = Bundle(
            args.name,
            _prefixes(args.prefixes),
            parse_minutes(args.minutes),
            parse_amount(args.fee, "--fee"),
        )
    except ValueError as error:
        raise CliError(f"invalid bundle {args.name!r}: {error}") from None
    stored = accounts.set_contract(args.tenant, args.account, bundle, start=first)
    payload = _bundle_payload(args.tenant, stored)
    emit(args, payload, f"set {_bundle_text(payload)}")
    return 0


@guarded
def run_bundle_list(args: argparse.Namespace) -> int:
    payload = [
        _bundle_payload(args.tenant, c) for c in _contracts(args.tenant, args.account, "bundle")
    ]
    emit(args, payload, "\n".join(_bundle_text(p) for p in payload) or "no bundles")
    return 0
