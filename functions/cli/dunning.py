"""`tollgate dunning run|policy`: reminders, final notices, suspensions and credit limits.

`run` is what the daily schedule does (app.py), on demand and for any day: each step is
taken once, so running it again the same day sends nothing twice. `policy set` changes the
days of the steps for the tenant's accounts (no ACCOUNT) or one account.
"""

from __future__ import annotations

import argparse

from functions.cli import day_arg, emit, guarded, json_flag

ACTOR = "system:dunning"


def _days(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid days {text!r}: use e.g. 3,7") from None


def _day_or_none(text: str) -> int | None:
    if text.strip().lower() in ("none", "off", ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid day {text!r}: a number or 'none'") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    dunning = subparsers.add_parser("dunning", help="overdue invoices and credit limits")
    actions = dunning.add_subparsers(dest="dunning_action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="send today's reminders, suspend and resume accounts, check credit limits",
        description="What the daily schedule does. Each step is taken once: running it again "
        "the same day sends nothing twice.",
    )
    run.add_argument("tenant")
    run.add_argument("--day", type=day_arg, metavar="YYYY-MM-DD", help="default: today (UTC)")
    json_flag(run)
    run.set_defaults(run=run_dunning)

    policy = actions.add_parser("policy", help="the days of the dunning steps")
    policy_actions = policy.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    setter = policy_actions.add_parser(
        "set", help="set the days (without ACCOUNT: the tenant's default for its accounts)"
    )
    setter.add_argument("tenant")
    setter.add_argument("account", nargs="?")
    setter.add_argument("--reminders", type=_days, default=(3, 7), metavar="D,D",
                        help="days overdue of each reminder (default 3,7)")  # fmt: skip
    setter.add_argument("--final", type=_day_or_none, default=10, metavar="D",
                        help="the final notice's day, or none (default 10)")  # fmt: skip
    setter.add_argument("--suspend", type=_day_or_none, default=14, metavar="D",
                        help="the suspension's day, or none (default 14)")  # fmt: skip
    json_flag(setter)
    setter.set_defaults(run=run_policy_set)
    show = policy_actions.add_parser("show", help="the policy in force and where it comes from")
    show.add_argument("tenant")
    show.add_argument("account", nargs="?")
    json_flag(show)
    show.set_defaults(run=run_policy_show)


def _policy_text(owner: str, policy, source: str) -> str:
    final = "none" if policy.final is None else policy.final
    suspend = "none" if policy.suspend is None else policy.suspend
    reminders = ",".join(map(str, policy.reminders)) or "none"
    return (
        f"{owner}: reminders at {reminders} days overdue, final notice {final}, "
        f"suspension {suspend} ({source})"
    )


@guarded
def run_policy_set(args: argparse.Namespace) -> int:
    from functions.invoice.dunning import Policy
    from functions.store import accounts, billing

    accounts.get_tenant(args.tenant)
    if args.account:
        accounts.get_account(args.tenant, args.account)
    policy = Policy(args.reminders, args.final, args.suspend)
    billing.set_dunning_policy(args.tenant, args.account, policy)
    owner = f"{args.tenant}/{args.account}" if args.account else f"{args.tenant} (default)"
    source = "account" if args.account else "tenant"
    emit(args, {"tenant": args.tenant, "account": args.account, **policy.as_json(),
                "source": source}, _policy_text(owner, policy, source))  # fmt: skip
    return 0


@guarded
def run_policy_show(args: argparse.Namespace) -> int:
    from functions.store import accounts, billing

    accounts.get_tenant(args.tenant)
    if args.account:
        accounts.get_account(args.tenant, args.account)
    policy, source = billing.get_dunning_policy(args.tenant, args.account)
    owner = f"{args.tenant}/{args.account}" if args.account else args.tenant
    emit(args, {"tenant": args.tenant, "account": args.account, **policy.as_json(),
                "source": source}, _policy_text(owner, policy, source))  # fmt: skip
    return 0


@guarded
def run_dunning(args: argparse.Namespace) -> int:
    import datetime as dt

    from functions.invoice.dunning_job import run_dunning as run
    from functions.store import accounts, billing, events, ledger, mail

    accounts.get_tenant(args.tenant)
    day = args.day or dt.datetime.now(dt.UTC).date()
    report = run(
        args.tenant,
        day,
        accounts=accounts,
        ledger=ledger,
        billing=billing,
        mail=mail,
        events=events,
        actor=accounts.caller(by=ACTOR),
    )
    lines = [f"dunning {args.tenant} on {day}:"]
    lines += [f"  sent {s['kind']} for {s['invoice']} to {s['to']}" for s in report.sent]
    lines += [f"  recorded {s['step']} of {s['invoice']} ({s['kind']})" for s in report.recorded]
    lines += [f"  suspended {s['account']}: {s['reason']}" for s in report.suspended]
    lines += [f"  resumed {a}" for a in report.resumed]
    lines += [f"  credit limit warning: {w['account']}" for w in report.warnings]
    if len(lines) == 1:
        lines.append("  nothing to do")
    emit(args, report.as_json(), "\n".join(lines))
    return 0
