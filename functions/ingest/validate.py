"""The checks every CDR passes after its format has mapped switch fields onto canonical names.

A format hands over `MappedRows`: one row per input CDR, fields still as the switch wrote them
(text), plus the times it has already parsed. `validate` decides, column-wise, which rows become
canonical CDRs and which are quarantined, with exactly one reason per quarantined row.

Checks, in priority order (a row is quarantined for the FIRST check it fails):
0. field_too_long: a field over MAX_FIELD_BYTES (4 KiB). CSV readers check every field of the
   row as the switch wrote it (`read_csv_rows`), this check the fields a format mapped.
1. missing_field: call_id, callee, start_time or billsec empty.
2. bad_number: callee not dialable after `normalise_numbers` (e.g. more than 32 digits).
3. bad_time: a time present but unparsable (start, answer, end), then order:
   start <= answer <= end (end >= start when unanswered).
4. bad_duration: billsec (or pdd_ms when given) not a whole number >= 0; billsec > 0 without an
   answer time (the switch billed talk time on a call it says was never answered).
5. bad_disposition: disposition not one of DISPOSITIONS after the format's mapping.
6. duplicate_call_id: the same attempt (call id, start and leg: `attempt_keys`) occurred on
   an earlier row of the same file. The FIRST row wins whether or not it was itself
   accepted, so a re-sent CDR never slips in behind a quarantined original; a row whose start
   cannot be read claims its whole call id (which attempt it was cannot be told). Two
   attempts of one call (route advance: vendor A failed, vendor B answered) are both kept.

The quarantine keeps each row's raw text, bounded by `cut_raw`; a value quoted in a detail is
shortened to its first 64 characters.

Disposition rule: a row with billsec > 0 is ANSWERED whatever the switch's final cause said
(talk time was had; e.g. FreeSWITCH MEDIA_TIMEOUT after answer). An empty disposition becomes
ANSWERED when billsec > 0, else NO_ANSWER.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.numbers import NumberingPlan, normalise_numbers
from functions.shared.cdr import (
    ATTEMPT_SCHEMA,
    CDR_SCHEMA,
    DISPOSITIONS,
    MOS_TYPE,
    QUARANTINE_SCHEMA,
    UTC_MICROS,
    ParsedFile,
    attempt_key_texts,
    attempt_legs,
)

TIME_FIELDS = ("start_time", "answer_time", "end_time")
TEXT_FIELDS = ("call_id", "caller", "callee", "billsec", "disposition", "customer", "supplier")
REQUIRED_FIELDS = ("call_id", "callee", "start_time", "billsec")
# Where the call came in and went out, as the switch named it; optional in `MappedRows`.
ROUTE_FIELDS = ("ingress_trunk", "ingress_ip", "egress_trunk", "egress_ip", "egress_leg")

# Raw text of rows, by position in `MappedRows.fields`; only called for quarantined rows.
RawText = Callable[[np.ndarray], pa.Array]

# No CDR field is this long (ids, numbers, names, times); a longer one is a corrupt row, and
# one such field must not blow up the tables (or a detail) that carry it.
MAX_FIELD_BYTES = 4096
# The quarantine keeps a row's raw text whole up to RAW_WHOLE_BYTES (a FreeSWITCH JSON record
# runs to some kilobytes); beyond that, or for a field_too_long row, it keeps the first
# RAW_PREFIX_BYTES and its detail says so. The file itself keeps every byte.
RAW_WHOLE_BYTES = 64 * 1024
RAW_PREFIX_BYTES = 4096
_SHOWN_CHARS = 64


# Threads that work on one part's columns at once (Arrow kernels release the GIL). A caller
# whose own stages keep the cores busy while a part is parsed (tollgate rate's pipeline)
# has them worked on one after another: more threads only contend for the same two cores
# (the rate bench was 40-90 ms slower with them).
_COLUMN_THREADS: ContextVar[int] = ContextVar("column_threads", default=2)


@contextmanager
def columns_one_at_a_time() -> Iterator[None]:
    """Within the block, parts parsed on this thread have their columns worked on in turn."""
    token = _COLUMN_THREADS.set(1)
    try:
        yield
    finally:
        _COLUMN_THREADS.reset(token)


def column_pool() -> Executor:
    """Where a part's independent column jobs run: a pool of threads, or (see
    `columns_one_at_a_time`) the calling thread, each job when it is submitted."""
    threads = _COLUMN_THREADS.get()
    return ThreadPoolExecutor(max_workers=threads) if threads > 1 else _InThisThread()


class _InThisThread(Executor):
    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # re-raised by result(), as a pool's would be
            future.set_exception(error)
        return future


@dataclass(frozen=True, slots=True)
class MappedRows:
    """A format's output before validation.

    `fields` has `line` (int64), the TEXT_FIELDS and the optional `pdd_ms`, `mos` and
    ROUTE_FIELDS as strings exactly as the switch wrote them ("" or null = absent), and for
    each time field
    both `<field>` (parsed,
    timestamp[us, UTC], null when absent or unparsable) and `<field>_text` (what the switch
    wrote, quoted in details). An optional `<field>_problem` string says why a time failed
    (e.g. a local time inside a DST gap); absent, the detail is "is not a valid time".
    `rejected` are rows the format itself could not map (column_count, malformed), already in
    QUARANTINE_SCHEMA.
    """

    fields: pa.Table
    raw: RawText
    rejected: pa.Table


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def empty_parsed_file() -> ParsedFile:
    return ParsedFile(cdrs=CDR_SCHEMA.empty_table(), quarantine=empty_quarantine(), rows_in=0)


def validate(rows: MappedRows, numbering: NumberingPlan | None = None) -> ParsedFile:
    """Accept or quarantine every mapped row; see the module docstring for the rules.

    `numbering` is the switch's plan for turning what it wrote into E.164 callees.
    """
    fields = rows.fields
    n = fields.num_rows
    dialled = fields["callee"]
    if isinstance(dialled, pa.ChunkedArray):
        dialled = dialled.combine_chunks()
    route = {
        name: blank_to_null(fields[name])
        if name in fields.column_names
        else pa.nulls(n, pa.string())
        for name in ROUTE_FIELDS
    }
    leg = attempt_legs(pa.table(route))
    with column_pool() as pool:
        # Arrow kernels release the GIL: the independent column checks share the two cores.
        callee_job = pool.submit(normalise_numbers, dialled, numbering)
        dup_job = pool.submit(_attempts, fields["call_id"], fields["start_time"], leg)
        billsec_job = pool.submit(parse_whole_numbers, fields["billsec"])
        pdd_job = pool.submit(_pdd, fields)
        mos_job = pool.submit(parse_mos, fields["mos"] if "mos" in fields.column_names else None, n)
        callee = callee_job.result()
        billsec = billsec_job.result()
        pdd_ms = pdd_job.result()
        mos = mos_job.result()
        repeated, call_ids, keys, attempts = dup_job.result()

    checks = _Checks(n)
    for name in fields.column_names:
        column = fields[name]
        if not pa.types.is_string(column.type) or name.endswith("_problem"):
            continue
        long = over_limit(column)
        if long is not None:
            field = name.removesuffix("_text")
            checks.add("field_too_long", field, long, too_long_detail)
    for name in REQUIRED_FIELDS:
        text = fields[f"{name}_text" if name in TIME_FIELDS else name]
        checks.add("missing_field", name, _is_blank(text), lambda f, v: f"{f} is empty")
    checks.add(
        "bad_number",
        "callee",
        pc.is_null(callee),
        lambda f, v: f"{f}: {quoted(v)} is not a dialable number",
    )
    start, answer, end = (fields[f] for f in TIME_FIELDS)
    for name in TIME_FIELDS:
        unparsed = pc.and_(pc.is_null(fields[name]), pc.invert(_is_blank(fields[f"{name}_text"])))
        problem = f"{name}_problem"
        checks.add(
            "bad_time",
            name,
            unparsed,
            lambda f, v: f"{f}: {quoted(v)} is not a valid time",
            detail_column=problem if problem in fields.column_names else None,
        )
    checks.add(
        "bad_time",
        "answer_time",
        pc.less(answer, start),
        lambda f, v: f"{f}: {quoted(v)} is before start_time",
    )
    checks.add(
        "bad_time",
        "end_time",
        pc.less(end, pc.coalesce(answer, start)),
        lambda f, v: f"{f}: {quoted(v)} is before the call was answered or started",
    )
    checks.add(
        "bad_duration",
        "billsec",
        pc.is_null(billsec),
        lambda f, v: f"{f}: {quoted(v)} is not a whole number of seconds",
    )
    checks.add(
        "bad_duration",
        "billsec",
        pc.less(billsec, 0),
        lambda f, v: f"{f}: {quoted(v)} is negative",
    )
    if "pdd_ms" in fields.column_names:
        bad_pdd = pc.or_(pc.is_null(pdd_ms), pc.less(pdd_ms, 0))
        given = pc.invert(_is_blank(fields["pdd_ms"]))
        checks.add(
            "bad_duration",
            "pdd_ms",
            pc.and_(given, bad_pdd),
            lambda f, v: f"{f}: {quoted(v)} is not a whole number of milliseconds >= 0",
        )
    checks.add(
        "bad_duration",
        "billsec",
        pc.and_(pc.greater(billsec, 0), pc.is_null(answer)),
        lambda f, v: f"{f}: {quoted(v)} seconds billed but the call has no answer_time",
    )
    disposition = _disposition(fields["disposition"], billsec)
    checks.add(
        "bad_disposition",
        "disposition",
        pc.invert(pc.is_in(disposition, pa.array(DISPOSITIONS))),
        lambda f, v: f"{f}: {quoted(v)} is not one of {', '.join(DISPOSITIONS)}",
    )
    checks.add(
        "duplicate_call_id",
        "call_id",
        repeated,
        lambda f, v: f"{f}: {quoted(v)} already occurred earlier in the file",
    )

    failed = checks.failed()
    # A callee that needed no rewriting IS what the switch sent: one column, filtered once.
    same_text = callee is dialled
    columns = {
        "line": fields["line"],
        "call_id": fields["call_id"],
        "caller": blank_to_null(fields["caller"]),
        "callee": callee,
        "start_time": start,
        "answer_time": answer,
        "end_time": end,
        "billsec": billsec,
        "disposition": disposition,
        "customer": blank_to_null(fields["customer"]),
        "supplier": blank_to_null(fields["supplier"]),
        "pdd_ms": pdd_ms,
        "mos": mos,
    }
    if not same_text:
        # As sent; a blank one never gets here (missing_field), so it needs no nulling.
        columns["dialled"] = dialled
    cdrs = pa.table(columns | route)
    if failed.any():
        cdrs = _without(cdrs, failed)
    if same_text:
        cdrs = cdrs.append_column("dialled", cdrs["callee"])
    cdrs = cdrs.select(CDR_SCHEMA.names).cast(CDR_SCHEMA)
    quarantine = cut_raw(pa.concat_tables([rows.rejected, checks.quarantine(fields, rows.raw)]))
    if quarantine.num_rows:
        quarantine = quarantine.take(pc.sort_indices(quarantine["line"]))
    return ParsedFile(
        cdrs=cdrs,
        quarantine=quarantine,
        rows_in=n + rows.rejected.num_rows,
        call_ids=call_ids,
        attempts=attempts,
        call_id_keys=keys,
    )


def _without(table: pa.Table, failed: np.ndarray) -> pa.Table:
    """`table` without the `failed` rows. A few (the usual file) are cut out with zero-copy
    slices joined into one copy per column: a third of what Arrow's filter costs."""
    bad = np.flatnonzero(failed)
    if len(bad) > len(failed) // 64:
        return table.filter(pa.array(~failed))
    starts = np.concatenate([[0], bad + 1]).tolist()
    ends = np.concatenate([bad, [len(failed)]]).tolist()
    pieces = [table.slice(a, b - a) for a, b in zip(starts, ends, strict=True) if b > a]
    return pa.concat_tables(pieces).combine_chunks() if pieces else table.slice(0, 0)


