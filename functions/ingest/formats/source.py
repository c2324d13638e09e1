"""Bytes of a CDR file → rows with their physical line numbers and, on demand, raw text.

Line numbers are physical, 1-based, in the decompressed file (LF or CRLF endings); a CSV header
is line 1. pyarrow.csv is told to keep empty lines as rows, so every line is a row or an
invalid row and its single-threaded reader numbers invalid rows by physical line; empty lines
are dropped afterwards. Only quarantined rows ever need their text, which is sliced from the
bytes by line offsets (`PhysicalLines`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from functions.shared.cdr import QUARANTINE_SCHEMA

GZIP_MAGIC = b"\x1f\x8b"


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
    lines are indexed (only quarantined rows ever need their text)."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data, self.offset = data, offset
        self.buffer = np.frombuffer(data, np.uint8)[offset:]
        self._ends: np.ndarray | None = None  # newlines up to and including each block
        self._blocks: dict[int, np.ndarray] = {}

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
        ends = self._counts()
        return int(ends[-1]) if len(ends) else 0

    def _newlines(self, k: np.ndarray) -> np.ndarray:
        """Offsets (in the body) of its newlines number `k` (from 0); its end past the last."""
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
            self.data[self.offset + a : self.offset + b].decode("utf-8", "replace").rstrip("\r")
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        return pa.array(text, pa.string())


@dataclass(frozen=True, slots=True)
class CsvRows:
    """Rows pyarrow could split, their physical lines, and the rows it could not."""

    table: pa.Table
    line: pa.Array  # int64, physical line of each table row
    rejected: pa.Table  # QUARANTINE_SCHEMA, reason column_count
    lines: PhysicalLines


def read_csv_rows(
    data: bytes,
    *,
    source: str,
    column_names: list[str] | None = None,
    header_line: bool = False,
    quoting: bool = True,
    double_quote: bool = True,
) -> CsvRows:
    """Read every column as text; rows with the wrong field count become `column_count`.

    With `column_names` the file has no header and the names fix the expected width; otherwise
    line 1 is the header.
    """
    invalid: list[tuple[int, str, int]] = []

    def on_invalid(row) -> str:
        invalid.append((row.number, row.text, row.actual_columns))
        return "skip"

    def read() -> pa.Table:
        # One thread: the single-threaded reader numbers each invalid row by its line (the
        # threaded one cannot), and big files are read in parts while a second thread rates
        # and writes the previous part, so both cores are busy anyway.
        read_options = pcsv.ReadOptions(
            use_threads=False, column_names=column_names, block_size=1 << 22
        )
        parse_options = pcsv.ParseOptions(
            quote_char='"' if quoting else False,
            double_quote=double_quote,
            newlines_in_values=False,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        )
        names = column_names or _header(data, source)
        convert = pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        try:
            return pcsv.read_csv(
                io.BytesIO(data),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert,
            )
        except pa.ArrowInvalid as exc:
            raise CdrFileError(f"{source}: cannot read as CSV ({exc})") from exc

    if not data or data.isspace():
        empty = pa.table({n: pa.array([], pa.string()) for n in column_names or []})
        return CsvRows(empty, pa.array([], pa.int64()), _empty_rejects(), PhysicalLines(data))
    table = read()
    lines = PhysicalLines(data)
    bad_lines = np.array([number for number, _, _ in invalid], dtype=np.int64)
    # Empty lines are kept as rows (ignore_empty_lines=False) so that every physical line is
    # either a table row or an invalid row; they are dropped again below.
    first = 2 if header_line else 1
    row_lines = np.arange(first, first + table.num_rows + len(invalid), dtype=np.int64)
    row_lines = np.delete(row_lines, bad_lines - first)
    table, row_lines = _drop_empty_lines(table, row_lines, lines)
    width = len(table.column_names)
    rejected = pa.table(
        {
            "line": pa.array(bad_lines, pa.int64()),
            "reason": pa.array(["column_count"] * len(invalid), pa.string()),
            "field": pa.array([""] * len(invalid), pa.string()),
            "detail": pa.array(
                [f"{actual} fields, expected {width}" for _, _, actual in invalid], pa.string()
            ),
            "raw": pa.array([text for _, text, _ in invalid], pa.string()),
        }
    ).cast(QUARANTINE_SCHEMA)
    return CsvRows(table, pa.array(row_lines, pa.int64()), rejected, lines)


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
    # `,,,,` also parses as all-empty but is a (broken) row; only a truly empty line is not.
    texts = lines.text(row_lines[candidates]).to_pylist()
    empty = candidates[[not text for text in texts]]
    keep = np.ones(table.num_rows, bool)
    keep[empty] = False
    return table.filter(pa.array(keep)), row_lines[keep]


def _header(data: bytes, source: str) -> list[str]:
    end = data.find(b"\n")
    first = data[: end if end >= 0 else len(data)].rstrip(b"\r")
    text = decode_text(first, source).strip()
    return [name.strip().strip('"') for name in text.split(",")]


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
    text = decode_text(b"\n".join(head), source)
    counts: dict[int, int] = {}
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
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
    CdrFileError.
    """
    text = decode_text(data, source)
    decoder = json.JSONDecoder()
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
