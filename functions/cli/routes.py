"""`tollgate routes`: the routes a call would get, and the supplier settings behind them.

    tollgate routes TENANT NUMBER [--account A] [--time ISO] [--json]
    tollgate routes target TENANT SUPPLIER --host H [--port 5060] [--transport udp|tcp|tls]
                           [--prefix DIGITS] [--gateway NAME] [--remove] [--by NAME]
    tollgate routes block TENANT SUPPLIER PREFIX [--by NAME] [--reason TEXT]
    tollgate routes unblock TENANT SUPPLIER PREFIX [--by NAME] [--reason TEXT]
    tollgate routes policy TENANT [--set KEY=VALUE ...] [--by NAME]

The first form lists the routes in the order a switch would try them, with each one's cost
(per minute and for the expected call), quality (ASR, ACD, PDD over the window and the calls
behind them, per supplier and the destination its deck names) and, with --account, the
margin left by that customer's own rate (routes under the margin guard are dropped, or all
flagged when none passes). See functions.rate.routing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from typing import Any

from functions.cli import CliError, by_flag, emit, guarded, json_flag

ACTIONS = ("target", "block", "unblock", "policy")
COLUMNS = (
    ("#", None),
    ("supplier", "supplier"),
    ("prefix", "prefix"),
    ("destination", "destination"),
    ("cost/min", "cost_per_minute"),
    ("cost", "cost"),
    ("asr%", "asr"),
    ("acd", "acd"),
    ("pdd", "pdd"),
    ("calls", "calls"),
    ("quality", "quality"),
    ("penalty%", "penalty"),
    ("margin", "margin"),
    ("margin%", "margin_percent"),
    ("flag", "flagged"),
    ("target", "target"),
)


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use ISO 8601, e.g. 2026-03-02T05:10Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _number(text: str) -> str:
    digits = re.sub(r"[ ()-]", "", text.strip())
    digits = digits[1:] if digits.startswith("+") else digits
    digits = digits[2:] if digits.startswith("00") else digits
    if not re.fullmatch(r"[0-9]{1,18}", digits):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: E.164 digits, e.g. 4420...")
    return digits


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: 1..65535")
    return port


def _show_parser() -> argparse.ArgumentParser:
    show = argparse.ArgumentParser(
        prog="tollgate routes",
        description="The routes of a call, best first: cost, quality and (with --account) "
        "margin per route.",
    )
    show.add_argument("tenant")
    show.add_argument("number", type=_number, help="the callee, E.164 (+ and spaces allowed)")
    show.add_argument("--account", metavar="A", help="the calling customer: margins and guard")
    show.add_argument("--time", type=_moment, metavar="ISO", help="the call's start (now)")
    json_flag(show)
    return show


def _action_parser(action: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"tollgate routes {action}")
    parser.add_argument("tenant")
    if action == "policy":
        parser.description = (
            "The routing settings in force (defaults or the tenant's), or change them: "
            "asr_floor (%), acd_floor (s), pdd_ceiling_ms, penalty_percent, min_calls, "
            "window_hours, expected_seconds, min_margin (per minute; off), min_margin_percent "
            "(off). KEY=default puts one back."
        )
        parser.add_argument("--set", dest="settings", action="append", default=[],
                            metavar="KEY=VALUE", help="repeatable")  # fmt: skip
    else:
        parser.add_argument("supplier")
    if action == "target":
        parser.description = "Where the supplier's calls are sent (SIP host and the rest)."
        parser.add_argument("--host", help="SIP host name or IP address")
        parser.add_argument("--port", type=_port, default=5060)
        parser.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
        parser.add_argument("--prefix", metavar="DIGITS", help="tech prefix before the number")
        parser.add_argument("--gateway", metavar="NAME", help="FreeSWITCH gateway name")
        parser.add_argument("--remove", action="store_true", help="remove the target")
    if action in ("block", "unblock"):
        parser.description = (
            "Never offer the supplier for callees starting with PREFIX (unblock: offer again)."
        )
        parser.add_argument("prefix")
    parser.add_argument("--reason", help="why, recorded with the change")
    by_flag(parser)
    json_flag(parser)
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    routes = subparsers.add_parser(
        "routes",
        help="a call's routes (least cost, quality, margin); supplier targets and blocks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    json_flag(routes)
    routes.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        metavar="TENANT NUMBER | target|block|unblock|policy ...",
    )
    routes.set_defaults(run=run_routes)


def run_routes(args: argparse.Namespace) -> int:
    words = list(args.words)
    if not words:
        raise CliError("tollgate routes: give TENANT NUMBER, or target|block|unblock|policy")
    action = words[0] if words[0] in ACTIONS else None
    parser = _action_parser(action) if action else _show_parser()
    sub = parser.parse_args(words[1:] if action else words)
    sub.json = bool(sub.json or args.json)
    run = {
        None: run_show,
        "target": run_target,
        "block": run_block,
        "unblock": run_block,
        "policy": run_policy,
    }[action]
    sub.action = action
    return run(sub)


def _actor(args: argparse.Namespace) -> Any:
    from functions.store import accounts

    return accounts.caller(args.by or os.environ.get("TOLLGATE_OPERATOR") or None)


def _cell(route: dict[str, Any], key: str | None, position: int) -> str:
    if key is None:
        return str(position)
    value = route.get(key)
    if key == "target" and value:
        text = f"{value['transport']}:{value['host']}:{value['port']}"
        if value.get("prefix"):
            text += f" +{value['prefix']}"
        if value.get("gateway"):
            text += f" gw={value['gateway']}"
        return text
    if key == "flagged":
        return "FLAGGED" if value else ""
    return "-" if value is None else str(value)


def _table(routes: list[dict[str, Any]]) -> str:
    rows = [[name for name, _ in COLUMNS]]
    rows += [[_cell(r, key, i) for name, key in COLUMNS] for i, r in enumerate(routes, 1)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@guarded
def run_show(args: argparse.Namespace) -> int:
    from functions.rate.route_service import RouteService
    from functions.store import accounts, lake, quality
    from functions.store import routes as routes_store

    accounts.get_tenant(args.tenant)
    at = args.time or dt.datetime.now(dt.UTC)
    service = RouteService(
        routes=routes_store, lake=lake, quality=quality, accounts=accounts, ttl_seconds=0
    )
    quote = currency = None
    if args.account is not None:
        quote, currency = service.customer_price(args.tenant, args.account, args.number, at)
        if quote is None:
            raise CliError(f"account {args.account!r} has no live rate for {args.number}")
    found = service.routes_for(
        args.tenant, args.account, args.number, at, quote, quote_currency=currency
    )
    policy = service.book(args.tenant).policy
    payload = {
        "tenant": args.tenant,
        "number": args.number,
        "account": args.account,
        "at": at.isoformat().replace("+00:00", "Z"),
        "customer_rate": None if quote is None else str(quote),
        "currency": currency,
        "flagged": bool(found) and found[0]["flagged"],
        "policy": policy.as_json(),
        "routes": found,
    }
    if not found:
        text = f"no route for {args.number}"
    else:
        head = f"{len(found)} route(s) for {args.number}, each priced for a call of "
        head += f"{found[0]['expected_seconds']} s"
        if quote is not None:
            head += f", {args.account} pays {quote}/min"
        if payload["flagged"]:
            head += ": NO ROUTE PASSES THE MARGIN GUARD (all flagged)"
        text = head + "\n" + _table(found)
    emit(args, payload, text)
    return 0


def _supplier_json(supplier: Any, entry: Any) -> dict[str, Any]:
    return {
        "supplier": supplier.account,
        "status": supplier.status,
        "target": supplier.target,
        "blocks": list(supplier.blocks),
        "changed": entry is not None,
        "change_id": None if entry is None else entry.change_id,
    }


@guarded
def run_target(args: argparse.Namespace) -> int:
    from functions.rate.routing import check_target
    from functions.store import routes as routes_store

    if args.remove:
        target = None
    else:
        if not args.host:
            raise CliError("tollgate routes target: --host is required (or --remove)")
        target = check_target(args.host, args.port, args.transport, args.prefix, args.gateway)
    supplier, entry = routes_store.set_target(
        args.tenant, args.supplier, target, actor=_actor(args), reason=args.reason
    )
    shown = _cell({"target": supplier.target}, "target", 0) if supplier.target else "none"
    emit(args, _supplier_json(supplier, entry), f"{args.supplier}: target {shown}")
    return 0


@guarded
def run_block(args: argparse.Namespace) -> int:
    from functions.store import routes as routes_store

    change = routes_store.block if args.action == "block" else routes_store.unblock
    supplier, entry = change(
        args.tenant, args.supplier, args.prefix, actor=_actor(args), reason=args.reason
    )
    blocks = ", ".join(supplier.blocks) or "none"
    emit(args, _supplier_json(supplier, entry), f"{args.supplier}: blocked prefixes {blocks}")
    return 0


@guarded
def run_policy(args: argparse.Namespace) -> int:
    from functions.rate.routing import Policy
    from functions.store import routes as routes_store

    changes: dict[str, Any] = {}
    for setting in args.settings:
        key, equals, value = setting.partition("=")
        if not equals:
            raise CliError(f"invalid --set {setting!r}: use KEY=VALUE")
        changes[key.strip()] = None if value.strip() == "default" else value.strip()
    if changes:
        policy, _ = routes_store.set_policy(
            args.tenant, changes, actor=_actor(args), reason=args.reason
        )
    else:
        from functions.store import accounts

        accounts.get_tenant(args.tenant)
        policy = Policy.of(routes_store.get_policy(args.tenant))
    shown = policy.as_json()
    emit(args, shown, "\n".join(f"{k} = {'off' if v is None else v}" for k, v in shown.items()))
    return 0
