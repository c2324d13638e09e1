"""Wholesale A-Z rate decks: exact, vectorised CSV import into the compiled `DECK_SCHEMA` table.

A deck is compiled column-wise with pyarrow.compute; Python only loops over invalid rows, to
word their errors. Money never passes through a float: rates and connect fees are parsed as
decimal128(18, 8) and kept as int64 units of 10^-8 (`functions.shared.money.RATE_SCALE`).

Header aliases (matched case-insensitively after dropping a bracketed part such as
"(USD/min)" and collapsing punctuation to spaces). When several columns map to one field, the
alias listed first in `_ALIASES` wins, e.g. Description beats Country for `destination`, so
"Country,Description,..." decks keep the more specific name. Two columns with the same alias
are ambiguous and rejected. Separate min/interval columns (JeraSoft "Min"/"Int", US decks'
"Duration"/"Increment") override the matching part of an `A/B` increment; a single number N
in the increment column means N/N, or the interval when a min column exists; an interval
alone means interval/interval; a min alone means min/1.

Optional per-entry terms: `minimum_charge` (alias "min charge"; money per answered call, like
a rate at most 8 decimal places), `free_seconds` (alias "grace seconds"; whole seconds
>= 0) and `surcharge` (per minute, like a rate; charged as its own component). All are 0 when
absent.

Optional `origin` (aliases "origin prefix", "a number prefix", "caller prefix", "cli prefix"):
the caller (A-number) prefix an entry is for, digits, "" = any caller. An entry's key is
(prefix, origin): a deck may price 44 for everyone and 44 for callers from 33 differently, so
a repeated key is (prefix, origin, effective_from), not (prefix, effective_from).

Currency: the caller names the deck's currency (default USD). A header that names another
currency ("Rate (EUR/min)") is an error rather than silently adopted, because a forgotten
--currency would otherwise mix currencies on one invoice.

The file-reading and cache section at the end is the only I/O in this module: compiled decks
are cached as Parquet (`load_deck`), and decks indexed for rating as Arrow IPC files that are
memory-mapped back (`load_deck_index`), both under the deck's content key.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from functions.rate.rating import DeckIndex, DeckIndexFormatError
from functions.shared.money import RATE_SCALE, units_from_decimal_array

ALWAYS = -(2**62)  # effective_from of a row without one: in force since forever
NEVER = 2**62  # effective_to of a row without one: never ends

DECK_SCHEMA = pa.schema(
    [
        ("prefix", pa.string()),  # digits only
        ("origin", pa.string()),  # caller prefix the entry is for, digits; "" = any caller
        ("destination", pa.string()),  # "" when absent
        ("rate_e8", pa.int64()),  # per minute, units of 10^-8 (0 for closed rows without rate)
        ("connect_fee_e8", pa.int64()),  # units of 10^-8
        ("increment_first", pa.int32()),  # A of A/B
        ("increment_next", pa.int32()),  # B of A/B
        ("minimum_charge_e8", pa.int64()),  # per answered call, units of 10^-8; 0 when absent
        ("free_seconds", pa.int32()),  # answered calls of up to this many seconds cost 0
        ("surcharge_e8", pa.int64()),  # per minute on top of the rate, 10^-8; 0 when absent
        ("effective_from", pa.int64()),  # epoch seconds UTC; ALWAYS when missing
        ("effective_to", pa.int64()),  # epoch seconds UTC, exclusive; NEVER when missing
        ("closed", pa.bool_()),
        ("line", pa.int64()),  # source line in the deck CSV, for traceability
    ]
)

# Bump whenever compiled output could differ for the same bytes: it invalidates the cache.
COMPILER_VERSION = "deck-compiler-3"

MAX_LISTED_ERRORS = 20

# First alias wins when a deck has several columns for one field (see module docstring).
_ALIASES: dict[str, tuple[str, ...]] = {
    "prefix": (
        "prefix",
        "code",
        "dial code",
        "dialcode",
        "dialing code",
        "dst code",
        "destination code",
        "codes",
        "prefixes",
    ),
    "destination": (
        "destination",
        "description",
        "destination name",
        "code name",
        "name",
        "country",
    ),
    "rate": (
        "rate",
        "price",
        "rate per minute",
        "rate per min",
        "rate min",
        "price per minute",
        "price per min",
        "price min",
        "new rate",
    ),
    "connect_fee": (
        "connect fee",
        "connection fee",
        "connect",
        "setup fee",
        "set up fee",
        "setup",
        "sf",
    ),
    # "Min/Int" style headers carry "60/6" values, so they are increments, not minimums.
    "increment": (
        "increment",
        "billing increment",
        "billing increments",
        "increments",
        "billing",
        "min interval",
        "min int",
    ),
    "min": (
        "min",
        "minimum",
        "minimal",
        "min duration",
        "minimum duration",
        "initial",
        "initial increment",
        "first increment",
        "duration",
    ),
    # Per answered call: "Min Charge" is money, unlike the "Min" increment column above.
    "minimum_charge": ("minimum charge", "min charge"),
    # Grace for failed answer supervision: calls of up to N answered seconds cost nothing.
    "free_seconds": ("free seconds", "grace seconds"),
    # A per-destination per-minute surcharge, charged on top of the rate as its own component.
    "surcharge": ("surcharge", "surcharge per minute", "surcharge per min"),
    # The caller (A-number) prefix an entry is for: origin-based termination rates.
    "origin": (
        "origin",
        "origin prefix",
        "origin code",
        "a number prefix",
        "caller prefix",
        "cli prefix",
    ),
    "interval": ("interval", "int", "next increment", "subsequent increment", "next interval"),
    "effective_from": (
        "effective from",
        "effective date",
        "effective",
        "start date",
        "valid from",
        "date",
    ),
    "effective_to": ("effective to", "end date", "valid to", "valid until", "expiry date", "end"),
    "status": ("status", "change", "change type", "action", "flag"),
}
_REQUIRED = ("prefix", "rate")

# Rows with these statuses close the code from their effective_from.
CLOSED_STATUSES = frozenset(
    {"closed", "close", "deleted", "delete", "blocked", "block", "removed", "remove"}
)
# Informational only: the rate itself says what changed.
OPEN_STATUSES = frozenset(
    {
        "",
        "new",
        "increase",
        "increased",
        "decrease",
        "decreased",
        "unchanged",
        "current",
        "change",
        "changed",
        "same",
        "no change",
    }
)

# Decimals: plain notation only (no sign, exponent or thousands separator); <= 10 integer
# digits so decimal128(18, 8) holds it; more than 8 decimals is rejected, never rounded.
_DECIMAL_RE = r"^(?:\d{1,10}(?:\.\d{0,8})?|\.\d{1,8})$"
_INCREMENT_RE = r"^(?P<a>\d{1,9})(?:\s*/\s*(?P<b>\d{1,9}))?$"
_SECONDS_RE = r"^\d{1,9}$"
_DATE_RE = (
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hh>[01]\d|2[0-3]):(?P<mm>[0-5]\d)(?::(?P<ss>[0-5]\d)(?P<frac>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?$"
)
_HEADER_CURRENCY_RE = re.compile(r"[(\[]\s*([A-Za-z]{3})\s*(?:/\s*min(?:ute)?)?\s*[)\]]")


@dataclass(frozen=True, slots=True)
class DeckRowError:
    line: int  # physical CSV line, header = 1
    field: str
    value: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field} {self.value!r}: {self.message}"


class InvalidDeckError(ValueError):
    """The deck has invalid rows (or an unusable header); nothing was imported."""

    def __init__(self, source: str, errors: list[DeckRowError] | tuple[DeckRowError, ...]):
        self.source = source
        self.errors: list[DeckRowError] = list(errors)
        super().__init__(source, self.errors)

    def __str__(self) -> str:
        listed = [f"  {error}" for error in self.errors[:MAX_LISTED_ERRORS]]
        more = len(self.errors) - MAX_LISTED_ERRORS
        if more > 0:
            listed.append(f"  and {more} more")
        count = len(self.errors)
        noun = "error" if count == 1 else "errors"
        return f"{self.source}: {count} {noun}:\n" + "\n".join(listed)


@dataclass(frozen=True)
class RateDeck:
    table: pa.Table
    currency: str
    source: str
    skipped: tuple[DeckRowError, ...] = ()


# ---------------------------------------------------------------------------------------------
# Pure compilation
# ---------------------------------------------------------------------------------------------


def parse_deck(
    data: bytes, *, source: str = "<deck>", currency: str = "USD", skip_invalid: bool = False
) -> RateDeck:
    """Compile deck CSV bytes; raise InvalidDeckError unless `skip_invalid` drops bad rows."""
    currency = _check_currency(currency, source)
    data = _as_utf8(data)
    header = _read_header(data)
    if header is None:
        raise InvalidDeckError(source, [DeckRowError(1, "header", "", "the deck is empty")])
    columns = _map_columns(header, currency, source)
    raw, lines, shape_errors = _read_rows(data, header, source)
    compiled, errors = _compile(raw, lines, columns)
    errors = sorted([*shape_errors, *errors], key=lambda e: (e.line, _FIELD_ORDER.get(e.field, 99)))
    if errors and not skip_invalid:
        raise InvalidDeckError(source, errors)
    return RateDeck(table=compiled, currency=currency, source=source, skipped=tuple(errors))


def _check_currency(currency: str, source: str) -> str:
    code = (currency or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise InvalidDeckError(
            source, [DeckRowError(1, "currency", currency, "not an ISO 4217 code")]
        )
    return code


def _as_utf8(data: bytes) -> bytes:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # Decks saved from Excel on Windows are cp1252; transcode rather than reject them.
        data = data.decode("cp1252", errors="replace").encode("utf-8")
    if b"\r" in data:
        # A lone CR is a line break to both pyarrow and a human; make it the only kind.
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if data and not data.endswith(b"\n"):
        data += b"\n"  # pyarrow cannot read a header-only file without its final newline
    return data


def _read_header(data: bytes) -> list[str] | None:
    head = data[: 1 << 16].decode("utf-8-sig", errors="replace")
    for row in csv.reader(io.StringIO(head)):
        if any(cell.strip() for cell in row):
            return row
    return None


def _normalise_header(name: str) -> str:
    name = _HEADER_CURRENCY_RE.sub(" ", name)
    name = re.sub(r"\(.*?\)", " ", name)  # "Duration (initial)" → "duration"
    return " ".join(re.sub(r"[^0-9a-z]+", " ", name.lower()).split())


def _map_columns(header: list[str], currency: str, source: str) -> dict[str, int]:
    errors: list[DeckRowError] = []
    found: dict[str, tuple[int, int]] = {}  # field -> (alias rank, column index)
    for index, name in enumerate(header):
        key = _normalise_header(name)
        for field, aliases in _ALIASES.items():
            if key not in aliases:
                continue
            rank = aliases.index(key)
            if field in found and found[field][0] == rank:
                errors.append(DeckRowError(1, "header", name, f"second column for {field}"))
            elif field not in found or rank < found[field][0]:
                found[field] = (rank, index)
        named = _HEADER_CURRENCY_RE.search(name)
        if named and named.group(1).upper() != currency:
            errors.append(
                DeckRowError(
                    1, "header", name, f"deck is in {named.group(1).upper()}, not {currency}"
                )
            )
    for field in _REQUIRED:
        if field not in found:
            errors.append(DeckRowError(1, "header", ",".join(header), f"no {field} column"))
    if errors:
        raise InvalidDeckError(source, errors)
    return {field: index for field, (_, index) in found.items()}


def _read_rows(
    data: bytes, header: list[str], source: str
) -> tuple[pa.Table, np.ndarray, list[DeckRowError]]:
    """All cells as strings, the physical line of each row, and rows of the wrong width."""
    record_lines, quoted_newlines = _record_lines(data)
    bad_rows: list[tuple[int, str, int, int]] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        bad_rows.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    table = _read_csv(
        pa.py_buffer(data),
        # Serial reading keeps InvalidRow.number known (it is -1 in parallel reading).
        read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24),
        parse_options=pacsv.ParseOptions(
            newlines_in_values=quoted_newlines, invalid_row_handler=on_invalid_row
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    if isinstance(table, str):
        raise InvalidDeckError(source, [DeckRowError(1, "row", "", table)])
    # InvalidRow.number counts non-empty records from 1 (the header), as record_lines does.
    errors = []
    dropped = np.zeros(len(record_lines), dtype=bool)
    for number, text, expected, actual in bad_rows:
        dropped[number - 1] = True
        if text.strip(" \t,"):  # whitespace-only lines are blank lines, not rows
            line = int(record_lines[number - 1])
            message = f"expected {expected} fields, got {actual}"
            errors.append(DeckRowError(line, "row", text[:80], message))
    lines = record_lines[1:][~dropped[1:]]
    if len(lines) != table.num_rows:  # pragma: no cover - would be a pyarrow/csv disagreement
        raise RuntimeError(f"line numbering mismatch: {len(lines)} lines, {table.num_rows} rows")
    return table, lines, errors


def _read_csv(*args, **kwargs) -> pa.Table | str:
    """pyarrow's reader, with an unparseable file (e.g. an unclosed quote) as a message."""
    try:
        return pacsv.read_csv(*args, **kwargs)
    except pa.ArrowInvalid as error:
        return f"unreadable CSV: {error}"


