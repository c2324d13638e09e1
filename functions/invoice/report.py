"""Shaping query rows for people and scripts: tables, CSV, JSON lines. Pure, no I/O.

Money and minutes come from the SQL engines as `Decimal` and leave as decimal strings,
never through float. Ratios (ASR, ACD) are floats: they are statistics, not money.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

FORMATS = ("table", "csv", "json")
# `tollgate report --format json`: one object per customer x destination with these keys.
REPORT_JSON_KEYS = ("customer", "destination", "minutes", "revenue", "cost", "margin")


def text(value: Any) -> str | None:
    """A value as a string for CSV/JSON/tables: decimals exact (no exponent), None kept."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value else None  # NaN (from pandas) is a missing value
    return text(value)


def rows_json(rows: Iterable[dict[str, Any]], keys: Sequence[str] | None = None) -> str:
    """JSON lines: one object per row; decimals as strings."""
    lines = [json.dumps({k: _jsonable(row.get(k)) for k in (keys or list(row))}) for row in rows]
    return "\n".join(lines)


def rows_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else []))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if (v := text(row.get(c))) is None else v for c in columns])
    return out.getvalue().rstrip("\n")


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Aligned columns; numbers right-aligned."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if not columns:
        return "(no rows)"
    cells = [["" if (v := text(row.get(c))) is None else v for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row.get(c), int | float | Decimal) or row.get(c) is None for row in rows)
        for c in columns
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    body = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    body.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(body)


def format_rows(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """`tollgate query` output."""
    if fmt == "json":
        return rows_json(rows)
    if fmt == "csv":
        return rows_csv(rows)
    if fmt == "table":
        return rows_table(rows)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


# --- the traffic report ----------------------------------------------------------------


def rate_text(low: Decimal | None, high: Decimal | None) -> str:
    """The per-minute rate as an invoice shows it: one rate, or the range charged."""

    def short(rate: Decimal) -> str:
        # At least 4 places, no trailing zeros beyond them (0.01000000 -> 0.0100).
        places = max(4, -rate.normalize().as_tuple().exponent)
        return format(rate.quantize(Decimal(1).scaleb(-places)), "f")

    if low is None or high is None:
        return ""
    return short(low) if low == high else f"{short(low)}-{short(high)}"


def report_table(rows: Sequence[dict[str, Any]], date_from: str, date_to: str) -> str:
    """The invoice-shaped table: customer, destination, calls, minutes, rate, total.

    A subtotal line per customer and currency; totals are exact decimal sums.
    """
    head = (
        f"{'customer':<16}{'destination':<36}{'calls':>8}{'minutes':>14}"
        f"{'rate/min':>22}{'total':>18} currency"
    )
    out = [f"traffic {date_from} to {date_to}", head, "-" * len(head)]

    def subtotal(customer: str, currency: str, minutes: Decimal, total: Decimal) -> str:
        label = f"{customer} total"
        return f"{label:<52}{'':>8}{text(minutes):>14}{'':>22}{text(total):>18} {currency}"

    current: tuple[str, str] | None = None
    minutes_sum, total_sum = Decimal(0), Decimal(0)
    for row in rows:
        key = (row["customer"] or "", row["currency"] or "")
        if current is not None and key != current:
            out.append(subtotal(*current, minutes_sum, total_sum))
            minutes_sum, total_sum = Decimal(0), Decimal(0)
        current = key
        minutes = row["minutes"] or Decimal(0)
        total = row["revenue"] if row["revenue"] is not None else Decimal(0)
        minutes_sum += minutes
        total_sum += total
        out.append(
            f"{(row['customer'] or '')[:15]:<16}{(row['destination'] or '')[:35]:<36}"
            f"{row['answered']:>8,}{text(minutes):>14}"
            f"{rate_text(row['min_rate'], row['max_rate']):>22}{text(total):>18} "
            f"{row['currency'] or ''}"
        )
    if current is not None:
        out.append(subtotal(*current, minutes_sum, total_sum))
    else:
        out.append("(no rated traffic in these days)")
    return "\n".join(out)


def format_report(rows: Sequence[dict[str, Any]], fmt: str, date_from: str, date_to: str) -> str:
    """`tollgate report` output: table (invoice shape), csv (every column) or json lines."""
    if fmt == "json":
        return rows_json(rows, REPORT_JSON_KEYS)
    if fmt == "csv":
        return rows_csv(rows)
    if fmt == "table":
        return report_table(rows, date_from, date_to)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
