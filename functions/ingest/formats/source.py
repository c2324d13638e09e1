"""Bytes of a CDR file → rows with their physical line numbers and, on demand, raw text.

Line numbers are physical, 1-based, in the decompressed file (LF or CRLF endings); a CSV header
is line 1. pyarrow.csv is told to keep empty lines as rows, so every line is a row or an
invalid row and its single-threaded reader numbers invalid rows by physical line; empty lines
are dropped afterwards. Only quarantined rows ever need their text, which is sliced from the
bytes by line offsets (`PhysicalLines`): the bytes as the file holds them, any that are not
UTF-8 shown as `\\xNN` escapes.

A line the readers cannot take as it is costs that line alone, never the file (`readable_text`):
a line that is not UTF-8 is read as Windows-1252 (what Latin-1 exports really are), or
quarantined as `encoding` when it has a byte Windows-1252 leaves undefined; in CSV files a line
over MAX_LINE_BYTES is quarantined as `field_too_long` and one with a carriage return inside it
as `malformed`. The whole part is checked at C speed first; only its bad lines are visited one
by one.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import zlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from functions.ingest.validate import over_limit, too_long_detail
from functions.shared.cdr import QUARANTINE_SCHEMA

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
# CSV lines longer than this are quarantined unread: pyarrow's reader refuses (with the whole
# file) a row straddling its 4 MiB blocks, and a line this long holds a field over
# MAX_FIELD_BYTES in any layout of up to 256 fields.
MAX_LINE_BYTES = 1 << 20


class CdrFileError(ValueError):
    """The file as a whole cannot be read (not UTF-8, truncated gzip, no CDR document...)."""


def decompress(data: bytes, source: str) -> bytes:
    """Gunzip when the bytes start with the gzip magic, whatever the file is called.

    `data` may be any bytes-like object with slicing (e.g. a memory map), returned as is
    when it is not gzip."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise CdrFileError(f"{source}: gzip data is corrupt or truncated ({exc})") from exc


def decode_text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CdrFileError(f"{source}: not UTF-8 text ({exc})") from exc


_BLOCK = 1 << 20


