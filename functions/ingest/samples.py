"""Realistic synthetic CDR files for benchmarks, demos and tests, built column-wise.

Every generator is deterministic by `seed` and vectorised (NumPy + Arrow string kernels), so a
million-row file takes well under a few seconds: the benchmark must measure the parser, not the
generator. Values are invented but shaped like real switch output (see formats.md §1-3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

GENERIC_HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier,"
    "pdd_ms"
)

# Day the synthetic traffic starts (2024-05-01T00:00:00Z); a bank-holiday-free weekday.
_EPOCH_START = 1_714_521_600

# (weight, lowest E.164 number, count): mobile and fixed ranges of typical wholesale traffic.
_DESTINATIONS = (
    (0.30, 91_6_000_000_000, 4_000_000_000),  # India mobile 91 6/7/8/9 + 9 digits
    (0.20, 44_7_000_000_000, 1_000_000_000),  # UK mobile 44 7 + 9 digits
    (0.05, 44_20_0000_0000, 1_0000_0000),  # UK London fixed 44 20 + 8 digits
    (0.20, 1_201_000_0000, 789_000_0000),  # US/Canada NANP 1 + NPA 201-989 + 7 digits
    (0.10, 234_80_0000_0000, 3_0000_0000),  # Nigeria mobile 234 80x-82x
    (0.10, 63_9_000_000_000, 1_000_000_000),  # Philippines mobile 63 9xx
    (0.05, 49_15_0000_0000, 5_0000_0000),  # Germany mobile 49 15x-17x (10-digit NSN form)
)
_CALLERS = (1_212_000_0000, 9_000_0000)  # CLIs presented by the customers' PBXs (NYC range)
CUSTOMERS = ("ACME_TEL", "BLUEWAVE", "NORTHSTAR_VOIP", "CALLHUB_UK", "DESI_CONNECT")
SUPPLIERS = ("VEND_TATA", "VEND_BICS", "VEND_IDT", "VEND_BT", "VEND_MTN")
# Unanswered outcomes and their share of unanswered calls.
_UNANSWERED = (("NO_ANSWER", 0.55), ("BUSY", 0.2), ("FAILED", 0.1), ("CONGESTION", 0.05))
_CANCEL_SHARE = 0.10

_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


@dataclass(frozen=True, slots=True)
class _Calls:
    """Column-wise call facts that every format renders in its own syntax."""

    call_id: pa.Array
    caller: pa.Array
    callee: pa.Array  # digits only
    start: np.ndarray  # epoch seconds
    answer: np.ndarray  # epoch seconds; meaningless where not answered
    end: np.ndarray
    billsec: np.ndarray
    answered: np.ndarray  # bool
    disposition: pa.Array  # canonical DISPOSITIONS
    customer: pa.Array
    supplier: pa.Array
    pdd_ms: np.ndarray


def _fixed_width(matrix: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix of ASCII as an Arrow string array without a per-row object."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(matrix).tobytes())
    ).cast(pa.string())


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of `values` as an (n, width) ASCII matrix."""
    out = np.empty((len(values), width), np.uint8)
    rest = values.astype(np.int64 if width > 9 else np.int32)
    for k in range(width - 1, -1, -1):
        rest, digit = np.divmod(rest, 10)
        out[:, k] = digit + 48
    return out


def format_times(epoch_s: np.ndarray, *, sep: str = " ", suffix: str = "") -> pa.Array:
    """Epoch seconds as `YYYY-MM-DD<sep>HH:MM:SS<suffix>` strings (civil calendar, vectorised)."""
    days, secs = np.divmod(epoch_s.astype(np.int64), 86_400)
    # Howard Hinnant's civil_from_days: exact proleptic Gregorian without a datetime per row.
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    parts = [
        _digits(year, 4),
        _const(len(epoch_s), "-"),
        _digits(month, 2),
        _const(len(epoch_s), "-"),
        _digits(day, 2),
        _const(len(epoch_s), sep),
        _digits(secs // 3600, 2),
        _const(len(epoch_s), ":"),
        _digits(secs // 60 % 60, 2),
        _const(len(epoch_s), ":"),
        _digits(secs % 60, 2),
        _const(len(epoch_s), suffix),
    ]
    return _fixed_width(np.hstack(parts))


def _const(n: int, text: str) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode(), np.uint8), (n, len(text)))


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """Version-4-shaped UUID strings, as FreeSWITCH writes them."""
    nibbles = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    hexed = _HEX[nibbles]
    dash = _const(n, "-")
    return _fixed_width(
        np.hstack(
            [
                hexed[:, :8],
                dash,
                hexed[:, 8:12],
                dash,
                hexed[:, 12:16],
                dash,
                hexed[:, 16:20],
                dash,
                hexed[:, 20:],
            ]
        )
    )


