"""`tollgate report quality`: ASR, ACD, NER, PDD and MOS per supplier x destination x day or
hour, and `--drops`, the periods far below their own baseline. `report`'s view argument
(functions/cli/finance.py) sends `quality` here; the SQL is functions.invoice.quality's, on
the same engines as `query` and `report` (Athena, or DuckDB on the local stack or a
`--lake-dir`).
"""

from __future__ import annotations

import argparse

from functions.cli import CliError

# Options of the quality view only (the traffic view refuses them): dest -> flag.
QUALITY_OPTIONS = {"by": "--by", "supplier": "--supplier", "destination": "--destination"}
# --drops thresholds: DropThresholds field -> flag.
THRESHOLD_OPTIONS = {
    "min_attempts": "--min-attempts",
    "min_answered": "--min-answered",
    "min_baseline": "--min-baseline",
    "baseline_days": "--baseline-days",
    "z_limit": "--z-limit",
    "asr_drop_limit": "--asr-drop",
    "acd_drop_limit": "--acd-drop",
    "mos_drop_limit": "--mos-drop",
}
_HELP = {
    "min_attempts": "ASR counts in a period (and a baseline period) from N attempts (20)",
    "min_answered": "ACD and MOS count from N answered calls / calls with a MOS (10)",
    "min_baseline": "baseline periods needed, each with enough calls (3)",
    "baseline_days": "the days before a period that make its baseline (7; an hour: the same "
    "UTC hour of those days)",
    "z_limit": "flag at z <= -Z against the baseline (3)",
    "asr_drop_limit": "or at a relative ASR drop of at least this fraction (0.5)",
    "acd_drop_limit": "or at a relative ACD drop of at least this fraction (0.5)",
    "mos_drop_limit": "or at a relative MOS drop of at least this fraction (0.2)",
}


def add_arguments(report: argparse.ArgumentParser) -> None:
    """The quality view's options on `tollgate report`."""
    group = report.add_argument_group("quality view (tollgate report quality TENANT ...)")
    group.add_argument(
        "--by",
        choices=("day", "hour"),
        help="one row per supplier x destination x day (default) or x UTC hour",
    )
    group.add_argument("--supplier", help="only this supplier's calls (its account id)")
    group.add_argument(
        "--destination", help="only this destination (the customer deck's name, exactly)"
    )
    group.add_argument(
        "--drops",
        action="store_true",
        help="only the periods whose ASR, ACD or MOS falls far below its own baseline "
        "(named query quality_drops)",
    )
    for name, flag in THRESHOLD_OPTIONS.items():
        whole = name.startswith(("min_", "baseline_"))
        metavar = "N" if whole else "Z" if name == "z_limit" else "F"
        group.add_argument(
            flag, dest=name, type=int if whole else float, metavar=metavar, help=_HELP[name]
        )


def refuse_quality_options(args: argparse.Namespace) -> None:
    """The traffic view takes none of the quality view's options."""
    given = [flag for dest, flag in QUALITY_OPTIONS.items() if getattr(args, dest) is not None]
    given += ["--drops"] if args.drops else []
    given += [f for d, f in THRESHOLD_OPTIONS.items() if getattr(args, d) is not None]
    if given:
        raise CliError(f"{', '.join(given)}: options of `tollgate report quality` only")


def view_sql(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """The SQL of the view the arguments ask for, and the columns it prints."""
    from functions.invoice.lake_sql import check_day
    from functions.invoice.quality import (
        DROPS_KEYS,
        QUALITY_KEYS,
        DropThresholds,
        drops_sql,
        quality_sql,
    )

    first, last = check_day(args.date_from), check_day(args.date_to)
    grain = args.by or "day"
    given = {name: getattr(args, name) for name in THRESHOLD_OPTIONS}
    given = {name: value for name, value in given.items() if value is not None}
    names = {"supplier": args.supplier, "destination": args.destination}
    if not args.drops:
        if given:
            flags = ", ".join(THRESHOLD_OPTIONS[name] for name in given)
            raise CliError(f"{flags}: thresholds of --drops")
        return quality_sql(first, last, grain, **names), QUALITY_KEYS[grain]
    try:
        thresholds = DropThresholds(**given)
    except ValueError as error:
        name = str(error).split(":", 1)[0]
        raise CliError(f"{THRESHOLD_OPTIONS[name]}{str(error)[len(name) :]}") from None
    return drops_sql(first, last, grain, thresholds=thresholds, **names), DROPS_KEYS


def print_quality(args: argparse.Namespace, rows: list[dict], keys: tuple[str, ...]) -> str:
    """The rows as the format asks: json (one list of objects), csv or an aligned table."""
    from functions.cli.finance import rows_document
    from functions.invoice.quality import DROPS_TABLE_KEYS, format_quality

    if args.format == "json":
        return rows_document(rows, keys)
    shown = DROPS_TABLE_KEYS if args.drops and args.format == "table" else keys
    return format_quality(rows, args.format, shown)
