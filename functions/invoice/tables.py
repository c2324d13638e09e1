"""An invoice's CSV documents: its lines, its totals, and the annex of the calls it bills. Pure.

Every file is UTF-8 without a byte-order mark, comma-separated with CRLF line ends (RFC 4180,
Python's csv defaults), one header row. Numbers are written exactly as the invoice holds them,
in plain decimal notation (never 1E-7), so a spreadsheet or a script reads back the amounts to
the cent and the rates to the deck's last digit.

- `lines_csv`: one row per invoice line and nothing else, so that the amount column adds up
  to the subtotal (the rounding line is a line like any other). Subtotal, taxes and totals
  are the separate `summary_csv`: mixing them into the lines would make every sum over the
  amount column count the money twice.
- `cdr_annex_csv` / `cdr_annex_chunks`: the calls behind the lines, one row each, as the lake
  returns them. It reads its rows one at a time and writes as it goes, so a month of calls
  never has to sit in memory as a list; the chunks can feed a multipart upload.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

from functions.invoice.drafts import Invoice

LINE_COLUMNS = (
    "description",
    "destination",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "component",
)
SUMMARY_COLUMNS = ("item", "category", "rate", "taxable", "amount", "currency")
CDR_COLUMNS = (
    "call_id",
    "start_time",
    "caller",
    "callee",
    "destination",
    "billed_seconds",
    "rate",
    "amount",
)
# Calls per chunk of the annex (~0.5 MB at ~100 bytes a call): memory stays flat however many
# calls a month has; an upload joins chunks into parts of the size it needs.
CHUNK_ROWS = 5_000


def _number(value: Decimal) -> str:
    return f"{value:f}"


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def lines_csv(invoice: Invoice) -> bytes:
    """The invoice's lines in print order; the amount column sums to `invoice.subtotal`."""
    return _table(
        LINE_COLUMNS,
        (
            (
                line.description,
                line.destination or "",
                _number(line.quantity),
                line.unit,
                _number(line.unit_price),
                _number(line.amount),
                line.component,
            )
            for line in invoice.lines
        ),
    )


def summary_csv(invoice: Invoice) -> bytes:
    """Subtotal, one row per tax (category, rate in percent, taxable amount, tax), total and
    amount due, each in the invoice's currency."""
    currency = invoice.currency
    rows: list[tuple[str, ...]] = [("subtotal", "", "", "", _number(invoice.subtotal), currency)]
    rows += [
        ("tax", tax.category, _number(tax.rate), _number(tax.taxable), _number(tax.amount),
         currency)
        for tax in invoice.taxes
    ]  # fmt: skip
    rows.append(("total", "", "", "", _number(invoice.total), currency))
    rows.append(("amount_due", "", "", "", _number(invoice.amount_due), currency))
    return _table(SUMMARY_COLUMNS, rows)


def _utc(value: object) -> str:
    """ISO 8601 in UTC with a Z: 2026-03-01T12:00:05Z, or with microseconds when the call
    has them. The lake's timestamps are UTC; a naive one (Athena's result rows) is taken as
    UTC, an aware one is converted."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"start_time must be a datetime or ISO text, not {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"


def _exact(name: str, value: object) -> str:
    """A rate or an amount written exactly: a float has already lost digits, so it is refused
    rather than written as whatever it rounds to."""
    if value is None:
        return ""  # an unrated call (the lake's null amount)
    if isinstance(value, float):
        raise TypeError(f"{name} must be exact (Decimal, int or text), not a float: {value!r}")
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not {value!r}")
    return _number(Decimal(value))


def _cdr_row(row: Mapping) -> tuple[str, ...]:
    missing = [name for name in CDR_COLUMNS if name not in row]
    if missing:
        raise KeyError(f"CDR annex row lacks {', '.join(missing)}")
    return (
        str(row["call_id"]),
        _utc(row["start_time"]),
        row["caller"] or "",
        row["callee"] or "",
        row["destination"] or "",
        str(int(row["billed_seconds"])),
        _exact("rate", row["rate"]),
        _exact("amount", row["amount"]),
    )


def cdr_annex_chunks(rows: Iterable[Mapping], chunk_rows: int = CHUNK_ROWS) -> Iterator[bytes]:
    """The annex as UTF-8 chunks (the header first), each holding up to `chunk_rows` calls,
    produced as `rows` is read. Rows are written in the order given: the caller's query
    orders them (start_time, call_id) so that the same calls give the same bytes."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(CDR_COLUMNS)
    pending = 0
    for row in rows:
        writer.writerow(_cdr_row(row))
        pending += 1
        if pending == chunk_rows:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
            pending = 0
    if pending or out.tell():
        yield out.getvalue().encode("utf-8")


def cdr_annex_csv(rows: Iterable[Mapping]) -> bytes:
    """The whole annex as one file."""
    return b"".join(cdr_annex_chunks(rows))