class _Checks:
    """First-failure bookkeeping: one reason, field and detail per quarantined row."""

    def __init__(self, n: int) -> None:
        self._first = np.zeros(n, np.int16)  # 0 = passed so far, k = failed check k
        self._checks: list[tuple[str, str, Callable[[str, str], str], str | None]] = []

    def add(
        self,
        reason: str,
        field: str,
        mask: np.ndarray | pa.Array | pa.ChunkedArray,
        detail: Callable[[str, str], str],
        *,
        detail_column: str | None = None,
    ) -> None:
        """Check `reason` fails the rows `mask` marks: a numpy mask, or Arrow booleans (null
        passes), which are made a numpy mask only when one row fails (most checks pass)."""
        self._checks.append((reason, field, detail, detail_column))
        if not isinstance(mask, np.ndarray):
            if not pc.any(mask).as_py():
                return
            mask = numpy_mask(mask)
        if mask.any():
            self._first[mask & (self._first == 0)] = len(self._checks)

    def failed(self) -> np.ndarray:
        return self._first > 0

    def quarantine(self, fields: pa.Table, raw: RawText) -> pa.Table:
        positions = np.flatnonzero(self._first)
        if len(positions) == 0:
            return empty_quarantine()
        which = self._first[positions]
        order = np.argsort(which, kind="stable")
        positions, which = positions[order], which[order]
        reasons, names, details = [], [], []
        # One Python string per QUARANTINED row only: accepted rows never leave Arrow.
        for k in np.unique(which):
            reason, field, detail, detail_column = self._checks[k - 1]
            at = pa.array(positions[which == k])
            source = fields[f"{field}_text" if field in TIME_FIELDS else field]
            values = source.take(at).to_pylist()
            problems = fields[detail_column].take(at).to_pylist() if detail_column else None
            for i, value in enumerate(values):
                if problems and problems[i]:
                    details.append(f"{field}: {quoted(value)} {problems[i]}")
                else:
                    details.append(detail(field, "" if value is None else value))
            reasons += [reason] * len(values)
            names += [field] * len(values)
        table = pa.table(
            {
                "line": fields["line"].take(pa.array(positions)),
                "reason": pa.array(reasons, pa.string()),
                "field": pa.array(names, pa.string()),
                "detail": pa.array(details, pa.string()),
                "raw": raw(positions),
            }
        )
        return table.cast(QUARANTINE_SCHEMA)