def _numbers(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def _choose(rng: np.random.Generator, n: int, names: tuple[str, ...]) -> pa.Array:
    return pa.array(np.asarray(names, dtype=object)[rng.integers(0, len(names), n)], pa.string())


def _calls(
    n: int,
    seed: int,
    unanswered_fraction: float,
    customers: tuple[str, ...],
    suppliers: tuple[str, ...],
    span_seconds: int = 86_400,
) -> _Calls:
    rng = np.random.default_rng(seed)
    weights = np.array([d[0] for d in _DESTINATIONS])
    which = rng.choice(len(_DESTINATIONS), size=n, p=weights / weights.sum())
    low = np.array([d[1] for d in _DESTINATIONS], dtype=np.int64)[which]
    count = np.array([d[2] for d in _DESTINATIONS], dtype=np.int64)[which]
    callee = low + (rng.random(n) * count).astype(np.int64)
    caller = _CALLERS[0] + rng.integers(0, _CALLERS[1], n)

    start = _EPOCH_START + np.sort(rng.integers(0, span_seconds, n))
    pdd_ms = rng.integers(700, 6_000, n)
    answered = rng.random(n) >= unanswered_fraction
    ring = rng.integers(2, 35, n)
    # Wholesale talk time is roughly exponential with a ~3 minute mean; never 0 when answered.
    billsec = np.where(answered, 1 + rng.exponential(180.0, n).astype(np.int64), 0)
    answer = start + ring
    end = np.where(answered, answer + billsec, start + ring)

    outcomes = np.array([o[0] for o in _UNANSWERED] + ["CANCEL"], dtype=object)
    shares = np.array([o[1] for o in _UNANSWERED] + [_CANCEL_SHARE])
    lost = outcomes[rng.choice(len(outcomes), size=n, p=shares / shares.sum())]
    disposition = np.where(answered, "ANSWERED", lost).astype(object)
    return _Calls(
        call_id=_uuids(rng, n),
        caller=_numbers(caller),
        callee=_numbers(callee),
        start=start,
        answer=answer,
        end=end,
        billsec=billsec,
        answered=answered,
        disposition=pa.array(disposition, pa.string()),
        customer=_choose(rng, n, customers),
        supplier=_choose(rng, n, suppliers),
        pdd_ms=pdd_ms,
    )


def _present_callee(rng: np.random.Generator, digits: pa.Array) -> pa.Array:
    """Dialled strings as customers send them: bare, `+`, `00`, and `+CC NSN-with-dashes`."""
    n = len(digits)
    style = rng.integers(0, 10, n)
    plus = pc.binary_join_element_wise("+", digits, "")
    intl = pc.binary_join_element_wise("00", digits, "")
    spaced = pc.binary_join_element_wise(
        "+",
        pc.utf8_slice_codeunits(digits, 0, 2),
        " ",
        pc.utf8_slice_codeunits(digits, 2, 6),
        "-",
        pc.utf8_slice_codeunits(digits, 6),
        "",
    )
    out = pc.if_else(pa.array(style < 5), digits, plus)
    out = pc.if_else(pa.array(style == 8), intl, out)
    return pc.if_else(pa.array(style == 9), spaced, out)


def _join_rows(rows: pa.Array, *, header: str | None = None) -> bytes:
    """Rows as newline-terminated lines: the joined array's data buffer is the file."""
    lines = pc.binary_join_element_wise(rows, "", "\n")
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    body = lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]
    return (header + "\n").encode() + body if header else body


