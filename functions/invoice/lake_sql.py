"""SQL over the lake's Parquet for one tenant: the tables, the named queries, DuckDB locally.

The same SQL text runs on Athena (in a tenant's own Glue database, whose tables of the same
names cover its prefixes only, queried as its own IAM role; see functions/store/athena.py)
and on DuckDB over a local copy of the lake (`LocalLakeSql`).
Tables, as both engines see them:

    cdrs_rated       rated/tenant={t}/date={d}/{file_id}.parquet       one row per CDR
    cdrs_charges     charges/tenant={t}/date={d}/{file_id}.parquet     one row per CDR x party
    cdrs_normalized  normalized/tenant={t}/date={d}/{file_id}.parquet  one row per CDR
    cdrs_quarantine  quarantine/tenant={t}/date={d}/{file_id}.parquet  one row per bad row

plus the partition columns `tenant` and `date` (a 'YYYY-MM-DD' string: the call's UTC day;
for quarantine the day the file arrived). The column lists below are the one description of
those tables: infra/glue.yaml declares exactly them (tests/infra/test_glue.py) and
docs/lake.md documents them.

Tenant scope (local): a `LocalLakeSql` registers only the files under
`{area}/tenant={tenant}/`, as Arrow datasets, and then switches DuckDB's file access and
Python-variable lookup off and locks its configuration. Whatever the SQL text says (another
tenant's `WHERE tenant = ...`, `read_parquet('...')`, `UNION`, `ATTACH`), the engine has no
other rows to read and no way to open a file.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from functions.shared.ids import check_name

QUERY_DIR = Path(__file__).resolve().parents[2] / "infra" / "queries"
_QUERY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DAY_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # the Glue / Athena type; DuckDB gets the same through Arrow
    comment: str  # meaning and unit (Glue column comment, docs/lake.md)


MONEY = "decimal(18,6)"  # amounts: currency units, exact, rounded once (6 places by default)
RATE = "decimal(18,8)"  # per-minute rates: currency units per minute, exact to 10^-8
MOS_COMMENT = (
    "mean opinion score the switch estimated for the call's audio (1.00-5.00, rounded half-up); "
    "null where it wrote none"
)

RATED_COLUMNS: tuple[Column, ...] = (
    Column("file_id", "string", "the CDR file's id (as in tollgate file status)"),
    Column("line", "bigint", "physical line of the CDR in its source file (1-based)"),
    Column("call_id", "string", "the switch's call id"),
    Column("start_time", "timestamp", "call start, UTC (microseconds)"),
    Column("caller", "string", "calling number as the switch sent it"),
    Column("callee", "string", "dialled number after the switch's translation, E.164 digits"),
    Column("dialled", "string", "dialled number exactly as the switch sent it"),
    Column("billsec", "bigint", "answered (talk) seconds; 0 = unanswered"),
    Column("disposition", "string", "ANSWERED, NO_ANSWER, BUSY, FAILED, CONGESTION or CANCEL"),
    Column("status", "string", "rated or unrated: the customer's charge (see cdrs_charges)"),
    Column("reason", "string", "why the customer's charge is unrated (no_rate, ...); else null"),
    Column("customer", "string", "the account that sent the call (null: unknown trunk)"),
    Column("matched_prefix", "string", "the customer deck's prefix that priced the call"),
    Column("destination", "string", "the customer deck's destination name for that prefix"),
    Column("billed_seconds", "bigint", "seconds billed to the customer after its increment"),
    Column("customer_rate", RATE, "customer's rate, currency units per minute"),
    Column("customer_amount", MONEY, "what the customer is charged, in `currency`"),
    Column(
        "customer_surcharge",
        MONEY,
        "the customer's per-minute surcharge on the call (component surcharge), in "
        "`currency`; null when none",
    ),
    Column("currency", "string", "ISO 4217 currency of the customer's deck"),
    Column("supplier", "string", "the account that terminated the call (null: unknown trunk)"),
    Column("supplier_status", "string", "rated or unrated: the supplier's charge"),
    Column("supplier_reason", "string", "why the supplier's charge is unrated; else null"),
    Column("supplier_prefix", "string", "the supplier deck's prefix that priced the call"),
    Column(
        "supplier_destination",
        "string",
        "the supplier deck's destination name for that prefix (route quality is kept per "
        "supplier and this name); null in files rated before it was written",
    ),
    Column("supplier_rate", RATE, "supplier's rate, supplier_currency units per minute"),
    Column("supplier_amount", MONEY, "what the carrier owes the supplier, in supplier_currency"),
    Column("supplier_currency", "string", "ISO 4217 currency of the supplier's deck"),
    Column(
        "margin",
        MONEY,
        "the carrier's margin: what the top of the sell chain pays the carrier (surcharges "
        "included) minus what the carrier owes the supplier; null unless both are rated in "
        "one currency",
    ),
    Column(
        "plan",
        "string",
        "the customer's rate plan: its ingress trunk's, else its calling number's rule, "
        "else default",
    ),
    # Call quality, as in cdrs_normalized: one table answers ASR/ACD/PDD/MOS queries.
    Column("pdd_ms", "bigint", "post-dial delay, milliseconds; null where the switch wrote none"),
    Column("mos", "decimal(3,2)", MOS_COMMENT),
)

CHARGES_COLUMNS: tuple[Column, ...] = (
    Column("file_id", "string", "the CDR file's id (as in tollgate file status)"),
    Column("line", "bigint", "physical line of the CDR in its source file (1-based)"),
    Column("call_id", "string", "the switch's call id"),
    Column("start_time", "timestamp", "call start, UTC (microseconds)"),
    Column("account", "string", "the party charged (or owed: the supplier); null if unknown"),
    Column("role", "string", "customer, reseller or supplier"),
    Column("level", "bigint", "0 = the customer, 1.. each reseller upwards; null: supplier"),
    Column("counterparty", "string", "who this party pays: its parent account, or carrier"),
    Column(
        "component",
        "string",
        "what the charge is for: usage, tier, surcharge, bundle, recurring or did",
    ),
    Column("status", "string", "rated (moves the balance) or unrated"),
    Column("reason", "string", "why unrated: unknown_account, no_deck, no_rate, closed, ..."),
    Column("prefix", "string", "the prefix of this party's deck that priced the call"),
    Column("destination", "string", "that deck's destination name for the prefix"),
    Column("rate", RATE, "this party's rate, currency units per minute"),
    Column("billed_seconds", "bigint", "seconds billed after this party's increment"),
    Column(
        "amount",
        MONEY,
        "what this party is charged (supplier: what the carrier owes it), rounded once by the "
        "account's rule; null when unrated",
    ),
    Column("currency", "string", "ISO 4217 currency of this party's deck"),
    Column(
        "plan",
        "string",
        "the rate plan whose deck priced the charge (a reseller without the customer's plan: "
        "default); null for DID charges",
    ),
)

NORMALIZED_COLUMNS: tuple[Column, ...] = (
    Column("line", "bigint", "physical line of the CDR in its source file (1-based)"),
    Column("call_id", "string", "the switch's call id"),
    Column("caller", "string", "calling number as the switch sent it"),
    Column("callee", "string", "dialled number after the switch's translation, E.164 digits"),
    Column("start_time", "timestamp", "call start, UTC (microseconds)"),
    Column("answer_time", "timestamp", "answer time, UTC; null if unanswered"),
    Column("end_time", "timestamp", "call end, UTC"),
    Column("billsec", "bigint", "answered (talk) seconds; 0 = unanswered"),
    Column("disposition", "string", "ANSWERED, NO_ANSWER, BUSY, FAILED, CONGESTION or CANCEL"),
    Column("customer", "string", "the CDR's own account field (trunk maps apply at rating)"),
    Column("supplier", "string", "the CDR's own supplier field (trunk maps apply at rating)"),
    Column("pdd_ms", "bigint", "post-dial delay, milliseconds"),
    Column("dialled", "string", "dialled number exactly as the switch sent it"),
    Column(
        "ingress_trunk", "string", "trunk or gateway the call came in on, as the switch named it"
    ),
    Column("ingress_ip", "string", "IP address the call came in from"),
    Column("egress_trunk", "string", "trunk or gateway the call went out on"),
    Column("egress_ip", "string", "IP address the call went out to"),
    Column("egress_leg", "string", "the switch's name for this attempt's outgoing leg"),
    Column("mos", "decimal(3,2)", MOS_COMMENT),
)

QUARANTINE_COLUMNS: tuple[Column, ...] = (
    Column("file", "string", "name of the CDR file the row came from"),
    Column("line", "bigint", "physical line in that file (1-based; header is line 1)"),
    Column("reason", "string", "column_count, malformed, missing_field, bad_number, ..."),
    Column("field", "string", "the field at fault; empty when the whole row is"),
    Column("detail", "string", "a human sentence"),
    Column("raw", "string", "the row's raw text"),
)

PARTITION_COLUMNS: tuple[Column, ...] = (
    Column("tenant", "string", "tenant id (partition; injected: every Athena query names it)"),
    Column("date", "string", "YYYY-MM-DD, UTC day of the call (quarantine: day of arrival)"),
)

# table name -> (lake area, columns)
TABLES: dict[str, tuple[str, tuple[Column, ...]]] = {
    "cdrs_rated": ("rated", RATED_COLUMNS),
    "cdrs_charges": ("charges", CHARGES_COLUMNS),
    "cdrs_normalized": ("normalized", NORMALIZED_COLUMNS),
    "cdrs_quarantine": ("quarantine", QUARANTINE_COLUMNS),
}


def arrow_type(glue_type: str) -> pa.DataType:
    if glue_type == "string":
        return pa.string()
    if glue_type == "bigint":
        return pa.int64()
    if glue_type == "timestamp":
        return pa.timestamp("us", tz="UTC")
    found = re.fullmatch(r"decimal\((\d+),(\d+)\)", glue_type)
    if found:
        return pa.decimal128(int(found[1]), int(found[2]))
    raise ValueError(f"no Arrow type for {glue_type!r}")


# The rated table's optional call-quality columns (issue 15), where the switch writes them:
# the quality named queries read them. A lake whose rated columns do not declare them yet has
# them as null columns in DuckDB, so those queries run on any lake; once declared, this adds
# nothing.
RATED_QUALITY_COLUMNS: tuple[Column, ...] = (
    Column("pdd_ms", "bigint", "post-dial delay, milliseconds; null where the switch has none"),
    Column("mos", "decimal(3,2)", "mean opinion score (1-5); null where the switch has none"),
)


def table_schema(table: str) -> pa.Schema:
    """The Arrow schema of a table as queried: its columns, then tenant and date."""
    _, columns = TABLES[table]
    if table == "cdrs_rated":
        declared = {c.name for c in columns}
        columns = (*columns, *(c for c in RATED_QUALITY_COLUMNS if c.name not in declared))
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in (*columns, *PARTITION_COLUMNS)])


def check_tenant(tenant: str) -> str:
    """A tenant id as every store key checks it, or ValueError naming what is wrong."""
    return check_name("tenant", tenant)


def check_day(day: dt.date | str) -> str:
    """'YYYY-MM-DD' of a date or of an ISO date string; ValueError otherwise."""
    if isinstance(day, dt.datetime):
        raise ValueError("a day is a date, not a datetime")
    if isinstance(day, dt.date):
        return day.isoformat()
    try:
        return dt.date.fromisoformat(str(day)).isoformat()
    except ValueError:
        raise ValueError(f"invalid date {day!r}: use YYYY-MM-DD") from None


# --- named queries ---------------------------------------------------------------------


def named_query_names() -> list[str]:
    """The queries shipped in infra/queries/ (file stem = name), sorted."""
    return sorted(path.stem for path in QUERY_DIR.glob("*.sql"))


def named_query(name: str) -> str:
    """The text of infra/queries/{name}.sql: one source for Athena and DuckDB."""
    if not _QUERY_NAME.fullmatch(name) or name not in named_query_names():
        known = ", ".join(named_query_names())
        raise ValueError(f"unknown named query {name!r}: use one of {known}")
    return (QUERY_DIR / f"{name}.sql").read_text()


def _as_subquery(sql: str) -> str:
    body = sql.strip()
    return body[:-1].rstrip() if body.endswith(";") else body


def report_sql(date_from: dt.date | str, date_to: dt.date | str) -> str:
    """The traffic summary per customer x destination for days from..to (inclusive).

    Built on the named query traffic_by_customer_destination_day, so the per-day logic has
    one source; the days are checked ISO dates, so the literals cannot carry SQL.
    """
    first, last = check_day(date_from), check_day(date_to)
    if first > last:
        raise ValueError(f"--from {first} is after --to {last}")
    daily = _as_subquery(named_query("traffic_by_customer_destination_day"))
    return f"""SELECT
    customer,
    destination,
    currency,
    sum(attempts) AS attempts,
    sum(answered) AS answered,
    sum(billed_seconds) AS billed_seconds,
    CAST(CAST(sum(billed_seconds) AS DECIMAL(18, 4)) / 60 AS DECIMAL(18, 4)) AS minutes,
    CAST(sum(answered) AS DOUBLE) / sum(attempts) AS asr,
    CAST(sum(answered_seconds) AS DOUBLE) / nullif(sum(answered), 0) / 60 AS acd_minutes,
    min(min_rate) AS min_rate,
    max(max_rate) AS max_rate,
    sum(revenue) AS revenue,
    sum(cost) AS cost,
    sum(margin) AS margin
