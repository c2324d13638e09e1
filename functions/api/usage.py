"""Traffic as an API caller sees it: usage per group and CDR rows (plain Python and pyarrow).

The input is the lake's own tables, one CDR file's `cdrs_rated` and `cdrs_charges` at a time
(functions.store.lake reads them); every step below is column-wise (filters, one hash join per
file, group-bys), never a loop per CDR. Usage is aggregated per file and the partial sums are
added up, so memory holds one file and the running totals, not the range.

Whose price a caller sees (`View`):

- a customer key: its own charge for each of its calls (what it pays its parent);
- a reseller key (or a read-only key of a reseller account): its own charge (what it pays its
  parent) for the calls of its subtree, its customers' price (what the level below paid it:
  the charges whose counterparty it is) and the difference, its margin;
- the carrier's roles (tenant-admin, finance): what the top of each chain paid the carrier
  (the charges whose counterparty is `carrier`), the supplier and its cost, and the
  carrier's margin as the lake computed it (`cdrs_rated.margin`);
- a tenant-level read-only key: what the top of each chain paid the carrier, nothing more.

A reseller or customer never gets a supplier, a supplier's cost or the carrier's margin: those
columns are not built for its view at all. The calls in view are those whose account (the
calling account, `cdrs_rated.customer`) is in the caller's subtree: the filter is on account
ids, after the tenant scoped what was read. DID charges (inbound minutes to a rented number,
charged to its owner) are not traffic the account sent: invoices show them, not these routes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from functions.api import scope
from functions.api.requests import ApiError, QueryError, parse_day
from functions.invoice.lake_sql import table_schema

GROUPS = ("destination", "day", "account")
FORMATS = ("json", "csv")
MAX_DAYS = 92  # a quarter: the longest range one request reads
CARRIER = "carrier"  # the counterparty at the top of every chain (functions.rate.parties)
UNKNOWN_DESTINATION = "unknown"

RATED_COLUMNS = (
    "line",
    "call_id",
    "start_time",
    "caller",
    "callee",
    "billsec",
    "customer",
    "supplier",
    "supplier_status",
    "supplier_amount",
    "supplier_currency",
    "margin",
)
CHARGES_COLUMNS = (
    "line",
    "account",
    "role",
    "counterparty",
    "component",
    "status",
    "destination",
    "billed_seconds",
    "amount",
    "currency",
)

_RATED_SCHEMA = table_schema("cdrs_rated")
_CHARGES_SCHEMA = table_schema("cdrs_charges")
_MONEY = pa.decimal128(38, 6)  # a sum of decimal(18,6) (both engines' sum type)
_CALL = pa.decimal128(30, 6)  # one call's amounts: room to subtract within 38 digits
_NUMBER = re.compile(r"[0-9]{1,20}")
_CURSOR = re.compile(r"c1:(?P<start>-?[0-9]{1,20}):(?P<file>[^:]{1,200}):(?P<line>[0-9]{1,12})")


# --- who sees what ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class View:
    """Whose prices a caller sees, and of which calls."""

    account: str | None  # whose charge `amount` is; None: the carrier's revenue
    accounts: frozenset[str]  # the calling accounts in view (subtree, narrowed by ?account=)
    margin: bool  # a reseller's margin on its customers, or the carrier's
    cost: bool  # the supplier and its cost: the carrier's roles only
    supplier: str | None = None  # the carrier narrowed to one supplier's calls

    @property
    def reseller(self) -> bool:
        return self.margin and self.account is not None


def view_of(
    caller: scope.Caller, accounts: Iterable[scope.AccountLike], narrow: str | None = None
) -> View:
    """The caller's view of traffic; `narrow` (?account=) keeps one visible account's subtree
    (for the carrier, a supplier: the calls it terminated). 404 for an account out of view."""
    accounts = list(accounts)
    seen = scope.visible(caller, accounts)
    ids = {a.account for a in seen if a.kind != "supplier"}
    carrier = caller.role in scope.CARRIER_ROLES
    if caller.tenant_level:
        own, margin, cost = None, carrier, carrier
    else:
        mine = next((a for a in seen if a.account == caller.account), None)
        own, margin, cost = caller.account, mine is not None and mine.kind == "reseller", False
    supplier = None
    if narrow is not None:
        target = next((a for a in seen if a.account == narrow), None)
        if target is None:
            raise ApiError(404, "not_found", f"no account {narrow!r}")
        if target.kind == "supplier":
            supplier = narrow
        else:
            below = scope.Caller(caller.tenant, caller.key_id, "read-only", narrow)
            ids &= {a.account for a in scope.visible(below, accounts)}
    return View(own, frozenset(ids), margin, cost, supplier)


# --- query parameters -------------------------------------------------------------------


def parse_range(query: Mapping[str, str]) -> tuple[dt.date, dt.date]:
    """`from` and `to`, both inclusive UTC days, at most MAX_DAYS apart."""
    first, last = parse_day(query, "from"), parse_day(query, "to")
    if last < first:
        raise QueryError("to", f"'to' ({last}) is before 'from' ({first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise QueryError("to", f"a range is at most {MAX_DAYS} days, 'from' to 'to' inclusive")
    return first, last


def parse_number(query: Mapping[str, str]) -> str | None:
    """`number`: 1 to 20 digits, matched as a prefix of the callee's or the caller's digits."""
    number = query.get("number")
    if number is not None and not _NUMBER.fullmatch(number):
        raise QueryError("number", "'number' is 1 to 20 digits (no '+', spaces or dashes)")
    return number


# --- one file's calls in view -----------------------------------------------------------


def _plain(table: pa.Table | None, schema: pa.Schema, columns: Sequence[str]) -> pa.Table:
    """`columns` of a lake table with the lake's own types (dictionaries decoded); a column
    or a table the file lacks reads as nulls."""
    rows = 0 if table is None else table.num_rows
    arrays = {}
    for name in columns:
        wanted = schema.field(name).type
        if table is None or name not in table.column_names:
            arrays[name] = pa.nulls(rows, wanted)
            continue
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        arrays[name] = column.cast(wanted)
    return pa.table(arrays)


def _is(column: pa.ChunkedArray, value: str) -> pa.ChunkedArray:
    return pc.fill_null(pc.equal(column, value), False)


def calls_in_view(
    view: View,
    day: str,
    file_id: str,
    rated: pa.Table | None,
    charges: pa.Table | None,
    number: str | None = None,
) -> pa.Table:
    """One row per call in view (and currency of its price) of one file: the call, the
    caller's price (`amount`, null when the caller's own charge is unrated) and what the view
    adds (a reseller's customers' price and margin; the carrier's supplier, cost, margin)."""
    calls = _plain(rated, _RATED_SCHEMA, RATED_COLUMNS)
    paid = _plain(charges, _CHARGES_SCHEMA, CHARGES_COLUMNS)
    keep = pc.is_in(calls["customer"], value_set=pa.array(sorted(view.accounts), pa.string()))
    if view.supplier is not None:
        keep = pc.and_(keep, _is(calls["supplier"], view.supplier))
    if number is not None:
        callee = pc.replace_substring_regex(calls["callee"], r"[^0-9]", "")
        caller = pc.replace_substring_regex(calls["caller"], r"[^0-9]", "")
        keep = pc.and_(
            keep,
            pc.or_(
                pc.fill_null(pc.starts_with(callee, number), False),
                pc.fill_null(pc.starts_with(caller, number), False),
            ),
        )
    calls = calls.filter(pc.fill_null(keep, False))

    priced = pc.and_(
        pc.and_(_is(paid["status"], "rated"), pc.invert(_is(paid["component"], "did"))),
        pc.invert(_is(paid["role"], "supplier")),
    )
    if view.account is None:
        mine = _is(paid["counterparty"], CARRIER)
    else:
        mine = _is(paid["account"], view.account)
    own = (
        paid.filter(pc.and_(priced, mine))
        .group_by(["line", "currency"], use_threads=False)
        .aggregate([("amount", "sum"), ("billed_seconds", "max"), ("destination", "min")])
        .rename_columns(["line", "currency", "amount", "billed_seconds", "destination"])
    )
    rows = calls.join(own, keys="line", join_type="left outer", use_threads=False)
    if view.reseller:
        sold = (
            paid.filter(pc.and_(priced, _is(paid["counterparty"], view.account)))
            .group_by(["line"], use_threads=False)
            .aggregate([("amount", "sum"), ("currency", "min")])
            .rename_columns(["line", "customer_amount", "customer_currency"])
        )
        rows = rows.join(sold, keys="line", join_type="left outer", use_threads=False)
        same = pc.fill_null(pc.equal(rows["customer_currency"], rows["currency"]), False)
        difference = pc.subtract(
            rows["customer_amount"].cast(_CALL), rows["amount"].cast(_CALL)
        ).cast(_MONEY)
        rows = rows.append_column(
            "own_margin", pc.if_else(same, difference, pa.scalar(None, _MONEY))
        )
    elif view.margin:  # the carrier's
        rows = rows.append_column("own_margin", rows["margin"].cast(_MONEY))
    if view.cost:
        supplied = _is(rows["supplier_status"], "rated")
        rows = rows.append_column(
            "cost", pc.if_else(supplied, rows["supplier_amount"], pa.scalar(None, _MONEY))
        )
    count = rows.num_rows
    rows = rows.append_column("day", pa.array([day] * count, pa.string()))
    rows = rows.append_column("file_id", pa.array([file_id] * count, pa.string()))
    return rows


# --- usage ------------------------------------------------------------------------------

_TOTALS = ("attempts", "answered", "answered_seconds", "billed_seconds", "amount", "margin", "cost")


def usage_totals(rows: pa.Table, view: View, group_by: str) -> pa.Table:
    """Sums per group x currency of one file's calls in view that the caller's price rated:
    attempts, answered, answered_seconds, billed_seconds, amount, margin, cost."""
    rows = rows.filter(pc.is_valid(rows["amount"]))
    if group_by == "destination":
        group = pc.fill_null(rows["destination"], UNKNOWN_DESTINATION)
    elif group_by == "day":
        group = rows["day"]
    else:
        group = rows["customer"]
    billsec = pc.fill_null(rows["billsec"], 0)
    none = pa.nulls(rows.num_rows, _MONEY)
    if view.cost:  # a cost adds to the item of its own currency only
        same = pc.fill_null(pc.equal(rows["supplier_currency"], rows["currency"]), False)
        cost = pc.if_else(same, rows["cost"].cast(_MONEY), none)
    else:
        cost = none
    table = pa.table(
        {
            "group": group,
            "currency": rows["currency"],
            "attempts": pa.array([1] * rows.num_rows, pa.int64()),
            "answered": pc.cast(pc.greater(billsec, 0), pa.int64()),
            "answered_seconds": billsec,
            "billed_seconds": pc.fill_null(rows["billed_seconds"], 0),
            "amount": rows["amount"].cast(_MONEY),
            "margin": rows["own_margin"].cast(_MONEY) if view.margin else none,
            "cost": cost,
        }
    )
    return add_totals([table])


def add_totals(parts: Sequence[pa.Table]) -> pa.Table:
    """The per group x currency sums of several partial totals."""
    if not parts:
        return empty_totals()
    joined = pa.concat_tables(parts)
    summed = joined.group_by(["group", "currency"], use_threads=False).aggregate(
        [(name, "sum") for name in _TOTALS]
    )
    return summed.rename_columns(["group", "currency", *_TOTALS])


def empty_totals() -> pa.Table:
    return pa.table(
        {
            "group": pa.array([], pa.string()),
            "currency": pa.array([], pa.string()),
            **{n: pa.array([], pa.int64()) for n in _TOTALS[:4]},
            **{n: pa.array([], _MONEY) for n in _TOTALS[4:]},
        }
    )


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.000001')):f}"


def _ratio(numerator: int, denominator: int) -> float | None:
    """A statistic rounded to 2 places (half up, on the exact quotient), None over nothing."""
    if not denominator:
        return None
    exact = Decimal(numerator) / Decimal(denominator)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def usage_items(totals: pa.Table, view: View) -> list[dict[str, Any]]:
    """The answer's items, by group then currency (one Python step per item, not per call)."""
    items = []
    for row in sorted(totals.to_pylist(), key=lambda r: (r["group"], r["currency"] or "")):
        minutes = Decimal(row["billed_seconds"]) / 60
        item: dict[str, Any] = {
            "group": row["group"],
            "currency": row["currency"],
            "attempts": row["attempts"],
            "answered": row["answered"],
            "minutes": f"{minutes.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):f}",
            "asr": _ratio(100 * row["answered"], row["attempts"]),
            "acd": _ratio(row["answered_seconds"], row["answered"]),
            "amount": _money(row["amount"]) or "0.000000",
        }
        if view.margin:
            item["margin"] = _money(row["margin"])
        if view.cost:
            item["cost"] = _money(row["cost"])
        items.append(item)
    return items


# --- CDR rows ---------------------------------------------------------------------------


# Every CDR row's members, whoever asks (the OpenAPI document's required list).
CDR_COLUMNS = (
    "call_id",
    "account",
    "start",
    "caller",
    "callee",
    "destination",
    "duration",
    "billed_seconds",
    "amount",
    "currency",
)


def cdr_columns(view: View) -> list[str]:
    """The members of a CDR row, by view: a reseller's or customer's rows carry only its own
    price (and a reseller its customers' price); only the carrier's name a supplier."""
    columns = list(CDR_COLUMNS)
    if view.reseller:
        columns += ["customer_amount", "customer_currency", "margin"]
    if view.cost:
        columns += ["supplier", "cost", "cost_currency", "margin"]
    return columns


def sort_calls(rows: pa.Table) -> pa.Table:
    """By start, then file and line: the CDR listing's (and its cursor's) order."""
    return rows.sort_by(
        [("start_time", "ascending"), ("file_id", "ascending"), ("line", "ascending")]
    )


def encode_position(rows: pa.Table, index: int) -> str:
    """The cursor text of row `index` (functions.api.paging makes it opaque)."""
    start = rows["start_time"][index].cast(pa.int64()).as_py()
    return f"c1:{start}:{rows['file_id'][index].as_py()}:{rows['line'][index].as_py()}"


def decode_position(text: str) -> tuple[str, int, str, int]:
    """(UTC day, start in microseconds, file id, line) a cursor resumes after."""
    found = _CURSOR.fullmatch(text)
    if found is None:
        raise QueryError("cursor", "cursor is not one this API handed out")
    start = int(found["start"])
    try:
        day = (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=start)).date().isoformat()
    except OverflowError:
        raise QueryError("cursor", "cursor is not one this API handed out") from None
    return day, start, found["file"], int(found["line"])


