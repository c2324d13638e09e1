"""FreeSWITCH: mod_cdr_csv (`freeswitch-csv`) and mod_json_cdr (`freeswitch-json`), formats.md §1.

Which switch field becomes which canonical field is stated once, in CSV_FIELDS / JSON_FIELDS
and TRUNK_VARIABLES. Neither shipped CSV template carries the supplier or a trunk: a switch
may declare its own mod_cdr_csv template (the variable names in order, `check_template`), e.g.
the `example` fields + sip_gateway_name, network_addr, sip_from_host.

Trunks (which a switch maps to accounts): ingress is the gateway an inbound call matched
(`sip_gateway`), else the From host (`sip_from_host`), and the peer's IP (`network_addr` of
the caller profile, `sip_network_ip`); egress is `sip_gateway_name`, which FreeSWITCH sets on
the OUTBOUND leg only. A billed A-leg lacks it, so its egress is read from the dial string it
bridged to (`sofia/gateway/NAME/...`) when that names one gateway; a failover list
(`sofia/gateway/A/..|sofia/gateway/B/..`) does not say which one carried the call, and leaves
the egress unknown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats.source import (
    CdrFileError,
    read_csv_rows,
    read_json_records,
    sniff_width,
)
from functions.ingest.numbers import NumberingPlan
from functions.ingest.validate import (
    TIME_FIELDS,
    MappedRows,
    blank_to_null,
    cast_or_null,
    empty_parsed_file,
    parse_local_times,
    validate,
)
from functions.shared.cdr import UTC_MICROS, ParsedFile

CSV_NAME = "freeswitch-csv"
JSON_NAME = "freeswitch-json"

# The built-in `default` template (13 fields, hard-coded in mod_cdr_csv.c) and the shipped
# `example` template (the same 13 + codecs), chosen per file by field count.
DEFAULT_TEMPLATE = (
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "context",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    "accountcode",
)
EXAMPLE_TEMPLATE = (*DEFAULT_TEMPLATE, "read_codec", "write_codec")

# Canonical field ← mod_cdr_csv variable (None: not in the template).
CSV_FIELDS: dict[str, str | None] = {
    "call_id": "uuid",
    "caller": "caller_id_number",
    "callee": "destination_number",
    "start_time": "start_stamp",
    "answer_time": "answer_stamp",
    "end_time": "end_stamp",
    "billsec": "billsec",
    "disposition": "hangup_cause",
    "customer": "accountcode",
    "supplier": None,
}

# Canonical trunk field ← channel variables, first present (non-empty) wins; see the module doc.
TRUNK_VARIABLES: dict[str, tuple[str, ...]] = {
    "ingress_trunk": ("sip_gateway", "sip_from_host"),
    "ingress_ip": ("network_addr", "sip_network_ip"),
    "egress_trunk": ("sip_gateway_name",),
}
# Call quality (formats.md §1.1): the MOS FreeSWITCH estimated for the audio it received, and
# the post-dial delay as the time from the leg's creation to its first ring (180) or early
# media (183), in ms (each is 0 when that never came). See `pdd_millis`.
MOS_VARIABLE = "rtp_audio_in_mos"
PDD_VARIABLES = ("progressmsec", "progress_mediamsec")
# The last application's argument: for a bridged call, the dial string it bridged to.
BRIDGE_VARIABLE = "last_arg"
_GATEWAY = "sofia/gateway/"
# `sofia/gateway/NAME/number`, or `sofia/gateway/profile::NAME/number`.
_GATEWAY_NAME = r"sofia/gateway/(?:[^/|,]*::)?(?P<gateway>[^/|,]+)/"

# What a custom template needs for a CDR to be billed at all (validation's required fields,
# and the answer stamp that makes billsec billable).
REQUIRED_VARIABLES = ("uuid", "destination_number", "start_stamp", "answer_stamp", "billsec")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def check_template(template: Sequence[str]) -> tuple[str, ...]:
    """A switch's own mod_cdr_csv template as its variable names in order, or ValueError."""
    names = tuple(name.strip() for name in template)
    bad = [name for name in names if not _VARIABLE.fullmatch(name)]
    if bad:
        raise ValueError(f"template: {bad[0]!r} is not a channel variable name")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"template: {', '.join(twice)} listed twice")
    missing = [name for name in REQUIRED_VARIABLES if name not in names]
    if missing:
        raise ValueError(f"template: lacks {', '.join(missing)} (needed to bill a call)")
    return names