def over_limit(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Rows whose text is over MAX_FIELD_BYTES; None when none is (nearly every column)."""
    size = pc.binary_length(text)
    longest = pc.max(size).as_py()
    if longest is None or longest <= MAX_FIELD_BYTES:
        return None
    return numpy_mask(pc.greater(size, MAX_FIELD_BYTES))


def too_long_detail(field: str, value: str) -> str:
    size = len(value.encode())
    return f"{field}: {size:,} bytes, over the {MAX_FIELD_BYTES:,} a field may have"


def cut_raw(quarantine: pa.Table) -> pa.Table:
    """The quarantine with raw text bounded (see RAW_WHOLE_BYTES): a cut row keeps the first
    RAW_PREFIX_BYTES of its text (ending on a whole character), and its detail ends with
    `(raw text cut to its first N of M bytes)`."""
    if not quarantine.num_rows:
        return quarantine
    size = pc.binary_length(quarantine["raw"])
    long = pc.greater(size, RAW_WHOLE_BYTES)
    if pc.any(pc.equal(quarantine["reason"], "field_too_long")).as_py():
        prefix_over = pc.greater(size, RAW_PREFIX_BYTES)
        too_long = pc.equal(quarantine["reason"], "field_too_long")
        long = pc.or_(long, pc.and_(too_long, prefix_over))
    cut = numpy_mask(long)
    if not cut.any():
        return quarantine
    rows = pa.array(np.flatnonzero(cut))
    raws, details = [], []
    for raw, detail in zip(
        quarantine["raw"].take(rows).to_pylist(),
        quarantine["detail"].take(rows).to_pylist(),
        strict=True,
    ):
        whole = raw.encode()
        kept = whole[:RAW_PREFIX_BYTES].decode("utf-8", "ignore")
        raws.append(kept)
        size = len(kept.encode())
        details.append(f"{detail} (raw text cut to its first {size:,} of {len(whole):,} bytes)")
    mask = pa.array(cut)
    for name, values in (("raw", raws), ("detail", details)):
        column = quarantine[name].combine_chunks()
        replaced = pc.replace_with_mask(column, mask, pa.array(values, pa.string()))
        quarantine = quarantine.set_column(
            quarantine.schema.get_field_index(name), quarantine.schema.field(name), replaced
        )
    return quarantine


def quoted(value: str) -> str:
    """A value as a detail quotes it: repr, shortened when long (it may be kilobytes)."""
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}… ({len(value):,} characters)"


def numpy_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean numpy mask, null counting as False (a null comparison proves nothing)."""
    filled = pc.fill_null(values, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks() if filled.num_chunks != 1 else filled.chunk(0)
    return filled.to_numpy(zero_copy_only=False)


def _is_blank(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.fill_null(pc.equal(text, ""), True)


def blank_to_null(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Empty strings as nulls (see `_valid_where`: the text keeps its buffers)."""
    if isinstance(text, pa.ChunkedArray):
        return pa.chunked_array([blank_to_null(c) for c in text.chunks], text.type)
    kept = pc.fill_null(pc.not_equal(text, ""), False)
    if pc.all(kept).as_py():
        return text
    return _valid_where(text, kept)


def _valid_where(text: pa.Array, kept: pa.Array) -> pa.Array:
    """`text` with nulls where `kept` (booleans, no nulls, false where `text` is null) is
    false. Only the validity bitmap changes: the text keeps its buffers (if_else would copy
    every string of the column to null a few)."""
    if text.offset or kept.offset or not pa.types.is_string(text.type):  # bits would not line up
        return pc.if_else(kept, text, pa.scalar(None, text.type))
    _validity, offsets, data = text.buffers()
    # `kept` (a fresh array, offset 0, no nulls) has its values bit-packed as a validity map.
    return pa.Array.from_buffers(text.type, len(text), [kept.buffers()[1], offsets, data])


def _pdd(fields: pa.Table) -> pa.Array | pa.ChunkedArray:
    if "pdd_ms" not in fields.column_names:
        return pa.nulls(fields.num_rows, pa.int64())
    return parse_whole_numbers(fields["pdd_ms"])


# The scale a MOS is read at before it is rounded (a switch may write more places than 2).
_MOS_READ = pa.decimal128(30, 12)
_MOS_LOWEST, _MOS_HIGHEST = 1, 5


def parse_mos(text: pa.Array | pa.ChunkedArray | None, n: int) -> pa.Array | pa.ChunkedArray:
    """Mean opinion scores as the switch wrote them (`4.41`), rounded half-up to 2 places, as
    MOS_TYPE; null where absent, not a decimal number, or outside 1 to 5 (MOS's scale).

    A MOS says how the call sounded, not what it costs: one the switch wrote badly is
    dropped, never a reason to refuse billing the call.
    """
    if text is None:
        return pa.nulls(n, MOS_TYPE)
    exact = cast_or_null(pc.utf8_trim_whitespace(blank_to_null(text)), _MOS_READ)
    rounded = pc.round(exact, ndigits=2, round_mode="half_up")
    lowest = pa.scalar(Decimal(_MOS_LOWEST), _MOS_READ)
    highest = pa.scalar(Decimal(_MOS_HIGHEST), _MOS_READ)
    inside = pc.and_(pc.greater_equal(rounded, lowest), pc.less_equal(rounded, highest))
    kept = pc.if_else(pc.fill_null(inside, False), rounded, pa.scalar(None, _MOS_READ))
    return pc.cast(kept, MOS_TYPE)


def _disposition(text: pa.Array | pa.ChunkedArray, billsec) -> pa.Array | pa.ChunkedArray:
    answered = pc.fill_null(pc.greater(billsec, 0), False)
    blank = _is_blank(text)
    relabel = pc.and_(answered, pc.not_equal(text, "ANSWERED"))
    if not pc.any(blank).as_py() and not pc.any(relabel).as_py():
        return text  # what the switch wrote already follows the rule: no new strings
    derived = pc.if_else(pc.greater(billsec, 0), "ANSWERED", "NO_ANSWER")
    given = pc.if_else(blank, derived, text)
    return pc.if_else(answered, "ANSWERED", given)


def parse_whole_numbers(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Decimal integers (optional sign) as int64; null where absent or not an integer.

    Plain digit strings (nearly every row) are cast in one pass; only the others (signs,
    blanks, junk) go through the exact cast-or-null, so a few bad values cost a few rows'
    work rather than a bisection of the whole column.
    """
    text = blank_to_null(text)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    plain = pc.fill_null(pc.ascii_is_decimal(text), False)
    if pc.all(plain).as_py() or len(text) < 1024:
        return cast_or_null(text, pa.int64())
    others = pc.invert(plain)
    try:
        digits = pc.cast(pc.if_else(plain, text, pa.scalar("0")), pa.int64())
    except pa.ArrowInvalid:  # beyond int64: let the exact path decide row by row
        return cast_or_null(text, pa.int64())
    rest = cast_or_null(text.filter(others), pa.int64())
    return pc.replace_with_mask(digits, others, rest)


_CAST_BLOCK = 4096
_RETRIES_PER_BLOCK = 8
# Whole-column casts tried again after nulling the value Arrow names: a bad value tends to
# repeat (a switch's placeholder, a bad export), and nulling every copy of it costs one
# comparison, where casting in blocks costs a second cast of the whole column.
_WHOLE_RETRIES = 2
_UNPARSED = "Failed to parse string: '"


def cast_or_null(values: pa.Array | pa.ChunkedArray, target: pa.DataType):
    """`pc.cast` that yields null for the values that do not convert, instead of failing.

    The whole-column cast is the fast path. When it fails, the value Arrow names in its
    error is nulled (with every copy of it) and the whole column cast again, a few times;
    then the column is cast in blocks, where the same is done block by block, so a few bad
    values cost a few small casts. Acceptance never depends on what else is in the file:
    exactly the values Arrow's cast accepts are accepted.
    """
    if isinstance(values, pa.ChunkedArray):
        return pa.chunked_array([cast_or_null(c, target) for c in values.chunks], type=target)
    cast, values = _cast_nulling_named(values, target, 1 + _WHOLE_RETRIES)
    if cast is not None:
        return cast
    if len(values) <= _CAST_BLOCK:
        return _cast_block(values, target)
    blocks = range(0, len(values), _CAST_BLOCK)
    return pa.concat_arrays([_cast_block(values.slice(at, _CAST_BLOCK), target) for at in blocks])


def _cast_nulling_named(
    values: pa.Array, target: pa.DataType, tries: int
) -> tuple[pa.Array | None, pa.Array]:
    """(the cast, or None when `tries` casts failed or an error named no value of `values`;
    `values` with every copy of each value an error named nulled)."""
    for _ in range(tries):
        try:
            return pc.cast(values, target), values
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            unparsed = _unparsed_value(str(error), target)
        if unparsed is None or _cast_one(pa.scalar(unparsed), target) is not None:
            break  # the message named no value, or none that fails on its own
        same = pc.equal(values, unparsed)
        if not pc.any(same).as_py():  # the message did not name a value of these
            break
        values = _valid_where(values, pc.invert(pc.fill_null(same, True)))
    return None, values


def _cast_block(values: pa.Array, target: pa.DataType) -> pa.Array:
    cast, values = _cast_nulling_named(values, target, _RETRIES_PER_BLOCK)
    return cast if cast is not None else _bisect(values, target)


def _unparsed_value(message: str, target: pa.DataType) -> str | None:
    """The value in Arrow's "Failed to parse string: '<value>' as a scalar of type …" (the
    last such text ends it: the value itself may hold the same words)."""
    end = message.rfind(f"' as a scalar of type {target}")
    if not message.startswith(_UNPARSED) or end < len(_UNPARSED):
        return None
    return message[len(_UNPARSED) : end]


def _bisect(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast halves until the failing values are isolated (the general, slower search)."""
    try:
        return pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if len(values) <= 16:
        return pa.array([_cast_one(v, target) for v in values], type=target)
    half = len(values) // 2
    return pa.concat_arrays(
        [_bisect(values.slice(0, half), target), _bisect(values.slice(half), target)]
    )


def _cast_one(value: pa.Scalar, target: pa.DataType):
    try:
        return pc.cast(pa.array([value.as_py()], value.type), target)[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def parse_iso_times(text: pa.Array | pa.ChunkedArray):
    """ISO 8601 instants that carry a zone (`Z`, `+02:00`, `+0200`) as UTC; null otherwise."""
    return cast_or_null(blank_to_null(text), UTC_MICROS)


def parse_local_times(
    text: dict[str, pa.Array | pa.ChunkedArray], timezone: str
) -> dict[str, tuple[pa.Array, pa.Array]]:
    """`%Y-%m-%d %H:%M:%S` wall-clock times of a switch in `timezone`, as UTC instants.

    Returns per field (instants, problem). Wall-clock times inside a DST gap cannot have been
    written by a running switch, so they are nulled with a problem ("does not exist in …").
    An ambiguous time (the repeated hour in autumn) is read as the EARLIER instant (still summer
    time), except answer/end times that would then precede the call's start: those take the
    LATER instant, which is what a call spanning the change back actually did.
    """
    naive = {
        name: pc.strptime(blank_to_null(text[name]), "%Y-%m-%d %H:%M:%S", "us", error_is_null=True)
        for name in TIME_FIELDS
    }
    return localise_times(naive, timezone)


def localise_times(
    naive: dict[str, pa.Array | pa.ChunkedArray], timezone: str
) -> dict[str, tuple[pa.Array, pa.Array]]:
    """Zoneless timestamps (start, answer and end) read as wall-clock times in `timezone`,
    by the rules of `parse_local_times`: per field (UTC instants, problem)."""
    out: dict[str, tuple[pa.Array, pa.Array]] = {}
    start_earliest = None
    for name in TIME_FIELDS:
        naive_time = naive[name]
        if timezone in ("UTC", "Etc/UTC", "GMT"):
            out[name] = (pc.cast(naive_time, UTC_MICROS), pa.nulls(len(naive_time), pa.string()))
            continue
        earliest = _assume(naive_time, timezone, "earliest")
        latest = _assume(naive_time, timezone, "latest")
        gap = _assume(naive_time, timezone, "earliest", nonexistent="latest")
        nonexistent = pc.not_equal(earliest, gap)
        if start_earliest is None:
            start_earliest = earliest
            chosen = earliest
        else:
            chosen = pc.if_else(
                pc.fill_null(pc.less(earliest, start_earliest), False), latest, earliest
            )
        chosen = pc.if_else(nonexistent, pa.scalar(None, UTC_MICROS), chosen)
        problem = pc.if_else(
            nonexistent,
            f"does not exist in {timezone} (clocks went forward)",
            pa.scalar(None, pa.string()),
        )
        out[name] = (pc.cast(chosen, UTC_MICROS), problem)
    return out


def _assume(naive, timezone: str, ambiguous: str, nonexistent: str = "earliest"):
    local = pc.assume_timezone(naive, timezone, ambiguous=ambiguous, nonexistent=nonexistent)
    return pc.cast(local, UTC_MICROS)


def _attempts(
    call_id: pa.Array | pa.ChunkedArray, start: pa.Array | pa.ChunkedArray, leg
) -> tuple[np.ndarray, pa.Array, np.ndarray | None, pa.Table]:
    """(rows repeating an earlier row's attempt, the distinct call ids, their keys when
    hashed here, every row's attempt).

    Most files repeat no call id, which the distinct count alone proves; only then is the
    row-by-row search skipped. Attempts are distinct whenever call ids are, so only rows
    whose call id repeats are compared on their start and leg.
    """
    ids = call_id.combine_chunks() if isinstance(call_id, pa.ChunkedArray) else call_id
    attempts = pa.Table.from_arrays(
        [ids, start, pa.nulls(len(ids), pa.string()) if leg is None else leg],
        schema=ATTEMPT_SCHEMA,
    )
    blank = _is_blank(ids)
    given = ids.filter(pc.invert(blank)) if pc.any(blank).as_py() else ids
    keys = call_id_keys(given)
    ordered = np.sort(keys)
    if not (ordered[1:] == ordered[:-1]).any():  # distinct keys: distinct ids
        return np.zeros(len(ids), bool), given, keys, attempts
    distinct = pc.unique(given)
    if len(distinct) == len(given):  # keys collided, ids did not: `given`, as keyed
        return np.zeros(len(ids), bool), given, keys, attempts
    return _repeated_attempts(attempts), distinct, None, attempts


def _repeated_attempts(attempts: pa.Table) -> np.ndarray:
    """True for rows (ATTEMPT_SCHEMA, in file order) that repeat an earlier row's attempt,
    or whose call id an earlier row with no readable start has claimed; blank ids never
    repeat."""
    ids = attempts.column("call_id").combine_chunks()
    n = len(ids)
    if n < 2:
        return np.zeros(n, bool)
    keys = call_id_keys(ids)
    ordered = np.sort(keys)
    collided = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(collided) == 0:
        return np.zeros(n, bool)
    # Equal keys are only candidates; the exact comparison runs on those rows alone.
    candidates = np.flatnonzero(np.isin(keys, collided))
    subset = attempts.take(pa.array(candidates)).combine_chunks()
    subset_ids = subset.column("call_id").chunk(0) if subset.num_rows else ids.slice(0, 0)
    blank = numpy_mask(_is_blank(subset_ids))
    # dictionary_encode numbers values in order of first appearance, so a row repeats an
    # earlier one exactly when its code is not above every code seen before it.
    texts = attempt_key_texts(*(subset.column(c) for c in ATTEMPT_SCHEMA.names))
    codes = pc.dictionary_encode(texts).indices.to_numpy(zero_copy_only=False)
    seen_max = np.maximum.accumulate(np.concatenate([[-1], codes[:-1]]))
    repeated = codes <= seen_max
    unknown = numpy_mask(pc.is_null(subset.column("start_time"))) & ~blank
    if unknown.any():
        id_codes = pc.dictionary_encode(subset_ids).indices.to_numpy(zero_copy_only=False)
        claimed_from = np.full(int(id_codes.max()) + 1, len(id_codes))
        np.minimum.at(claimed_from, id_codes[unknown], np.flatnonzero(unknown))
        repeated |= claimed_from[id_codes] < np.arange(len(id_codes))
    out = np.zeros(n, bool)
    out[candidates] = repeated & ~blank
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def call_id_keys(ids: pa.Array) -> np.ndarray:
    """A 64-bit key per call id (never 0), from the id's bytes alone.

    A key depends on the id alone (not on the other ids of its array), so keys of different
    parts of a file compare. Ids are hashed in groups of one byte length, usually the whole
    array: a switch's call ids tend to have one.
    """
    if ids.null_count:
        ids = pc.fill_null(ids, "")
    wide = pa.types.is_large_string(ids.type) or pa.types.is_large_binary(ids.type)
    offsets = np.frombuffer(ids.buffers()[1], np.int64 if wide else np.int32)
    offsets = offsets[ids.offset : ids.offset + len(ids) + 1]
    lengths = np.diff(offsets)
    if not len(ids):
        return np.zeros(0, np.uint64)
    if lengths.min() == lengths.max():
        keys = _hash_width(ids.buffers()[2], int(offsets[0]), len(ids), int(lengths[0]))
    else:
        small = lengths.max() < 1 << 16  # NumPy sorts 16-bit integers by radix
        order = np.argsort(lengths.astype(np.uint16) if small else lengths, kind="stable")
        ordered = ids.take(pa.array(order))
        cuts = [0, *(np.flatnonzero(np.diff(lengths[order])) + 1).tolist(), len(ids)]
        keys = np.empty(len(ids), np.uint64)
        for a, b in pairwise(cuts):
            keys[order[a:b]] = call_id_keys(ordered.slice(a, b - a))
    return np.maximum(keys, np.uint64(1))  # 0 marks a free slot


def _hash_width(data: pa.Buffer | None, start: int, n: int, width: int) -> np.ndarray:
    """Hash `n` strings of `width` bytes each, back to back in `data` from `start`."""
    if width < 8:
        padded = np.zeros((n, 8), np.uint8)
        if width:
            padded[:, :width] = np.frombuffer(data, np.uint8, n * width, start).reshape(n, width)
        words = [padded.view("<u8")[:, 0]]
    else:
        # Each string's 8-byte words, read in place (the last one overlaps when width is not
        # a multiple of 8).
        at = [start + min(word, width - 8) for word in range(0, width, 8)]
        words = [np.ndarray((n,), "<u8", buffer=data, offset=o, strides=(width,)) for o in at]
    hashes = np.full(n, width, np.uint64)
    for word in words:
        hashes ^= word
        hashes *= _GOLDEN
        hashes ^= hashes >> np.uint64(29)
    for multiplier in _MIX:  # splitmix64's finish: every bit reaches the low and high bits
        hashes ^= hashes >> np.uint64(31)
        hashes *= multiplier
    return hashes ^ (hashes >> np.uint64(31))
