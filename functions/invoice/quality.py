"""Call quality from the lake: ASR, ACD, NER, PDD and MOS per supplier x destination x hour or
day, and the periods that fall far below their own baseline. Pure: SQL text and rows.

The SQL is the named queries' (infra/queries/quality_by_supplier_destination_{day,hour}.sql
and quality_drops.sql), run unchanged on Athena and on DuckDB: `quality_sql` and `drops_sql`
only wrap them in a filter on checked days and quoted names, and `drops_sql` sets the drop
query's thresholds (its `params` row) and the days it reads (its one `WHERE "date" BETWEEN`
line) by replacing those lines with checked numbers and days.

Which dispositions count for NER (ITU-T E.411: answered + user busy + ring-no-answer +
terminal rejects, over seizures): answered calls (billsec > 0, or ANSWERED), BUSY, NO_ANSWER
and CANCEL (the caller hanging up first: user behaviour, not the network's failure). FAILED
and CONGESTION count against it: our formats map network failures, routing errors and the
terminal rejects a switch does not tell apart from them (FreeSWITCH CALL_REJECTED, an
Asterisk FAILED) to those two, so NER may read slightly low where a supplier's callees reject
calls. ASR, NER and the means are statistics (DOUBLE), never money.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Context, Decimal
from typing import Any

from functions.invoice.lake_sql import check_day, named_query
from functions.invoice.report import rows_csv, rows_table
from functions.shared.cdr import DISPOSITIONS

GRAINS = ("day", "hour")
# Dispositions (functions.shared.cdr.DISPOSITIONS) that count as the network's success for
# NER, besides any answered call: the SQL's `disposition IN (...)` lists exactly these.
NER_SUCCESS = ("ANSWERED", "BUSY", "NO_ANSWER", "CANCEL")
NER_FAILURE = tuple(d for d in DISPOSITIONS if d not in NER_SUCCESS)  # FAILED, CONGESTION

QUALITY_QUERY = {
    "day": "quality_by_supplier_destination_day",
    "hour": "quality_by_supplier_destination_hour",
}
DROPS_QUERY = "quality_drops"

# Columns of `tollgate report quality` (every format), per grain; drops: DROPS_KEYS.
_METRICS = (
    "supplier",
    "destination",
    "attempts",
    "answered",
    "asr",
    "acd_minutes",
    "ner",
    "pdd_calls",
    "pdd_ms_avg",
    "pdd_ms_p50",
    "mos_calls",
    "mos_avg",
)
QUALITY_KEYS = {"day": ("day", *_METRICS), "hour": ("day", "utc_hour", *_METRICS)}
DROPS_KEYS = (
    "grain",
    "day",
    "utc_hour",
    "supplier",
    "destination",
    "drops",
    "attempts",
    "answered",
    "asr",
    "asr_baseline",
    "asr_sd",
    "asr_periods",
    "asr_z",
    "asr_drop",
    "acd_minutes",
    "acd_baseline",
    "acd_sd",
    "acd_periods",
    "acd_z",
    "acd_drop",
    "mos_calls",
    "mos_avg",
    "mos_baseline",
    "mos_sd",
    "mos_periods",
    "mos_z",
    "mos_drop",
)
# What the table format shows of a drop (csv and json carry every DROPS_KEYS column).
DROPS_TABLE_KEYS = (
    "day",
    "utc_hour",
    "supplier",
    "destination",
    "drops",
    "attempts",
    "asr",
    "asr_baseline",
    "asr_z",
    "acd_minutes",
    "acd_baseline",
    "acd_z",
    "mos_avg",
    "mos_baseline",
    "mos_z",
)
_WIDE = Context(prec=400)  # any double's digits, rounded for the table without an error
# Decimal places of the table format (csv and json keep every digit of the engine's double).
_PLACES = {"pdd_ms_avg": 0, "pdd_ms_p50": 0, "mos_avg": 2, "mos_baseline": 2, "mos_sd": 2}


@dataclass(frozen=True, slots=True)
class DropThresholds:
    """The drop query's `params` row: see infra/queries/quality_drops.sql."""

    min_attempts: int = 20  # a period's ASR counts from this many attempts (baseline too)
    min_answered: int = 10  # its ACD (answered calls) and MOS (calls with a MOS) from this many
    min_baseline: int = 3  # baseline periods needed (each with enough calls itself)
    baseline_days: int = 7  # the days before the period that make its baseline
    z_limit: float = 3.0  # flag at z <= -z_limit
    asr_drop_limit: float = 0.5  # or at a relative drop of at least this much
    acd_drop_limit: float = 0.5
    mos_drop_limit: float = 0.2

    def __post_init__(self) -> None:
        for name in ("min_attempts", "min_answered", "min_baseline"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= 1_000_000:
                raise ValueError(f"{name}: a whole number from 1 to 1000000, not {value!r}")
        if type(self.baseline_days) is not int or not 1 <= self.baseline_days <= 90:
            raise ValueError(
                f"baseline_days: a whole number from 1 to 90, not {self.baseline_days!r}"
            )
        if not isinstance(self.z_limit, int | float) or not 0 < self.z_limit <= 100:
            raise ValueError(f"z_limit: a number above 0 and at most 100, not {self.z_limit!r}")
        for name in ("asr_drop_limit", "acd_drop_limit", "mos_drop_limit"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value <= 1:
                raise ValueError(f"{name}: a fraction above 0 and at most 1, not {value!r}")

    def literals(self) -> dict[str, str]:
        """Each threshold as the SQL literal of the params row (doubles in E notation)."""
        return {
            name: str(value) if type(value) is int else f"{float(value)!r}E0"
            for name, value in asdict(self).items()
        }


def _quoted(value: str) -> str:
    """A SQL string literal (both engines: '' escapes a quote, a backslash is plain)."""
    if "\x00" in value:
        raise ValueError("a name cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"


def _days(date_from: dt.date | str, date_to: dt.date | str) -> tuple[str, str]:
    first, last = check_day(date_from), check_day(date_to)
    if first > last:
        raise ValueError(f"--from {first} is after --to {last}")
    return first, last


def _filters(first: str, last: str, supplier: str | None, destination: str | None) -> list[str]:
    where = [f"day BETWEEN '{first}' AND '{last}'"]
    if supplier is not None:
        where.append(f"supplier = {_quoted(supplier)}")
    if destination is not None:
        where.append(f"destination = {_quoted(destination)}")
    return where


def _body(sql: str) -> str:
    body = sql.strip()
    return body[:-1].rstrip() if body.endswith(";") else body


def quality_sql(
    date_from: dt.date | str,
    date_to: dt.date | str,
    grain: str = "day",
    *,
    supplier: str | None = None,
    destination: str | None = None,
) -> str:
    """The named query of the grain, its rows for days from..to (inclusive), optionally one
    supplier's and one destination's (exact names)."""
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)}")
    first, last = _days(date_from, date_to)
    where = " AND ".join(_filters(first, last, supplier, destination))
    order = (
        "day, utc_hour, supplier, destination" if grain == "hour" else "day, supplier, destination"
    )
    return (
        f"SELECT *\nFROM (\n{_body(named_query(QUALITY_QUERY[grain]))}\n) quality\n"
        f"WHERE {where}\nORDER BY {order}\n"
    )


_WINDOW = """WHERE "date" BETWEEN '0001-01-01' AND '9999-12-31'"""


def _replace_once(sql: str, pattern: str, replacement: str, what: str) -> str:
    found = re.findall(pattern, sql, flags=re.MULTILINE)
    if len(found) != 1:
        raise ValueError(f"{DROPS_QUERY}.sql: expected one {what} line, found {len(found)}")
    return re.sub(pattern, lambda m: m.group(1) + replacement, sql, flags=re.MULTILINE)


def drops_sql(
    date_from: dt.date | str,
    date_to: dt.date | str,
    grain: str = "day",
    *,
    supplier: str | None = None,
    destination: str | None = None,
    thresholds: DropThresholds | None = None,
) -> str:
    """quality_drops with `thresholds`, reading the days from `baseline_days` before
    `date_from` to `date_to`, its flagged periods of `grain` in from..to."""
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)}")
    first, last = _days(date_from, date_to)
    limits = thresholds or DropThresholds()
    sql = _body(named_query(DROPS_QUERY))
    for name, literal in limits.literals().items():
        sql = _replace_once(sql, rf"^(\s+)\S+(?= AS {name},?$)", literal, f"{name} threshold")
    start, back = dt.date.fromisoformat(first), dt.timedelta(days=limits.baseline_days)
    earliest = (start - back if start - dt.date.min > back else dt.date.min).isoformat()
    window = f"""WHERE "date" BETWEEN '{earliest}' AND '{last}'"""
    sql = _replace_once(sql, rf"^(\s+){re.escape(_WINDOW)}$", window, "day window")
    where = " AND ".join([f"grain = '{grain}'", *_filters(first, last, supplier, destination)])
    return (
        f"SELECT *\nFROM (\n{sql}\n) drops\nWHERE {where}\n"
        "ORDER BY day, utc_hour, supplier, destination\n"
    )


# --- output ----------------------------------------------------------------------------


def _rounded(row: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """A row for the table format: ratios and means rounded for reading."""
    out: dict[str, Any] = {}
    for key in keys:
        value = row.get(key)
        if isinstance(value, float) and math.isfinite(value):
            places = _PLACES.get(key, 2 if key.endswith("_z") or key.startswith("acd") else 4)
            value = Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), context=_WIDE)
        out[key] = value
    return out


def format_quality(rows: Sequence[Mapping[str, Any]], fmt: str, keys: Sequence[str]) -> str:
    """table (ratios rounded for reading) or csv (every digit) of the rows' `keys`."""
    if fmt == "csv":
        return rows_csv([dict(r) for r in rows], keys)
    if fmt == "table":
        if not rows:
            return "(no rows)"
        return rows_table([_rounded(r, keys) for r in rows], keys)
    raise ValueError(f"unknown format {fmt!r}: use table or csv (json: rows_document)")
