"""CDR file formats by name, and the one entry point that parses any of them.

Names are the contract with carriers' ingest configuration: generic, freeswitch-csv,
freeswitch-json, asterisk-csv, vos3000.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats import asterisk, freeswitch, generic, vos3000
from functions.ingest.formats.source import CdrFileError, decompress, sniff_width
from functions.ingest.validate import hash_strings
from functions.shared.cdr import ParsedFile

__all__ = ["FORMATS", "CdrFileError", "UnknownFormatError", "iter_cdr_chunks", "parse_cdr_file"]

Parser = Callable[..., ParsedFile]

_PARSERS: dict[str, Parser] = {
    generic.NAME: generic.parse,
    freeswitch.CSV_NAME: freeswitch.parse_csv,
    freeswitch.JSON_NAME: freeswitch.parse_json,
    asterisk.NAME: asterisk.parse,
    vos3000.NAME: vos3000.parse,
}

FORMATS: tuple[str, ...] = tuple(_PARSERS)


class UnknownFormatError(ValueError):
    """A format name no parser is registered for."""


# Line-oriented formats that can be read in parts, and whether their files start with a header.
_SPLITTABLE = {generic.NAME: True, freeswitch.CSV_NAME: False, asterisk.NAME: False}
# Headerless formats whose layout (field count) is judged once over the whole file.
_WIDTHS = {freeswitch.CSV_NAME: freeswitch.WIDTHS, asterisk.NAME: asterisk.WIDTHS}
CHUNK_BYTES = 32 * 1024 * 1024


def _parser(fmt: str) -> Parser:
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise UnknownFormatError(f"unknown CDR format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return parser


def parse_cdr_file(
    data: bytes, fmt: str, *, timezone: str = "UTC", source: str = "<file>"
) -> ParsedFile:
    """Parse one CDR file (gzip or plain) of format `fmt` into accepted and quarantined rows.

    `timezone` (IANA name) is the switch's zone for formats that write local wall-clock times;
    `source` names the file in error messages.
    """
    return _parser(fmt)(decompress(data, source), timezone=timezone, source=source)


def iter_cdr_chunks(
    data: bytes,
    fmt: str,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    chunk_bytes: int | None = None,
) -> Iterator[ParsedFile]:
    """`parse_cdr_file` in parts of about `chunk_bytes`, with exactly the same rows and reasons.

    A part ends at a line end; line numbers stay the file's own. The one rule that spans
    parts, duplicate call ids (the first row with an id wins, even a quarantined one), is
    checked against every call id of the earlier parts. Memory then follows the part, not
    the file, and a consumer can write one part while the next is parsed. Formats that are
    not line-oriented, and small files, come as one part.
    """
    parser = _parser(fmt)
    data = decompress(data, source)
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    if fmt not in _SPLITTABLE or len(data) <= chunk_bytes + chunk_bytes // 2:
        yield parser(data, timezone=timezone, source=source)
        return
    header, start, first_line = b"", 0, 1
    options: dict[str, object] = {"timezone": timezone, "source": source}
    if fmt in _WIDTHS:
        options["width"] = sniff_width(data, _WIDTHS[fmt], source=source)
    if _SPLITTABLE[fmt]:
        start = data.find(b"\n") + 1
        if start == 0:  # a header and nothing else
            yield parser(data, timezone=timezone, source=source)
            return
        header, first_line = data[:start], 2
    earlier = _EarlierCallIds()
    while start < len(data):
        end = min(start + chunk_bytes, len(data))
        if end < len(data):
            newline = data.find(b"\n", end)
            end = len(data) if newline < 0 else newline + 1
        body = data[start:end]
        part = parser(header + body, **options)
        # The parser numbered the part's lines from 1 (or 2 after the header).
        part = _shift_lines(part, first_line - (2 if header else 1))
        if earlier:
            part = _earlier_duplicates(part, earlier, body, first_line)
        if part.call_ids is not None:
            earlier.add(part.call_ids)
        yield part
        first_line += body.count(b"\n")
        start = end


def _shift_lines(part: ParsedFile, shift: int) -> ParsedFile:
    if shift == 0:
        return part

    def shifted(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("line")
        line = pc.add(table.column("line"), pa.scalar(shift, pa.int64()))
        return table.set_column(index, table.schema.field("line"), line)

    return ParsedFile(shifted(part.cdrs), shifted(part.quarantine), part.rows_in, part.call_ids)


class _EarlierCallIds:
    """Every call id of the earlier parts, checked without rebuilding a hash set per part.

    The ids are kept with their 64-bit hashes, sorted: a part's ids are looked up with one
    `searchsorted`, and only the hash hits (real repeats, or the rare collision) are compared
    as exact strings.
    """

    def __init__(self) -> None:
        self.ids: list[pa.Array] = []
        self.hashes: list[np.ndarray] = []
        self.sorted = np.empty(0, np.uint64)
        self.exact_only = False  # ids too irregular to hash: compare strings directly

    def __bool__(self) -> bool:
        return bool(self.ids)

    def add(self, ids: pa.Array) -> None:
        hashes = hash_strings(ids) if len(ids) else np.empty(0, np.uint64)
        if hashes is None:
            self.exact_only, hashes = True, np.empty(0, np.uint64)
        self.ids.append(ids)
        self.hashes.append(hashes)
        self.sorted = np.sort(np.concatenate([self.sorted, hashes]))

    def repeated(self, ids: pa.Array) -> np.ndarray:
        """True where `ids` holds a call id an earlier part had."""
        everything = pa.concat_arrays(self.ids)
        hashes = hash_strings(ids) if len(ids) and not self.exact_only else None
        if hashes is None:
            return pc.is_in(ids, value_set=everything).to_numpy(zero_copy_only=False)
        at = np.minimum(np.searchsorted(self.sorted, hashes), max(len(self.sorted) - 1, 0))
        hit = self.sorted[at] == hashes if len(self.sorted) else np.zeros(len(ids), bool)
        if not hit.any():
            return hit
        earlier = everything.filter(pa.array(np.isin(np.concatenate(self.hashes), hashes[hit])))
        exact = pc.is_in(ids.filter(pa.array(hit)), value_set=earlier)
        hit[np.flatnonzero(hit)] = exact.to_numpy(zero_copy_only=False)
        return hit


def _earlier_duplicates(
    part: ParsedFile, earlier: _EarlierCallIds, body: bytes, first_line: int
) -> ParsedFile:
    """Quarantine the part's accepted rows whose call id an earlier part already had."""
    call_id = part.cdrs.column("call_id").combine_chunks()
    repeated = pa.array(earlier.repeated(call_id))
    if not pc.any(repeated).as_py():
        return part
    moved = part.cdrs.filter(repeated)
    # Raw text of the moved rows (a few): the body's lines, located by one newline scan.
    ends = np.flatnonzero(np.frombuffer(body, np.uint8) == 10)
    starts = np.concatenate([[0], ends + 1])
    ends = np.concatenate([ends, [len(body)]])
    index = moved.column("line").to_numpy() - first_line
    raw = [body[starts[i] : ends[i]].decode("utf-8", "replace").rstrip("\r") for i in index]
    ids = moved.column("call_id").to_pylist()
    duplicates = pa.table(
        {
            "line": moved.column("line"),
            "reason": pa.array(["duplicate_call_id"] * len(ids), pa.string()),
            "field": pa.array(["call_id"] * len(ids), pa.string()),
            "detail": pa.array(
                [f"call_id: {v!r} already occurred earlier in the file" for v in ids], pa.string()
            ),
            "raw": pa.array(raw, pa.string()),
        }
    ).cast(part.quarantine.schema)
    quarantine = pa.concat_tables([part.quarantine, duplicates])
    quarantine = quarantine.take(pc.sort_indices(quarantine.column("line")))
    return ParsedFile(
        part.cdrs.filter(pc.invert(repeated)), quarantine, part.rows_in, part.call_ids
    )
