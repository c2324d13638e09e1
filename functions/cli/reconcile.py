"""`tollgate reconcile`: a partner's CDRs compared with ours, call by call.

Their file (any registered CDR format; a `generic` CSV may carry their billed `amount`,
`price` or `cost` column) is matched one to one against our calls for the partner in the
days --from..--to (UTC, inclusive), at the partner's own charges per call (usage and
surcharge summed): as a customer, the calls we bill it for (its own calls; for a reseller,
every call of the customers below it, at its own charge); as a supplier, the calls it
terminated at what we owe it. Files written before charges existed are read from their
rated rows (counted as files_without_charges). Only answered calls (billsec > 0) are
reconciled, on both sides; unanswered ones are counted apart.

The clock offset between the two systems (their clock minus ours) is estimated as the median
start difference over a wide first pass (same callee within 120 s) and corrected; then calls
pair by callee, start within --start-tolerance seconds and best pairs first (closest start,
then closest duration), no call twice. Classes:
  matched            durations within --duration-tolerance and amounts equal
  duration_mismatch  a pair whose answered seconds differ by more than the tolerance
  rate_mismatch      durations agree but their billed amount differs from ours
  missing_ours       their call with no partner of ours (they bill a call we have no record of)
  missing_theirs     our call with no partner of theirs
Minutes are answered minutes (the larger side's for a pair); money is their amount minus
ours. `--out DIR` writes the dispute pack (the differing CDRs as CSV, a per-day summary, and
a letter when the difference passes --threshold-percent of their amount or
--threshold-amount).
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from functions.cli import CliError, day_arg, emit, guarded, json_flag, timezone_name

MARGIN_SECONDS = 300  # calls read beyond the period's edges, so pairs across them are found
ISSUE_MEMBERS = (
    "clock_offset_seconds",
    "matched",
    "duration_mismatch",
    "missing_ours",
    "missing_theirs",
    "rate_mismatch",
    "our_amount",
    "their_amount",
    "difference",
)


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: use a whole number") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: use 0 to 3600")
    return value


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: use a number >= 0")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="compare a partner's CDRs with ours: matched, mismatched and missing calls",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tenant")
    parser.add_argument(
        "partner", help="the partner's account (a customer, a reseller or a supplier)"
    )
    parser.add_argument("file", type=Path, help="their CDR file (plain or gzip)")
    parser.add_argument(
        "--format",
        help="their file's format, any `tollgate switch create --format` takes (default: the "
        "--switch's, else generic: a CSV with a header, optionally an amount, price or cost "
        "column)",
    )
    parser.add_argument("--from", dest="first", type=day_arg, required=True, help="first day")
    parser.add_argument("--to", dest="last", type=day_arg, required=True, help="last day")
    parser.add_argument(
        "--role",
        choices=("customer", "supplier"),
        help="what the partner is for these calls (default: its account's kind)",
    )
    parser.add_argument(
        "--switch",
        help="read their file as this switch's: its format, time zone, numbering plan, "
        "template and column mapping (with its amount column, if mapped)",
    )
    parser.add_argument(
        "--mapping",
        type=Path,
        metavar="MAPPING.json",
        help="--format mapped: their file's column mapping (docs/formats.md), e.g. a partner's "
        "spreadsheet with an amount column",
    )
    parser.add_argument(
        "--timezone",
        help="the time zone of their file's local times (default: the --switch's, else UTC)",
    )
    parser.add_argument(
        "--start-tolerance",
        type=_seconds,
        default=3,
        metavar="SECONDS",
        help="start times within this after the clock offset (default 3)",
    )
    parser.add_argument(
        "--duration-tolerance",
        type=_seconds,
        default=2,
        metavar="SECONDS",
        help="answered seconds within this are the same (default 2)",
    )
    parser.add_argument(
        "--amount-tolerance",
        type=_decimal,
        default=Decimal("0"),
        metavar="AMOUNT",
        help="billed amounts within this are the same (default 0: exact)",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the dispute pack here")
    parser.add_argument(
        "--threshold-percent",
        type=_decimal,
        metavar="PERCENT",
        default=Decimal("1"),
        help="a letter when the difference is at least this %% of their amount (default 1)",
    )
    parser.add_argument(
        "--threshold-amount",
        type=_decimal,
        metavar="AMOUNT",
        default=Decimal("1000"),
        help="... or at least this amount (default 1000)",
    )
    json_flag(parser)
    parser.set_defaults(run=run_reconcile)


def reconciliation_payload(result: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The issue's members (counts as ints, money as decimal strings) first, then `classes`
    (count, minutes, money per class) and what else was read."""
    totals = result.totals
    payload: dict[str, Any] = {
        "clock_offset_seconds": str(result.clock_offset_seconds),
        **{name: totals[name].count for name in ISSUE_MEMBERS[1:6]},
        "our_amount": _money(result.our_amount),
        "their_amount": _money(result.their_amount),
        "difference": _money(result.difference),
        "classes": {
            name: {
                "count": total.count,
                "seconds": total.seconds,
                "minutes": _minutes(total.minutes),
                "difference": _money(total.difference),
            }
            for name, total in totals.items()
        },
        "partner": result.partner,
        "role": result.role,
        "currency": result.currency,
        "from": result.date_from.isoformat(),
        "to": result.date_to.isoformat(),
        "start_tolerance_seconds": result.start_tolerance_seconds,
        "duration_tolerance_seconds": result.duration_tolerance_seconds,
    }
    payload.update(extra or {})
    return payload


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.000001")))


