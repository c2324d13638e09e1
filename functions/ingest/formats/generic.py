"""`generic`: Tollgate's own CDR CSV, for carriers whose switch we do not parse natively.

Header (any column order, extra columns ignored):
call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier
plus optional pdd_ms, mos (a MOS score, e.g. 4.35), ingress_trunk, ingress_ip, egress_trunk
and egress_ip (where the call came in and went out, for switches whose trunks map to
accounts). Times are ISO 8601 WITH a
zone (`Z`, `+02:00`): a zoneless time cannot be billed without guessing, so it is a bad_time.
Empty answer_time = unanswered. Disposition is one of DISPOSITIONS (`NO ANSWER` with a space
is accepted, as Asterisk-minded exports say). With egress_trunk, rows of one call id on
different egress trunks are attempts of one call (route advance), each kept.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats.source import CdrFileError, read_csv_rows
from functions.ingest.numbers import NumberingPlan
from functions.ingest.validate import (
    TIME_FIELDS,
    MappedRows,
    column_pool,
    empty_parsed_file,
    parse_iso_times,
    validate,
)
from functions.shared.cdr import DISPOSITIONS, TRUNK_COLUMNS, ParsedFile

NAME = "generic"
COLUMNS = (
    "call_id",
    "caller",
    "callee",
    "start_time",
    "answer_time",
    "end_time",
    "billsec",
    "disposition",
    "customer",
    "supplier",
)
OPTIONAL_COLUMNS = ("pdd_ms", "mos", *TRUNK_COLUMNS)


def parse(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """Parse a generic CSV; `timezone` is unused because every time carries its own offset."""
    rows = read_csv_rows(data, source=source, header_line=True)
    present = rows.table.column_names
    if not present:  # a rotated file with no calls in it: nothing to bill, nothing wrong
        return empty_parsed_file()
    missing = [c for c in COLUMNS if c not in present]
    if missing:
        raise CdrFileError(f"{source}: header lacks required column(s) {', '.join(missing)}")
    table = rows.table
    fields: dict[str, pa.Array | pa.ChunkedArray] = {"line": rows.line}
    with column_pool() as pool:
        # Arrow kernels release the GIL, so the three time columns parse on both cores.
        parsed = {name: pool.submit(parse_iso_times, table[name]) for name in TIME_FIELDS}
        for name in COLUMNS:
            if name in TIME_FIELDS:
                fields[name] = parsed[name].result()
                fields[f"{name}_text"] = table[name]
            elif name == "disposition":
                fields[name] = _disposition(table[name])
            else:
                fields[name] = table[name]
    for name in OPTIONAL_COLUMNS:
        if name in present:
            fields[name] = table[name]
    mapped = MappedRows(
        fields=pa.table(fields),
        raw=rows.raw,
        rejected=rows.rejected,
    )
    return validate(mapped, numbering)


def _disposition(text):
    if pc.all(pc.is_in(text, pa.array(DISPOSITIONS))).as_py():
        return text  # the usual file: nothing to rewrite
    return pc.replace_substring(pc.ascii_upper(text), "NO ANSWER", "NO_ANSWER")