class PhysicalLines:
    """The physical lines of `data` from `offset` on (e.g. after a header line), located by
    newline counts per 1 MiB block: a cache-sized scan, and only the blocks holding wanted
    lines are indexed (only quarantined rows ever need their text). Wanted lines in most
    blocks (a file quarantining one row in a thousand) are found by one scan of all newlines
    instead, which costs less than counting and then indexing each block."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data, self.offset = data, offset
        self.buffer = np.frombuffer(data, np.uint8)[offset:]
        self._ends: np.ndarray | None = None  # newlines up to and including each block
        self._blocks: dict[int, np.ndarray] = {}
        self._all: np.ndarray | None = None  # every newline's offset, once scanned

    def _counts(self) -> np.ndarray:
        if self._ends is None:
            counts = [
                np.count_nonzero(self.buffer[at : at + _BLOCK] == 10)
                for at in range(0, len(self.buffer), _BLOCK)
            ]
            self._ends = np.cumsum(np.array(counts, np.int64))
        return self._ends

    def last_has_text(self) -> bool:
        """Whether the body's last line, before the newline it ends with, has text."""
        end = len(self.data) - 1
        start = max(self.data.rfind(b"\n", self.offset, end) + 1, self.offset)
        return bool(self.data[start:end].rstrip(b"\r"))

    def count(self) -> int:
        """Newlines in the body: its physical lines, as it ends with one."""
        if self._all is not None:
            return len(self._all)
        ends = self._counts()
        return int(ends[-1]) if len(ends) else 0

    def _newlines(self, k: np.ndarray) -> np.ndarray:
        """Offsets (in the body) of its newlines number `k` (from 0); its end past the last."""
        if self._all is None and self._ends is None and len(k) >= len(self.buffer) // _BLOCK:
            self._all = np.flatnonzero(self.buffer == 10)
        if self._all is not None:
            out = np.full(len(k), len(self.buffer), np.int64)
            known = k < len(self._all)
            out[known] = self._all[k[known]]
            return out
        ends = self._counts()
        blocks = np.searchsorted(ends, k, side="right")
        out = np.full(len(k), len(self.buffer), np.int64)
        for block in np.unique(blocks[blocks < len(ends)]).tolist():
            if block not in self._blocks:
                at = block * _BLOCK
                self._blocks[block] = np.flatnonzero(self.buffer[at : at + _BLOCK] == 10) + at
            here = blocks == block
            out[here] = self._blocks[block][k[here] - (ends[block - 1] if block else 0)]
        return out

    def text(self, lines: np.ndarray) -> pa.Array:
        """The raw text of `lines` (numbered from 1 at `offset`), without line endings."""
        index = np.asarray(lines, dtype=np.int64) - 1
        starts = np.zeros(len(index), np.int64)
        later = index > 0
        starts[later] = self._newlines(index[later] - 1) + 1
        ends = self._newlines(index)
        text = [
            raw_text(self.data[self.offset + a : self.offset + b])
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        return pa.array(text, pa.string())


def raw_text(line: bytes) -> str:
    """A line's bytes as the quarantine shows them: UTF-8, any other byte as a `\\xNN` escape
    (so the bytes the switch wrote can be told exactly), without its line end."""
    return line.decode("utf-8", "backslashreplace").rstrip("\r")


@dataclass(frozen=True, slots=True)
class ReadableText:
    """Bytes as the readers take them: valid UTF-8, with the original's physical lines.

    `recoded` are the lines (1-based) read as Windows-1252; `undecodable` the lines that are
    not Windows-1252 either, with why. With `blank`, lines the reader must not see (those, and
    in CSV files too long lines and lines with a carriage return inside) are emptied and
    stand in `rejected` (QUARANTINE_SCHEMA, their raw text from the original bytes).
    """

    data: bytes
    recoded: list[int]
    undecodable: dict[int, str]
    rejected: pa.Table


def readable_text(data: bytes, *, blank: bool) -> ReadableText:
    """`data` made readable line by line (see ReadableText); `data` itself when it already is,
    which a scan at C speed proves for nearly every file."""
    index = _LineIndex(data)
    replaced: dict[int, bytes] = {}  # 0-based line → what the reader sees instead
    rejects: dict[int, tuple[str, str]] = {}  # 0-based line → (reason, detail)
    recoded: list[int] = []
    undecodable: dict[int, str] = {}
    if not data.isascii() and not _is_utf8(data):
        for i in _non_utf8_lines(index):
            line = index.line(i)
            bom = UTF8_BOM if line.startswith(UTF8_BOM) else b""
            try:
                replaced[i] = bom + line[len(bom) :].decode("cp1252").encode()
                recoded.append(i + 1)
            except UnicodeDecodeError as error:
                byte = line[len(bom) + error.start]
                detail = (
                    f"not UTF-8, and byte 0x{byte:02X} (at byte {len(bom) + error.start + 1}) "
                    "is not Windows-1252 either"
                )
                undecodable[i + 1] = detail
                if blank:
                    replaced[i], rejects[i] = b"", ("encoding", detail)
                else:  # the document's structure stays; its records are quarantined later
                    replaced[i] = line.decode("cp1252", "replace").encode()
    if blank:
        for i in index.longer_than(MAX_LINE_BYTES):
            if i not in rejects:
                size = len(index.line(i).rstrip(b"\r"))
                detail = f"line is {size:,} bytes, over the {MAX_LINE_BYTES:,} a CDR may have"
                replaced[i], rejects[i] = b"", ("field_too_long", detail)
        for i in index.with_lone_carriage_return():
            if i in rejects:
                continue
            replaced[i] = b""
            if not index.line(i).isspace():  # else it is an empty line, as any blank one
                detail = "a carriage return inside the line (a line may only end with one)"
                rejects[i] = ("malformed", detail)
    order = sorted(rejects)
    rejected = quarantined(
        [i + 1 for i in order],
        [rejects[i][0] for i in order],
        [rejects[i][1] for i in order],
        [raw_text(index.line(i)) for i in order],
    )
    return ReadableText(index.replace(replaced), recoded, undecodable, rejected)


def quarantined(lines, reasons, details, raws, fields=None) -> pa.Table:
    """QUARANTINE_SCHEMA rows from parallel lists (or arrays); `field` "" (the whole row)
    unless given."""
    return pa.table(
        {
            "line": pa.array(lines, pa.int64()),
            "reason": pa.array(reasons, pa.string()),
            "field": pa.array([""] * len(lines) if fields is None else fields, pa.string()),
            "detail": pa.array(details, pa.string()),
            "raw": raws if isinstance(raws, pa.Array) else pa.array(raws, pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _is_utf8(data) -> bool:
    """Whether bytes (or a memoryview of them) are valid UTF-8: Arrow's validator, in place."""
    size = len(data)
    offsets = pa.py_buffer(np.array([0, size], np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _non_utf8_lines(index: _LineIndex) -> list[int]:
    """The lines (0-based, in order) that are not UTF-8, found by halving line ranges: one
    check covers a clean range whatever its size, so the work follows the bad lines."""
    view = memoryview(index.data)
    starts, ends = index.bounds()
    bad: list[int] = []
    ranges = [(0, len(starts))]
    while ranges:
        first, past = ranges.pop()
        if _is_utf8(view[starts[first] : ends[past - 1]]):
            continue
        if past - first == 1:
            bad.append(first)
            continue
        middle = (first + past) // 2
        ranges += [(middle, past), (first, middle)]  # the first half is checked first
    return bad


class _LineIndex:
    """Where each line of `data` starts and ends (without its newline), found on demand."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bounds is None:
            newlines = np.flatnonzero(np.frombuffer(self.data, np.uint8) == 10)
            starts = np.concatenate([[0], newlines + 1])
            ends = np.concatenate([newlines, [len(self.data)]])
            if len(self.data) and self.data.endswith(b"\n"):  # no line after the last newline
                starts, ends = starts[:-1], ends[:-1]
            self._bounds = starts, ends
        return self._bounds

    def line(self, i: int) -> bytes:
        starts, ends = self.bounds()
        return self.data[starts[i] : ends[i]]

    def longer_than(self, limit: int) -> list[int]:
        """Lines over `limit` bytes. Such a line leaves some aligned half-limit block without
        a newline, so the usual file is cleared by one short search per block."""
        block = limit // 2
        spans = range(0, len(self.data) - block + 1, block)
        if all(self.data.find(b"\n", at, at + block) >= 0 for at in spans):
            return []
        starts, ends = self.bounds()
        return np.flatnonzero(ends - starts > limit).tolist()

    def with_lone_carriage_return(self) -> list[int]:
        """Lines with a carriage return not right before their newline: pyarrow's reader
        would end a row there, and every later line number would be off by one."""
        if b"\r" not in self.data:
            return []
        buffer = np.frombuffer(self.data, np.uint8)
        returns = np.flatnonzero(buffer[:-1] == 13)  # one ending the data ends the last line
        lone = returns[buffer[returns + 1] != 10]
        if not len(lone):
            return []
        _, ends = self.bounds()
        return np.unique(np.searchsorted(ends, lone)).tolist()

    def replace(self, lines: dict[int, bytes]) -> bytes:
        """The data with `lines` (0-based) replaced; the data itself when there are none."""
        if not lines:
            return self.data
        starts, ends = self.bounds()
        view = memoryview(self.data)
        pieces, at = [], 0
        for i in sorted(lines):
            pieces += [view[at : starts[i]], lines[i]]
            at = ends[i]
        pieces.append(view[at:])
        return b"".join(pieces)


@dataclass(frozen=True, slots=True)
class CsvRows:
    """Rows pyarrow could split, their physical lines, and the rows it could not."""

    table: pa.Table
    line: pa.Array  # int64, physical line of each table row
    rejected: pa.Table  # QUARANTINE_SCHEMA, reason column_count
    lines: PhysicalLines
    # Whether each row's line is its fields joined by `delimiter`, byte for byte: no quote in
    # the part for the reader to take away, no byte order mark (the reader drops it), no line
    # read as Windows-1252, and no column the reader typed itself ("007" would be "7").
    verbatim: bool = False
    delimiter: str = ","

    def raw(self, positions: np.ndarray) -> pa.Array:
        """The raw text of the table rows at `positions` (see `PhysicalLines.text`).

        A verbatim part's rows are their fields joined again, so the bytes need no scan for
        line ends (the part's longest step when a few rows are quarantined)."""
        if self.verbatim and self.table.num_columns:
            rows = self.table.take(pa.array(positions, pa.int64()))
            return pc.binary_join_element_wise(*rows.columns, self.delimiter).combine_chunks()
        return self.lines.text(self.line.to_numpy()[positions])


def read_csv_rows(
    data: bytes,
    *,
    source: str,
    column_names: list[str] | None = None,
    header_line: bool = False,
    quoting: bool = True,
    double_quote: bool = True,
    delimiter: str = ",",
) -> CsvRows:
    """Read every column as text; rows with the wrong field count become `column_count`, rows
    with a field over MAX_FIELD_BYTES `field_too_long` (naming the switch's column), and lines
    `readable_text` takes out their own reason.

    With `column_names` the file has no header and the names fix the expected width; otherwise
    line 1 is the header. `delimiter`: one character between fields (`,` unless a switch's
    column mapping says otherwise).
    """
    invalid: list[tuple[int, str, int]] = []
    typed = False  # whether the reader typed a column itself (see `_all_text`)

    def on_invalid(row) -> str:
        invalid.append((row.number, row.text, row.actual_columns))
        return "skip"

    def read(data: bytes) -> pa.Table:
        nonlocal typed
        # One thread: the single-threaded reader numbers each invalid row by its line (the
        # threaded one cannot), and big files are read in parts while other threads rate and
        # write the earlier parts, so both cores are busy anyway.
        read_options = pcsv.ReadOptions(
            use_threads=False, column_names=column_names, block_size=1 << 22
        )
        parse_options = pcsv.ParseOptions(
            quote_char='"' if quoting else False,
            double_quote=double_quote,
            delimiter=delimiter,
            newlines_in_values=False,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        )
        names = column_names or _header(data, source, delimiter)
        convert = pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            # `readable_text` made the bytes UTF-8 (proven whole, or line by line where they
            # were not): the reader need not prove every value again.
            check_utf8=False,
        )
        try:
            table = pcsv.read_csv(
                # Arrow reads its blocks as slices of the bytes; a Python file object would
                # hand it each block as a fresh copy, through the GIL.
                pa.py_buffer(data),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert,
            )
        except pa.ArrowInvalid as exc:
            raise CdrFileError(f"{source}: cannot read as CSV ({exc})") from exc
        typed = typed or not all(pa.types.is_string(t) for t in table.schema.types)
        return _all_text(table)

    if not data or data.isspace():
        empty = pa.table({n: pa.array([], pa.string()) for n in column_names or []})
        return CsvRows(empty, pa.array([], pa.int64()), _empty_rejects(), PhysicalLines(data))
    readable = readable_text(data, blank=True)
    lines = PhysicalLines(data)  # raw text comes from the bytes the file holds
    first = 2 if header_line else 1
    text, taken = readable.data, readable.rejected
    # pyarrow's parser lets a quoted value run over a line end even with newlines_in_values
    # off, so a line cut inside a quote swallows the next: then the rows do not match the
    # lines, and the lines that opened such quotes are taken out and the part read again.
    last = _open_last_line(text, double_quote, delimiter) if quoting else None
    if last is not None:
        # The same rule for the last line, which has no next line to swallow.
        text = _LineIndex(text).replace({last: b""})
        unclosed = quarantined([last + 1], ["malformed"], [_UNCLOSED], lines.text([last + 1]))
        taken = pa.concat_tables([taken, unclosed])
    # Rows pyarrow should find: one per line (empty ones too), bar the header. Lines emptied
    # above keep their newline, except an emptied last line without one, which is gone.
    # Counted only where a quote could have run on.
    at_end = bool(text) and not text.endswith(b"\n")
    for attempt in range(_REREADS + 1):
        if header_line and 1 in taken.column("line").to_numpy():
            detail = taken.column("detail")[0].as_py()
            raise CdrFileError(f"{source}: the header (line 1) cannot be read: {detail}")
        invalid.clear()
        if not text:  # its one line was taken out
            table = pa.table({n: pa.array([], pa.string()) for n in column_names or []})
            break
        table = read(text)
        if not (quoting and b'"' in text):
            break
        if table.num_rows + len(invalid) == lines.count() + at_end - (first - 1):
            break
        merged = _runs_over_lines(table, invalid, first)
        # Each run's first line opened the quote; later lines may be innocent, so they are
        # read again, unless quotes keep running on (then every line of a run goes).
        runs = merged if attempt == _REREADS else [(start, 1) for start, _ in merged]
        opened = sorted({line for start, span in runs for line in range(start, start + span)})
        text = _LineIndex(text).replace(dict.fromkeys((line - 1 for line in opened), b""))
        n = len(opened)
        unclosed = quarantined(opened, ["malformed"] * n, [_UNCLOSED] * n, lines.text(opened))
        taken = pa.concat_tables([taken, unclosed])
    else:
        raise CdrFileError(f"{source}: quoted values run over line ends; rows cannot be told")
    taken_out = taken.column("line").to_numpy()
    bad_lines = np.array([number for number, _, _ in invalid], dtype=np.int64)
    blank = [text.encode().isspace() for _, text, _ in invalid]
    # Empty lines are kept as rows (ignore_empty_lines=False) so that every physical line is
    # either a table row or an invalid row; they are dropped again below, and so are the
    # lines taken out before reading (quarantined already).
    row_lines = np.arange(first, first + table.num_rows + len(invalid), dtype=np.int64)
    row_lines = np.delete(row_lines, bad_lines - first)
    if any(blank):  # a line of spaces is an empty line, not a row
        invalid = [row for row, empty in zip(invalid, blank, strict=True) if not empty]
        bad_lines = bad_lines[~np.array(blank)]
    if len(taken_out):
        kept = ~np.isin(row_lines, taken_out)
        table, row_lines = table.filter(pa.array(kept)), row_lines[kept]
    table, row_lines = _drop_empty_lines(table, row_lines, lines)
    table, row_lines, too_long = _too_long_fields(table, row_lines, lines)
    width = len(table.column_names)
    raws = [text for _, text, _ in invalid]
    if readable.recoded and len(bad_lines):
        raws = lines.text(bad_lines).to_pylist()  # what the file holds, not the recoding
    rejected = quarantined(
        bad_lines,
        ["column_count"] * len(invalid),
        [f"{actual} fields, expected {width}" for _, _, actual in invalid],
        raws,
    )
    rejected = pa.concat_tables([taken, rejected, too_long])
    verbatim = not (
        readable.recoded or typed or text.startswith(UTF8_BOM) or (quoting and b'"' in text)
    )
    return CsvRows(table, pa.array(row_lines, pa.int64()), rejected, lines, verbatim, delimiter)


def _all_text(table: pa.Table) -> pa.Table:
    """Every column as text: a header name the reader spells otherwise than `_header` (a
    stray byte, quote or space in it) escapes `column_types` and is typed by inference. Such
    a column is no format's, so its values need only stay countable and checkable."""
    if all(pa.types.is_string(t) for t in table.schema.types):
        return table
    columns = [pc.fill_null(c.cast(pa.string()), "") for c in table.columns]
    return pa.table(columns, names=table.column_names)


_REREADS = 3
_UNCLOSED = "a quote opened on this line is never closed"


def _open_last_line(text: bytes, double_quote: bool, delimiter: str = ",") -> int | None:
    """The last line (0-based) when it ends inside a quoted value, as pyarrow's parser reads
    it: a quote opens a value only at its start, and inside one `""` is a quote (with
    `double_quote`)."""
    end = len(text)
    while end and text[end - 1] == 10:  # (no rstrip: it would copy the part)
        end -= 1
    line = text[text.rfind(b"\n", 0, end) + 1 : end].rstrip(b"\r")
    if b'"' not in line:
        return None
    quoted, at_start, i = False, True, 0
    separator = delimiter.encode()
    while i < len(line):
        c = line[i : i + 1]
        if quoted:
            if c == b'"' and double_quote and line[i + 1 : i + 2] == b'"':
                i += 2
                continue
            quoted = c != b'"'
        elif c == separator:
            at_start = True
            i += 1
            continue
        elif c == b'"' and at_start:
            quoted = True
        at_start = False
        i += 1
    return text.count(b"\n", 0, end) if quoted else None


def _runs_over_lines(
    table: pa.Table, invalid: list[tuple[int, str, int]], first: int
) -> list[tuple[int, int]]:
    """(first line, lines spanned) of each row that ran over line ends.

    pyarrow numbers rows, valid or not, in file order; a row spans one line plus the line ends
    inside it, which its values (or an invalid row's text) keep."""
    spans = np.ones(table.num_rows + len(invalid), np.int64)
    at = np.array([number for number, _, _ in invalid], np.int64) - first
    spans[at] += np.array([text.count("\n") for _, text, _ in invalid], np.int64)
    valid = np.ones(len(spans), bool)
    valid[at] = False
    inside = np.zeros(table.num_rows, np.int64)
    for column in table.columns:
        inside += pc.count_substring(column, "\n").to_numpy(zero_copy_only=False)
    spans[valid] += inside
    starts = first + np.concatenate([[0], np.cumsum(spans)[:-1]])
    runs = np.flatnonzero(spans > 1)
    return list(zip(starts[runs].tolist(), spans[runs].tolist(), strict=True))


def _too_long_fields(
    table: pa.Table, row_lines: np.ndarray, lines: PhysicalLines
) -> tuple[pa.Table, np.ndarray, pa.Table]:
    """Take out the rows with a field over MAX_FIELD_BYTES, as `field_too_long` rows naming
    the first such column (a field the format does not even map counts: the row is corrupt)."""
    first = np.zeros(table.num_rows, np.int32)  # 0: none, k: column k - 1
    for k, column in enumerate(table.columns, start=1):
        long = over_limit(column)
        if long is not None:
            first[long & (first == 0)] = k
    rows = np.flatnonzero(first)
    if not len(rows):
        return table, row_lines, _empty_rejects()
    names = [table.column_names[k - 1] for k in first[rows].tolist()]
    values = [table.column(name)[int(row)].as_py() for name, row in zip(names, rows, strict=True)]
    at = row_lines[rows]
    rejected = quarantined(
        at,
        ["field_too_long"] * len(rows),
        [too_long_detail(n, v) for n, v in zip(names, values, strict=True)],
        lines.text(at),
        fields=names,
    )
    kept = first == 0
    return table.filter(pa.array(kept)), row_lines[kept], rejected


def _drop_empty_lines(
    table: pa.Table, row_lines: np.ndarray, lines: PhysicalLines
) -> tuple[pa.Table, np.ndarray]:
    if table.num_columns == 0 or table.num_rows == 0:
        return table, row_lines
    blank = pc.equal(table.column(0), "")
    for column in table.columns[1:]:
        if not pc.any(blank).as_py():
            return table, row_lines
        blank = pc.and_(blank, pc.equal(column, ""))
    candidates = np.flatnonzero(blank.to_numpy(zero_copy_only=False))
    if len(candidates) == 0:
        return table, row_lines
    # `,,,,` also parses as all-empty but is a (broken) row; only an empty (or blank) line
    # is not.
    texts = lines.text(row_lines[candidates]).to_pylist()
    empty = candidates[[not text or text.encode().isspace() for text in texts]]
    keep = np.ones(table.num_rows, bool)
    keep[empty] = False
    return table.filter(pa.array(keep)), row_lines[keep]


def _header(data: bytes, source: str, delimiter: str = ",") -> list[str]:
    end = data.find(b"\n")
    first = data[: end if end >= 0 else len(data)].rstrip(b"\r")
    text = decode_text(first, source).strip()
    return [name.strip().strip('"') for name in text.split(delimiter)]


def _empty_rejects() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def sniff_width(data: bytes, allowed: tuple[int, ...], *, source: str, sample: int = 200) -> int:
    """The most common field count among the first lines, which must be one of `allowed`.

    Judged over many lines because a single mangled row (an unescaped quote) must not decide
    how the whole file is read.
    """

    head = data[: 1 << 20].split(b"\n")[:sample]
    if len(data) > 1 << 20:
        head = head[:-1]  # the last piece may be cut mid-line
    counts: dict[int, int] = {}
    for line in head:
        # Only fields are counted, so bytes that are not UTF-8 may stay unread; a line the
        # csv module rejects (a stray carriage return, a huge field) does not vote.
        text = line.decode("utf-8", "replace").rstrip("\r")
        try:
            row = next(csv.reader([text], skipinitialspace=True), [])
        except csv.Error:
            continue
        if row:
            counts[len(row)] = counts.get(len(row), 0) + 1
    candidates = sorted(((c, w) for w, c in counts.items() if w in allowed), reverse=True)
    if not candidates:
        found = ", ".join(str(w) for w in sorted(counts)) or "none"
        expected = " or ".join(str(w) for w in allowed)
        raise CdrFileError(f"{source}: rows have {found} fields; expected {expected}")
    return candidates[0][1]


@dataclass(frozen=True, slots=True)
class JsonRecords:
    """Decoded JSON records with the physical line each starts on and its exact text."""

    records: list[object]
    lines: list[int]
    raws: list[str]
    rejected: pa.Table  # malformed records (JSON Lines only), QUARANTINE_SCHEMA


def read_json_records(data: bytes, *, source: str, wrappers: tuple[str, ...] = ()) -> JsonRecords:
    """Records of a file holding one document, a JSON array, or one document per line.

    `line` is where the record's text starts, so it is the same rule as for CSV files whatever
    the layout (array elements included). A record inside an object under one of `wrappers`
    (e.g. VOS3000's `infoCdrs`) is read the same way. In JSON Lines a line that does not decode
    is quarantined as `malformed`; a broken array or a file in which nothing decodes is a
    CdrFileError. Lines that are not UTF-8 are read as `readable_text` says; a record on one
    keeps the file's bytes as its raw text, and is quarantined as `encoding` when one of its
    lines is not Windows-1252 either.
    """
    readable = readable_text(data, blank=False)
    records = _read_records(decode_text(readable.data, source), source, wrappers)
    if readable.recoded or readable.undecodable:
        records = _on_unread_lines(records, readable, PhysicalLines(data))
    return records


def _read_records(text: str, source: str, wrappers: tuple[str, ...]) -> JsonRecords:
    decoder = _Decoder()
    start = _skip_space(text, 0)
    if start == len(text):
        raise CdrFileError(f"{source}: no JSON document in the file")
    out = JsonRecords([], [], [], _empty_rejects())
    counter = _LineCounter(text)
    if text[start] == "[":
        _read_array(text, start, decoder, counter, out, source)
        return out
    if text[start] == "{" and wrappers:
        try:
            document, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            document, end = None, start
        if isinstance(document, dict) and _skip_space(text, end) == len(text):
            for key in wrappers:
                if isinstance(document.get(key), list):
                    match = re.search(rf'"{re.escape(key)}"\s*:\s*\[', text)
                    if match:
                        _read_array(text, match.end() - 1, decoder, counter, out, source)
                        return out
    bad_lines, bad_raws, bad_details = [], [], []
    position = start
    while position < len(text):
        try:
            record, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            line_end = text.find("\n", position)
            line_end = len(text) if line_end < 0 else line_end
            bad_lines.append(counter.line(position))
            bad_raws.append(text[position:line_end].rstrip("\r"))
            bad_details.append(f"not JSON: {exc.msg} at column {exc.colno}")
            position = _skip_space(text, line_end)
            continue
        out.records.append(record)
        out.lines.append(counter.line(position))
        out.raws.append(text[position:end])
        position = _skip_space(text, end)
    if not out.records and bad_lines:
        raise CdrFileError(
            f"{source}: no line decodes as JSON (line {bad_lines[0]}: {bad_details[0]})"
        )
    rejected = pa.table(
        {
            "line": pa.array(bad_lines, pa.int64()),
            "reason": pa.array(["malformed"] * len(bad_lines), pa.string()),
            "field": pa.array([""] * len(bad_lines), pa.string()),
            "detail": pa.array(bad_details, pa.string()),
            "raw": pa.array(bad_raws, pa.string()),
        }
    ).cast(QUARANTINE_SCHEMA)
    return JsonRecords(out.records, out.lines, out.raws, rejected)


class _Decoder(json.JSONDecoder):
    """json's decoder with every failure a JSONDecodeError (a malformed record, not a crash)."""

    def __init__(self) -> None:
        # Python refuses to make an int of over 4,300 digits; no CDR number has 100, so a
        # longer one (a corrupt field) stays text, and validation judges it as such.
        super().__init__(parse_int=lambda text: int(text) if len(text) <= 100 else text)

    def raw_decode(self, s: str, idx: int = 0):
        try:
            return super().raw_decode(s, idx)
        except RecursionError as error:
            raise json.JSONDecodeError("nested too deeply", s, idx) from error


def _on_unread_lines(
    records: JsonRecords, readable: ReadableText, lines: PhysicalLines
) -> JsonRecords:
    """`records` with the file's own bytes as raw text where their lines were not UTF-8, and
    the records (or malformed lines) touching a line no code page reads quarantined as
    `encoding`. A Python loop over records, as decoding them already is."""
    damaged = sorted({*readable.recoded, *readable.undecodable})
    unread = readable.undecodable

    def touched(first: int, last: int) -> list[int]:
        return damaged[bisect_left(damaged, first) : bisect_right(damaged, last)]

    def original(first: int, last: int) -> str:
        return "\n".join(lines.text(np.arange(first, last + 1)).to_pylist())

    out = JsonRecords([], [], [], records.rejected)
    rejected = []
    for record, line, raw in zip(records.records, records.lines, records.raws, strict=True):
        last = line + raw.count("\n")
        hit = touched(line, last)
        if not hit:
            out.records.append(record)
            out.lines.append(line)
            out.raws.append(raw)
            continue
        unreadable = [n for n in hit if n in unread]
        if unreadable:
            detail = unread[unreadable[0]]
            rejected.append(_reject(line, "encoding", detail, original(line, last)))
        else:
            out.records.append(record)
            out.lines.append(line)
            out.raws.append(original(line, last))
    for row in records.rejected.to_pylist():
        if touched(row["line"], row["line"]):
            row["raw"] = original(row["line"], row["line"])
            if row["line"] in unread:
                row |= {"reason": "encoding", "detail": unread[row["line"]]}
        rejected.append(row)
    table = pa.Table.from_pylist(rejected, schema=QUARANTINE_SCHEMA)
    return JsonRecords(out.records, out.lines, out.raws, table)


def _reject(line: int, reason: str, detail: str, raw: str) -> dict[str, object]:
    return {"line": line, "reason": reason, "field": "", "detail": detail, "raw": raw}


def _read_array(text, start, decoder, counter, out: JsonRecords, source: str) -> None:
    position = _skip_space(text, start + 1)
    while position < len(text) and text[position] != "]":
        try:
            record, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise CdrFileError(
                f"{source}: JSON array broken at line {counter.line(position)}: {exc.msg}"
            ) from exc
        out.records.append(record)
        out.lines.append(counter.line(position))
        out.raws.append(text[position:end])
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
    if position >= len(text):
        raise CdrFileError(f"{source}: JSON array is not closed (truncated file?)")


class _LineCounter:
    """Line of a text position, counting newlines incrementally (positions only grow)."""

    def __init__(self, text: str) -> None:
        self._text, self._position, self._line = text, 0, 1

    def line(self, position: int) -> int:
        self._line += self._text.count("\n", self._position, position)
        self._position = position
        return self._line


_SPACE = re.compile(r"\s*")


def _skip_space(text: str, position: int) -> int:
    match = _SPACE.match(text, position)
    return match.end() if match else position