def _corrupt(
    rng: np.random.Generator, n: int, bad_fraction: float, kinds: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Masks of rows to damage, one kind per damaged row."""
    bad = rng.random(n) < bad_fraction
    kind = rng.integers(0, len(kinds), n)
    return {k: bad & (kind == i) for i, k in enumerate(kinds)}


def _replace(column: pa.Array, mask: np.ndarray, value: str) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(value), column) if mask.any() else column


_BAD_KINDS = ("bad_time", "negative_billsec", "text_billsec", "no_callee", "bad_number", "short")


def generate_generic_csv(
    n: int,
    seed: int = 0,
    *,
    bad_fraction: float = 0.0,
    unanswered_fraction: float = 0.35,
    customers: tuple[str, ...] = CUSTOMERS,
    suppliers: tuple[str, ...] = SUPPLIERS,
    duplicate_fraction: float = 0.0,
    span_seconds: int = 86_400,
) -> bytes:
    """A `generic` CSV: ISO 8601 times (mostly Z, some with +02:00 / -05:00 offsets)."""
    calls = _calls(n, seed, unanswered_fraction, customers, suppliers, span_seconds)
    rng = np.random.default_rng(seed + 1)
    # Most carriers send UTC; some send their local offset (a Berlin and a New York switch).
    offset_h = np.array([0, 0, 0, 2, -5])[rng.integers(0, 5, n)]
    suffix = pa.array(
        np.array(["Z", "+02:00", "-05:00"], dtype=object)[
            (offset_h != 0).astype(np.int8) + (offset_h < 0)
        ]
    )

    def iso(epoch: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(
            format_times(epoch + offset_h * 3600, sep="T"), suffix, ""
        )

    answered = pa.array(calls.answered)
    call_id = calls.call_id
    # A duplicate is an earlier CDR sent again: the same call id, start and everything.
    resent = np.arange(n)
    if duplicate_fraction > 0:
        dup = (rng.random(n) < duplicate_fraction) & (np.arange(n) > 0)
        earlier = (rng.random(n) * np.arange(n)).astype(np.int64)
        resent = np.where(dup, earlier, resent)
    bad = _corrupt(rng, n, bad_fraction, _BAD_KINDS)
    answer = pc.if_else(answered, iso(calls.answer), "")
    answer = _replace(answer, bad["bad_time"], "2024-13-01T25:00:00Z")
    billsec = _numbers(calls.billsec)
    billsec = _replace(billsec, bad["negative_billsec"], "-5")
    billsec = _replace(billsec, bad["text_billsec"], "12s")
    callee = _present_callee(rng, calls.callee)
    callee = _replace(callee, bad["no_callee"], "")
    callee = _replace(callee, bad["bad_number"], "44abc")
    head = [call_id, calls.caller, callee, iso(calls.start), answer, iso(calls.end), billsec]
    tail = [calls.disposition, calls.customer, calls.supplier, _numbers(calls.pdd_ms)]
    rows = pc.binary_join_element_wise(*head, *tail, ",")
    if bad["short"].any():
        rows = pc.if_else(pa.array(bad["short"]), pc.binary_join_element_wise(*head, ","), rows)
    if duplicate_fraction > 0:
        rows = rows.take(pa.array(resent))
    return _join_rows(rows, header=GENERIC_HEADER)


def _local_epoch(epoch_s: np.ndarray, timezone: str) -> np.ndarray:
    """Wall-clock seconds in `timezone` for UTC epoch seconds (what a switch's strftime shows)."""
    ts = pa.array(epoch_s * 1_000_000, pa.timestamp("us", tz=timezone))
    return pc.local_timestamp(ts).cast(pa.int64()).to_numpy() // 1_000_000


_FS_CAUSES = {
    "NO_ANSWER": "NO_ANSWER",
    "BUSY": "USER_BUSY",
    "FAILED": "UNALLOCATED_NUMBER",
    "CONGESTION": "NORMAL_CIRCUIT_CONGESTION",
    "CANCEL": "ORIGINATOR_CANCEL",
    "ANSWERED": "NORMAL_CLEARING",
}


def _quoted(column: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', column, '"', "")


def generate_freeswitch_csv(
    n: int,
    seed: int = 0,
    *,
    template: str = "example",
    timezone: str = "UTC",
    bad_fraction: float = 0.0,
    unanswered_fraction: float = 0.35,
    customers: tuple[str, ...] = CUSTOMERS,
    suppliers: tuple[str, ...] = SUPPLIERS,
) -> bytes:
    """mod_cdr_csv output: `example` (15 fields) or built-in `default` (13, `", "` quirk)."""
    if template not in ("example", "default"):
        raise ValueError(f"unknown mod_cdr_csv template {template!r}")
    calls = _calls(n, seed, unanswered_fraction, customers, suppliers)
    rng = np.random.default_rng(seed + 2)

    def stamp(epoch: np.ndarray) -> pa.Array:
        return format_times(_local_epoch(epoch, timezone))

    answered = pa.array(calls.answered)
    cause = pc.replace_substring(calls.disposition, "ANSWERED", "NORMAL_CLEARING")
    for canonical, fs in _FS_CAUSES.items():
        if canonical != "ANSWERED":
            cause = pc.replace_substring(cause, canonical, fs)
    bad = _corrupt(rng, n, bad_fraction, ("quote_in_name", "bad_time", "text_billsec"))
    names = _choose(rng, n, ("Alice", "Bob", "Reception", "Smith, John", "ACME Sales"))
    names = _replace(names, bad["quote_in_name"], 'Bob "Fast, Ltd"')
    start = stamp(calls.start)
    answer = _replace(
        pc.if_else(answered, stamp(calls.answer), ""), bad["bad_time"], "2024-13-01 25:00:00"
    )
    billsec = _replace(_numbers(calls.billsec), bad["text_billsec"], "abc")
    fields = [
        names,
        calls.caller,
        calls.callee,
        pa.array(np.full(n, "public", dtype=object)),
        start,
        answer,
        stamp(calls.end),
        _numbers(calls.end - calls.start),
        billsec,
        cause,
        calls.call_id,
        _uuids(rng, n),
    ]
    quoted = [_quoted(f) for f in fields]
    if template == "example":
        codec = pa.array(np.full(n, "PCMA", dtype=object))
        quoted += [_quoted(calls.customer), _quoted(codec), _quoted(codec)]
        rows = pc.binary_join_element_wise(*quoted, ",")
    else:
        # The built-in template's literal `", "` before accountcode (mod_cdr_csv.c).
        rows = pc.binary_join_element_wise(
            pc.binary_join_element_wise(*quoted, ","), _quoted(calls.customer), ", "
        )
    return _join_rows(rows)


_ASTERISK_DISPOSITIONS = {"NO_ANSWER": "NO ANSWER"}


def generate_asterisk_csv(
    n: int,
    seed: int = 0,
    *,
    columns: int = 18,
    timezone: str = "UTC",
    bad_fraction: float = 0.0,
    unanswered_fraction: float = 0.35,
    customers: tuple[str, ...] = CUSTOMERS,
    suppliers: tuple[str, ...] = SUPPLIERS,
) -> bytes:
    """Asterisk cdr_csv Master.csv with 16 or 18 columns (loguniqueid + loguserfield)."""
    if columns not in (16, 18):
        raise ValueError("Asterisk Master.csv has 16 or 18 columns")
    calls = _calls(n, seed, unanswered_fraction, customers, suppliers)
    rng = np.random.default_rng(seed + 3)
    answered = pa.array(calls.answered)

    def stamp(epoch: np.ndarray) -> pa.Array:
        return _quoted(format_times(_local_epoch(epoch, timezone)))

    seq = _numbers(np.arange(n) + 0x1A)
    chan_no = pc.utf8_lpad(seq, 8, "0")
    # The outgoing peer is named after the supplier's account, so the parser's
    # dstchannel → supplier mapping lands on it.
    trunk = calls.supplier
    names = _choose(rng, n, ('""Alice""', '""Smith, John""', '""Reception""'))
    clid = pc.binary_join_element_wise(names, " <", calls.caller, ">", "")
    dstchannel = pc.binary_join_element_wise("SIP/", trunk, "-", chan_no, "")
    disposition = pc.replace_substring(calls.disposition, "NO_ANSWER", "NO ANSWER")
    bad = _corrupt(rng, n, bad_fraction, ("bad_time", "negative_billsec", "bad_number"))
    answer = _replace(
        pc.if_else(answered, stamp(calls.answer), ""), bad["bad_time"], '"2024-13-01 25:00:00"'
    )
    billsec = _replace(_numbers(calls.billsec), bad["negative_billsec"], "-5")
    callee = _replace(calls.callee, bad["bad_number"], "44abc")
    fields = [
        _quoted(calls.customer),
        _quoted(calls.caller),
        _quoted(callee),
        _quoted(pa.array(np.full(n, "from-carrier", dtype=object))),
        _quoted(clid),
        _quoted(pc.binary_join_element_wise("SIP/trunk-", chan_no, "")),
        _quoted(dstchannel),
        '"Dial"',
        _quoted(pc.binary_join_element_wise("SIP/", trunk, "/", callee, ",60", "")),
        stamp(calls.start),
        answer,
        stamp(calls.end),
        _numbers(calls.end - calls.start),
        billsec,
        _quoted(disposition),
        '"DOCUMENTATION"',
    ]
    if columns == 18:
        uniqueid = pc.binary_join_element_wise(_numbers(calls.start), _numbers(np.arange(n)), ".")
        fields += [_quoted(uniqueid), '""']
    return _join_rows(pc.binary_join_element_wise(*fields, ","))


def _renamed(names: pa.Array, renames: Mapping[str, str] | None) -> pa.Array:
    if not renames:
        return names
    keys = pa.array(list(renames), pa.string())
    values = pa.array(list(renames.values()), pa.string())
    return pc.coalesce(values.take(pc.index_in(names, value_set=keys)), names)


def generate_vos3000_json(
    n: int,
    seed: int = 0,
    *,
    layout: str = "array",
    bad_fraction: float = 0.0,
    unanswered_fraction: float = 0.35,
    customers: tuple[str, ...] = CUSTOMERS,
    suppliers: tuple[str, ...] = SUPPLIERS,
    gateways: Mapping[str, str] | None = None,
) -> bytes:
    """VOS3000 GetCdr InfoCdr records: JSON `array`, `{"infoCdrs": [...]}` `object`, or `lines`.

    `gateways` names the caller/callee gateway of each account's calls, as a softswitch names
    its trunks (`SG-ACME`); without it the gateways carry the account names.
    """
    if layout not in ("array", "object", "lines"):
        raise ValueError(f"unknown layout {layout!r}")
    calls = _calls(n, seed, unanswered_fraction, customers, suppliers)
    rng = np.random.default_rng(seed + 4)
    bad = _corrupt(rng, n, bad_fraction, ("bad_number", "no_callee"))
    callee = _replace(_replace(calls.callee, bad["bad_number"], "44abc"), bad["no_callee"], "")
    # VOS stamps start at setup and stop at release; holdTime is the talk time.
    start_ms = calls.start * 1000 + rng.integers(0, 1000, n)
    stop_ms = calls.end * 1000 + rng.integers(0, 1000, n)
    end_reason = np.where(calls.answered, 0, rng.integers(1, 20, n))
    parts = [
        '{"flowNo":',
        _numbers(88_000_000 + np.arange(n)),
        ',"callerE164":"',
        calls.caller,
        '","calleeE164":"',
        callee,
        '","account":"',
        calls.customer,
        '","callerGateway":"',
        _renamed(calls.customer, gateways),
        '","calleeGateway":"',
        _renamed(calls.supplier, gateways),
        '","start":',
        _numbers(start_ms),
        ',"stop":',
        _numbers(stop_ms),
        ',"holdTime":',
        _numbers(calls.billsec),
        ',"feeTime":',
        _numbers(np.where(calls.billsec > 0, (calls.billsec + 5) // 6 * 6, 0)),
        ',"calleepdd":',
        _numbers(calls.pdd_ms),
        ',"endDirection":',
        _numbers(rng.integers(0, 3, n)),
        ',"endReason":',
        _numbers(end_reason),
        "}",
    ]
    records = pc.binary_join_element_wise(*parts, "")
    if layout == "lines":
        return _join_rows(records)
    body = _join_rows(records).rstrip(b"\n").replace(b"}\n{", b"},\n{")
    doc = b"[\n" + body + b"\n]\n"
    return b'{"retCode":0,"infoCdrs":' + doc + b"}\n" if layout == "object" else doc
