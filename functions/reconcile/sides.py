"""The two sides of a reconciliation as PARTY_SCHEMA tables (pure: pyarrow only).

Only answered calls (billsec > 0) are reconciled, on either side: the classes are about
billed calls, as Smartswitch's "answered only" compare. A side's unanswered calls are
counted apart (`Side.unanswered`), never matched.

- ours: our calls for the partner (`our_side`), from each file's charges (`cdrs_charges`,
  one row per call and party at any depth): the calls on which the partner has a charge of its
  own, at the sum of those charges (usage, tier, surcharge, did: each rounded on its own). As
  a customer, the charges it is billed (as the calling customer, as a reseller above it at
  any level, as a DID's owner); as a supplier, what we owe it. So a reseller's calls are every
  call of the customers below it, at its own charge. The call's callee, start and answered
  seconds are its rated row's (same file, same line). A file written before charges existed
  (no charges table) falls back to its rated rows: as a customer, the calls it sent
  (customer == partner) at customer_amount plus customer_surcharge; as a supplier, the calls
  it terminated at supplier_amount; such files are counted (`Side.without_charges`). A call
  with an unrated charge of the partner's, or one in another currency than the partner's, has
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
from functions.shared.money import decimal_array, units_from_decimal_array

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
# The lake's charges columns an our-side reader needs (functions.rate.parties.CHARGE_COLUMNS).
CHARGES_COLUMNS = ("line", "account", "role", "amount", "currency")
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
    without_charges: int = 0  # our files read from their rated rows: no charges table


def our_side(
    files: Iterable[tuple[pa.Table, pa.Table | None]],
    *,
    partner: str,
    role: str,
    currency: str,
    date_from: dt.date,
    date_to: dt.date,
    margin_seconds: int = 0,
) -> Side:
    """Our calls for the partner in the days date_from..date_to (UTC, inclusive;
    `margin_seconds` more each side), from each file's (rated, charges) pair as the lake
    holds them (RATED_COLUMNS, CHARGES_COLUMNS; charges None: a file written before charges
    existed, read from its rated rows)."""
    if role not in ROLES:
        raise ValueError(f"role must be customer or supplier, not {role!r}")
    low, high = _bounds(date_from, date_to, margin_seconds)
    pieces, unanswered, without = [], 0, 0
    for rated, charges in files:
        if charges is None:
            without += 1
            mine = _rated_calls(rated, partner, role, currency)
        else:
            mine = _charged_calls(rated, charges, partner, role, currency)
        start = mine.column("start_time")
        mine = mine.filter(pc.and_(pc.greater_equal(start, low), pc.less(start, high)))
        if not mine.num_rows:
            continue
        answered = pc.greater(mine.column("billsec"), 0)
        unanswered += mine.num_rows - pc.sum(answered.cast(pa.int64())).as_py()
        pieces.append(mine.filter(answered))
    table = pa.concat_tables(pieces) if pieces else PARTY_SCHEMA.empty_table()
    return Side(table, unanswered, without_charges=without)


def _charged_calls(
    rated: pa.Table, charges: pa.Table, partner: str, role: str, currency: str
) -> pa.Table:
    """The file's calls on which the partner has a charge of its own (PARTY_SCHEMA), at the
    sum of those charges: one group_by over the partner's charges, its rated rows found by
    line."""
    supplier = _equals(charges, "role", "supplier")
    billed = supplier if role == "supplier" else pc.invert(supplier)
    own = charges.filter(pc.and_(_equals(charges, "account", partner), billed))
    if not own.num_rows:
        return PARTY_SCHEMA.empty_table()
    # Summed as int64 micro-units (exact, and a fast group_by); a charge unrated or in
    # another currency than the partner's leaves its call without an amount.
    amount = own.column("amount")
    unknown = pc.or_(pc.is_null(amount), pc.invert(_equals(own, "currency", currency)))
    per_call = (
        pa.table(
            {
                "line": own.column("line").cast(pa.int64()),
                "units": units_from_decimal_array(amount, MONEY.scale),
                "unknown": unknown,
            }
        )
        .group_by("line", use_threads=False)
        .aggregate([("units", "sum"), ("unknown", "any")])
    )
    unknown = per_call.column("unknown_any").to_numpy(zero_copy_only=False)
    units = per_call.column("units_sum").to_numpy()
    total = decimal_array(units, MONEY.scale, unknown)
    # Each rated row's call in per_call (a hash lookup by line; the file's order is kept).
    where = pc.index_in(rated.column("line").cast(pa.int64()), value_set=per_call.column("line"))
    charged = pc.is_valid(where)
    calls = _calls(rated.filter(charged))
    return calls.set_column(5, "amount", total.take(where.filter(charged)))


def _equals(table: pa.Table, name: str, value: str) -> pa.ChunkedArray:
    """Whether each row's text column `name` is `value` (false for null or no column); a
    dictionary column is compared on its dictionary, not row by row."""
    if name not in table.column_names:
        return pa.chunked_array([pa.repeat(pa.scalar(False), table.num_rows)])
    chunks = []
    for chunk in table.column(name).chunks:
        if pa.types.is_dictionary(chunk.type):
            hits = pc.equal(chunk.dictionary.cast(pa.string()), value)
            chunk = hits.take(chunk.indices)
        else:
            chunk = pc.equal(chunk.cast(pa.string()), value)
        chunks.append(pc.fill_null(chunk, False))
    return pa.chunked_array(chunks, pa.bool_())


def _rated_calls(rated: pa.Table, partner: str, role: str, currency: str) -> pa.Table:
    """The file's rated rows whose customer (or supplier) is the partner (PARTY_SCHEMA), at the
    rated table's amounts: a file with no charges table."""
    mine = rated.filter(pc.fill_null(pc.equal(_text(rated, role), partner), False))
    if role == "customer":
        amount = _money(mine, "customer_amount")
        surcharge = pc.fill_null(_money(mine, "customer_surcharge"), pa.scalar(0, MONEY))
        amount = pc.add_checked(amount, surcharge).cast(MONEY)
        in_currency = _text(mine, "currency")
    else:
        amount = _money(mine, "supplier_amount")
        in_currency = _text(mine, "supplier_currency")
    same = pc.fill_null(pc.equal(in_currency, currency), False)
    amount = pc.if_else(same, amount, pa.scalar(None, MONEY))
    return _calls(mine).set_column(5, "amount", amount)


def _calls(rows: pa.Table) -> pa.Table:
    """Rated rows as PARTY_SCHEMA, amounts null."""
    return pa.table(
        {
            "line": rows.column("line").cast(pa.int64()),
            "call_id": _text(rows, "call_id"),
            "callee": _text(rows, "callee"),
            "start_time": rows.column("start_time").cast(UTC_MICROS),
            "billsec": rows.column("billsec").cast(pa.int64()),
            "amount": pa.nulls(rows.num_rows, MONEY),
        },
        schema=PARTY_SCHEMA,
    )


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