def _minutes(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def format_reconciliation(payload: dict[str, Any]) -> str:
    lines = [
        f"{payload['partner']} as {payload['role']}, {payload['from']}..{payload['to']}, "
        f"{payload['currency']}: clock offset {payload['clock_offset_seconds']} s "
        f"(their clock minus ours), start within {payload['start_tolerance_seconds']} s, "
        f"duration within {payload['duration_tolerance_seconds']} s"
    ]
    columns = ("class", "calls", "minutes", "difference")
    rows = [
        [name, str(c["count"]), c["minutes"], c["difference"]]
        for name, c in payload["classes"].items()
    ]
    count = sum(c["count"] for c in payload["classes"].values())
    seconds = sum(c["seconds"] for c in payload["classes"].values())
    rows.append(["total", str(count), _minutes(Decimal(seconds) / 60), payload["difference"]])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        cells = [values[0].ljust(widths[0])]
        cells += [v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    lines += [line(list(columns)), *(line(r) for r in rows)]
    lines.append(
        f"our amount {payload['our_amount']}, their amount {payload['their_amount']}, "
        f"difference {payload['difference']} (theirs minus ours)"
    )
    if not payload["their_amounts"]:
        lines.append("their file carries no amounts: money compares nothing of theirs")
    lines.append(
        f"left out: {payload['our_unanswered']} unanswered of ours, "
        f"{payload['their_unanswered']} unanswered and {payload['their_quarantined']} "
        "unreadable rows of theirs"
    )
    if payload.get("files_without_charges"):
        count = payload["files_without_charges"]
        lines.append(
            f"{count} file{'s' if count > 1 else ''} of ours "
            f"{'have' if count > 1 else 'has'} no charges table (written before charges "
            "existed): read from the rated table, the calling customer's or supplier's calls "
            "only (none of a reseller's)"
        )
    if payload.get("dispute_pack"):
        lines.append("dispute pack: " + ", ".join(payload["dispute_pack"]))
    return "\n".join(lines)


@guarded
def run_reconcile(args: argparse.Namespace) -> int:
    # Imported here: building the parser must not pay for boto3 or pyarrow.
    from functions.ingest.formats import CdrFileError, parse_cdr_file
    from functions.reconcile.matching import reconcile
    from functions.reconcile.sides import SideError, our_side, their_side
    from functions.store import accounts, lake

    if args.last < args.first:
        raise CliError(f"--to {args.last} is before --from {args.first}")
    tenant = accounts.get_tenant(args.tenant)
    account = accounts.get_account(args.tenant, args.partner)
    role = args.role or ("supplier" if account.kind == "supplier" else "customer")
    switch = accounts.get_switch(args.tenant, args.switch) if args.switch else None
    if args.timezone:
        timezone = timezone_name(args.timezone)
    else:
        timezone = switch.timezone if switch else "UTC"
    try:
        data = args.file.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror or error}") from None
    source = args.file.name
    fmt = args.format or (switch.format if switch else "generic")
    own = switch is not None and switch.format == fmt  # the switch's own layout applies
    options: dict[str, Any] = {}
    # The column mapping given (a partner's spreadsheet), else the switch's own.
    mapping = getattr(switch, "column_mapping", None) if own else None
    if args.mapping is not None or (fmt == "mapped" and mapping is None):
        from functions.cli.rate import mapping_option

        mapping = mapping_option(args.mapping, fmt)
    if mapping is not None:
        options["mapping"] = mapping
    try:
        parsed = parse_cdr_file(
            data,
            fmt,
            timezone=timezone,
            source=source,
            template=switch.template if own else None,
            numbering=switch.numbering if switch else None,
            **options,
        )
        amounts = _their_amounts(data, fmt, source, mapping)
    except (CdrFileError, SideError) as error:
        raise CliError(str(error)) from None

    import datetime as dt

    before, after = args.first - dt.timedelta(days=1), args.last + dt.timedelta(days=1)
    found = lake.day_files(args.tenant, before, after)
    from functions.reconcile.sides import CHARGES_COLUMNS, RATED_COLUMNS

    pairs = lake.read_file_pairs(args.tenant, found, RATED_COLUMNS, CHARGES_COLUMNS)
    parts = ((rated, charges) for _, rated, charges in pairs)
    period = {"date_from": args.first, "date_to": args.last, "margin_seconds": MARGIN_SECONDS}
    ours = our_side(parts, partner=args.partner, role=role, currency=account.currency, **period)
    theirs = their_side(
        parsed.cdrs, amounts=amounts, quarantined=parsed.quarantine.num_rows, **period
    )
    result = reconcile(
        ours.table,
        theirs.table,
        partner=args.partner,
        role=role,
        currency=account.currency,
        date_from=args.first,
        date_to=args.last,
        start_tolerance_seconds=args.start_tolerance,
        duration_tolerance_seconds=args.duration_tolerance,
        amount_tolerance=args.amount_tolerance,
        clip_to_period=True,
    )
    extra: dict[str, Any] = {
        "their_amounts": theirs.has_amounts,
        "our_unanswered": ours.unanswered,
        "their_unanswered": theirs.unanswered,
        "their_quarantined": theirs.quarantined,
        "files_without_charges": ours.without_charges,
    }
    if args.out is not None:
        written = write_pack(result, args, tenant_name=tenant.tenant, partner=account)
        extra["dispute_pack"] = [str(path) for path in written]
    payload = reconciliation_payload(result, extra)
    emit(args, payload, format_reconciliation(payload))
    return 0


def _their_amounts(data: bytes, fmt: str, source: str, mapping: Any = None):
    """Their billed amounts by line (`line`, `amount`): a generic CSV's amount, price or
    cost column; a mapped CSV's column mapped as `amount`; else None (no price)."""
    from functions.ingest.formats.source import decompress, read_csv_rows
    from functions.reconcile.result import MONEY
    from functions.reconcile.sides import csv_amounts

    if mapping is not None and "amount" in getattr(mapping, "columns", {}):
        from functions.ingest.formats.mapped import read_amounts

        amounts = read_amounts(decompress(data, source), mapping, source=source)
        return amounts.set_column(1, "amount", amounts.column("amount").cast(MONEY))
    if fmt != "generic":
        return None

    rows = read_csv_rows(decompress(data, source), source=source, header_line=True)
    return csv_amounts(rows.table.column_names, rows.table, rows.line)


def write_pack(result: Any, args: argparse.Namespace, *, tenant_name: str, partner: Any) -> list:
    """The dispute pack (functions.reconcile.dispute) into args.out."""
    import datetime as dt

    from functions.reconcile.dispute import Party, write_dispute_pack

    return write_dispute_pack(
        result,
        args.out,
        threshold_percent=args.threshold_percent,
        threshold_amount=args.threshold_amount,
        sender=Party(tenant_name),
        recipient=Party(partner.account),
        today=dt.datetime.now(dt.UTC).date(),
    )