FROM (
{daily}
) daily
WHERE day BETWEEN '{first}' AND '{last}'
GROUP BY customer, destination, currency
ORDER BY customer, destination, currency
"""


class LakeSql(Protocol):
    """What the CLI needs of an engine: rows as dicts, in column order."""

    tenant: str

    def query(self, sql: str) -> list[dict[str, Any]]: ...


# --- DuckDB over a local copy of the lake ---------------------------------------------


class LocalLakeSql:
    """DuckDB over one tenant's Parquet in a local folder with the lake's hive layout.

    `lake_dir` holds `{normalized,quarantine,rated,charges}/tenant={t}/date={d}/*.parquet` (what
    functions.store.lake.copy_area writes). Only `tenant`'s files are registered, whatever
    else the folder holds; see the module doc for why SQL text cannot reach further.
    """

    def __init__(self, tenant: str, lake_dir: Path | str) -> None:
        import duckdb
        import pyarrow.dataset as ds

        self.tenant = check_tenant(tenant)
        self.lake_dir = Path(lake_dir)
        self.files: dict[str, list[Path]] = {}
        self.db = duckdb.connect(":memory:")
        partitioning = ds.partitioning(
            pa.schema([pa.field(c.name, pa.string()) for c in PARTITION_COLUMNS]), flavor="hive"
        )
        for table, (area, _) in TABLES.items():
            files = self._tenant_files(area)
            self.files[table] = files
            schema = table_schema(table)
            if files:
                data = ds.dataset(
                    [str(f) for f in files],
                    schema=schema,
                    format="parquet",
                    partitioning=partitioning,
                    partition_base_dir=str(self.lake_dir / area),
                )
            else:
                data = schema.empty_table()
            self.db.register(table, data)
        # Athena's (Trino's) approximate percentile under its own name, so SQL using it (the
        # quality queries' PDD median) runs unchanged here.
        self.db.execute("CREATE MACRO approx_percentile(x, p) AS approx_quantile(x, p)")
        # From here on SQL can read only what is registered above.
        # Athena's timestamps are UTC: a TIMESTAMP literal means the same instant here.
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute("SET python_enable_replacements = false")
        self.db.execute("SET enable_external_access = false")
        self.db.execute("SET lock_configuration = true")

    def _tenant_files(self, area: str) -> list[Path]:
        base = self.lake_dir / area / f"tenant={self.tenant}"
        if not base.is_dir():
            return []
        return sorted(
            path
            for day in base.iterdir()
            if day.is_dir() and _DAY_DIR.fullmatch(day.name)
            for path in day.glob("*.parquet")
            if path.is_file()
        )

    def describe(self, sql: str) -> list[tuple[str, str]]:
        """(column, DuckDB type) of a query's result, e.g. ('revenue', 'DECIMAL(38,6)')."""
        cursor = self.db.execute(sql)
        return [(d[0], str(d[1])) for d in cursor.description]

    def query(self, sql: str) -> list[dict[str, Any]]:
        cursor = self.db.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def named(self, name: str) -> list[dict[str, Any]]:
        return self.query(named_query(name))

    def report(self, date_from: dt.date | str, date_to: dt.date | str) -> list[dict[str, Any]]:
        return self.query(report_sql(date_from, date_to))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> LocalLakeSql:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
