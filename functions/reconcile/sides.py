"""The two sides of a reconciliation as PARTY_SCHEMA tables (pure: pyarrow only).

Only answered calls (billsec > 0) are reconciled, on either side: the classes are about
billed calls, as Smartswitch's "answered only" compare. A side's unanswered calls are
counted apart (`Side.unanswered`), never matched.

- ours: our rated calls for the partner (`our_side`): as a customer, the calls it sent
  (customer == partner) at what we charge it (customer_amount, plus customer_surcharge when
  there is one); as a supplier, the calls it terminated (supplier == partner) at what we owe
  it (supplier_amount). An unrated charge, or one in another currency than the partner's, has
  no amount.
- theirs: their CDR file parsed by its registered format (`their_side`), callees normalised
  as ingest normalises them, plus their billed amount where the file has one: a `generic`
  CSV's `amount` (or `price`, or `cost`) column, exact decimals (an empty cell: no amount).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

from functions.reconcile.result import MONEY, PARTY_SCHEMA, UTC_MICROS

# The lake's rated columns an our-side reader needs.
RATED_COLUMNS = (
    "line",
    "call_id",
    "callee",
    "start_time",
    "billsec",
    "customer",
    "customer_amount",
    "customer_surcharge",
    "currency",
    "supplier",
    "supplier_amount",
    "supplier_currency",
)
AMOUNT_COLUMNS = ("amount", "price", "cost")  # a generic CSV's billed amount, first found
ROLES = ("customer", "supplier")
_WIDE = pa.decimal128(38, 12)


class SideError(ValueError):
    """Their file cannot be read as asked: a message naming the line and field at fault."""


@dataclass(frozen=True, slots=True)
class Side:
    table: pa.Table  # PARTY_SCHEMA, answered calls only
    unanswered: int  # calls with billsec 0, left out
    quarantined: int = 0  # their rows the format's parser refused
    has_amounts: bool = True  # whether the side bills amounts at all


def our_side(
    parts: Iterable[pa.Table],
    *,
    partner: str,
    role: str,
    currency: str,
    date_from: dt.date,
    date_to: dt.date,
    margin_seconds: int = 0,
) -> Side:
    """Our rated calls (lake `rated` parts, RATED_COLUMNS) for the partner in the days
    date_from..date_to (UTC, inclusive; `margin_seconds` more each side)."""
    if role not in ROLES:
        raise ValueError(f"role must be customer or supplier, not {role!r}")
    low, high = _bounds(date_from, date_to, margin_seconds)
    pieces, unanswered = [], 0
    for part in parts:
        party = _text(part, role)
        keep = pc.fill_null(pc.equal(party, partner), False)
        start = part.column("start_time").cast(UTC_MICROS)
        keep = pc.and_(keep, pc.and_(pc.greater_equal(start, low), pc.less(start, high)))
        mine = part.filter(keep)
        if not mine.num_rows:
            continue
        answered = pc.greater(mine.column("billsec"), 0)
        unanswered += mine.num_rows - pc.sum(answered.cast(pa.int64())).as_py()
        mine = mine.filter(answered)
        pieces.append(_party_rows(mine, role, currency))
    table = pa.concat_tables(pieces) if pieces else PARTY_SCHEMA.empty_table()
    return Side(table, unanswered)


def _text(part: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in part.column_names:
        return pa.chunked_array([pa.nulls(part.num_rows, pa.string())])
    column = part.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(pa.string())


def _money(part: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in part.column_names:
        return pa.chunked_array([pa.nulls(part.num_rows, MONEY)])
    return part.column(name).cast(MONEY)


def _party_rows(rows: pa.Table, role: str, currency: str) -> pa.Table:
    if role == "customer":
        amount = _money(rows, "customer_amount")
        surcharge = pc.fill_null(_money(rows, "customer_surcharge"), pa.scalar(0, MONEY))
        amount = pc.add_checked(amount, surcharge).cast(MONEY)
        in_currency = _text(rows, "currency")
    else:
        amount = _money(rows, "supplier_amount")
        in_currency = _text(rows, "supplier_currency")
    same = pc.fill_null(pc.equal(in_currency, currency), False)
    amount = pc.if_else(same, amount, pa.scalar(None, MONEY))
    return pa.table(
        {
            "line": rows.column("line").cast(pa.int64()),
            "call_id": _text(rows, "call_id"),
            "callee": _text(rows, "callee"),
            "start_time": rows.column("start_time").cast(UTC_MICROS),
            "billsec": rows.column("billsec").cast(pa.int64()),
            "amount": amount,
        },
        schema=PARTY_SCHEMA,
    )


def their_side(
    cdrs: pa.Table,
    *,
    amounts: pa.Table | None = None,
    quarantined: int = 0,
    date_from: dt.date,
    date_to: dt.date,
    margin_seconds: int = 0,
) -> Side:
    """Their accepted CDRs (CDR_SCHEMA, as a format's parser returns them) in the days
    date_from..date_to (UTC, inclusive, `margin_seconds` more each side: the clock offset is
    not known yet), with `amounts` (`line`, `amount` MONEY) joined on the line."""
    low, high = _bounds(date_from, date_to, margin_seconds)
    start = cdrs.column("start_time").cast(UTC_MICROS)
    cdrs = cdrs.filter(pc.and_(pc.greater_equal(start, low), pc.less(start, high)))
    answered = pc.greater(cdrs.column("billsec"), 0)
    unanswered = cdrs.num_rows - pc.sum(answered.cast(pa.int64())).as_py() if cdrs.num_rows else 0
    cdrs = cdrs.filter(answered)
    table = pa.table(
        {
            "line": cdrs.column("line"),
            "call_id": cdrs.column("call_id"),
            "callee": cdrs.column("callee"),
            "start_time": cdrs.column("start_time").cast(UTC_MICROS),
            "billsec": cdrs.column("billsec"),
        }
    )
    if amounts is None:
        table = table.append_column("amount", pa.nulls(table.num_rows, MONEY))
    else:
        joined = table.join(amounts, keys="line", join_type="left outer", use_threads=False)
        table = joined.take(pc.sort_indices(joined, [("line", "ascending")]))
    return Side(
        table.select(PARTY_SCHEMA.names).cast(PARTY_SCHEMA),
        unanswered,
        quarantined,
        has_amounts=amounts is not None,
    )


def csv_amounts(header: list[str], table: pa.Table, lines: pa.Array) -> pa.Table | None:
    """A CSV's billed amounts by line (`line`, `amount` MONEY) from its first column named
    in AMOUNT_COLUMNS (any case); None when it has none. `table` holds the columns as text.
    A value that is not an exact decimal of at most 6 places raises SideError naming its
    line and column; an empty one is no amount."""
    names = {name.strip().lower(): name for name in header}
    column = next((names[c] for c in AMOUNT_COLUMNS if c in names), None)
    if column is None:
        return None
    text = pc.utf8_trim_whitespace(table.column(column).combine_chunks())
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        amount = pc.cast(pc.cast(text, _WIDE), MONEY)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        amount = None
    if amount is None or _too_fine(text, amount):
        _raise_bad_amount(text, lines, column)
    return pa.table({"line": lines.cast(pa.int64()), "amount": amount})


def _too_fine(text: pa.Array, amount: pa.Array) -> bool:
    """Whether some value lost digits (more than 6 places) on the way to MONEY."""
    wide = pc.cast(text, _WIDE)
    return not pc.all(pc.fill_null(pc.equal(wide, amount.cast(_WIDE)), True)).as_py()


def _raise_bad_amount(text: pa.Array, lines: pa.Array, column: str) -> None:
    for value, line in zip(text.to_pylist(), lines.to_pylist(), strict=True):
        if value is None:
            continue
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise SideError(f"line {line}: {column}: {value!r} is not a decimal amount")
        if number != number.quantize(Decimal("0.000001")) or abs(number) >= Decimal(10) ** 12:
            raise SideError(
                f"line {line}: {column}: {value!r} has more than 6 decimal places or 12 digits"
            )
    raise SideError(f"{column}: a value is not a decimal amount")


def _bounds(date_from: dt.date, date_to: dt.date, margin: int) -> tuple[pa.Scalar, pa.Scalar]:
    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    first = dt.datetime(date_from.year, date_from.month, date_from.day, tzinfo=dt.UTC)
    last = dt.datetime(date_to.year, date_to.month, date_to.day, tzinfo=dt.UTC)
    margin_delta = dt.timedelta(seconds=margin)
    low = first - margin_delta
    high = last + dt.timedelta(days=1) + margin_delta
    return pa.scalar(low, UTC_MICROS), pa.scalar(high, UTC_MICROS)