def after_position(rows: pa.Table, start: int, file_id: str, line: int) -> pa.Table:
    """The rows after a position in the listing's order."""
    at = rows["start_time"].cast(pa.int64())
    later = pc.or_(
        pc.greater(at, start),
        pc.and_(
            pc.equal(at, start),
            pc.or_(
                pc.greater(rows["file_id"], file_id),
                pc.and_(pc.equal(rows["file_id"], file_id), pc.greater(rows["line"], line)),
            ),
        ),
    )
    return rows.filter(pc.fill_null(later, False))


def _iso(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO 8601 UTC instants: ...T10:00:00Z, with microseconds only when there are some."""
    full = pc.strftime(times, "%Y-%m-%dT%H:%M:%S")  # %S carries the fraction: .000000
    whole = pc.utf8_slice_codeunits(full, 0, 19)
    fraction = pc.not_equal(pc.subsecond(times), 0)
    return pc.binary_join_element_wise(pc.if_else(fraction, full, whole), "Z", "")


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(_MONEY).cast(pa.string())


def cdr_table(rows: pa.Table, view: View) -> pa.Table:
    """The CDR rows in the answer's members and order: money as decimal strings (6 places),
    times as ISO UTC strings, counts as integers; only the view's columns."""
    built = {
        "call_id": rows["call_id"],
        "account": rows["customer"],
        "start": _iso(rows["start_time"]),
        "caller": rows["caller"],
        "callee": rows["callee"],
        "destination": rows["destination"],
        "duration": rows["billsec"],
        "billed_seconds": rows["billed_seconds"],
        "amount": _text(rows["amount"]),
        "currency": rows["currency"],
    }
    if view.reseller:
        built["customer_amount"] = _text(rows["customer_amount"])
        built["customer_currency"] = rows["customer_currency"]
        built["margin"] = _text(rows["own_margin"])
    if view.cost:
        built["supplier"] = rows["supplier"]
        built["cost"] = _text(rows["cost"])
        built["cost_currency"] = rows["supplier_currency"]
        built["margin"] = _text(rows["own_margin"])
    return pa.table({name: built[name] for name in cdr_columns(view)})
