"""`tollgate query` and `tollgate report`: SQL over one tenant's lake tables.

The engine: Athena on AWS (functions.store.athena), as the tenant's query role (assumed with
STS for each query: it reads only the tenant's lake prefixes), with the tenant's database of
tables and its workgroup (`tollgate access provision TENANT` makes them); DuckDB over a local
copy of the tenant's Parquet on the local stack (`AWS_ENDPOINT_URL` set), with `--engine
duckdb`, or with `--lake-dir`. The same SQL text runs on both. Either way the tenant is the
engine's scope, never a clause of the SQL: locally only that tenant's partitions are copied
and registered; on AWS, IAM refuses the role anything of another tenant's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from functions.cli import CliError, OperationError, cli_error, guarded_by, quality
from functions.invoice.report import (
    FORMATS,
    REPORT_JSON_KEYS,
    format_report,
    format_rows,
    text,
)

ENGINES = ("auto", "duckdb", "athena")
REPORT_VIEWS = ("traffic", "quality")


def register(subparsers: argparse._SubParsersAction) -> None:
    query = subparsers.add_parser(
        "query",
        help="run SQL over one tenant's lake tables (cdrs_rated, cdrs_normalized, cdrs_quarantine)",
    )
    query.add_argument("--tenant", required=True, help="the tenant whose rows the SQL sees")
    query.add_argument("sql", nargs="?", help="the SQL text (or --named NAME)")
    query.add_argument("--named", metavar="NAME", help="run a named query of infra/queries/")
    _format_arguments(query)
    _engine_arguments(query)
    query.set_defaults(run=run_query)

    report = subparsers.add_parser(
        "report",
        help="traffic per customer x destination over days FROM..TO (inclusive); "
        "`report quality TENANT`: ASR, ACD, NER, PDD, MOS per supplier x destination",
    )
    report.add_argument(
        "view",
        nargs="?",
        choices=REPORT_VIEWS,
        default="traffic",
        help="traffic (the default: per customer x destination) or quality (ASR, ACD, NER, "
        "PDD, MOS per supplier x destination); right after `report`",
    )
    report.add_argument("tenant")
    report.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD")
    _format_arguments(report)
    _engine_arguments(report)
    quality.add_arguments(report)
    report.set_defaults(run=run_report)


def _format_arguments(parser: argparse.ArgumentParser) -> None:
    given = parser.add_mutually_exclusive_group()
    given.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="json: one JSON list of row objects, decimals as strings (default table)",
    )
    given.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="the same as --format json",
    )


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto: DuckDB on the local stack (AWS_ENDPOINT_URL set) or with --lake-dir, "
        "Athena otherwise",
    )
    parser.add_argument(
        "--lake-dir",
        type=Path,
        help="a local copy of the lake (hive layout) to query with DuckDB instead of S3",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("TOLLGATE_ATHENA_DATABASE", "tollgate"),
        help="Athena: the Glue database of infra/glue.yaml (tenant tables: DATABASE_t_TENANT)",
    )
    parser.add_argument(
        "--workgroup-prefix",
        default=os.environ.get("TOLLGATE_ATHENA_WORKGROUP", "tollgate"),
        help="Athena: tenant workgroups are PREFIX-t-TENANT",
    )


def engine_name(args: argparse.Namespace) -> str:
    if args.engine == "athena":
        if args.lake_dir is not None:
            raise CliError("--lake-dir is a local copy for DuckDB; it cannot go with Athena")
        return "athena"
    if args.engine == "duckdb" or args.lake_dir is not None or os.environ.get("AWS_ENDPOINT_URL"):
        return "duckdb"
    return "athena"


def _areas(sql: str) -> list[str]:
    """The lake areas a SQL text names (only those are copied; the rest stay empty)."""
    from functions.invoice.lake_sql import TABLES

    lowered = sql.lower()
    return [area for table, (area, _) in TABLES.items() if table in lowered]


@contextlib.contextmanager
def open_engine(args: argparse.Namespace, tenant: str, sql: str) -> Iterator:
    """A LakeSql for the tenant: LocalLakeSql (DuckDB) or AthenaSql."""
    if engine_name(args) == "athena":
        from functions.store.athena import AthenaSql

        yield AthenaSql(tenant, args.database, args.workgroup_prefix)
        return
    from functions.invoice.lake_sql import LocalLakeSql, check_tenant

    check_tenant(tenant)
    if args.lake_dir is not None:
        if not args.lake_dir.is_dir():
            raise CliError(f"no such folder: {args.lake_dir}")
        with LocalLakeSql(tenant, args.lake_dir) as engine:
            yield engine
        return
    from functions.store import lake

    with tempfile.TemporaryDirectory(prefix="tollgate-lake-") as folder:
        for area in _areas(sql):
            lake.copy_area(area, tenant, Path(folder))
        with LocalLakeSql(tenant, folder) as engine:
            yield engine


def _query_error(error: Exception) -> CliError | None:
    """An engine's refusal of the SQL text is bad input (exit 2); its other failures and
    the store's are errors (exit 1, see functions.cli.cli_error)."""
    import duckdb

    from functions.store.athena import QueryFailed

    if isinstance(error, duckdb.ParserException | duckdb.BinderException | duckdb.CatalogException):
        return CliError(f"query failed: {str(error).splitlines()[0]}")
    if isinstance(error, duckdb.Error):
        return OperationError(f"query failed: {str(error).splitlines()[0]}")
    if isinstance(error, QueryFailed):
        return CliError(f"query failed on Athena: {error}")
    return cli_error(error)


_guarded = guarded_by(_query_error)  # engine, store and input errors: one clear line


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value else None  # NaN (from pandas) is a missing value
    return text(value)  # decimals exact, as strings; dates ISO


def rows_document(rows: Sequence[dict[str, Any]], keys: Sequence[str] | None = None) -> str:
    """One JSON list of row objects: what `--format json` prints."""
    return json.dumps([{k: _json_value(row.get(k)) for k in (keys or list(row))} for row in rows])


def _print(text: str) -> None:
    if text:
        print(text)


@_guarded
def run_query(args: argparse.Namespace) -> int:
    from functions.invoice.lake_sql import named_query

    if (args.sql is None) == (args.named is None):
        raise CliError("give the SQL text or --named NAME (one of them)")
    sql = named_query(args.named) if args.named else args.sql
    if not sql.strip():
        raise CliError("the SQL text is empty")
    with open_engine(args, args.tenant, sql) as engine:
        rows = engine.query(sql)
    _print(rows_document(rows) if args.format == "json" else format_rows(rows, args.format))
    return 0


@_guarded
def run_report(args: argparse.Namespace) -> int:
    from functions.invoice.lake_sql import check_day, report_sql

    if args.view == "quality":
        sql, keys = quality.view_sql(args)
        with open_engine(args, args.tenant, sql) as engine:
            rows = engine.query(sql)
        _print(quality.print_quality(args, rows, keys))
        return 0
    quality.refuse_quality_options(args)
    first, last = check_day(args.date_from), check_day(args.date_to)
    sql = report_sql(first, last)
    with open_engine(args, args.tenant, sql) as engine:
        rows = engine.query(sql)
    if args.format == "json":
        _print(rows_document(rows, REPORT_JSON_KEYS))
    else:
        _print(format_report(rows, args.format, first, last))
    return 0