def _record_lines(data: bytes) -> tuple[np.ndarray, bool]:
    """Physical line on which each non-empty CSV record starts, and whether quotes span lines."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    quotes = np.flatnonzero(buf == 34)
    if len(quotes) and (np.searchsorted(quotes, newlines) & 1).any():
        return _record_lines_slow(data), True
    # Fast path: no newline inside quotes, so every line is a record (empty lines aside).
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    non_empty = ends > starts
    return np.flatnonzero(non_empty).astype(np.int64) + 1, False


def _record_lines_slow(data: bytes) -> np.ndarray:
    # Rare (a quoted field spanning lines): let the csv module count physical lines.
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    lines, previous = [], 0
    for row in reader:
        if row:
            lines.append(previous + 1)
        previous = reader.line_num
    return np.asarray(lines, dtype=np.int64)


_FIELD_ORDER = {
    name: i
    for i, name in enumerate(
        (
            "header",
            "row",
            "prefix",
            "origin",
            "destination",
            "rate",
            "connect_fee",
            "increment",
            "min",
            "interval",
            "minimum_charge",
            "free_seconds",
            "surcharge",
            "effective_from",
            "effective_to",
            "status",
        )
    )
}


class _Errors:
    """Collects errors from boolean masks; the only Python loops run over flagged rows."""

    def __init__(self, lines: np.ndarray):
        self.lines = lines
        self.bad = np.zeros(len(lines), dtype=bool)
        self.items: list[DeckRowError] = []

    def flag(self, mask: np.ndarray, field: str, values: pa.Array, message) -> None:
        indices = np.flatnonzero(mask)
        if not len(indices):
            return
        self.bad[indices] = True
        picked = values.take(pa.array(indices)).to_pylist()
        for index, value in zip(indices, picked, strict=True):
            text = message(value) if callable(message) else message
            self.items.append(DeckRowError(int(self.lines[index]), field, value, text))


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return mask.fill_null(False).to_numpy(zero_copy_only=False)


def _compile(
    raw: pa.Table, lines: np.ndarray, columns: dict[str, int]
) -> tuple[pa.Table, list[DeckRowError]]:
    cells = [pc.utf8_trim_whitespace(column.combine_chunks()) for column in raw.columns]
    if cells:
        # Spreadsheet exports end with ",,,,," rows: blank in every column, so not rows at all.
        blank = np.ones(len(lines), dtype=bool)
        for column in cells:
            blank &= _np(pc.equal(column, ""))
        keep = pa.array(~blank)
        cells = [c.filter(keep) for c in cells]
        lines = lines[~blank]
    n = len(lines)
    empty = pa.repeat("", n).cast(pa.string())

    def cell(field: str) -> pa.Array:
        return cells[columns[field]] if field in columns else empty

    errors = _Errors(lines)

    status_raw = cell("status")
    status = pc.utf8_lower(status_raw)
    closed = _np(pc.is_in(status, pa.array(sorted(CLOSED_STATUSES))))
    known = closed | _np(pc.is_in(status, pa.array(sorted(OPEN_STATUSES))))
    errors.flag(
        ~known, "status", status_raw, "unknown status (closed/deleted/blocked/removed close a code)"
    )

    rate_text = cell("rate")
    rate_missing = _np(pc.equal(rate_text, ""))
    errors.flag(rate_missing & ~closed, "rate", rate_text, "rate is required")
    rate_e8 = _decimal_units(rate_text, rate_missing, "rate", errors)

    fee_text = cell("connect_fee")
    fee_e8 = _decimal_units(fee_text, _np(pc.equal(fee_text, "")), "connect_fee", errors)

    first, following = _increments(cell("increment"), cell("min"), cell("interval"), errors)

    minimum_text = cell("minimum_charge")
    minimum_e8 = _decimal_units(
        minimum_text, _np(pc.equal(minimum_text, "")), "minimum_charge", errors
    )
    free = _free_seconds(cell("free_seconds"), errors)
    surcharge_text = cell("surcharge")
    surcharge_e8 = _decimal_units(
        surcharge_text, _np(pc.equal(surcharge_text, "")), "surcharge", errors
    )
    origin = _origins(cell("origin"), errors)

    effective_from = _epoch_seconds(cell("effective_from"), ALWAYS, "effective_from", errors)
    effective_to = _epoch_seconds(cell("effective_to"), NEVER, "effective_to", errors)
    errors.flag(
        (effective_to <= effective_from) & (effective_to != NEVER),
        "effective_to",
        cell("effective_to"),
        "effective_to must be later than effective_from",
    )

    # Several codes in one cell ("447407, 447408; 447409") become one row each.
    pieces = pc.split_pattern_regex(cell("prefix"), r"[,;]")
    parent = pc.list_parent_indices(pieces).to_numpy()
    piece = pc.utf8_trim_whitespace(pc.list_flatten(pieces))
    code = pc.replace_substring_regex(piece, r"\s+", "")
    code = pc.replace_substring_regex(code, r"^(?:\+|00)", "")
    piece_empty = _np(pc.equal(piece, ""))
    # A stray separator ("44,45,") leaves an empty piece: ignore it unless the cell is empty.
    cell_has_code = np.zeros(n, dtype=bool)
    cell_has_code[parent[~piece_empty]] = True
    errors.flag(~cell_has_code, "prefix", cell("prefix"), "prefix is empty")
    entry = ~piece_empty
    code_bad = entry & ~_np(pc.match_substring_regex(code, r"^[0-9]+$"))
    _flag_entries(errors, code_bad, parent, "prefix", piece, "prefix must be digits (E.164)")

    parent, code = parent[entry], code.filter(pa.array(entry))
    order = pc.sort_indices(
        pa.table(
            {
                "code": code,
                "origin": origin.take(pa.array(parent)),
                "from": effective_from[parent],
                "line": lines[parent],
            }
        ),
        sort_keys=[
            ("code", "ascending"),
            ("origin", "ascending"),
            ("from", "ascending"),
            ("line", "ascending"),
        ],
    ).to_numpy()
    parent, code = parent[order], code.take(pa.array(order))
    _flag_duplicates(errors, parent, code, origin, effective_from, lines)

    good = ~errors.bad[parent]
    parent, code = parent[good], code.filter(pa.array(good))
    take = pa.array(parent)
    table = pa.Table.from_arrays(
        [
            code,
            origin.take(take),
            cell("destination").take(take),
            pa.array(rate_e8[parent], pa.int64()),
            pa.array(fee_e8[parent], pa.int64()),
            pa.array(first[parent], pa.int32()),
            pa.array(following[parent], pa.int32()),
            pa.array(minimum_e8[parent], pa.int64()),
            pa.array(free[parent], pa.int32()),
            pa.array(surcharge_e8[parent], pa.int64()),
            pa.array(effective_from[parent], pa.int64()),
            pa.array(effective_to[parent], pa.int64()),
            pa.array(closed[parent], pa.bool_()),
            pa.array(lines[parent], pa.int64()),
        ],
        schema=DECK_SCHEMA,
    )
    return table, errors.items


def _flag_entries(errors, mask, parent, field, values, message) -> None:
    """Flag expanded (one per code) entries; their whole source row becomes invalid."""
    indices = np.flatnonzero(mask)
    for index, value in zip(indices, values.take(pa.array(indices)).to_pylist(), strict=True):
        row = parent[index]
        errors.bad[row] = True
        errors.items.append(DeckRowError(int(errors.lines[row]), field, value, message))


def _flag_duplicates(errors, parent, code, origin, effective_from, lines) -> None:
    """Entries sorted by (code, origin, effective_from, line): a repeat of its predecessor's key."""
    if len(parent) < 2:
        return
    valid = ~errors.bad[parent]
    # Only otherwise-valid rows take part, so a bad row is reported once, for what it is.
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return
    vcode = code.take(pa.array(idx))
    vfrom = effective_from[parent[idx]]
    vorigin = origin.take(pa.array(parent[idx]))
    same = (
        _np(pc.equal(vcode.slice(1), vcode.slice(0, len(idx) - 1)))
        & _np(pc.equal(vorigin.slice(1), vorigin.slice(0, len(idx) - 1)))
        & (vfrom[1:] == vfrom[:-1])
    )
    if not same.any():
        return
    dup = np.concatenate(([False], same))
    group_start = np.maximum.accumulate(np.where(dup, 0, np.arange(len(idx))))
    for position in np.flatnonzero(dup):
        row = parent[idx[position]]
        first_line = int(lines[parent[idx[group_start[position]]]])
        errors.bad[row] = True
        caller = vorigin[int(position)].as_py()
        key = f"prefix, origin {caller}" if caller else "prefix"
        errors.items.append(
            DeckRowError(
                int(lines[row]),
                "prefix",
                vcode[int(position)].as_py(),
                f"duplicate {key} and effective_from (first on line {first_line})",
            )
        )


