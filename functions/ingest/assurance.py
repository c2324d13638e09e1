"""Switch-to-billing revenue assurance: a daily check of every switch's files and calls.

For a tenant, a switch and a UTC day D (fraud-reconciliation.md §B4), from the file registry
(functions.store.files: one record per file with its status, counts and meta) and the lake's
per-file tables, never from a scan of CDRs:

- files received: the switch's files that ARRIVED on D (the registry's first-ingest time),
  with their names, arrival times and statuses;
- files refused whole or failed: the files of D `rejected` (unknown or unregistered switch,
  unknown format, unreadable) or `failed` (crashed on their last delivery, waiting for a
  retry), with why, their bytes (as the drop's notification said) and rows where known: none
  of their calls is billed and what they were is not known, so they are counted ("not
  billed: the whole file"), never priced. A switch nobody registered is checked under the
  name its files' keys give (incoming/{tenant}/{switch}/...);
- sequence: the number each received file's name carries (the switch's `sequence_pattern`,
  a regular expression whose first group is the digits, e.g. `cdr_(\\d+)\\.csv`), in arrival
  order, continued from the last numbered file that arrived before D. A step of one is
  continuity; a step up by k > 1 is a GAP of k - 1 missing files (`[first, last]` ranges); a
  step down is a WRAP when the switch has a `sequence_modulus` M and the forward distance
  (next - previous) mod M is at most M / 2 (9999 -> 0 with M = 10000: the numbers skipped
  across the wrap are a gap too), else a RESET (the counter restarted: a reboot, Asterisk's
  process-global counter), counted as a reset and never as a gap; the same number again is
  a REPEATED file (a resend);
- silent hours: the hours (UTC) of D in which the switch sent no CDR although, on at least
  `usual_days` (default 10) of the 14 days before D, it sent one in that hour;
- late files: files holding calls of D that arrived more than `late_hours` (default 6) hours
  after D ended, with their calls of D and what those calls billed (in the tenant's currency);
- duplicate files: files holding calls of D every accepted call of which an earlier file had
  already claimed (the rating's duplicate claim: counts.duplicates, no rated or unrated
  call), or whose name repeats an earlier file's of the switch; duplicate calls: the calls of
  D a file sent that were claimed before (its normalised rows of D minus its rated rows);
- quarantine share: quarantined rows / rows in, over the files received on D (a quarantined
  row has no trustworthy day of its own: it is filed under its file's arrival), with the
  count per quarantine reason;
- unrated share: unrated calls / calls rated or unrated, over the calls of D, per reason
  (`unknown_account`: the customer's trunk or field maps to no account); calls whose
  customer or supplier maps to no account are counted on their own as well;
- money not billed per unrated reason: each unrated ANSWERED call's seconds (billsec) priced
  at the average customer revenue per second realised on D, across the tenant's rated calls
  in its currency, for the longest rated prefix (`matched_prefix`) the callee starts with;
  where no rated call of D shares a prefix with the callee, at the tenant's average revenue
  per second on D; where the tenant rated nothing on D, not estimated (counted as such).
  Exact: for each (reason, prefix) group, seconds x revenue / billed seconds is rounded
  half up to micro-units once, and the groups are added up. Quarantined rows, missing files
  and silent hours are not priced (nothing says what the calls were): they are counted.

Which files: those that arrived on D-14..D whatever their status (the registry's day index,
functions.store.files.arrived_files: one Query), those with normalised tables of D-14..D (by
call day: a late file of D arrived after it) or a quarantine table of D-14..D (by arrival
day), listed in the lake; their records read in batches, so the reads grow with the files of
the window, not with the tenant's history or the calls. The window rather than D alone: a
file refused the day before still numbers the sequence D continues.

Thresholds (per tenant, `Thresholds`): an alert per (switch, day, check) whose value passes
its threshold: files refused whole or failed > 0, quarantine share > 5 %, unrated share > 2 %,
missing sequence numbers > 0, silent hours > 0, late files > 0, money not billed > 0. The
stores arrive as ports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.shared.money import AMOUNT_SCALE, units_from_decimal_array, units_to_str

HISTORY_DAYS = 14  # the trailing days an hour's usual traffic is judged on
SHARE_PLACES = Decimal("0.000001")  # shares are printed to 6 places (exact comparisons)
NO_ACCOUNT = "unknown_account"
ALERT_DETAIL_TYPE = "Tollgate Assurance Alert"
CHECKS = (
    "rejected_files",
    "sequence_gap",
    "silent_hours",
    "late_files",
    "quarantine_share",
    "unrated_share",
    "money_not_billed",
)
RATED_COLUMNS = (
    "callee",
    "start_time",
    "billsec",
    "status",
    "reason",
    "customer",
    "supplier_reason",
    "matched_prefix",
    "billed_seconds",
    "customer_amount",
    "currency",
)


# --- settings --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SequenceSettings:
    """How a switch numbers its files: a pattern whose first group is the number, and the
    modulus the number wraps at (None: it never wraps; every step down is a reset)."""

    pattern: str | None = None
    modulus: int | None = None

    def number(self, name: str) -> int | None:
        if self.pattern is None:
            return None
        found = re.search(self.pattern, name)
        digits = found.group(1) if found is not None else None
        return int(digits) if digits and digits.isdigit() else None


def check_sequence_settings(pattern: str | None, modulus: int | None) -> SequenceSettings:
    """Validate a switch's sequence settings (ValueError naming the field)."""
    if pattern is not None:
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"sequence pattern {pattern!r} is not a regular expression: {error}"
            ) from None
        if compiled.groups < 1:
            raise ValueError(
                f"sequence pattern {pattern!r} needs a group around the number, e.g. 'cdr_(\\d+)'"
            )
    if modulus is not None:
        if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 2:
            raise ValueError(f"sequence modulus must be an integer >= 2, got {modulus!r}")
        if pattern is None:
            raise ValueError("sequence modulus needs a sequence pattern")
    return SequenceSettings(pattern, modulus)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a check raises an alert (its value strictly above), and the checks' parameters."""

    quarantine_share: Decimal = Decimal("0.05")
    unrated_share: Decimal = Decimal("0.02")
    rejected_files: int = 0  # files of D refused whole or failed: none of their calls billed
    sequence_gap: int = 0  # missing file numbers
    silent_hours: int = 0
    late_files: int = 0
    money_not_billed: Decimal = Decimal("0")
    late_hours: int = 6  # a file of D is late when it arrives later than this after D
    usual_days: int = 10  # of HISTORY_DAYS: an hour with traffic that often is usual

    def as_json(self) -> dict[str, str | int]:
        return {
            f.name: str(getattr(self, f.name))
            if isinstance(getattr(self, f.name), Decimal)
            else getattr(self, f.name)
            for f in dataclasses.fields(self)
        }


