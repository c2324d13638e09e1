"""`mapped`: any switch's CSV (Sansay, Ribbon, Cisco, a partner's spreadsheet) read through
the switch's own column mapping (docs/formats.md).

A `ColumnMapping` says which header column holds each canonical member (MEMBERS), how times
are written (`time_format`, `timezone`), what the switch's dispositions mean (`dispositions`)
and which character separates fields (`delimiter`). It is stored with the switch
(`tollgate switch columns`) and given to `tollgate rate --format mapped --mapping FILE.json`
as JSON: `ColumnMapping.to_dict` / `from_dict`, whose errors name the member at fault.

Required: `callee`, `start`, and either `duration` (the billed talk seconds) or both `answer`
and `end`. Rules, in order:
- billsec: `duration` when mapped; fractional seconds (`64.512`) are rounded UP to the whole
  second (a started second is billed, as carriers' per-second billing does); else the seconds
  from `answer` to `end`, rounded up the same way (0 when the call was not answered).
- answer, when not mapped but `duration` is: `end - duration` when `end` is mapped, else
  `start` (a spreadsheet whose one time is the answered call's start), with `end` then
  `start + duration`. Nothing is derived for an unanswered call (duration 0).
- call_id, when not mapped: `caller;callee;start` exactly as the row wrote them, so the same row
  sent twice is the same call (a duplicate), and the id is stable across files.
- disposition: the mapping's `dispositions` (switch value -> canonical) first; else a SIP
  final response code (200-699) by formats.md §1.3 (`sip_disposition`); else the value itself,
  upper-cased (`NO ANSWER` read as NO_ANSWER), which must then be canonical. Not mapped: from
  billsec (ANSWERED when > 0, else NO_ANSWER). Any call with billsec > 0 is ANSWERED.
- times (`time_format`): `ISO` (ISO 8601; a time with a zone is exact, one without is a
  wall-clock time in `timezone`), `EPOCH` (seconds since 1970 UTC, decimals allowed),
  `EPOCH_MS` (milliseconds; with either, 0 is "never", as such switches write an unanswered
  call's answer), or a strptime pattern such as `%d/%m/%Y %H:%M:%S` (wall-clock
  in `timezone`, unless the pattern has `%z`). `timezone` defaults to the switch's; wall-clock
  times inside a DST gap are bad_time, never shifted silently (validate.parse_local_times).
- `amount`: a partner's billed price per call. Ingest ignores it; `read_amounts` reads it for
  reconciliation.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats.source import CdrFileError, read_csv_rows
from functions.ingest.numbers import NumberingPlan
from functions.ingest.validate import (
    TIME_FIELDS,
    MappedRows,
    blank_to_null,
    cast_or_null,
    empty_parsed_file,
    localise_times,
    validate,
)
from functions.shared.cdr import DISPOSITIONS, TRUNK_COLUMNS, UTC_MICROS, ParsedFile

NAME = "mapped"

# Canonical member -> what its column holds.
MEMBERS: dict[str, str] = {
    "call_id": "the switch's call id (optional: derived from caller, callee and start)",
    "caller": "calling number",
    "callee": "called number as the switch wrote it (required)",
    "start": "when the call started (required)",
    "answer": "when it was answered (empty: unanswered)",
    "end": "when it ended",
    "duration": "billed talk seconds (billsec); decimals are rounded up",
    "disposition": "the call's outcome in the switch's words (see dispositions)",
    "customer": "the customer account's name",
    "supplier": "the supplier account's name",
    "ingress_trunk": "trunk or gateway the call came in on",
    "ingress_ip": "IP address the call came in from",
    "egress_trunk": "trunk or gateway the call went out on",
    "egress_ip": "IP address the call went out to",
    "pdd_ms": "post-dial delay, whole milliseconds",
    "mos": "mean opinion score (1-5)",
    "amount": "the partner's billed price of the call (reconciliation only)",
}
TIME_MEMBERS = {"start": "start_time", "answer": "answer_time", "end": "end_time"}
# Members copied to the canonical field of the same name as the switch wrote them.
TEXT_MEMBERS = ("caller", "callee", "customer", "supplier", *TRUNK_COLUMNS, "pdd_ms", "mos")
TIME_FORMATS = ("ISO", "EPOCH", "EPOCH_MS")
SETTINGS = ("columns", "time_format", "timezone", "dispositions", "delimiter")
_MAX_NAME = 128
_SECOND = Decimal(1_000_000)  # micro-seconds
_EXACT_SECONDS = pa.decimal128(30, 6)


class MappingError(ValueError):
    """A column mapping that cannot be used; `member` names where it is wrong
    (`columns.callee`, `time_format`, `dispositions.486`...)."""

    def __init__(self, member: str, problem: str) -> None:
        super().__init__(f"{member}: {problem}")
        self.member = member


@dataclass(frozen=True)
class ColumnMapping:
    """Which header column holds each member, and how its values read (module doc)."""

    columns: Mapping[str, str] = field(default_factory=dict)
    time_format: str = "ISO"
    timezone: str | None = None  # None: the switch's
    dispositions: Mapping[str, str] = field(default_factory=dict)
    delimiter: str = ","

    @classmethod
    def from_dict(cls, data: Any, *, complete: bool = True) -> ColumnMapping:
        """The mapping of its JSON form; MappingError naming the member at fault.

        `complete`: the members a `mapped` file needs must be there (a Kamailio switch's
        mapping only renames its format's own defaults, so need not be)."""
        if not isinstance(data, Mapping):
            raise MappingError("mapping", "must be a JSON object")
        for key in data:
            if key not in SETTINGS:
                raise MappingError(str(key), f"unknown setting; known: {', '.join(SETTINGS)}")
        mapping = cls(
            columns=_columns(data.get("columns", {})),
            time_format=_time_format(data.get("time_format", "ISO")),
            timezone=_timezone(data.get("timezone")),
            dispositions=_dispositions(data.get("dispositions", {})),
            delimiter=_delimiter(data.get("delimiter", ",")),
        )
        if complete:
            mapping.check_complete()
        return mapping

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": dict(self.columns),
            "time_format": self.time_format,
            "timezone": self.timezone,
            "dispositions": dict(self.dispositions),
            "delimiter": self.delimiter,
        }

    def check_complete(self) -> None:
        """MappingError unless a `mapped` file can be billed with it (module doc)."""
        for member in ("callee", "start"):
            if member not in self.columns:
                raise MappingError(f"columns.{member}", "required")
        if "duration" not in self.columns:
            for member in ("answer", "end"):
                if member not in self.columns:
                    raise MappingError(
                        f"columns.{member}", "required unless duration (billsec) is mapped"
                    )

    def with_defaults(self, defaults: Mapping[str, str], header: list[str]) -> ColumnMapping:
        """This mapping over a format's default columns (kept where the header has them)."""
        columns = {m: c for m, c in defaults.items() if c in header} | dict(self.columns)
        return ColumnMapping(
            columns, self.time_format, self.timezone, self.dispositions, self.delimiter
        )