def _origins(text: pa.Array, errors: _Errors) -> pa.Array:
    """Caller prefixes as digits ("" = any caller), written as prefixes are ("+33", "0033")."""
    origin = pc.replace_substring_regex(text, r"[\s-]+", "")
    origin = pc.replace_substring_regex(origin, r"^(?:\+|00)", "")
    ok = _np(pc.match_substring_regex(origin, r"^[0-9]{0,15}$"))
    errors.flag(~ok, "origin", text, _origin_problem)
    return pc.if_else(pa.array(ok), origin, "")


def _origin_problem(value: str) -> str:
    if re.fullmatch(r"[+\d\s-]+", value):
        return "an origin has at most 15 digits (E.164)"
    return "origin must be digits (a caller prefix, E.164); empty for any caller"


def _decimal_units(text: pa.Array, missing: np.ndarray, field: str, errors: _Errors) -> np.ndarray:
    """Units of 10^-8 (0 where missing); invalid values are flagged, never rounded."""
    valid = _np(pc.match_substring_regex(text, _DECIMAL_RE))
    errors.flag(~valid & ~missing, field, text, _decimal_problem)
    cleaned = pc.if_else(pa.array(valid), text, "0")
    # Safe cast: after the pattern check it cannot lose digits, and would raise if it could.
    return units_from_decimal_array(pc.cast(cleaned, pa.decimal128(18, RATE_SCALE)), RATE_SCALE)