THRESHOLD_FIELDS = tuple(f.name for f in dataclasses.fields(Thresholds))
_DECIMAL_FIELDS = ("quarantine_share", "unrated_share", "money_not_billed")


def thresholds_from(values: Mapping[str, Any], base: Thresholds | None = None) -> Thresholds:
    """`base` (the defaults) with `values` (text or numbers) applied; ValueError naming the
    field at fault."""
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in THRESHOLD_FIELDS:
            raise ValueError(f"unknown threshold {name!r}: use {', '.join(THRESHOLD_FIELDS)}")
        if name in _DECIMAL_FIELDS:
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                raise ValueError(f"{name}: {value!r} is not a number") from None
            if not number.is_finite() or number < 0:
                raise ValueError(f"{name}: must be a non-negative number, got {value!r}")
            if name.endswith("_share") and number > 1:
                raise ValueError(f"{name}: a share is between 0 and 1 (5 % is 0.05)")
            changes[name] = number
        else:
            try:
                whole = int(str(value).strip())
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not a whole number") from None
            if whole < 0 or (name == "usual_days" and not 1 <= whole <= HISTORY_DAYS):
                raise ValueError(
                    f"{name}: must be between 1 and {HISTORY_DAYS}"
                    if name == "usual_days"
                    else f"{name}: must not be negative"
                )
            changes[name] = whole
    return dataclasses.replace(base or Thresholds(), **changes)


# --- the file sequence -----------------------------------------------------------------


