"""`tollgate authz TENANT ACCOUNT CALLEE`: the question a switch's START asks (POST
/v1/authz), as a dry run: the same answer (allow, reason, max duration, what would be held),
but no money is held. `tollgate authz-cap TENANT [SECONDS]`: the tenant's longest call.
"""

from __future__ import annotations

import argparse
import datetime as dt

from functions.cli import CliError, emit, guarded, json_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    ask = subparsers.add_parser(
        "authz",
        help="may this account call this number now, for how long (a dry run: nothing held)",
        description="Answers as POST /v1/authz answers a START, without holding money: "
        "allow, reason, the longest answered time and the amount a START would hold.",
    )
    ask.add_argument("tenant")
    ask.add_argument("account")
    ask.add_argument("callee", help="the number called, as the switch sends it")
    ask.add_argument(
        "--time", metavar="ISO", help="when the call starts, with its offset (default: now)"
    )
    json_flag(ask)
    ask.set_defaults(run=run_authz)

    cap = subparsers.add_parser(
        "authz-cap",
        help="the longest call a START may allow in a tenant (default 3 h): show or set",
    )
    cap.add_argument("tenant")
    cap.add_argument("seconds", nargs="?", type=int, help="set it (1 to 86400 seconds)")
    json_flag(cap)
    cap.set_defaults(run=run_cap)


def _time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CliError(f"invalid --time {text!r}: an ISO 8601 time with its offset")
    return moment.astimezone(dt.UTC)


@guarded
def run_authz(args: argparse.Namespace) -> int:
    from functions.authz import service
    from functions.store import accounts

    accounts.get_tenant(args.tenant)
    request = service.Request(
        args.tenant, "start", "cli-dry-run", account=args.account, callee=args.callee,
        at=_time(args.time),
    )  # fmt: skip
    answer = service.authorize(request, dry_run=True)
    payload = {"tenant": args.tenant, "account": args.account, "callee": args.callee, **answer}
    payload["dry_run"] = True
    verdict = "allow" if answer["allow"] else "deny"
    emit(
        args,
        payload,
        f"{args.tenant}/{args.account} -> {args.callee}: {verdict} ({answer['reason']}), "
        f"max duration {answer['max_duration_seconds']} s, would hold "
        f"{answer['hold_amount']} (dry run: nothing held)",
    )
    return 0


@guarded
def run_cap(args: argparse.Namespace) -> int:
    from functions.store import accounts, holds

    accounts.get_tenant(args.tenant)
    if args.seconds is not None:
        holds.set_max_duration(args.tenant, args.seconds)
    seconds = holds.get_max_duration(args.tenant)
    emit(args, {"tenant": args.tenant, "max_duration_seconds": seconds},
         f"{args.tenant}: a START allows at most {seconds} s")  # fmt: skip
    return 0