def _decimal_problem(value: str) -> str:
    if re.fullmatch(r"[+-]?\d*\.\d{9,}", value):
        return f"more than {RATE_SCALE} decimal places"
    if re.fullmatch(r"-\d*\.?\d*", value):
        return "must not be negative"
    if re.fullmatch(r"\d{11,}(?:\.\d*)?", value):
        return "too large"
    return "not a plain decimal number"


def _increments(
    increment: pa.Array, minimum: pa.Array, interval: pa.Array, errors: _Errors
) -> tuple[np.ndarray, np.ndarray]:
    parts = pc.extract_regex(increment, _INCREMENT_RE)
    inc_ok = _np(parts.is_valid())
    inc_given = ~_np(pc.equal(increment, ""))
    errors.flag(inc_given & ~inc_ok, "increment", increment, "increment must be A/B seconds")
    inc_a = _ints(parts.field("a"), inc_ok)
    b_text = parts.field("b")
    inc_b = np.where(inc_ok & _np(pc.not_equal(b_text, "")), _ints(b_text, inc_ok), inc_a)
    min_s = _seconds_column(minimum, "min", errors)
    int_s = _seconds_column(interval, "interval", errors)
    has_min = min_s > 0
    has_int = int_s > 0
    # A bare "N" increment with a min column is the interval (US decks: duration, increment).
    bare = inc_ok & _np(pc.equal(b_text, ""))
    inc_next = np.where(has_min & bare & ~has_int, inc_a, inc_b)
    first = np.where(has_min, min_s, np.where(inc_ok, inc_a, np.where(has_int, int_s, 1)))
    following = np.where(has_int, int_s, np.where(inc_ok, inc_next, 1))
    zero = inc_ok & ((inc_a == 0) | (inc_b == 0))
    errors.flag(zero, "increment", increment, "increment parts must be positive")
    return first, following