@dataclass
class SequenceReport:
    numbered: int = 0
    first: int | None = None
    last: int | None = None
    missing: int = 0
    gaps: list[list[int]] = field(default_factory=list)  # [first, last] missing, inclusive
    wraps: int = 0
    resets: list[dict[str, Any]] = field(default_factory=list)  # {name, previous, number}
    repeated: list[str] = field(default_factory=list)  # names whose number came again
    unsequenced: list[str] = field(default_factory=list)  # names without a number

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sequence_report(
    names: Sequence[str], settings: SequenceSettings, anchor: int | None = None
) -> SequenceReport:
    """The gaps, wraps, resets and repeats of `names` (in arrival order), continuing from
    `anchor` (the last number seen before them; None: the first name starts the run)."""
    report = SequenceReport()
    previous = anchor
    modulus = settings.modulus
    for name in names:
        number = settings.number(name)
        if number is None:
            report.unsequenced.append(name)
            continue
        report.numbered += 1
        report.first = number if report.first is None else report.first
        report.last = number
        if previous is None:
            previous = number
            continue
        if number == previous:
            report.repeated.append(name)
            continue
        if number > previous:
            _gap(report, previous + 1, number - 1, modulus)
        elif modulus is not None and (number - previous) % modulus <= modulus // 2:
            report.wraps += 1
            _gap(report, previous + 1, modulus - 1, modulus)
            _gap(report, 0, number - 1, modulus)
        else:
            report.resets.append({"name": name, "previous": previous, "number": number})
        previous = number
    return report


def _gap(report: SequenceReport, first: int, last: int, modulus: int | None) -> None:
    if last < first:
        return
    if report.gaps and report.gaps[-1][1] + 1 == first and modulus is None:
        report.gaps[-1][1] = last
    else:
        report.gaps.append([first, last])
    report.missing += last - first + 1


# --- hours -----------------------------------------------------------------------------