# Hangup cause → canonical disposition (formats.md §1.3). NORMAL_CLEARING is ANSWERED only
# when the leg was answered; every cause not listed is a FAILED attempt. Any cause with
# billsec > 0 ends ANSWERED in validation (e.g. MEDIA_TIMEOUT after answer).
HANGUP_DISPOSITIONS: dict[str, str] = {
    "USER_BUSY": "BUSY",
    "NO_ANSWER": "NO_ANSWER",
    "NO_USER_RESPONSE": "NO_ANSWER",
    "SUBSCRIBER_ABSENT": "NO_ANSWER",
    "ORIGINATOR_CANCEL": "CANCEL",
    "LOSE_RACE": "CANCEL",
    "NORMAL_CIRCUIT_CONGESTION": "CONGESTION",
    "SWITCH_CONGESTION": "CONGESTION",
}
_DEFAULT_FAILURE = "FAILED"


WIDTHS = (len(DEFAULT_TEMPLATE), len(EXAMPLE_TEMPLATE))


def parse_csv(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    width: int | None = None,
    template: Sequence[str] | None = None,
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """mod_cdr_csv Master.csv; stamps are wall-clock times in the switch's `timezone`.

    `template`: the switch's own template (variable names in order); without one, the file
    is in a shipped template, told apart by its field count.
    """
    if not data or data.isspace():
        return empty_parsed_file()
    if template:
        names = list(check_template(template))
        width = width or sniff_width(data, (len(names),), source=source)
    else:
        # `width` is given when a file is read in parts: the template is the whole file's.
        width = width or sniff_width(data, WIDTHS, source=source)
        names = list(DEFAULT_TEMPLATE if width == len(DEFAULT_TEMPLATE) else EXAMPLE_TEMPLATE)
    # Values are never escaped: a `"` in a caller name either mangles that name (harmless) or
    # shifts the field count, which read_csv_rows quarantines as column_count.
    rows = read_csv_rows(data, source=source, column_names=names)
    table = rows.table
    if "accountcode" in names:
        # The default template writes `", "` before accountcode: skipinitialspace, unquote.
        table = table.set_column(
            names.index("accountcode"), "accountcode", _unquote_spaced(table["accountcode"])
        )
    fields = _map_text(table, CSV_FIELDS)
    for canonical, variables in TRUNK_VARIABLES.items():
        fields[canonical] = _first_present(table, variables)
    fields["mos"] = _column(table, MOS_VARIABLE)
    if any(v in names for v in PDD_VARIABLES):
        fields["pdd_ms"] = pdd_millis(*(_column(table, v) for v in PDD_VARIABLES))
    if BRIDGE_VARIABLE in names:
        fields["egress_trunk"] = pc.coalesce(
            fields["egress_trunk"], bridge_gateway(table[BRIDGE_VARIABLE])
        )
    times = parse_local_times({f: fields[f"{f}_text"] for f in TIME_FIELDS}, timezone)
    fields["disposition"] = hangup_disposition(
        _column(table, "hangup_cause"), fields["answer_time_text"]
    )
    for name, (instants, problem) in times.items():
        fields[name] = instants
        fields[f"{name}_problem"] = problem
    fields["line"] = rows.line
    mapped = MappedRows(
        fields=pa.table(fields),
        raw=rows.raw,
        rejected=rows.rejected,
    )
    return validate(mapped, numbering)


def bridge_gateway(dial_string):
    """The gateway a bridge dial string sent the call to, when it names exactly one; else
    null (no gateway, or a failover list that does not say which one carried the call)."""
    name = pc.struct_field(pc.extract_regex(dial_string, _GATEWAY_NAME), [0])
    single = pc.equal(pc.count_substring(dial_string, _GATEWAY), 1)
    return pc.if_else(pc.fill_null(single, False), name, pa.scalar(None, pa.string()))


def pdd_millis(progress, progress_media):
    """Post-dial delay in ms as text: the earlier of the first ring (`progressmsec`) and the
    first early media (`progress_mediamsec`), a 0 meaning it never came; null when neither
    came or neither is a whole number (a call answered without ringing has no PDD)."""
    first = None
    for text in (progress, progress_media):
        millis = cast_or_null(blank_to_null(text), pa.int64())
        millis = pc.if_else(pc.fill_null(pc.greater(millis, 0), False), millis, None)
        first = millis if first is None else pc.min_element_wise(first, millis)
    return pc.cast(first, pa.string())


def _column(table: pa.Table, name: str):
    if name in table.column_names:
        return table[name]
    return pa.nulls(table.num_rows, pa.string())


def _first_present(table: pa.Table, variables: tuple[str, ...]):
    """Per row, the first of `variables` (those the table has) with a value; else null."""
    columns = [blank_to_null(table[v]) for v in variables if v in table.column_names]
    if not columns:
        return pa.nulls(table.num_rows, pa.string())
    return pc.coalesce(*columns) if len(columns) > 1 else columns[0]


def hangup_disposition(cause, answer_text):
    """Canonical disposition from hangup_cause (vectorised); see HANGUP_DISPOSITIONS."""
    keys = pa.array(list(HANGUP_DISPOSITIONS))
    values = pa.array(list(HANGUP_DISPOSITIONS.values()))
    mapped = pc.take(values, pc.index_in(cause, keys))
    answered = pc.invert(pc.fill_null(pc.equal(answer_text, ""), True))
    clearing = pc.if_else(answered, "ANSWERED", "NO_ANSWER")
    mapped = pc.if_else(pc.equal(cause, "NORMAL_CLEARING"), clearing, mapped)
    mapped = pc.coalesce(mapped, _DEFAULT_FAILURE)
    # An empty cause says nothing: validation derives the disposition from billsec.
    return pc.if_else(pc.fill_null(pc.equal(cause, ""), True), "", mapped)


def _unquote_spaced(column):
    trimmed = pc.utf8_ltrim(column, " ")
    quoted = pc.and_(
        pc.and_(pc.starts_with(trimmed, '"'), pc.ends_with(trimmed, '"')),
        pc.greater_equal(pc.utf8_length(trimmed), 2),
    )
    return pc.if_else(quoted, pc.utf8_slice_codeunits(trimmed, 1, -1), trimmed)


def _map_text(table: pa.Table, mapping: dict[str, str | None]) -> dict[str, object]:
    """Canonical field ← template variable; null where the template lacks the variable."""
    out: dict[str, object] = {}
    for canonical, switch_field in mapping.items():
        key = f"{canonical}_text" if canonical in TIME_FIELDS else canonical
        out[key] = _column(table, switch_field) if switch_field else _column(table, "")
    return out


# --- mod_json_cdr -------------------------------------------------------------------------

# Canonical field ← where in a mod_json_cdr document, first present wins. `profile.` is
# callflow[0].caller_profile (not URL-encoded); `variables.` values are URL-encoded.
JSON_FIELDS: dict[str, tuple[str, ...]] = {
    "call_id": ("variables.uuid", "profile.uuid"),
    "caller": ("profile.caller_id_number", "variables.sip_from_user"),
    "callee": (
        "profile.destination_number",
        "variables.sip_req_user",
        "variables.dialed_extension",
    ),
    "start_epoch": ("variables.start_epoch",),
    "answer_epoch": ("variables.answer_epoch",),
    "end_epoch": ("variables.end_epoch",),
    "start_stamp": ("variables.start_stamp",),
    "answer_stamp": ("variables.answer_stamp",),
    "end_stamp": ("variables.end_stamp",),
    "billsec": ("variables.billsec",),
    "hangup_cause": ("variables.hangup_cause",),
    "customer": ("variables.accountcode",),
    "supplier": (),
    "ingress_trunk": tuple(f"variables.{v}" for v in TRUNK_VARIABLES["ingress_trunk"]),
    "ingress_ip": ("profile.network_addr", "variables.sip_network_ip"),
    "egress_trunk": tuple(f"variables.{v}" for v in TRUNK_VARIABLES["egress_trunk"]),
    "mos": (f"variables.{MOS_VARIABLE}",),
    **{v: (f"variables.{v}",) for v in PDD_VARIABLES},
}


def is_b_leg(document: dict) -> bool:
    """The B-leg rule: the leg's caller profile names an `originator` (the A-leg that created it).

    With log-b-leg=true (the default) mod_json_cdr writes both legs of every bridged call; the
    A-leg is the customer's call and the one billed. Documents without a callflow fall back to
    the channel direction: `outbound` legs are B-legs on a Class-4 switch, where customers'
    calls always arrive inbound.
    """
    profile = _profile(document)
    if profile is not None:
        return bool(profile.get("originator"))
    variables = document.get("variables") or {}
    channel = document.get("channel_data") or {}
    direction = variables.get("direction") or channel.get("direction") or ""
    return unquote(str(direction)) == "outbound"


def parse_json(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """mod_json_cdr documents; B-legs are dropped BEFORE counting rows_in (not CDRs to bill)."""
    return parse_json_legs(data, timezone=timezone, source=source, numbering=numbering)[0]


def parse_json_legs(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    numbering: NumberingPlan | None = None,
) -> tuple[ParsedFile, int]:
    """`parse_json` plus the number of B-legs dropped, for ingest metrics."""
    if not data or data.isspace():
        raise CdrFileError(f"{source}: no JSON document in the file")
    decoded = read_json_records(data, source=source)
    columns: dict[str, list[str]] = {name: [] for name in (*JSON_FIELDS, "bridge")}
    lines: list[int] = []
    raws: list[str] = []
    bad: list[int] = []
    b_legs = 0
    for record, line, raw in zip(decoded.records, decoded.lines, decoded.raws, strict=True):
        if not isinstance(record, dict):
            bad.append(len(lines))
            lines.append(line)
            raws.append(raw)
            for values in columns.values():
                values.append("")
            continue
        if is_b_leg(record):
            b_legs += 1
            continue
        lines.append(line)
        raws.append(raw)
        for name, paths in JSON_FIELDS.items():
            columns[name].append(_lookup(record, paths))
        columns["bridge"].append(_bridged_to(record))
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    fields = {
        "line": pa.array(lines, pa.int64()),
        "call_id": table["call_id"],
        "caller": table["caller"],
        "callee": table["callee"],
        "billsec": table["billsec"],
        "customer": table["customer"],
        "supplier": table["supplier"],
        "ingress_trunk": table["ingress_trunk"],
        "ingress_ip": table["ingress_ip"],
        "mos": table["mos"],
        "pdd_ms": pdd_millis(*(table[v] for v in PDD_VARIABLES)),
        "egress_trunk": pc.coalesce(
            blank_to_null(table["egress_trunk"]), bridge_gateway(table["bridge"])
        ),
    }
    stamps = parse_local_times(
        {f: table[f.replace("_time", "_stamp")] for f in TIME_FIELDS}, timezone
    )
    for name in TIME_FIELDS:
        # Epochs are UTC and exact; the local stamps are only a fallback. FS writes
        # answer_epoch=0 for an unanswered leg.
        epoch_text = table[name.replace("_time", "_epoch")]
        seconds = cast_or_null(_blank_or_zero_to_null(epoch_text), pa.int64())
        from_epoch = pc.cast(pc.multiply(seconds, 1_000_000), pa.int64()).cast(UTC_MICROS)
        stamp_text = table[name.replace("_time", "_stamp")]
        use_epoch = pc.invert(pc.is_null(_blank_or_zero_to_null(epoch_text)))
        fields[name] = pc.if_else(use_epoch, from_epoch, stamps[name][0])
        fields[f"{name}_text"] = pc.if_else(use_epoch, epoch_text, stamp_text)
        fields[f"{name}_problem"] = pc.if_else(
            use_epoch, pa.scalar(None, pa.string()), stamps[name][1]
        )
    fields["disposition"] = hangup_disposition(table["hangup_cause"], fields["answer_time_text"])
    mapped_table = pa.table(fields)
    rejected = decoded.rejected
    if bad:
        keep = np.ones(len(lines), bool)
        keep[bad] = False
        rejected = _not_an_object(rejected, [lines[i] for i in bad], [raws[i] for i in bad])
        mapped_table = mapped_table.filter(pa.array(keep))
        raws = [raw for i, raw in enumerate(raws) if keep[i]]
    raw_column = pa.array(raws, pa.string())
    mapped = MappedRows(
        fields=mapped_table,
        raw=lambda positions: raw_column.take(pa.array(positions, pa.int64())),
        rejected=rejected,
    )
    return validate(mapped, numbering), b_legs


def _bridged_to(document: dict) -> str:
    """The dial string of the leg's last `bridge` (app_log, not URL-encoded), else its last
    application's argument when that was a bridge."""
    app_log = document.get("app_log")
    applications = app_log.get("applications") if isinstance(app_log, dict) else None
    if isinstance(applications, list):
        for application in reversed(applications):
            if isinstance(application, dict) and application.get("app_name") == "bridge":
                return str(application.get("app_data") or "")
    if _lookup(document, ("variables.last_app",)) == "bridge":
        return _lookup(document, (f"variables.{BRIDGE_VARIABLE}",))
    return ""


def _profile(document: dict) -> dict | None:
    callflow = document.get("callflow")
    if isinstance(callflow, dict):  # older FS versions write a single object
        callflow = [callflow]
    if isinstance(callflow, list) and callflow and isinstance(callflow[0], dict):
        profile = callflow[0].get("caller_profile")
        return profile if isinstance(profile, dict) else None
    return None


def _lookup(document: dict, paths: tuple[str, ...]) -> str:
    for path in paths:
        where, key = path.split(".", 1)
        if where == "profile":
            value = (_profile(document) or {}).get(key)
            text = "" if value is None else str(value)
        else:
            value = (document.get("variables") or {}).get(key)
            text = "" if value is None else unquote(str(value))
        if text:
            return text
    return ""


def _blank_or_zero_to_null(text):
    blank = pc.fill_null(pc.is_in(text, pa.array(["", "0"])), True)
    return pc.if_else(blank, pa.scalar(None, pa.string()), text)


def _not_an_object(rejected: pa.Table, lines: list[int], raws: list[str]) -> pa.Table:
    extra = pa.table(
        {
            "line": pa.array(lines, pa.int64()),
            "reason": pa.array(["malformed"] * len(lines)),
            "field": pa.array([""] * len(lines)),
            "detail": pa.array(["record is not a JSON object"] * len(lines)),
            "raw": pa.array(raws, pa.string()),
        }
    ).cast(rejected.schema)
    return pa.concat_tables([rejected, extra])
