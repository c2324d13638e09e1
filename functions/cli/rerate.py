"""`tollgate rerate`: re-price rated calls with the decks as they now stand; post differences.

Amounts print as they move a balance (charges negative, what the carrier owes a supplier
positive), in micro-units shown with 6 places: `old` is what the re-rated calls moved each
balance by before, `new` what they move it by now, `difference` what this run posted.
"""

from __future__ import annotations

import argparse
from typing import Any

from functions.cli import day_arg, emit, guarded, json_flag
from functions.shared.money import AMOUNT_SCALE, units_to_str


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rerate",
        help="re-rate charged calls with the current decks and post the differences",
        description=__doc__,
    )
    parser.add_argument("tenant")
    parser.add_argument("--from", dest="first", type=day_arg, required=True, help="first day")
    parser.add_argument("--to", dest="last", type=day_arg, required=True, help="last day")
    parser.add_argument(
        "--account",
        help="only the calls in which this account is a party (customer, reseller, supplier)",
    )
    json_flag(parser)
    parser.set_defaults(run=run_rerate)


def _money(units: int) -> str:
    return units_to_str(units, AMOUNT_SCALE)


def report_payload(report: Any) -> dict[str, Any]:
    return {
        "tenant": report.tenant,
        "from": report.first.isoformat(),
        "to": report.last.isoformat(),
        "account": report.account,
        "accounts": [
            {
                "account": c.account,
                "currency": c.currency,
                "old": _money(c.old),
                "new": _money(c.new),
                "difference": _money(c.difference),
            }
            for c in report.accounts
        ],
        "tables": [
            {"day": t.day, "file_id": t.file_id, "name": t.name, "status": t.status}
            for t in report.tables
        ],
    }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def format_report(report: Any) -> str:
    payload = report_payload(report)
    scope = f" (calls of {report.account})" if report.account else ""
    counts = {s: sum(t.status == s for t in report.tables) for s in ("rerated", "unchanged")}
    finished = sum(t.status == "finished" for t in report.tables)
    lines = [
        f"{report.tenant} {payload['from']}..{payload['to']}{scope}: "
        f"{_count(counts['rerated'], 'rated table')} re-rated, {counts['unchanged']} unchanged"
        + (f", {finished} interrupted re-ratings finished" if finished else "")
    ]
    if not payload["accounts"]:
        lines.append("no rated calls in range")
        return "\n".join(lines)
    columns = ("account", "currency", "old", "new", "difference")
    rows = [[row[c] for c in columns] for row in payload["accounts"]]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    right = {"old", "new", "difference"}

    def line(values: list[str]) -> str:
        cells = [
            v.rjust(w) if c in right else v.ljust(w)
            for c, v, w in zip(columns, values, widths, strict=True)
        ]
        return "  ".join(cells).rstrip()

    lines.append(line(list(columns)))
    lines += [line(r) for r in rows]
    return "\n".join(lines)


@guarded
def run_rerate(args: argparse.Namespace) -> int:
    # Imported here: building the parser must not pay for boto3 or pyarrow.
    from functions.rate.rerate import rerate
    from functions.rate.service import DeckCache
    from functions.store import accounts, files, lake, ledger

    accounts.get_tenant(args.tenant)
    report = rerate(
        args.tenant,
        args.first,
        args.last,
        args.account,
        lake=lake,
        files=files,
        accounts=accounts,
        ledger=ledger,
        decks=DeckCache(),
    )
    emit(args, report_payload(report), format_report(report))
    return 0
