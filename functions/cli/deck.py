"""`tollgate deck check|diff`: validate a carrier's A-Z deck, or compare two of them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc

from functions.cli import CliError, currency_code, emit, guarded, json_flag
from functions.rate.deck import InvalidDeckError, RateDeck, load_deck, parse_deck
from functions.rate.deck_diff import DEFAULT_NOTICE_DAYS, DeckDiff, diff_decks
from functions.shared.money import RATE_SCALE, units_to_str


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("deck", help="check, compare or upload A-Z rate decks")
    actions = parser.add_subparsers(dest="deck_action", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="validate a deck and summarise it")
    check.add_argument("deck", help="deck CSV file")
    check.add_argument("--currency", default="USD", help="the deck's currency (default USD)")
    check.add_argument("--skip-invalid", action="store_true", help="drop invalid rows")
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
    diff.add_argument("--json", action="store_true", help="print a JSON object")
    diff.set_defaults(run=run_diff)

    upload = actions.add_parser("upload", help="compile a deck and make it active")
    upload.add_argument("tenant")
    upload.add_argument("account")
    upload.add_argument("deck", help="deck CSV file")
    upload.add_argument("--currency", help="the deck's currency (default: the account's)")
    upload.add_argument("--skip-invalid", action="store_true", help="drop invalid rows")
    json_flag(upload)
    upload.set_defaults(run=run_deck_upload)


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
    print(
        f"{deck.source}: {codes} codes, {table.num_rows} versions, {closed} closed, "
        f"currency {deck.currency}, compiled in {elapsed:.2f} s"
    )
    if deck.skipped:
        print(f"skipped {len(deck.skipped)} invalid rows:")
        for error in deck.skipped:
            print(f"  {error}")
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
        lines.append(
            f"  WARNING {w.category} {w.prefix} {w.destination or '-'}: "
            f"{_rate(w.old_rate_e8)} → {_rate(w.new_rate_e8)} "
            f"effective {_when(w.effective_at)} ({_days(w.notice_days)} days of notice)"
        )
    return "\n".join(lines)


def diff_as_json(old: RateDeck, new: RateDeck, diff: DeckDiff) -> dict:
    """Counts, warnings and every change except `unchanged` rows; rates as exact decimals."""
    changes = diff.changes.filter(pc.not_equal(diff.changes.column("category"), "unchanged"))

    def entry(row: dict) -> dict:
        return {
            "prefix": row["prefix"],
            "destination": row["destination"],
            "category": row["category"],
            "old_rate": _exact(row["old_rate_e8"]),
            "new_rate": _exact(row["new_rate_e8"]),
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


@guarded
def run_deck_upload(args: argparse.Namespace) -> int:
    from functions.rate.deck import InvalidDeckError, parse_deck
    from functions.store import accounts, lake

    account = accounts.get_account(args.tenant, args.account)
    currency = currency_code(args.currency) if args.currency else account.currency
    if currency != account.currency:
        raise CliError(
            f"deck currency {currency} differs from account {account.account}'s currency "
            f"{account.currency}"
        )
    path = Path(args.deck)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.deck}: {error.strerror}") from None
    try:
        deck = parse_deck(data, source=path.name, currency=currency, skip_invalid=args.skip_invalid)
    except InvalidDeckError as error:
        raise CliError(f"invalid deck {error}") from None
    # Order matters: the version number is reserved, the immutable Parquet written, the
    # version recorded, and only then does the account's pointer move.
    version = accounts.reserve_deck_version(args.tenant, args.account)
    table = deck.table.replace_schema_metadata(
        {
            **(deck.table.schema.metadata or {}),
            b"tollgate.currency": deck.currency.encode(),
            b"tollgate.source": path.name.encode(),
        }
    )
    key, sha256 = lake.put_deck(args.tenant, args.account, version, table)
    accounts.put_deck_version(
        args.tenant,
        args.account,
        version,
        key=key,
        currency=deck.currency,
        rows=table.num_rows,
        skipped=len(deck.skipped),
        source=path.name,
        sha256=sha256,
    )
    active = accounts.activate_deck(args.tenant, args.account, version)
    payload = {
        "tenant": account.tenant,
        "account": account.account,
        "version": version,
        "active": active,
        "rows": table.num_rows,
        "skipped": len(deck.skipped),
        "currency": deck.currency,
        "key": key,
    }
    state = "active" if active else "stored (a newer version is already active)"
    lines = [
        f"deck v{version} of {account.tenant}/{account.account} {state}: "
        f"{table.num_rows} rates in {deck.currency}"
    ]
    if deck.skipped:
        lines.append(f"skipped {len(deck.skipped)} invalid rows:")
        lines += [f"  {error}" for error in deck.skipped]
    emit(args, payload, "\n".join(lines))
    return 0