def _micros(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * 1_000_000


def hour_matrix(start_times: pa.Array | pa.ChunkedArray, first: dt.date, days: int) -> np.ndarray:
    """Calls per (day since `first`, UTC hour) of the start times that fall in those days."""
    micros = pc.cast(start_times, pa.int64()).to_numpy(zero_copy_only=False)
    offset = (micros - _micros(first)) // 3_600_000_000
    offset = offset[(offset >= 0) & (offset < days * 24)]
    return np.bincount(offset, minlength=days * 24).reshape(days, 24)


def silent_hours(today: np.ndarray, history: np.ndarray, usual_days: int) -> tuple[list, list]:
    """(usual hours, silent hours): an hour is usual when at least `usual_days` rows of
    `history` (days x 24) have traffic in it; silent when usual and `today` has none."""
    days_with_traffic = (history > 0).sum(axis=0)
    usual = [int(h) for h in np.flatnonzero(days_with_traffic >= usual_days)]
    return usual, [h for h in usual if today[h] == 0]


# --- calls: unrated, unknown accounts, money not billed --------------------------------


@dataclass(frozen=True)
class RevenueBook:
    """What the tenant's rated calls of D earned per billed second: per customer prefix, and
    over all (micro-units and seconds, exact), in `currency`."""

    currency: str
    prefixes: pa.Table  # matched_prefix, amount (micro-units), seconds
    amount: int
    seconds: int


def revenue_book(rated: pa.Table, currency: str) -> RevenueBook:
    """Rated, answered calls of D in `currency`, summed per matched prefix."""
    keep = pc.and_(
        pc.and_(pc.equal(rated.column("status"), "rated"), pc.equal(rated["currency"], currency)),
        pc.greater(rated.column("billed_seconds"), 0),
    )
    calls = rated.select(["matched_prefix", "billed_seconds", "customer_amount"]).filter(
        pc.fill_null(keep, False)
    )
    calls = calls.filter(pc.is_valid(calls.column("customer_amount")))
    micros = units_from_decimal_array(calls.column("customer_amount"), AMOUNT_SCALE)
    table = pa.table(
        {
            "matched_prefix": calls.column("matched_prefix"),
            "amount": pa.array(micros, pa.int64()),
            "seconds": calls.column("billed_seconds").cast(pa.int64()),
        }
    )
    grouped = (
        table.filter(pc.is_valid(table.column("matched_prefix")))
        .group_by("matched_prefix", use_threads=False)
        .aggregate([("amount", "sum"), ("seconds", "sum")])
        .rename_columns(["matched_prefix", "amount", "seconds"])
    )
    return RevenueBook(
        currency,
        grouped,
        int(pc.sum(table.column("amount")).as_py() or 0),
        int(pc.sum(table.column("seconds")).as_py() or 0),
    )


def _round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (both non-negative)."""
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)


def price_unbilled(unrated: pa.Table, book: RevenueBook) -> dict[str, dict[str, Any]]:
    """Per reason: calls, answered calls, their seconds and the money not billed (micro-units)
    with how many answered calls were priced by prefix, by the tenant's average, or not."""
    callee = unrated.column("callee").cast(pa.string())
    group = np.full(unrated.num_rows, -1, np.int64)  # -1: no prefix of the callee was rated
    prefixes = book.prefixes.column("matched_prefix").cast(pa.string())
    lengths = pc.utf8_length(prefixes).to_numpy(zero_copy_only=False) if len(prefixes) else []
    for length in sorted({int(n) for n in lengths}, reverse=True):
        rows = np.flatnonzero(lengths == length)
        head = pc.utf8_slice_codeunits(callee, 0, length)
        hit = pc.index_in(head, value_set=prefixes.take(pa.array(rows)))
        found = pc.is_valid(hit).to_numpy(zero_copy_only=False) & (group < 0)
        if found.any():
            index = pc.fill_null(hit, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            group[found] = rows[index[found]]
    table = pa.table(
        {
            "reason": pc.fill_null(unrated.column("reason").cast(pa.string()), "unknown"),
            "group": pa.array(group),
            "billsec": unrated.column("billsec").cast(pa.int64()),
            "answered": pc.cast(pc.greater(unrated.column("billsec"), 0), pa.int64()),
        }
    )
    grouped = table.group_by(["reason", "group"], use_threads=False).aggregate(
        [("billsec", "sum"), ("answered", "sum"), ("billsec", "count")]
    )
    amounts = book.prefixes.column("amount").to_pylist()
    seconds = book.prefixes.column("seconds").to_pylist()
    out: dict[str, dict[str, Any]] = {}
    for row in grouped.to_pylist():
        entry = out.setdefault(
            row["reason"],
            {
                "calls": 0,
                "answered": 0,
                "answered_seconds": 0,
                "money_not_billed": 0,
                "by_prefix": 0,
                "by_tenant_average": 0,
                "not_estimated": 0,
            },
        )
        entry["calls"] += row["billsec_count"]
        answered, spoken = row["answered_sum"], row["billsec_sum"]
        entry["answered"] += answered
        entry["answered_seconds"] += spoken
        if answered == 0:
            continue
        if row["group"] >= 0:
            money = _round_div(spoken * amounts[row["group"]], seconds[row["group"]])
            entry["by_prefix"] += answered
        elif book.seconds > 0:
            money = _round_div(spoken * book.amount, book.seconds)
            entry["by_tenant_average"] += answered
        else:
            money = 0
            entry["not_estimated"] += answered
        entry["money_not_billed"] += money
    return dict(sorted(out.items()))


def share(part: int, whole: int) -> Decimal:
    if whole == 0:
        return Decimal(0).quantize(SHARE_PLACES)
    return (Decimal(part) / Decimal(whole)).quantize(SHARE_PLACES, rounding=ROUND_HALF_UP)


def _above(part: int, whole: int, threshold: Decimal) -> bool:
    """part / whole > threshold, exactly (no rounding)."""
    return whole > 0 and Decimal(part) > threshold * Decimal(whole)


# --- ports -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenFile:
    """A file of the switch as the registry holds it."""

    file_id: str
    switch: str
    name: str
    arrived: dt.datetime  # first ingest, UTC
    status: str
    days: tuple[str, ...]  # UTC days its accepted calls start on
    quarantine_day: str | None
    counts: Mapping[str, int]
    reason: str | None = None  # rejected: why it was refused; failed: the last exception
    stage: str | None = None  # failed: where (ingest or rate)
    size: int | None = None  # bytes, as the drop's notification said (when it did)


def seen_file(record: Any) -> SeenFile | None:
    """A registry record (functions.store.files.FileRecord) as a SeenFile; None without a
    switch (a record never ingested far enough to say)."""
    meta = record.meta or {}
    if not meta.get("switch") or record.created_at is None:
        return None
    status = record.status
    reason = meta.get("error") if status == "rejected" else getattr(record, "error", None)
    return SeenFile(
        file_id=record.file_id,
        switch=meta["switch"],
        name=str(meta.get("name") or record.file_id),
        arrived=record.created_at.astimezone(dt.UTC),
        status=record.status,
        days=tuple(meta.get("days") or ()),
        quarantine_day=meta.get("quarantine_day"),
        counts=dict(record.counts),
        reason=reason if status in ("rejected", "failed") else None,
        stage=getattr(record, "stage", None) if status == "failed" else None,
        size=meta.get("size") if isinstance(meta.get("size"), int) else None,
    )


class Tables(Protocol):
    def read(self, area: str, day: str, file_id: str, columns: Sequence[str]) -> pa.Table: ...


class AlertStore(Protocol):
    def claim_alert(self, key: str, now: dt.datetime) -> bool: ...
    def alert_sent(self, key: str) -> None: ...
    def release_alert(self, key: str) -> None: ...


# --- the check -------------------------------------------------------------------------


@dataclass
class SwitchDay:
    switch: str
    report: dict[str, Any]
    alerts: list[dict[str, Any]]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _day_text(day: dt.date) -> str:
    return day.isoformat()


def _concat(parts: Sequence[pa.Table], schema_from: Sequence[str]) -> pa.Table | None:
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    return pa.concat_tables([p.select(list(schema_from)) for p in parts], promote_options="default")


def check_switch_day(
    switch: str,
    day: dt.date,
    files: Sequence[SeenFile],
    *,
    tables: Tables,
    settings: SequenceSettings,
    thresholds: Thresholds,
    book: RevenueBook | None,
    rated_of_day: Mapping[str, pa.Table],
) -> SwitchDay:
    """One switch's check of `day`. `files`: the switch's files of the history window (D-14
    to the check); `rated_of_day`: the rated tables of D already read (by file id)."""
    d = _day_text(day)
    day_start = dt.datetime.combine(day, dt.time(), dt.UTC)
    day_end = day_start + dt.timedelta(days=1)
    first = day - dt.timedelta(days=HISTORY_DAYS)
    by_arrival = sorted(files, key=lambda f: (f.arrived, f.name, f.file_id))
    received = [f for f in by_arrival if day_start <= f.arrived < day_end]
    with_calls = [f for f in by_arrival if d in f.days]
    # Refused whole (unknown switch or format, unreadable) or failed on its last delivery:
    # none of the file's calls is billed, and what they were is not known (a failed file
    # that had been read knows its rows).
    refused = [
        {
            "file_id": f.file_id,
            "name": f.name,
            "arrived": _iso(f.arrived),
            "status": f.status,
            "reason": f.reason,
            "stage": f.stage,
            "rows": f.counts.get("rows", 0) if f.quarantine_day else None,
            "bytes": f.size,
            "not_billed": "the whole file",
        }
        for f in received
        if f.status in ("rejected", "failed")
    ]

    # Sequence: from the last numbered file that arrived before D.
    anchor = None
    for f in by_arrival:
        if f.arrived >= day_start:
            break
        number = settings.number(f.name)
        anchor = number if number is not None else anchor
    sequence = sequence_report([f.name for f in received], settings, anchor)

    # Hours: the normalised start times of D and of the 14 days before it.
    history_files = [
        (f, past)
        for f in by_arrival
        for past in f.days
        if first.isoformat() <= past <= d and f.status != "rejected"
    ]
    start_parts = {
        (f.file_id, past): tables.read("normalized", past, f.file_id, ["start_time"]).column(
            "start_time"
        )
        for f, past in history_files
    }
    starts = pa.chunked_array(
        [c for part in start_parts.values() for c in part.chunks], pa.timestamp("us", tz="UTC")
    )
    matrix = hour_matrix(starts, first, HISTORY_DAYS + 1)
    today = matrix[HISTORY_DAYS]
    usual, silent = silent_hours(today, matrix[:HISTORY_DAYS], thresholds.usual_days)

    # Calls of D per file: normalised rows (sent), rated rows (new: rated or unrated).
    sent = {f.file_id: len(start_parts[(f.file_id, d)]) for f in with_calls}
    done = [f for f in with_calls if f.status == "done"]
    pending = [f for f in with_calls if f.status != "done"]
    rated_parts = [rated_of_day[f.file_id] for f in done]
    duplicate_calls = sum(sent[f.file_id] - rated_of_day[f.file_id].num_rows for f in done)

    late_after = day_end + dt.timedelta(hours=thresholds.late_hours)
    late = []
    for f in with_calls:
        if f.arrived <= late_after:
            continue
        rated = rated_of_day.get(f.file_id)
        billed = 0
        if rated is not None and rated.num_rows:
            amounts = rated.column("customer_amount")
            billed_rows = pc.fill_null(
                pc.and_(
                    pc.equal(rated.column("status"), "rated"),
                    pc.equal(rated.column("currency"), book.currency if book else ""),
                ),
                False,
            )
            billed = int(
                units_from_decimal_array(amounts.filter(billed_rows), AMOUNT_SCALE).sum()
                if pc.any(billed_rows).as_py()
                else 0
            )
        late.append(
            {
                "file_id": f.file_id,
                "name": f.name,
                "arrived": _iso(f.arrived),
                "hours_late": _hours(f.arrived - day_end),
                "calls": sent[f.file_id],
                "billed": units_to_str(billed, AMOUNT_SCALE),
            }
        )

    duplicate_files = []
    names_before: set[str] = set()
    for f in by_arrival:
        repeat = f.name in names_before
        names_before.add(f.name)
        if d not in f.days and not (day_start <= f.arrived < day_end):
            continue
        counts = f.counts
        accepted = counts.get("rows", 0) - counts.get("quarantined", 0)
        all_claimed = (
            f.status == "done"
            and counts.get("duplicates", 0) > 0
            and counts.get("duplicates", 0) == accepted
        )
        if repeat or all_claimed:
            why = "every call claimed by an earlier file" if all_claimed else "name seen before"
            duplicate_files.append({"file_id": f.file_id, "name": f.name, "why": why})

    rows_in = sum(f.counts.get("rows", 0) for f in received)
    quarantined = sum(f.counts.get("quarantined", 0) for f in received)
    reasons: dict[str, int] = {}
    for f in received:
        if f.counts.get("quarantined", 0) and f.quarantine_day:
            bad = tables.read("quarantine", f.quarantine_day, f.file_id, ["reason"])
            for row in bad.group_by("reason").aggregate([("reason", "count")]).to_pylist():
                reasons[row["reason"]] = reasons.get(row["reason"], 0) + row["reason_count"]

    calls = _concat(rated_parts, RATED_COLUMNS)
    n_calls = calls.num_rows if calls is not None else 0
    if calls is not None and n_calls:
        unrated_rows = pc.fill_null(pc.not_equal(calls.column("status"), "rated"), True)
        unrated = calls.filter(unrated_rows)
        unknown = pc.or_(
            pc.fill_null(pc.equal(calls.column("reason"), NO_ACCOUNT), False),
            pc.fill_null(pc.equal(calls.column("supplier_reason"), NO_ACCOUNT), False),
        )
        unknown_calls = int(pc.sum(pc.cast(unknown, pa.int64())).as_py() or 0)
    else:
        unrated = pa.table({name: pa.array([], pa.string()) for name in ("callee", "reason")})
        unrated = unrated.append_column("billsec", pa.array([], pa.int64()))
        unknown_calls = 0
    by_reason = price_unbilled(unrated, book or revenue_book(_empty_rated(), ""))
    not_billed = sum(entry["money_not_billed"] for entry in by_reason.values())
    unknown_money = by_reason.get(NO_ACCOUNT, {}).get("money_not_billed", 0)
    for entry in by_reason.values():
        entry["share"] = str(share(entry["calls"], n_calls))
        entry["money_not_billed"] = units_to_str(entry["money_not_billed"], AMOUNT_SCALE)

    report = {
        "switch": switch,
        "day": d,
        "files": {
            "received": [
                {
                    "file_id": f.file_id,
                    "name": f.name,
                    "arrived": _iso(f.arrived),
                    "status": f.status,
                    "sequence": settings.number(f.name),
                }
                for f in received
            ],
            "with_calls_of_day": len(with_calls),
            "rejected": len(refused),
            "not_rated_yet": [
                {"file_id": f.file_id, "name": f.name, "status": f.status} for f in pending
            ],
        },
        "sequence": {"pattern": settings.pattern, "modulus": settings.modulus, "anchor": anchor}
        | sequence.as_json(),
        "hours": {"calls": [int(n) for n in today], "usual": usual, "silent": silent},
        "rejected_files": refused,
        "late_files": late,
        "duplicate_files": duplicate_files,
        "duplicate_calls": duplicate_calls,
        "quarantine": {
            "rows": rows_in,
            "quarantined": quarantined,
            "share": str(share(quarantined, rows_in)),
            "reasons": dict(sorted(reasons.items())),
        },
        "calls": {
            "calls": n_calls,
            "rated": n_calls - unrated.num_rows,
            "unrated": unrated.num_rows,
            "unrated_share": str(share(unrated.num_rows, n_calls)),
            "unrated_by_reason": by_reason,
        },
        "unknown_account": {
            "calls": unknown_calls,
            "money_not_billed": units_to_str(unknown_money, AMOUNT_SCALE),
        },
        "money_not_billed": units_to_str(not_billed, AMOUNT_SCALE),
        "currency": book.currency if book is not None else None,
    }
    findings = {
        "rejected_files": (len(refused) > thresholds.rejected_files, len(refused)),
        "sequence_gap": (sequence.missing > thresholds.sequence_gap, sequence.missing),
        "silent_hours": (len(silent) > thresholds.silent_hours, len(silent)),
        "late_files": (len(late) > thresholds.late_files, len(late)),
        "quarantine_share": (
            _above(quarantined, rows_in, thresholds.quarantine_share),
            report["quarantine"]["share"],
        ),
        "unrated_share": (
            _above(unrated.num_rows, n_calls, thresholds.unrated_share),
            report["calls"]["unrated_share"],
        ),
        "money_not_billed": (
            Decimal(not_billed).scaleb(-AMOUNT_SCALE) > thresholds.money_not_billed,
            report["money_not_billed"],
        ),
    }
    alerts = [
        {"check": check, "value": value, "threshold": str(getattr(thresholds, check))}
        for check, (passed, value) in findings.items()
        if passed
    ]
    report["alerts"] = alerts
    return SwitchDay(switch, report, alerts)


def _hours(delta: dt.timedelta) -> str:
    """Hours as an exact decimal string (to the second)."""
    seconds = int(delta.total_seconds())
    return str((Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def alert_key(tenant: str, switch: str, day: dt.date | str, check: str) -> str:
    """The alert's idempotency key: one per (tenant, switch, day, check), whatever reruns."""
    return f"{switch}#{day}#{check}"


def alert_id(tenant: str, switch: str, day: dt.date | str, check: str) -> str:
    text = f"{tenant}\n{switch}\n{day}\n{check}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class DayCheck:
    tenant: str
    day: dt.date
    switches: list[SwitchDay]
    published: list[str] = field(default_factory=list)  # alert ids published by this run
    thresholds: Thresholds = field(default_factory=Thresholds)

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "day": self.day.isoformat(),
            "switches": [s.report for s in self.switches],
            "alerts": sum(len(s.alerts) for s in self.switches),
            "published": self.published,
            "thresholds": self.thresholds.as_json(),
        }


def check_day(
    tenant: str,
    day: dt.date,
    *,
    records: Iterable[Any],
    switches: Mapping[str, SequenceSettings],
    thresholds: Thresholds,
    currency: str,
    tables: Tables,
    only: str | None = None,
) -> DayCheck:
    """Check every switch of `switches` (or `only`) for `day`, and every switch not in it
    that sent a file on `day`: the registry's `records` (the files of the window at least),
    the lake through `tables`."""
    first = day - dt.timedelta(days=HISTORY_DAYS)
    window_start = dt.datetime.combine(first, dt.time(), dt.UTC)
    d = day.isoformat()
    seen = [s for s in (seen_file(r) for r in records) if s is not None]
    # A file belongs to the window when it arrived in it or carries calls of its days.
    in_window = [
        f
        for f in seen
        if f.arrived >= window_start or any(first.isoformat() <= x <= d for x in f.days)
    ]
    # Every rated file of D (all switches): the revenue book is the tenant's.
    rated_of_day = {
        f.file_id: tables.read("rated", d, f.file_id, RATED_COLUMNS)
        for f in in_window
        if d in f.days and f.status == "done"
    }
    book = None
    if rated_of_day:
        everything = _concat(list(rated_of_day.values()), RATED_COLUMNS)
        book = revenue_book(everything, currency)
    else:
        book = revenue_book(_empty_rated(), currency)
    # A switch nobody registered (its files refused whole) is checked under its own name
    # when it sent something on the day.
    unregistered = {
        f.switch
        for f in in_window
        if f.switch not in switches and (d in f.days or f.arrived.date() == day)
    }
    names = [only] if only else sorted(set(switches) | unregistered)
    out = []
    for name in names:
        mine = [f for f in in_window if f.switch == name]
        out.append(
            check_switch_day(
                name,
                day,
                mine,
                tables=tables,
                settings=switches.get(name, SequenceSettings()),
                thresholds=thresholds,
                book=book,
                rated_of_day=rated_of_day,
            )
        )
    return DayCheck(tenant, day, out, thresholds=thresholds)


def _empty_rated() -> pa.Table:
    return pa.table(
        {
            "status": pa.array([], pa.string()),
            "currency": pa.array([], pa.string()),
            "billed_seconds": pa.array([], pa.int64()),
            "matched_prefix": pa.array([], pa.string()),
            "customer_amount": pa.array([], pa.decimal128(18, 6)),
        }
    )


def publish_alerts(
    check: DayCheck,
    *,
    store: AlertStore,
    publish: Callable[[dict[str, Any]], None],
    now: dt.datetime,
) -> list[str]:
    """Publish each alert of the check once per (tenant, switch, day, check): claimed in the
    store before it is published (a rerun finds it claimed and sends nothing), marked sent
    after; a publish that raised releases its claim (the next run tries again). A crash
    between the publish and the mark leaves the claim pending: reruns within its lease send
    nothing; after the lease (a crash before the publish looks the same) it is published
    again with the same `alert_id`, the key consumers drop repeats by."""
    published = []
    for switch_day in check.switches:
        for alert in switch_day.alerts:
            key = alert_key(check.tenant, switch_day.switch, check.day, alert["check"])
            if not store.claim_alert(key, now):
                continue
            detail = {
                "alert_id": alert_id(check.tenant, switch_day.switch, check.day, alert["check"]),
                "tenant": check.tenant,
                "switch": switch_day.switch,
                "day": check.day.isoformat(),
                "check": alert["check"],
                "value": alert["value"],
                "threshold": alert["threshold"],
                "money_not_billed": switch_day.report["money_not_billed"],
                "currency": switch_day.report["currency"],
            }
            try:
                publish(detail)
            except Exception:
                store.release_alert(key)
                raise
            store.alert_sent(key)
            published.append(detail["alert_id"])
    check.published.extend(published)
    return published


# --- the service: the stores as ports ----------------------------------------------------


class _LakeTables:
    """The lake adapter's narrow reads of one tenant (functions.store.lake.read_columns)."""

    def __init__(self, lake: Any, tenant: str) -> None:
        self.lake, self.tenant = lake, tenant

    def read(self, area: str, day: str, file_id: str, columns: Sequence[str]) -> pa.Table:
        return self.lake.read_columns(area, self.tenant, day, file_id, columns)


class _TenantClaims:
    def __init__(self, files: Any, tenant: str) -> None:
        self.files, self.tenant = files, tenant

    def claim_alert(self, key: str, now: dt.datetime) -> bool:
        return self.files.claim_alert(self.tenant, key, now)

    def alert_sent(self, key: str) -> None:
        self.files.alert_sent(self.tenant, key)

    def release_alert(self, key: str) -> None:
        self.files.release_alert(self.tenant, key)


def run_assurance(
    tenant: str,
    day: dt.date,
    *,
    files: Any,
    accounts: Any,
    lake: Any,
    events: Any,
    now: dt.datetime,
    switch: str | None = None,
    publish: bool = True,
) -> DayCheck:
    """The tenant's check of `day` (every switch, or `switch`), its alerts published once
    (`publish`: the scheduled job and `tollgate assurance --publish`). Stores: functions.store
    .files (registry, alert claims), .accounts (switches, settings), .lake, .events."""
    stored = accounts.get_assurance_settings(tenant)
    currency = accounts.get_tenant(tenant).currency
    names = sorted(s.switch for s in accounts.list_switches(tenant))
    first = day - dt.timedelta(days=HISTORY_DAYS)
    # Every file that arrived in the window, whatever its status (the registry's day index:
    # a file refused whole or failed before it was read has no table in the lake).
    arrived = files.arrived_files(tenant, first, day)
    if switch is not None and switch not in names and all(s != switch for _, s, _ in arrived):
        accounts.get_switch(tenant, switch)  # NotFoundError for an unknown one
    sequences = {
        name: SequenceSettings(
            stored["switches"].get(name, {}).get("sequence_pattern"),
            stored["switches"].get(name, {}).get("sequence_modulus"),
        )
        for name in names
    }
    # And the files of the window found through the lake's day partitions (a file's
    # normalised tables are filed by call day: a late file of D arrived after it; its
    # quarantine table, always written, by arrival day), then their records in batches:
    # reads grow with the window's files, not the tenant's.
    listed = {f for _, _, f in arrived}
    listed |= {f for _, f in lake.listed_tables("normalized", tenant, first, day)}
    listed |= {f for _, f in lake.listed_tables("quarantine", tenant, first, day)}
    result = check_day(
        tenant,
        day,
        records=files.get_files(tenant, sorted(listed)),
        switches=sequences,
        thresholds=thresholds_from(stored["thresholds"]),
        currency=currency,
        tables=_LakeTables(lake, tenant),
        only=switch,
    )
    if publish:
        publish_alerts(
            result,
            store=_TenantClaims(files, tenant),
            publish=events.publish_assurance_alert,
            now=now,
        )
    return result