def _columns(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise MappingError("columns", "must be an object of member: header column")
    out = {}
    for member, column in value.items():
        if member not in MEMBERS:
            raise MappingError(f"columns.{member}", f"not a member; members: {', '.join(MEMBERS)}")
        if not isinstance(column, str) or not column.strip() or len(column) > _MAX_NAME:
            raise MappingError(f"columns.{member}", "must name a header column")
        out[member] = column.strip()
    return out


def _time_format(value: Any) -> str:
    if value in TIME_FORMATS:
        return value
    if not isinstance(value, str) or "%" not in value:
        raise MappingError(
            "time_format", f"{value!r} is not ISO, EPOCH, EPOCH_MS or a strptime pattern"
        )
    try:
        pc.strptime(pa.array(["x"]), value, "us", error_is_null=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise MappingError(
            "time_format", f"{value!r} is not a strptime pattern ({error})"
        ) from None
    return value


def _timezone(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise MappingError("timezone", f"{value!r} is not an IANA time zone") from None
    return value


def _dispositions(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise MappingError("dispositions", "must be an object of switch value: disposition")
    out = {}
    for given, canonical in value.items():
        if canonical not in DISPOSITIONS:
            raise MappingError(
                f"dispositions.{given}", f"{canonical!r} is not one of {', '.join(DISPOSITIONS)}"
            )
        out[str(given)] = canonical
    return out


def _delimiter(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1 or value in '"\r\n':
        raise MappingError("delimiter", f"{value!r} is not one character (not a quote)")
    return value


# --- SIP final responses ---------------------------------------------------------------

# formats.md §1.3: busy, ring-no-answer, caller's cancel; every other 3xx-6xx is FAILED.
SIP_DISPOSITIONS = {
    "486": "BUSY",
    "600": "BUSY",
    "408": "NO_ANSWER",
    "480": "NO_ANSWER",
    "487": "CANCEL",
}


def sip_disposition(code):
    """Canonical disposition of SIP final response codes (text); null where not one."""
    code = pc.utf8_trim_whitespace(code)
    final = pc.fill_null(pc.match_substring_regex(code, r"^[2-6][0-9][0-9]$"), False)
    keys = pa.array(list(SIP_DISPOSITIONS))
    named = pc.take(pa.array(list(SIP_DISPOSITIONS.values())), pc.index_in(code, keys))
    success = pc.starts_with(code, "2")
    kind = pc.coalesce(named, pc.if_else(success, "ANSWERED", "FAILED"))
    return pc.if_else(final, kind, pa.scalar(None, pa.string()))


# --- parsing -----------------------------------------------------------------------------


def parse(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    mapping: ColumnMapping | None = None,
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """A CSV with a header, read through the switch's `mapping` (module doc)."""
    if mapping is None:
        raise CdrFileError(
            f"{source}: a {NAME} switch needs its column mapping (tollgate switch columns)"
        )
    return parse_rows(data, mapping, timezone=timezone, source=source, numbering=numbering)


def parse_rows(
    data: bytes,
    mapping: ColumnMapping,
    *,
    timezone: str,
    source: str,
    numbering: NumberingPlan | None,
    defaults: Mapping[str, str] | None = None,
) -> ParsedFile:
    """`parse`, with a format's `defaults` (member -> column) under the mapping's columns."""
    rows = read_csv_rows(data, source=source, header_line=True, delimiter=mapping.delimiter)
    header = rows.table.column_names
    if not header:  # nothing in the file
        return empty_parsed_file()
    if defaults is not None:
        mapping = mapping.with_defaults(defaults, header)
    try:
        mapping.check_complete()
    except MappingError as error:
        raise CdrFileError(f"{source}: the column mapping is incomplete: {error}") from None
    check_header(header, mapping.columns, source)
    fields = map_fields(rows.table, mapping, timezone=mapping.timezone or timezone)
    fields["line"] = rows.line
    mapped = MappedRows(
        fields=pa.table(fields),
        raw=rows.raw,
        rejected=rows.rejected,
    )
    return validate(mapped, numbering)


def check_header(header: list[str], columns: Mapping[str, str], source: str) -> None:
    """CdrFileError unless the header names each mapped column exactly once."""
    missing = [f"{c} ({m})" for m, c in columns.items() if c not in header]
    if missing:
        raise CdrFileError(f"{source}: header lacks mapped column(s) {', '.join(missing)}")
    twice = sorted({c for c in columns.values() if header.count(c) > 1})
    if twice:
        raise CdrFileError(f"{source}: header names {', '.join(twice)} more than once")


def map_fields(table: pa.Table, mapping: ColumnMapping, *, timezone: str) -> dict[str, Any]:
    """MappedRows fields (bar `line`) of a table of text columns, by the module's rules."""
    n = table.num_rows

    def text(member: str):
        column = mapping.columns.get(member)
        return table[column] if column else None

    blank = pa.repeat(pa.scalar("", pa.string()), n)
    fields: dict[str, Any] = {}
    for member in TEXT_MEMBERS:
        value = text(member)
        if value is not None:
            fields[member] = value
    fields.setdefault("caller", blank)
    fields.setdefault("customer", blank)
    fields.setdefault("supplier", blank)
    times = read_times(
        {TIME_MEMBERS[m]: text(m) for m in TIME_MEMBERS}, mapping.time_format, timezone
    )
    for name, (instants, problem, written) in times.items():
        fields[name], fields[f"{name}_problem"], fields[f"{name}_text"] = instants, problem, written
    duration = text("duration")
    if duration is not None:
        exact = cast_or_null(pc.utf8_trim_whitespace(duration), _EXACT_SECONDS)
        _derive_answer(fields, exact, "answer" in mapping.columns, "end" in mapping.columns)
        whole = pc.cast(pc.ceil(exact), pa.int64())
        # A value that is not a number stays as written: validation quarantines it, quoted.
        fields["billsec"] = pc.coalesce(pc.cast(whole, pa.string()), duration)
    else:
        fields["billsec"] = _seconds_between(fields["answer_time"], fields["end_time"])
    fields["disposition"] = read_dispositions(text("disposition"), mapping.dispositions, n)
    call_id = text("call_id")
    if call_id is None:
        call_id = pc.binary_join_element_wise(
            fields["caller"], fields["callee"], fields["start_time_text"], ";"
        )
    fields["call_id"] = call_id
    return fields


def read_times(
    text: dict[str, Any], time_format: str, timezone: str
) -> dict[str, tuple[Any, Any, Any]]:
    """Per time field: (UTC instants, problem, text as written); an unmapped field is all null
    with empty text."""
    n = max(len(v) for v in text.values() if v is not None)
    written = {
        name: pc.fill_null(v, "") if v is not None else pa.repeat(pa.scalar("", pa.string()), n)
        for name, v in text.items()
    }
    trimmed = {name: blank_to_null(pc.utf8_trim_whitespace(v)) for name, v in written.items()}
    none = pa.nulls(n, pa.string())
    if time_format in ("EPOCH", "EPOCH_MS"):
        # Micro-seconds per unit written.
        unit = _SECOND if time_format == "EPOCH" else Decimal(1000)
        out = {}
        for name, value in trimmed.items():
            # 0 is how epoch-writing switches say "never" (an unanswered call's answer).
            unset = pc.fill_null(pc.equal(value, "0"), False)
            exact = cast_or_null(pc.if_else(unset, None, value), _EXACT_SECONDS)
            micros = pc.multiply(exact, pa.scalar(unit, pa.decimal128(7, 0)))
            out[name] = (_instant(micros), none, pc.if_else(unset, "", written[name]))
        return out
    zoned: dict[str, Any] = {}
    naive: dict[str, Any] = {}
    for name, value in trimmed.items():
        if time_format == "ISO":
            has_zone = pc.fill_null(pc.match_substring_regex(value, r"(Z|[+-]\d\d:?\d\d)$"), False)
            zoned[name] = cast_or_null(pc.if_else(has_zone, value, None), UTC_MICROS)
            naive[name] = cast_or_null(pc.if_else(has_zone, None, value), pa.timestamp("us"))
        elif "%z" in time_format:
            zoned[name] = pc.strptime(value, time_format, "us", error_is_null=True)
            naive[name] = pa.nulls(n, pa.timestamp("us"))
        else:
            zoned[name] = pa.nulls(n, UTC_MICROS)
            naive[name] = pc.strptime(value, time_format, "us", error_is_null=True)
    local = localise_times(naive, timezone)
    return {
        name: (
            pc.coalesce(pc.cast(zoned[name], UTC_MICROS), local[name][0]),
            local[name][1],
            written[name],
        )
        for name in TIME_FIELDS
    }


def read_dispositions(text, dispositions: Mapping[str, str], n: int):
    """Canonical dispositions by the module's rule; "" where the switch wrote none (then
    validation derives it from billsec)."""
    if text is None:
        return pa.repeat(pa.scalar("", pa.string()), n)
    value = pc.utf8_trim_whitespace(pc.fill_null(text, ""))
    upper = pc.replace_substring(pc.utf8_upper(value), "NO ANSWER", "NO_ANSWER")
    chosen = pc.coalesce(sip_disposition(value), upper)
    if dispositions:
        keys = pa.array(list(dispositions), pa.string())
        named = pc.take(pa.array(list(dispositions.values())), pc.index_in(value, keys))
        chosen = pc.coalesce(named, chosen)
    return chosen


def _derive_answer(fields: dict[str, Any], duration, has_answer: bool, has_end: bool) -> None:
    """Answer (and end) of a row whose mapping gives a duration but no answer column."""
    if has_answer:
        return
    talked = pc.fill_null(pc.greater(duration, pa.scalar(Decimal(0), _EXACT_SECONDS)), False)
    span = pc.cast(pc.multiply(duration, pa.scalar(_SECOND, pa.decimal128(7, 0))), pa.int64())
    span = pc.cast(span, pa.duration("us"))
    if has_end:
        answer = pc.subtract(fields["end_time"], span)
    else:
        answer = fields["start_time"]
        end = pc.add(fields["start_time"], span)
        fields["end_time"] = pc.if_else(talked, end, fields["start_time"])
        fields["end_time_text"] = _iso(fields["end_time"])
    answer = pc.if_else(talked, answer, pa.scalar(None, UTC_MICROS))
    fields["answer_time"] = answer
    fields["answer_time_text"] = _iso(answer)


def _seconds_between(answer, end):
    """Whole seconds from answer to end, rounded up, as text; "0" when unanswered, null when
    the end is unknown (validation then reports the billsec missing)."""
    micros = pc.cast(pc.cast(pc.subtract(end, answer), pa.duration("us")), pa.int64())
    seconds = pc.divide(pc.add(micros, 999_999), 1_000_000)
    # Negative spans (end before answer) are quarantined on the times, not here.
    seconds = pc.if_else(pc.fill_null(pc.less(micros, 0), False), 0, seconds)
    text = pc.cast(seconds, pa.string())
    unanswered = pc.is_null(answer)
    return pc.if_else(unanswered, "0", text)


def _instant(micros):
    whole = cast_or_null(micros, pa.int64())  # a fraction of a microsecond: not a time
    return whole.cast(UTC_MICROS)


def _iso(instants):
    # Arrow's %S writes the seconds with their fraction (microseconds here).
    return pc.fill_null(pc.strftime(instants, "%Y-%m-%dT%H:%M:%SZ"), "")


# --- the partner's amounts ---------------------------------------------------------------

AMOUNT_TYPE = pa.decimal128(18, 6)
AMOUNTS_SCHEMA = pa.schema([pa.field("line", pa.int64()), pa.field("amount", AMOUNT_TYPE)])


def read_amounts(data: bytes, mapping: ColumnMapping, *, source: str = "<file>") -> pa.Table:
    """Per row the mapping's CSV holds: its physical line and its `amount` column (decimal,
    rounded half-up to 6 places; null where empty; CdrFileError naming the line where it is no
    number). Lines are those of
    `parse` (header = line 1), so a reconciliation joins them to the parsed CDRs on `line`;
    rows the CSV reader rejected are absent. MappingError when `amount` is not mapped."""
    column = mapping.columns.get("amount")
    if column is None:
        raise MappingError("columns.amount", "required to read a partner's amounts")
    rows = read_csv_rows(data, source=source, header_line=True, delimiter=mapping.delimiter)
    if not rows.table.column_names:
        return AMOUNTS_SCHEMA.empty_table()
    if column not in rows.table.column_names:
        raise CdrFileError(f"{source}: header lacks mapped column {column} (amount)")
    value = blank_to_null(pc.utf8_trim_whitespace(rows.table[column]))
    exact = cast_or_null(value, pa.decimal128(38, 12))
    # A claim's money that is no number is refused, naming it (a generic file's amount column
    # is too: functions/reconcile/sides.py); an empty cell is a call without a price.
    bad = pc.and_(pc.is_valid(value), pc.is_null(exact))
    if pc.any(bad).as_py():
        where = pc.index(bad, True).as_py()
        line, text = rows.line[where].as_py(), value[where].as_py()
        raise CdrFileError(
            f"{source}: line {line}: field {column} (amount): {text!r} is not a decimal amount"
        )
    rounded = pc.round(exact, ndigits=6, round_mode="half_up")
    amount = cast_or_null(rounded, AMOUNT_TYPE)
    return pa.table({"line": rows.line, "amount": amount}, schema=AMOUNTS_SCHEMA)
