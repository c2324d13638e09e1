"""Kamailio's acc module as exported from its database (formats.md §4; kamailio/kamailio
utils/kamctl/*/acc-create.sql, src/modules/acc): CSV with a header, one file per export.

`kamailio-acc-cdrs`: the dialog CDRs (`cdr_enable=1`), table `acc_cdrs`: `start_time` and
`end_time` (DATETIME), `duration` (seconds with decimals, cdr_duration_mode 1), plus the
`cdr_extra` columns. A dialog's start is when it was confirmed, so `start_time` is both the
call's start and its answer. The extras this format reads by default are

    modparam("acc", "cdr_extra",
             "src_user=$fU;dst_user=$rU;callid=$ci;sip_code=$T_reply_code;src_ip=$si")

(caller, callee, call id, SIP code, ingress IP); any other names are given by the switch's
column mapping (`tollgate switch columns`), which renames these defaults member by member
(functions.ingest.formats.mapped: its rules for billsec, dispositions and times apply).

`kamailio-acc`: the transaction rows of tables `acc` and `missed_calls` (one export may hold
both): `method, from_tag, to_tag, callid, sip_code, sip_reason, time` plus the `db_extra`
columns, by default

    modparam("acc", "db_extra", "src_user=$fU;dst_user=$rU;src_ip=$si")

(renamed by the switch's column mapping: members caller, callee, call_id, ingress_ip and the
other route members; the acc columns themselves keep their default names). Rows are paired
into calls by dialog: call id and the two tags (either order: a BYE from the callee swaps
them), grouped column-wise (pyarrow group_by), never row by row:
- an INVITE with a 2xx is the answer, the dialog's first BYE the end: one ANSWERED CDR on the
  INVITE's line, its start the answer (acc does not record when the INVITE arrived, so PDD is
  unknown), billsec the seconds from answer to end rounded up. The dialog's other rows
  (the BYE, re-INVITEs, further BYEs) are part of that call and count as no row of their own;
- an INVITE with a final non-2xx (`missed_calls`) outside an answered dialog is an unanswered
  attempt at its time (start = end), its disposition from the SIP code (formats.md §1.3);
- quarantined as `unpaired`, each row with its line: an answered INVITE whose dialog has no
  BYE in the file (an open call, or its BYE is in the next export: no duration is invented),
  a BYE whose dialog has no answered INVITE, and rows of any other method.
`egress_leg` is the dialog's to-tag, so two branches of one call id are two attempts.

Times: acc writes DATETIME without a zone, the switch's wall clock: read in the switch's
configured time zone (`tollgate switch create --timezone`, default the tenant's), or the
mapping's `timezone`; set UTC for a Kamailio whose database clock is UTC. A wall-clock time
that does not exist there (a DST gap) is a bad_time, never shifted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats.mapped import (
    ColumnMapping,
    MappingError,
    _seconds_between,
    check_header,
    parse_rows,
    read_times,
    sip_disposition,
)
from functions.ingest.formats.source import CdrFileError, quarantined, read_csv_rows
from functions.ingest.numbers import NumberingPlan
from functions.ingest.validate import MappedRows, empty_parsed_file, numpy_mask, validate
from functions.shared.cdr import TRUNK_COLUMNS, UTC_MICROS, ParsedFile

CDRS_NAME = "kamailio-acc-cdrs"
ACC_NAME = "kamailio-acc"

# Member -> acc_cdrs column (start_time, end_time, duration and the default cdr_extra names).
CDR_COLUMNS = {
    "call_id": "callid",
    "caller": "src_user",
    "callee": "dst_user",
    "start": "start_time",
    "answer": "start_time",
    "end": "end_time",
    "duration": "duration",
    "disposition": "sip_code",
    "ingress_ip": "src_ip",
}
# The acc table's own columns (default acc_*_column names) and, by member, the db_extra ones.
ACC_COLUMNS = ("method", "from_tag", "to_tag", "sip_code", "time")
ACC_EXTRA = {
    "call_id": "callid",
    "caller": "src_user",
    "callee": "dst_user",
    "ingress_ip": "src_ip",
}
ACC_MEMBERS = ("call_id", "caller", "callee", "customer", "supplier", *TRUNK_COLUMNS)

UNPAIRED = "unpaired"


def parse_cdrs(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    mapping: ColumnMapping | None = None,
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """An `acc_cdrs` export (module doc)."""
    return parse_rows(
        data,
        mapping or ColumnMapping(),
        timezone=timezone,
        source=source,
        numbering=numbering,
        defaults=CDR_COLUMNS,
    )


def parse_acc(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    mapping: ColumnMapping | None = None,
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """An `acc` (and `missed_calls`) export, paired into calls (module doc)."""
    mapping = check_acc_mapping(mapping or ColumnMapping())
    rows = read_csv_rows(data, source=source, header_line=True, delimiter=mapping.delimiter)
    table = rows.table
    if not table.column_names:
        return empty_parsed_file()
    columns = {m: c for m, c in ACC_EXTRA.items() if c in table.column_names}
    columns |= dict(mapping.columns)
    needed = [*ACC_COLUMNS, columns.get("call_id", "callid"), columns.get("callee", "dst_user")]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise CdrFileError(f"{source}: header lacks acc column(s) {', '.join(missing)}")
    check_header(table.column_names, {**{c: c for c in ACC_COLUMNS}, **columns}, source)
    zone = mapping.timezone or timezone
    calls = _pair(table, columns.get("call_id", "callid"))
    fields = _call_fields(table, calls, columns, mapping.time_format, zone, rows.line)
    lines = rows.line.to_numpy()
    invite, bye = calls.cdr_rows, calls.bye_rows

    def raw(positions: np.ndarray) -> pa.Array:
        first = rows.lines.text(lines[invite[positions]])
        ended = bye[positions]
        if not (ended >= 0).any():
            return first
        second = rows.lines.text(lines[np.where(ended >= 0, ended, invite[positions])])
        both = pc.binary_join_element_wise(first, second, "\n")
        return pc.if_else(pa.array(ended >= 0), both, first)

    rejected = pa.concat_tables([rows.rejected, _unpaired(table, calls, rows)])
    mapped = MappedRows(fields=pa.table(fields), raw=raw, rejected=rejected)
    return validate(mapped, numbering)


def check_acc_mapping(mapping: ColumnMapping) -> ColumnMapping:
    """The mapping, or MappingError naming a member a `kamailio-acc` switch cannot map (its
    times and outcome are the acc table's own columns)."""
    unknown = [m for m in mapping.columns if m not in ACC_MEMBERS]
    if unknown:
        raise MappingError(
            f"columns.{unknown[0]}", f"{ACC_NAME} maps only {', '.join(ACC_MEMBERS)}"
        )
    return mapping


class _Calls:
    """Which rows make which calls: positions (in the table) of each CDR's INVITE row and of
    its BYE row (-1: none), and of the rows quarantined as unpaired with why."""

    def __init__(self, cdr_rows, bye_rows, unpaired, why) -> None:
        self.cdr_rows: np.ndarray = cdr_rows
        self.bye_rows: np.ndarray = bye_rows
        self.unpaired: np.ndarray = unpaired
        self.why: np.ndarray = why  # index into _WHY per unpaired row


_WHY = (
    ("end_time", "an answered INVITE whose dialog has no BYE in this file (an open call, or "
     "its BYE is in another file): not billed, no duration invented"),
    ("answer_time", "a BYE whose dialog has no answered INVITE in this file"),
    ("method", "a method that is neither INVITE nor BYE: no part of a call's CDR"),
    ("answer_time", "a failed re-INVITE of a dialog whose call has no BYE in this file"),
)  # fmt: skip


def _pair(table: pa.Table, call_id_column: str) -> _Calls:
    """Group rows by dialog (call id + both tags, in either order) and decide each row."""
    n = table.num_rows
    method = pc.utf8_upper(pc.utf8_trim_whitespace(table["method"]))
    code = pc.utf8_trim_whitespace(table["sip_code"])
    invite = numpy_mask(pc.equal(method, "INVITE"))
    bye = numpy_mask(pc.equal(method, "BYE"))
    answered = invite & numpy_mask(pc.match_substring_regex(code, r"^2[0-9][0-9]$"))
    failed = invite & ~answered
    low = pc.min_element_wise(table["from_tag"], table["to_tag"])
    high = pc.max_element_wise(table["from_tag"], table["to_tag"])
    key = pc.binary_join_element_wise(table[call_id_column], low, high, "\x1f")
    position = np.arange(n, dtype=np.int64)
    rows = pa.table(
        {
            "key": key,
            "answer_at": pa.array(position, mask=~answered),
            "bye_at": pa.array(position, mask=~bye),
        }
    )
    dialogs = rows.group_by("key").aggregate([("answer_at", "min"), ("bye_at", "min")])
    which = pc.index_in(key, value_set=_plain(dialogs["key"]))
    first_answer = pc.take(dialogs["answer_at_min"], which)
    first_bye = pc.take(dialogs["bye_at_min"], which)
    has_answer = numpy_mask(pc.is_valid(first_answer))
    has_bye = numpy_mask(pc.is_valid(first_bye))
    paired = has_answer & has_bye
    chosen = paired & (position == _numbers(first_answer))
    attempt = failed & ~has_answer
    cdr = chosen | attempt
    absorbed = paired & ~chosen
    unpaired = ~(cdr | absorbed)
    why = np.select([answered, bye, failed], [0, 1, 3], default=2)[unpaired]
    cdr_rows = np.flatnonzero(cdr)
    bye_rows = np.where(chosen, _numbers(first_bye), -1)[cdr_rows]
    return _Calls(cdr_rows, bye_rows, np.flatnonzero(unpaired), why)


def _numbers(values) -> np.ndarray:
    return _plain(pc.fill_null(values, -1)).to_numpy(zero_copy_only=False)


def _plain(values):
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _call_fields(
    table: pa.Table,
    calls: _Calls,
    columns: dict[str, str],
    time_format: str,
    timezone: str,
    line: pa.Array,
) -> dict[str, Any]:
    """MappedRows fields of each call: its INVITE row's fields, its BYE row's time."""
    at = pa.array(calls.cdr_rows, pa.int64())
    ended = calls.bye_rows >= 0
    bye_at = pa.array(np.where(ended, calls.bye_rows, calls.cdr_rows), pa.int64())
    invite = table.take(at)
    times = read_times(
        {
            "start_time": invite["time"],
            "answer_time": None,
            "end_time": _plain(table["time"]).take(bye_at),
        },
        time_format,
        timezone,
    )
    start, start_problem, start_text = times["start_time"]
    end, end_problem, end_text = times["end_time"]
    answered = pa.array(ended)
    none_time = pa.scalar(None, UTC_MICROS)
    end = pc.if_else(answered, end, start)
    end_text = pc.if_else(answered, end_text, start_text)
    end_problem = pc.if_else(answered, end_problem, start_problem)
    answer = pc.if_else(answered, start, none_time)
    code = pc.utf8_trim_whitespace(invite["sip_code"])
    disposition = pc.coalesce(sip_disposition(code), code)
    blank = pa.repeat(pa.scalar("", pa.string()), len(at))
    fields: dict[str, Any] = {
        "line": _plain(line).take(at),
        "call_id": invite[columns.get("call_id", "callid")],
        "callee": invite[columns["callee"]],
        "start_time": start,
        "start_time_text": start_text,
        "start_time_problem": start_problem,
        "answer_time": answer,
        "answer_time_text": pc.if_else(answered, start_text, ""),
        "end_time": end,
        "end_time_text": end_text,
        "end_time_problem": end_problem,
        "billsec": _seconds_between(answer, end),
        "disposition": pc.if_else(answered, "ANSWERED", disposition),
        "egress_leg": invite["to_tag"],
    }
    for member in ("caller", "customer", "supplier", *TRUNK_COLUMNS):
        column = columns.get(member)
        fields[member] = invite[column] if column else blank
    return fields


def _unpaired(table: pa.Table, calls: _Calls, rows) -> pa.Table:
    """The unpaired rows, quarantined with their line, raw text and why."""
    if not len(calls.unpaired):
        return rows.rejected.slice(0, 0)
    lines = rows.line.to_numpy()[calls.unpaired]
    methods = _plain(table["method"]).take(pa.array(calls.unpaired)).to_pylist()
    details, names = [], []
    for why, method in zip(calls.why.tolist(), methods, strict=True):
        field, text = _WHY[why]
        names.append(field)
        details.append(f"{method}: {text}" if why == 2 else text)
    return quarantined(
        lines, [UNPAIRED] * len(lines), details, rows.lines.text(lines), fields=names
    )