def _seconds_column(text: pa.Array, field: str, errors: _Errors) -> np.ndarray:
    given = ~_np(pc.equal(text, ""))
    ok = _np(pc.match_substring_regex(text, _SECONDS_RE))
    seconds = _ints(text, ok)
    errors.flag(given & (~ok | (seconds == 0)), field, text, f"{field} must be positive seconds")
    return np.where(ok, seconds, 0)


def _free_seconds(text: pa.Array, errors: _Errors) -> np.ndarray:
    """Whole seconds >= 0 (0 where absent); anything else is flagged."""
    given = ~_np(pc.equal(text, ""))
    ok = _np(pc.match_substring_regex(text, _SECONDS_RE))
    errors.flag(given & ~ok, "free_seconds", text, _free_seconds_problem)
    return np.where(ok, _ints(text, ok), 0)


def _free_seconds_problem(value: str) -> str:
    if re.fullmatch(r"-\s*\d+(?:\.\d*)?", value):
        return "must not be negative"
    if re.fullmatch(r"\d{10,}", value):
        return "too large"
    return "must be whole seconds (an integer >= 0)"


def _ints(text: pa.Array, ok: np.ndarray) -> np.ndarray:
    safe = pc.if_else(pa.array(ok & _np(pc.not_equal(text, ""))), text, "0")
    return pc.cast(safe, pa.int64()).to_numpy(zero_copy_only=False)


