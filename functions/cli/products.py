"""`tollgate did|recurring`: numbers rented to accounts and the fees they owe every month.

A DID is in service from its first day to its last, both included, days being the tenant's.
`recurring run` posts a period's fees (prorated by day, rounded once by each account's rule,
setup once) to the owners' balances, once per account x item x period: the scheduled job
runs the month just ended, the command runs any period again and posts only what is missing.
"""

from __future__ import annotations

import argparse
from typing import Any

from functions.cli import (
    OperationError,
    day_arg,
    emit,
    guarded,
    json_flag,
    money_text,
    tenant_today,
)
from functions.shared.money import RATE_SCALE, units_to_str


def register(subparsers: argparse._SubParsersAction) -> None:
    did = subparsers.add_parser("did", help="DIDs: numbers rented to customers and resellers")
    actions = did.add_subparsers(dest="did_action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="rent a number to an account from a day on",
        description="The account (a customer or reseller) pays the monthly fee prorated by "
        "the days of service, the setup fee once, and the per-minute rate for calls to it.",
    )
    add.add_argument("tenant")
    add.add_argument("number", help="international form, e.g. +442071234567")
    add.add_argument("--account", required=True, help="the customer or reseller renting it")
    add.add_argument("--monthly", required=True, metavar="AMOUNT", help="monthly fee, e.g. 2.00")
    add.add_argument("--setup", metavar="AMOUNT", help="one-off setup fee (default none)")
    add.add_argument(
        "--per-minute", metavar="RATE", help="rate of inbound minutes, e.g. 0.002 (default 0)"
    )
    add.add_argument(
        "--from",
        dest="first",
        type=day_arg,
        metavar="D",
        help="first day of service (default: today)",
    )
    json_flag(add)
    add.set_defaults(run=run_did_add)

    listing = actions.add_parser("list", help="every DID record, released ones included")
    listing.add_argument("tenant")
    json_flag(listing)
    listing.set_defaults(run=run_did_list)

    release = actions.add_parser("release", help="end a number's service after a day")
    release.add_argument("tenant")
    release.add_argument("number")
    release.add_argument(
        "--to", dest="last", type=day_arg, metavar="D", help="last day of service (default: today)"
    )
    json_flag(release)
    release.set_defaults(run=run_did_release)

    recurring = subparsers.add_parser("recurring", help="monthly and setup fees")
    recurring_actions = recurring.add_subparsers(
        dest="recurring_action", required=True, metavar="ACTION"
    )
    run = recurring_actions.add_parser(
        "run",
        help="post a period's recurring fees (again: posts only what is missing)",
        description="What the scheduled job does on the 1st of each month for the month "
        "just ended, for one tenant and any period.",
    )
    run.add_argument("tenant")
    run.add_argument("--period", required=True, metavar="YYYY-MM", help="e.g. 2026-03")
    json_flag(run)
    run.set_defaults(run=run_recurring)


def _did_payload(tenant: str, did: Any) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "number": did.number,
        "account": did.account,
        "monthly": money_text(did.monthly_units),
        "setup": money_text(did.setup_units),
        "per_minute": units_to_str(did.per_minute_e8, RATE_SCALE),
        "from": did.start.isoformat(),
        "to": None if did.end is None else did.end.isoformat(),
    }


def _did_text(payload: dict[str, Any]) -> str:
    return (
        f"+{payload['number']} {payload['account']} from {payload['from']} to "
        f"{payload['to'] or 'open end'}: monthly {payload['monthly']}, setup "
        f"{payload['setup']}, per minute {payload['per_minute']}"
    )


@guarded
def run_did_add(args: argparse.Namespace) -> int:
    from functions.rate.recurring import did_from_text
    from functions.store import accounts

    tenant = accounts.get_tenant(args.tenant)
    did = did_from_text(
        args.number,
        args.account,
        monthly=args.monthly,
        setup=args.setup,
        per_minute=args.per_minute,
        start=args.first,
        today=tenant_today(tenant),
    )
    added = accounts.add_did(args.tenant, did)
    payload = _did_payload(args.tenant, added)
    emit(args, payload, f"added DID {_did_text(payload)}")
    return 0


@guarded
def run_did_list(args: argparse.Namespace) -> int:
    from functions.store import accounts

    accounts.get_tenant(args.tenant)
    payload = [_did_payload(args.tenant, did) for did in accounts.list_dids(args.tenant)]
    emit(args, payload, "\n".join(_did_text(p) for p in payload) or "no DIDs")
    return 0


@guarded
def run_did_release(args: argparse.Namespace) -> int:
    from functions.store import accounts

    tenant = accounts.get_tenant(args.tenant)
    last = args.last if args.last is not None else tenant_today(tenant)
    number = args.number.strip().removeprefix("+")
    released = accounts.release_did(args.tenant, number, last)
    payload = _did_payload(args.tenant, released)
    emit(args, payload, f"released DID {_did_text(payload)}")
    return 0


@guarded
def run_recurring(args: argparse.Namespace) -> int:
    from functions.rate.recurring import period_bounds
    from functions.rate.recurring_job import post_recurring
    from functions.store import accounts, ledger

    period_bounds(args.period)  # ValueError naming it before anything is read
    accounts.get_tenant(args.tenant)
    run = post_recurring(args.tenant, args.period, accounts=accounts, ledger=ledger)
    if run.conflicts:
        raise OperationError(
            f"{len(run.conflicts)} fee(s) of {args.period} not posted, the others were: "
            + "; ".join(run.conflicts)
        )
    payload = [
        {
            "account": p.charge.account,
            "component": p.charge.component,
            "item": p.charge.item,
            "period": p.charge.period,
            "amount": money_text(p.charge.amount_units),
            "reference": p.charge.reference,
            "recorded": p.recorded,
        }
        for p in run.posted
    ]
    lines = [
        f"{'posted' if p['recorded'] else 'already posted':<15}{p['account']:<20}"
        f"{p['item']:<32}{p['amount']:>16}  {p['reference']}"
        for p in payload
    ]
    new = sum(p.charge.amount_units for p in run.posted if p.recorded)
    lines.append(
        f"{args.tenant} {args.period}: {sum(p.recorded for p in run.posted)} fee(s) posted "
        f"({money_text(new)}), {sum(not p.recorded for p in run.posted)} already posted"
    )
    emit(args, payload, "\n".join(lines))
    return 0
