"""CDR file formats by name, and the one entry point that parses any of them.

Names are the contract with carriers' ingest configuration: generic, freeswitch-csv,
freeswitch-json, asterisk-csv, vos3000, mapped (any CSV through the switch's column mapping),
kamailio-acc-cdrs and kamailio-acc (Kamailio's acc tables exported as CSV).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats import asterisk, freeswitch, generic, kamailio, mapped, vos3000
from functions.ingest.formats.source import (
    CdrFileError,
    PhysicalLines,
    decompress,
    sniff_width,
)
from functions.ingest.numbers import NumberingPlan
from functions.ingest.validate import call_id_keys, cut_raw, quoted
from functions.shared.cdr import ATTEMPT_SCHEMA, ParsedFile, attempt_key_texts, attempt_legs

__all__ = ["FORMATS", "CdrFileError", "UnknownFormatError", "iter_cdr_chunks", "parse_cdr_file"]

Parser = Callable[..., ParsedFile]

_PARSERS: dict[str, Parser] = {
    generic.NAME: generic.parse,
    freeswitch.CSV_NAME: freeswitch.parse_csv,
    freeswitch.JSON_NAME: freeswitch.parse_json,
    asterisk.NAME: asterisk.parse,
    vos3000.NAME: vos3000.parse,
    mapped.NAME: mapped.parse,
    kamailio.CDRS_NAME: kamailio.parse_cdrs,
    kamailio.ACC_NAME: kamailio.parse_acc,
}

FORMATS: tuple[str, ...] = tuple(_PARSERS)


class UnknownFormatError(ValueError):
    """A format name no parser is registered for."""


# Line-oriented formats that can be read in parts, and whether their files start with a header.
_SPLITTABLE = {
    generic.NAME: True,
    freeswitch.CSV_NAME: False,
    asterisk.NAME: False,
    mapped.NAME: True,
    kamailio.CDRS_NAME: True,
}
# Headerless formats whose layout (field count) is judged once over the whole file.
_WIDTHS = {freeswitch.CSV_NAME: freeswitch.WIDTHS, asterisk.NAME: asterisk.WIDTHS}
# Formats whose fields a switch may declare itself (its own template).
_TEMPLATED = (freeswitch.CSV_NAME,)
# Formats read through a switch's column mapping (functions.ingest.formats.mapped).
MAPPED_FORMATS: tuple[str, ...] = (mapped.NAME, kamailio.CDRS_NAME, kamailio.ACC_NAME)
# Bytes of text per part. Under glibc's mmap threshold, so each part's copy reuses the last
# one's heap memory rather than faulting in fresh pages. 16 MiB rather than 31: with three
# parts in flight (parsed, rated, written) `tollgate rate` on a 1 M-CDR file peaks 130 MB
# lower, and faults in a quarter fewer pages, whose cost varies tenfold on a virtual machine
# (rate bench, same CPU time).
CHUNK_BYTES = 16 * 1024 * 1024


def _parser(fmt: str) -> Parser:
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise UnknownFormatError(f"unknown CDR format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return parser


def _options(
    fmt: str,
    timezone: str,
    source: str,
    template: Sequence[str] | None,
    numbering: NumberingPlan | None,
    mapping: mapped.ColumnMapping | Mapping | None = None,
) -> dict[str, object]:
    options: dict[str, object] = {"timezone": timezone, "source": source}
    if mapping is not None:
        options["mapping"] = column_mapping(fmt, mapping)
    if numbering is not None and not numbering.is_default:
        options["numbering"] = numbering
    if template:
        if fmt not in _TEMPLATED:
            raise ValueError(f"format {fmt!r} takes no template (only {', '.join(_TEMPLATED)})")
        options["template"] = tuple(template)
    return options


def column_mapping(fmt: str, mapping: mapped.ColumnMapping | Mapping) -> mapped.ColumnMapping:
    """A switch's column mapping (or its JSON form) as format `fmt` reads it; ValueError for a
    format that reads none, MappingError naming a member it cannot use. A `mapped` file needs
    every required member; a Kamailio switch's mapping only renames its format's defaults."""
    if fmt not in MAPPED_FORMATS:
        raise ValueError(f"format {fmt!r} takes no column mapping")
    if not isinstance(mapping, mapped.ColumnMapping):
        mapping = mapped.ColumnMapping.from_dict(mapping, complete=fmt == mapped.NAME)
    if fmt == kamailio.ACC_NAME:
        kamailio.check_acc_mapping(mapping)
    return mapping


def parse_cdr_file(
    data: bytes,
    fmt: str,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    template: Sequence[str] | None = None,
    numbering: NumberingPlan | None = None,
    mapping: mapped.ColumnMapping | Mapping | None = None,
) -> ParsedFile:
    """Parse one CDR file (gzip or plain) of format `fmt` into accepted and quarantined rows.

    `timezone` (IANA name) is the switch's zone for formats that write local wall-clock times;
    `source` names the file in error messages; `template` is a FreeSWITCH switch's own CSV
    template (its variable names in order); `numbering` the switch's numbering plan;
    `mapping` a switch's column mapping (ColumnMapping, or its JSON form) for MAPPED_FORMATS.
    """
    parser = _parser(fmt)
    options = _options(fmt, timezone, source, template, numbering, mapping)
    return parser(decompress(data, source), **options)


def iter_cdr_chunks(
    data: bytes | mmap.mmap,
    fmt: str,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    chunk_bytes: int | None = None,
    template: Sequence[str] | None = None,
    numbering: NumberingPlan | None = None,
    mapping: mapped.ColumnMapping | Mapping | None = None,
) -> Iterator[ParsedFile]:
    """`parse_cdr_file` in parts of about `chunk_bytes`, with exactly the same rows and reasons.

    A part ends at a line end; line numbers stay the file's own. The one rule that spans
    parts, duplicate attempts (the first row wins, even a quarantined one), is checked
    against every call id of the earlier parts, and on a repeated id against the attempts
    of the earlier parts that had it. Memory then follows the part (plus each earlier row's
    call id, start and leg), not the file, and a consumer can write one part while the next
    is parsed. Formats that are not line-oriented, and small files, come as one part. `data`
    may be a memory map of the file: only the part being parsed is then copied into memory.
    """
    parser = _parser(fmt)
    options = _options(fmt, timezone, source, template, numbering, mapping)
    data = decompress(data, source)
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    if fmt not in _SPLITTABLE or len(data) <= chunk_bytes + chunk_bytes // 2:
        yield parser(bytes(data), **options)
        return
    header, start, first_line = b"", 0, 1
    if fmt in _WIDTHS:
        widths = (len(template),) if template else _WIDTHS[fmt]
        options["width"] = sniff_width(data, widths, source=source)
    if _SPLITTABLE[fmt]:
        start = data.find(b"\n") + 1
        if start == 0:  # a header and nothing else
            yield parser(bytes(data), **options)
            return
        header, first_line = data[:start], 2
    earlier = _EarlierCallIds()
    history = _EarlierAttempts()
    view = memoryview(data)
    number = 0
    while start < len(data):
        end = start + _part_size(number, len(data) - start, chunk_bytes)
        if end < len(data):
            newline = data.find(b"\n", end)
            end = len(data) if newline < 0 else newline + 1
        # The part as the parser reads it, in one copy: header and body joined from a view.
        text = b"".join((header, view[start:end]))
        part = parser(text, **options)
        # The parser numbered the part's lines from 1 (or 2 after the header).
        part = _shift_lines(part, first_line - (2 if header else 1))
        lines = PhysicalLines(text, len(header))
        if part.call_ids is not None:
            # Ids so far, scaled to the whole file: the table is sized once, not regrown.
            expected = (earlier.count + len(part.call_ids)) * len(data) // end
            repeated, holders = earlier.add(part.call_ids, expected, part.call_id_keys)
            if len(repeated):
                before = history.rows_of(repeated, holders)
                part = _earlier_duplicates(part, repeated, before, lines, first_line)
            history.add(part.attempts, repeated)
        if end < len(data):
            first_line += _line_count(part, lines, first_line)
        # Released before the consumer holds the part, so the next part can reuse the memory.
        del text, lines
        yield part
        start, number = end, number + 1


def _part_size(number: int, remaining: int, chunk_bytes: int) -> int:
    """Bytes for part `number` (from 0): a quarter and a half of `chunk_bytes` first, then
    whole chunks, halving again towards the end. A consumer that works on one part while the
    next is parsed then starts soon after the first parse, and finishes soon after the last."""
    smallest = chunk_bytes // 4
    size = min(chunk_bytes >> max(2 - number, 0), max(remaining // 2, smallest))
    return remaining if remaining - size < smallest // 2 else size


def _line_count(part: ParsedFile, lines: PhysicalLines, first_line: int) -> int:
    """Physical lines in the part's body (which ends with a newline).

    The parser numbers every line with text, accepted or quarantined, and drops only empty
    ones. So when the body's last line has text, the part's highest line number is that
    line's, and the body need not be scanned for newlines.
    """
    numbered = [t.column("line") for t in (part.cdrs, part.quarantine) if t.num_rows]
    if numbered and lines.last_has_text():
        return max(pc.max(line).as_py() for line in numbered) - first_line + 1
    return lines.count()


def _shift_lines(part: ParsedFile, shift: int) -> ParsedFile:
    if shift == 0:
        return part

    def shifted(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("line")
        line = pc.add(table.column("line"), pa.scalar(shift, pa.int64()))
        return table.set_column(index, table.schema.field("line"), line)

    return replace(part, cdrs=shifted(part.cdrs), quarantine=shifted(part.quarantine))


_LOAD = 0.35  # the most of a call id table's slots in use


class _EarlierCallIds:
    """Every call id of the earlier parts, in a hash table on their 64-bit keys.

    Open addressing with linear probing, in NumPy arrays: a slot holds the position + 1 of
    the id stored there (positions number every part's ids in turn; 0 is a free slot), and
    `key_of` holds each position's key. A part's ids are looked up and stored together, a
    probe round at a time for all of them, so a part costs time in proportion to its own
    ids, not to the file's. An equal key is only a candidate, confirmed by comparing the
    stored id's text; an id whose candidate is another id (a collision) is kept as text in
    `clashing` instead.
    """

    def __init__(self) -> None:
        self.ids: list[pa.Array] = []  # each part's call ids
        self.count = 0  # ids in self.ids: the next part's first position
        self.key_of = np.zeros(1 << 12, np.uint64)  # by position, with room to grow
        self.table = np.zeros(1 << 12, np.uint32)
        self.stored = 0  # ids in the table
        self.clashing: set[str] = set()

    def add(
        self, ids: pa.Array, expected: int = 0, keys: np.ndarray | None = None
    ) -> tuple[pa.Array, np.ndarray]:
        """Store a part's call ids (distinct); return those an earlier part already had, with
        the number (from 0) of the first part that had each.

        `expected`: about how many ids the file will have in all, to size the table (and the
        keys by position) once. `keys`: the ids' `call_id_keys`, when already computed.
        """
        start, end = self.count, self.count + len(ids)
        if end >= 1 << 32:
            raise ValueError("more than 2**32 call ids in one file")
        keys = call_id_keys(ids) if keys is None else keys
        self._reserve(max(self.stored + len(ids), expected))
        if end > len(self.key_of):
            grown = np.zeros(max(end, 2 * len(self.key_of), expected), np.uint64)
            grown[:start] = self.key_of[:start]
            self.key_of = grown
        self.key_of[start:end] = keys
        held = self._place(keys, np.arange(start + 1, end + 1, dtype=np.uint32))
        self.ids.append(ids)
        self.count = end
        hits = np.flatnonzero(held)
        repeated = np.zeros(len(ids), bool)
        located = np.zeros(len(ids), bool)  # repeated, and held at its own position
        if len(hits):
            # A candidate: the same id in an earlier part, or (rarely) another id.
            mine = ids.take(pa.array(hits))
            same = _bools(pc.equal(mine, self._text(held[hits].astype(np.int64) - 1)))
            located[hits] = same
            if self.clashing:
                same = same | _bools(pc.is_in(mine, pa.array(list(self.clashing), ids.type)))
            repeated[hits] = same
            if not same.all():
                self.clashing.update(mine.filter(pa.array(~same)).to_pylist())
        holders = self._part_of(held[repeated].astype(np.int64) - 1)
        # An id kept as clashing text has no position: any earlier part may hold it.
        holders[~located[repeated]] = -1
        return ids.filter(pa.array(repeated)), holders

    def _part_of(self, positions: np.ndarray) -> np.ndarray:
        starts = np.cumsum([0, *(len(ids) for ids in self.ids)])
        return np.searchsorted(starts, positions, side="right") - 1

    def _text(self, positions: np.ndarray) -> pa.Array:
        """The ids at `positions`, taken from their own parts (no concatenation)."""
        starts = np.cumsum([0, *(len(ids) for ids in self.ids)])
        part = np.searchsorted(starts, positions, side="right") - 1
        order = np.argsort(part, kind="stable")
        pieces = [
            self.ids[p].take(pa.array(positions[part == p] - starts[p]))
            for p in np.unique(part).tolist()
        ]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return pa.concat_arrays(pieces).take(pa.array(inverse))

    def _place(self, keys: np.ndarray, marks: np.ndarray) -> np.ndarray:
        """Per key, the mark (position + 1) of the id holding an equal key on its probe run;
        or 0, the key being stored, with its mark, at the free slot that ends the run."""
        mask = len(self.table) - 1
        slot = (keys & np.uint64(mask)).astype(np.intp)
        held = np.zeros(len(keys), np.uint32)
        todo = np.arange(len(keys))
        at, mine, wanted = slot, marks, keys  # the first round: every key
        while len(todo):
            seen = self.table[at]
            free = np.flatnonzero(seen == 0)
            # Keys racing for a free slot: one write wins, the others see it and go on.
            claimed = at[free]
            self.table[claimed] = mine[free]
            seen[free] = self.table[claimed]
            other = np.flatnonzero(seen != mine)
            taken = seen[other]
            equal = self.key_of[taken - 1] == wanted[other]
            held[todo[other[equal]]] = taken[equal]
            todo = todo[other[~equal]]
            slot[todo] = (slot[todo] + 1) & mask
            at, mine, wanted = slot[todo], marks[todo], keys[todo]
        self.stored += len(keys) - int(np.count_nonzero(held))
        return held

    def _reserve(self, target: int) -> None:
        """Grow the table so that it stays at most `_LOAD` full with `target` ids."""
        size = 1 << max(int(target / _LOAD) - 1, 1).bit_length()
        if size <= len(self.table):
            return
        marks = self.table[self.table != 0]
        self.table = np.zeros(size, np.uint32)
        self.stored = 0
        self._place(self.key_of[marks - 1], marks)  # distinct keys: every one is stored


def _bools(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return mask.to_numpy(zero_copy_only=False)


class _EarlierAttempts:
    """Every earlier part's attempts (references to its columns, not copies), and for call
    ids met again in a later part, which parts those were: so the attempts of a repeated id
    are looked for only in the parts that had it."""

    def __init__(self) -> None:
        self.parts: list[pa.Table] = []
        self.again_ids: list[pa.Array] = []  # ids a part shared with an earlier part
        self.again_part: list[int] = []

    def add(self, attempts: pa.Table | None, repeated: pa.Array) -> None:
        self.parts.append(attempts if attempts is not None else ATTEMPT_SCHEMA.empty_table())
        if len(repeated):
            self.again_ids.append(repeated)
            self.again_part.append(len(self.parts) - 1)

    def rows_of(self, ids: pa.Array, holders: np.ndarray) -> pa.Table:
        """The earlier attempts of `ids`, in file order; `holders` as `_EarlierCallIds.add`."""
        if (holders < 0).any():
            wanted = set(range(len(self.parts)))
        else:
            wanted = set(np.unique(holders).tolist())
        for again, number in zip(self.again_ids, self.again_part, strict=True):
            if number not in wanted and pc.any(pc.is_in(again, value_set=ids)).as_py():
                wanted.add(number)
        pieces = []
        for number in sorted(wanted):
            attempts = self.parts[number]
            pieces.append(attempts.filter(pc.is_in(attempts.column("call_id"), value_set=ids)))
        return pa.concat_tables(pieces) if pieces else ATTEMPT_SCHEMA.empty_table()


def _earlier_duplicates(
    part: ParsedFile,
    repeated_ids: pa.Array,
    before: pa.Table,
    lines: PhysicalLines,
    first_line: int,
) -> ParsedFile:
    """Quarantine the part's accepted rows whose attempt an earlier part already had (or
    whose call id an earlier row with no readable start claimed), as `validate` does within
    a part."""
    cdrs = part.cdrs
    candidates = np.flatnonzero(_bools(pc.is_in(cdrs.column("call_id"), value_set=repeated_ids)))
    if not len(candidates):
        return part
    # Only the rows with a repeated id are compared on their attempt.
    mine = cdrs.take(pa.array(candidates))
    known = pc.is_valid(before.column("start_time"))
    seen = before.filter(known)
    earlier_keys = attempt_key_texts(*(seen.column(c) for c in ATTEMPT_SCHEMA.names))
    claimed = before.filter(pc.invert(known)).column("call_id").combine_chunks()
    keys = attempt_key_texts(mine.column("call_id"), mine.column("start_time"), attempt_legs(mine))
    same = pc.or_(
        pc.is_in(keys, value_set=earlier_keys),
        pc.is_in(mine.column("call_id"), value_set=claimed),
    )
    found = np.zeros(cdrs.num_rows, bool)
    found[candidates[_bools(same)]] = True
    if not found.any():
        return part
    repeated = pa.array(found)
    moved = part.cdrs.filter(repeated)
    raw = lines.text(moved.column("line").to_numpy() - first_line + 1)
    ids = moved.column("call_id").to_pylist()
    duplicates = pa.table(
        {
            "line": moved.column("line"),
            "reason": pa.array(["duplicate_call_id"] * len(ids), pa.string()),
            "field": pa.array(["call_id"] * len(ids), pa.string()),
            "detail": pa.array(
                [f"call_id: {quoted(v)} already occurred earlier in the file" for v in ids],
                pa.string(),
            ),
            "raw": raw,
        }
    ).cast(part.quarantine.schema)
    quarantine = pa.concat_tables([part.quarantine, cut_raw(duplicates)])
    quarantine = quarantine.take(pc.sort_indices(quarantine.column("line")))
    return replace(part, cdrs=part.cdrs.filter(pc.invert(repeated)), quarantine=quarantine)