def _epoch_seconds(text: pa.Array, missing_value: int, field: str, errors: _Errors) -> np.ndarray:
    """ISO date (00:00 UTC) or datetime (Z/offset; naive = UTC) → whole epoch seconds."""
    # A deck has a handful of distinct dates: parse each once, then gather per row.
    encoded = pc.dictionary_encode(text)
    row_of = encoded.indices.to_numpy(zero_copy_only=False)
    seconds, ok, fractional, unreal = (a[row_of] for a in _parse_instants(encoded.dictionary))
    given = ~_np(pc.equal(text, ""))
    bad = given & ~ok
    errors.flag(
        bad & ~fractional & ~unreal, field, text, "not an ISO date (YYYY-MM-DD) or datetime"
    )
    errors.flag(bad & unreal, field, text, "no such calendar date")
    errors.flag(bad & fractional, field, text, "effective times are whole seconds")
    return np.where(given & ok, seconds, missing_value).astype(np.int64)


def _parse_instants(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(epoch seconds, valid, has a fractional second, impossible calendar day) per value."""
    parts = pc.extract_regex(text, _DATE_RE)
    shaped = _np(parts.is_valid())
    frac = parts.field("frac")
    # A deck's effective time is a whole second; ".000" (JavaScript ISO output) is harmless.
    whole = _np(pc.match_substring_regex(frac, r"^(?:\.0+)?$"))
    date = parts.field("date")
    day = pc.strptime(pc.if_else(pa.array(shaped), date, "1970-01-01"), "%Y-%m-%d", "s")
    # strptime rolls 2024-02-30 over to March; a real date formats back to itself.
    real_day = _np(pc.equal(pc.strftime(day, "%Y-%m-%d"), date))
    tz = pc.replace_substring_regex(parts.field("tz"), r"^Z$", "+00:00")
    tz = pc.if_else(pc.equal(tz, ""), "+00:00", tz)
    hh = pc.if_else(pc.equal(parts.field("hh"), ""), "00", parts.field("hh"))
    mm = pc.if_else(pc.equal(parts.field("mm"), ""), "00", parts.field("mm"))
    ss = pc.if_else(pc.equal(parts.field("ss"), ""), "00", parts.field("ss"))
    iso = pc.binary_join_element_wise(date, "T", hh, ":", mm, ":", ss, tz, "")
    ok = shaped & whole & real_day
    iso = pc.if_else(pa.array(ok), iso, "1970-01-01T00:00:00+00:00")
    stamp = pc.strptime(iso, "%Y-%m-%dT%H:%M:%S%z", "s", error_is_null=True)
    ok &= _np(stamp.is_valid())
    seconds = pc.cast(pc.cast(stamp, pa.timestamp("s")), pa.int64()).fill_null(0).to_numpy()
    return seconds, ok, shaped & ~whole, shaped & whole & ~real_day


# ---------------------------------------------------------------------------------------------
# Loading and caching: the only I/O in this module
# ---------------------------------------------------------------------------------------------

_META_PREFIX = b"tollgate."


def default_cache_dir() -> Path:
    configured = os.environ.get("TOLLGATE_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "tollgate" / "decks"


def cache_key(data: bytes, currency: str, skip_invalid: bool) -> str:
    """Content address of a compiled deck: same bytes and options, same compiled table."""
    digest = hashlib.sha256(data)
    digest.update(f"\0{currency.strip().upper()}\0{int(skip_invalid)}\0{COMPILER_VERSION}".encode())
    return digest.hexdigest()


def load_deck(
    path: str | os.PathLike,
    *,
    currency: str = "USD",
    skip_invalid: bool = False,
    cache_dir: str | Path | None = None,
) -> RateDeck:
    """Read and compile a deck file, reusing `<cache_dir>/<sha256>.parquet` when present."""
    data = Path(path).read_bytes()
    key = cache_key(data, currency, skip_invalid)
    return _compiled(data, os.fspath(path), currency, skip_invalid, _cache_dir(cache_dir), key)


def load_deck_index(
    path: str | os.PathLike,
    *,
    currency: str = "USD",
    skip_invalid: bool = False,
    cache_dir: str | Path | None = None,
) -> tuple[DeckIndex, tuple[DeckRowError, ...]]:
    """A deck file indexed for rating, and the rows `skip_invalid` dropped.

    Reuses `<cache_dir>/<sha256>.index.arrow` when present: a memory-mapped, zero-copy read,
    so a hit costs hashing the file's bytes and little else (no CSV parsing, no Parquet).
    A miss compiles the deck as `load_deck` does (raising InvalidDeckError alike, and
    DeckIndexError for a deck that cannot be indexed) and writes both cache files.
    """
    data = Path(path).read_bytes()
    key = cache_key(data, currency, skip_invalid)
    directory = _cache_dir(cache_dir)
    cached = directory / f"{key}.index.arrow"
    hit = _read_cached_index(cached)
    if hit is not None:
        return hit
    # The bytes already hashed, not a second read: the file may change meanwhile, and the
    # index must match its key.
    deck = _compiled(data, os.fspath(path), currency, skip_invalid, directory, key)
    index = DeckIndex.build(deck.table, deck.currency)
    _write_cached_index(cached, index, deck.skipped)
    return index, deck.skipped


def _compiled(
    data: bytes, source: str, currency: str, skip_invalid: bool, directory: Path, key: str
) -> RateDeck:
    """The deck compiled from `data`, from `<directory>/<key>.parquet` when present."""
    cached = directory / f"{key}.parquet"
    deck = _read_cached(cached, source)
    if deck is None:
        deck = parse_deck(data, source=source, currency=currency, skip_invalid=skip_invalid)
        _write_cached(cached, deck)
    return deck


def _cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def _read_cached(cached: Path, source: str) -> RateDeck | None:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(cached)
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException):
        return None  # a torn or foreign file: recompile and overwrite it
    meta = table.schema.metadata or {}
    table = table.replace_schema_metadata(None)
    if not table.schema.equals(DECK_SCHEMA) or meta.get(_META_PREFIX + b"compiler") != (
        COMPILER_VERSION.encode()
    ):
        return None
    skipped = _skipped_from(meta)
    # The key is the content, so the same deck under another name is still a hit; report the
    # path it was loaded from now.
    return RateDeck(
        table=table.combine_chunks(),
        currency=meta[_META_PREFIX + b"currency"].decode(),
        source=source,
        skipped=skipped,
    )


def _write_cached(cached: Path, deck: RateDeck) -> None:
    import pyarrow.parquet as pq

    metadata = {
        _META_PREFIX + b"currency": deck.currency.encode(),
        _META_PREFIX + b"source": deck.source.encode(),
        _META_PREFIX + b"compiler": COMPILER_VERSION.encode(),
        _META_PREFIX + b"skipped": _skipped_json(deck.skipped),
    }
    table = deck.table.replace_schema_metadata(metadata)
    _replace_atomically(cached, lambda sink: pq.write_table(table, sink))


def _read_cached_index(cached: Path) -> tuple[DeckIndex, tuple[DeckRowError, ...]] | None:
    try:
        # Closing the map early is safe: Arrow's buffers keep the mapped region alive.
        with pa.memory_map(str(cached)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowException):
        return None  # missing, torn or foreign: rebuild and overwrite it
    meta = table.schema.metadata or {}
    if meta.get(_META_PREFIX + b"compiler") != COMPILER_VERSION.encode():
        return None
    try:
        index = DeckIndex.from_table(table)
        skipped = _skipped_from(meta)
    except (DeckIndexFormatError, ValueError, TypeError):
        return None  # an index of another format (a stale cache) or a foreign file
    if not index.deck.schema.equals(DECK_SCHEMA):
        return None
    return index, skipped


def _write_cached_index(cached: Path, index: DeckIndex, skipped: tuple[DeckRowError, ...]) -> None:
    table = index.to_table()
    metadata = {
        **table.schema.metadata,
        _META_PREFIX + b"compiler": COMPILER_VERSION.encode(),
        _META_PREFIX + b"skipped": _skipped_json(skipped),
    }
    table = table.replace_schema_metadata(metadata)

    def write(sink: BinaryIO) -> None:
        # Uncompressed (the IPC default), so the reader maps the buffers instead of copying.
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    _replace_atomically(cached, write)


def _skipped_json(skipped: tuple[DeckRowError, ...]) -> bytes:
    fields = [
        {"line": e.line, "field": e.field, "value": e.value, "message": e.message} for e in skipped
    ]
    return json.dumps(fields).encode()


def _skipped_from(meta: dict[bytes, bytes]) -> tuple[DeckRowError, ...]:
    stored = json.loads(meta.get(_META_PREFIX + b"skipped", b"[]"))
    return tuple(DeckRowError(**error) for error in stored)


def _replace_atomically(cached: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a cache file through a temporary one; warn, never fail, if that is impossible."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as sink:
                write(sink)
            # Readers see either no file or a complete one, even with concurrent writers.
            # Replacing (never rewriting in place) also keeps memory-mapped readers safe.
            os.replace(temporary, cached)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        # The cache only saves time; a read-only or full disk must not fail the import.
        warnings.warn(f"deck cache not written ({cached}): {error}", stacklevel=4)
