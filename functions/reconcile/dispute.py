"""The dispute pack: what a reconciliation with a partner is sent to them as. Pure (files in a
folder the caller names; no AWS).

`write_dispute_pack` writes into one folder:

1. `disputed_cdrs.csv`: every call that is not `matched`, one row each, sorted by start:
   class, callee (B number; the caller too when the rows carry one), both starts (ISO 8601
   UTC, theirs as they wrote it), both billed seconds, both amounts, the difference
   (theirs - ours) and both call ids and file lines.
2. `summary_by_day.csv`: per UTC day (of our start, else of theirs as written) and class,
   each side's calls, seconds, minutes and amount, the difference and the difference as a
   percentage of their amount: the day-wise summary the GSC practice exchanges first.
3. `summary.json`: the issue's members (as `tollgate reconcile --json` prints them) plus each
   class's totals, the tolerances, the period, the currency and the threshold test.
4. `dispute_letter.pdf`, only when the difference passes the threshold: at least
   `threshold_percent` % of the partner's billed amount, or at least `threshold_amount`.

Amounts are printed exactly as the calls hold them, to 6 decimal places, in the CSVs, the
JSON and the letter alike. They are sums of per-call amounts, each as that side rated it
(its own increment and rounding); rounding the claim to cents on the letter would make its
figures differ from the enclosed files' sums, which the partner checks first. Minutes are
seconds / 60 shown to 4 places (the invoices' precision); the CSVs carry the exact seconds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import pyarrow as pa
import pyarrow.compute as pc
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (
    KeepTogether,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from functions.invoice.pdf import (
    FONT,
    FONT_BOLD,
    WIDTH,
    _fonts,
    _grid,
    _printable,
    _styles,
    a4_document,
    details_table,
)
from functions.invoice.pdf import _p as _paragraph
from functions.invoice.tables import _table, _utc
from functions.reconcile.result import CLASSES, Reconciliation

DISPUTED_CSV = "disputed_cdrs.csv"
DAY_CSV = "summary_by_day.csv"
SUMMARY_JSON = "summary.json"
LETTER_PDF = "dispute_letter.pdf"
RESPONSE_DAYS = 30  # the reference's §B3: disputes are answered within a month

DISPUTED_COLUMNS = (
    "class",
    "callee",
    "our_start",
    "their_start",
    "our_billsec",
    "their_billsec",
    "our_amount",
    "their_amount",
    "difference",
    "our_call_id",
    "their_call_id",
    "our_line",
    "their_line",
)
DAY_COLUMNS = (
    "day",
    "class",
    "our_calls",
    "our_seconds",
    "our_minutes",
    "our_amount",
    "their_calls",
    "their_seconds",
    "their_minutes",
    "their_amount",
    "difference",
    "difference_percent",
)
AMOUNT = Decimal("0.000001")  # decimal128(18, 6): the places every amount has
MINUTE = Decimal("0.0001")
PERCENT = Decimal("0.01")
LABELS = {
    "matched": "Matched",
    "duration_mismatch": "Duration mismatch",
    "rate_mismatch": "Rate mismatch (same call, different amount)",
    "missing_ours": "On your records only",
    "missing_theirs": "On our records only",
}
_SHADE = colors.HexColor("#EEEEEE")
_RULE = colors.HexColor("#BBBBBB")


@dataclass(frozen=True, slots=True)
class Party:
    """A letter's sender or recipient as printed: a name, the postal address's lines in
    order, and whom to contact (a person, an e-mail address, a phone number)."""

    name: str
    address: tuple[str, ...] = ()
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class Threshold:
    """Whether the difference is worth a dispute: at least `percent` % of their billed amount
    (not tested when they billed nothing), or at least `amount`. A zero difference passes
    neither, whatever the thresholds."""

    percent: Decimal
    amount: Decimal
    by_percent: bool
    by_amount: bool

    @property
    def passed(self) -> bool:
        return self.by_percent or self.by_amount


@dataclass(frozen=True, slots=True)
class DayClass:
    """One day's calls of one class, each side's count, seconds and amount, and the sum of
    the per-call differences (theirs - ours; a call one side lacks counts its amount)."""

    day: dt.date
    klass: str
    our_calls: int = 0
    our_seconds: int = 0
    our_amount: Decimal = Decimal("0")
    their_calls: int = 0
    their_seconds: int = 0
    their_amount: Decimal = Decimal("0")
    difference: Decimal = Decimal("0")
    disputed: int = 0  # calls not matched

    def __add__(self, other: DayClass) -> DayClass:
        return DayClass(
            self.day,
            "all",
            self.our_calls + other.our_calls,
            self.our_seconds + other.our_seconds,
            self.our_amount + other.our_amount,
            self.their_calls + other.their_calls,
            self.their_seconds + other.their_seconds,
            self.their_amount + other.their_amount,
            self.difference + other.difference,
            self.disputed + other.disputed,
        )

    @property
    def difference_percent(self) -> Decimal | None:
        """The difference as a percentage of their amount (None when they billed nothing),
        to 2 places, half to even."""
        if not self.their_amount:
            return None
        return (self.difference * 100 / abs(self.their_amount)).quantize(PERCENT, ROUND_HALF_EVEN)


# --- formatting ----------------------------------------------------------------------------


def amount_text(value: Decimal) -> str:
    """An amount exactly, in plain notation with its 6 places: 1234.500000, -0.000001. An
    amount with more places than the lake's decimal128(18, 6) is a defect, not rounded."""
    exact = value.quantize(AMOUNT)
    if exact != value:
        raise ValueError(f"{value} has more than 6 decimal places")
    return f"{exact + 0:f}"  # + 0: a negative zero (-0.000000) is written 0.000000


def amount_print(value: Decimal) -> str:
    """An amount on the letter: exact, 6 places, thousands separators (1,234.500000)."""
    return f"{Decimal(amount_text(value)):,f}"


def minutes_text(seconds: int) -> str:
    """Seconds as minutes to 4 places, half to even (the CSVs also carry the seconds)."""
    return f"{(Decimal(seconds) / 60).quantize(MINUTE, ROUND_HALF_EVEN):f}"


def _plain(value: Decimal) -> str:
    """A threshold or an offset without trailing zeros or exponent: 1000, 0.5, 2.5."""
    return f"{value.normalize():f}"


# --- the numbers -----------------------------------------------------------------------------


def threshold(
    result: Reconciliation, *, percent: Decimal = Decimal("1"), amount: Decimal = Decimal("1000")
) -> Threshold:
    """Tests |their - ours| against both thresholds, exactly (no rounding)."""
    if percent < 0 or amount < 0:
        raise ValueError("thresholds must not be negative")
    gap = abs(result.difference)
    base = abs(result.their_amount)
    by_percent = bool(gap) and bool(base) and gap * 100 >= percent * base
    by_amount = bool(gap) and gap >= amount
    return Threshold(percent, amount, by_percent, by_amount)


def _impact(rows: pa.Table) -> pa.Array:
    """Each row's difference (theirs - ours): the row's own when both sides have an amount;
    their amount for a call missing on ours, minus ours for a call missing on theirs; null
    when a side has no amount (a format that carries no price)."""
    klass = rows["class"]
    alone = pc.if_else(
        pc.equal(klass, "missing_ours"),
        rows["their_amount"],
        pc.if_else(
            pc.equal(klass, "missing_theirs"),
            pc.negate(rows["our_amount"]),
            pa.scalar(None, rows.schema.field("difference").type),
        ),
    )
    return pc.coalesce(rows["difference"], alone)


def _start(rows: pa.Table) -> pa.ChunkedArray:
    """The call's start as the pack sorts and groups by it: ours, else theirs as written."""
    return pc.coalesce(rows["our_start"], rows["their_start"])


def by_day(result: Reconciliation) -> list[DayClass]:
    """Per UTC day and class (days ascending, classes in CLASSES order), every class that
    has a call that day."""
    rows = result.rows
    if rows.num_rows == 0:
        return []
    day = pc.cast(_start(rows), pa.date32())
    grouped = (
        pa.table(
            {
                "day": day,
                "class": rows["class"],
                "our_start": rows["our_start"],
                "our_billsec": rows["our_billsec"],
                "our_amount": rows["our_amount"],
                "their_start": rows["their_start"],
                "their_billsec": rows["their_billsec"],
                "their_amount": rows["their_amount"],
                "impact": _impact(rows),
            }
        )
        .group_by(["day", "class"])
        .aggregate(
            [
                ("our_start", "count"),
                ("our_billsec", "sum"),
                ("our_amount", "sum"),
                ("their_start", "count"),
                ("their_billsec", "sum"),
                ("their_amount", "sum"),
                ("impact", "sum"),
                ([], "count_all"),
            ]
        )
        .to_pylist()
    )
    order = {name: i for i, name in enumerate(CLASSES)}
    zero = Decimal("0")
    out = [
        DayClass(
            day=g["day"],
            klass=g["class"],
            our_calls=g["our_start_count"],
            our_seconds=g["our_billsec_sum"] or 0,
            our_amount=g["our_amount_sum"] or zero,
            their_calls=g["their_start_count"],
            their_seconds=g["their_billsec_sum"] or 0,
            their_amount=g["their_amount_sum"] or zero,
            difference=g["impact_sum"] or zero,
            disputed=0 if g["class"] == "matched" else g["count_all"],
        )
        for g in grouped
    ]
    out.sort(key=lambda d: (d.day, order.get(d.klass, len(order)), d.klass))
    return out


def day_totals(days: Sequence[DayClass]) -> list[DayClass]:
    """Each day's classes added up, days ascending."""
    totals: dict[dt.date, DayClass] = {}
    for d in days:
        totals[d.day] = totals[d.day] + d if d.day in totals else d + DayClass(d.day, "all")
    return [totals[day] for day in sorted(totals)]


# --- the files -----------------------------------------------------------------------------


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _money(value: Decimal | None) -> str:
    return "" if value is None else amount_text(value)


def disputed_csv(result: Reconciliation) -> bytes:
    """Every call not matched, sorted by start (ours, else theirs), then class and lines."""
    rows = result.rows
    disputed = rows.filter(pc.not_equal(rows["class"], "matched"))
    disputed = disputed.append_column("impact", _impact(disputed))
    disputed = disputed.append_column("start", _start(disputed))
    caller = "caller" in disputed.column_names  # rows that carry the A number (optional)
    order = disputed.sort_by(
        [("start", "ascending"), ("class", "ascending"), ("our_line", "ascending"),
         ("their_line", "ascending"), ("callee", "ascending")]
    )  # fmt: skip
    header = list(DISPUTED_COLUMNS)
    if caller:
        header.insert(1, "caller")
    return _table(header, _disputed_lines(order, caller))


def _disputed_lines(order: pa.Table, caller: bool) -> Iterator[list[str]]:
    """Batch by batch: Python objects for thousands of calls at a time, never all of them."""
    for batch in order.to_batches(max_chunksize=10_000):
        for r in batch.to_pylist():
            line = [
                r["class"],
                r["callee"],
                _utc(r["our_start"]) if r["our_start"] is not None else "",
                _utc(r["their_start"]) if r["their_start"] is not None else "",
                _text(r["our_billsec"]),
                _text(r["their_billsec"]),
                _money(r["our_amount"]),
                _money(r["their_amount"]),
                _money(r["impact"]),
                _text(r["our_call_id"]),
                _text(r["their_call_id"]),
                _text(r["our_line"]),
                _text(r["their_line"]),
            ]
            if caller:
                line.insert(1, _text(r["caller"]))
            yield line


def day_csv(days: Sequence[DayClass]) -> bytes:
    """The day-wise summary, one row per day and class."""
    return _table(
        DAY_COLUMNS,
        (
            (
                d.day.isoformat(),
                d.klass,
                str(d.our_calls),
                str(d.our_seconds),
                minutes_text(d.our_seconds),
                amount_text(d.our_amount),
                str(d.their_calls),
                str(d.their_seconds),
                minutes_text(d.their_seconds),
                amount_text(d.their_amount),
                amount_text(d.difference),
                "" if d.difference_percent is None else f"{d.difference_percent:f}",
            )
            for d in days
        ),
    )


def summary(
    result: Reconciliation, test: Threshold, *, reference: str, letter: bool
) -> dict[str, object]:
    """summary.json: the members `tollgate reconcile --json` prints (counts, decimal
    strings), then what the pack was made with."""
    document: dict[str, object] = {
        "clock_offset_seconds": f"{result.clock_offset_seconds:f}",
        **{name: result.totals[name].count for name in CLASSES},
        "our_amount": amount_text(result.our_amount),
        "their_amount": amount_text(result.their_amount),
        "difference": amount_text(result.difference),
    }
    document.update(
        {
            "partner": result.partner,
            "role": result.role,
            "reference": reference,
            "currency": result.currency,
            "period": {"from": result.date_from.isoformat(), "to": result.date_to.isoformat()},
            "tolerances": {
                "start_seconds": result.start_tolerance_seconds,
                "duration_seconds": result.duration_tolerance_seconds,
            },
            "classes": {
                name: {
                    "count": total.count,
                    "seconds": total.seconds,
                    "minutes": minutes_text(total.seconds),
                    "difference": amount_text(total.difference),
                }
                for name in CLASSES
                for total in (result.totals[name],)
            },
            "threshold": {
                "percent": _plain(test.percent),
                "amount": _plain(test.amount),
                "passed": test.passed,
                "passed_by": [
                    name
                    for name, hit in (("percent", test.by_percent), ("amount", test.by_amount))
                    if hit
                ],
            },
            "letter": LETTER_PDF if letter else None,
        }
    )
    return document


def default_reference(result: Reconciliation) -> str:
    return f"REC-{result.partner}-{result.date_from:%Y%m%d}-{result.date_to:%Y%m%d}"


def write_dispute_pack(
    result: Reconciliation,
    out: Path,
    *,
    threshold_percent: Decimal = Decimal("1"),
    threshold_amount: Decimal = Decimal("1000"),
    sender: Party,
    recipient: Party,
    reference: str | None = None,
    today: dt.date,
) -> list[Path]:
    """Writes the pack into `out` (made if missing) and returns the files written, in the
    order above. Under the threshold no letter is written, and one left in `out` by an
    earlier run is removed: a folder never holds a letter its summary does not stand by."""
    test = threshold(result, percent=threshold_percent, amount=threshold_amount)
    reference = reference or default_reference(result)
    days = by_day(result)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in (
        (DISPUTED_CSV, disputed_csv(result)),
        (DAY_CSV, day_csv(days)),
        (
            SUMMARY_JSON,
            (
                json.dumps(summary(result, test, reference=reference, letter=test.passed), indent=2)
                + "\n"
            ).encode("utf-8"),
        ),
    ):
        (out / name).write_bytes(data)
        written.append(out / name)
    letter = out / LETTER_PDF
    if test.passed:
        letter.write_bytes(
            dispute_letter_pdf(
                result,
                test,
                days,
                sender=sender,
                recipient=recipient,
                reference=reference,
                today=today,
            )
        )
        written.append(letter)
    else:
        letter.unlink(missing_ok=True)
    return written


# --- the letter ----------------------------------------------------------------------------


def _claim(result: Reconciliation) -> str:
    """The claim in words: how much, and which way, from the partner's point of view."""
    cur = result.currency
    gap = amount_print(abs(result.difference))
    theirs = amount_print(result.their_amount)
    ours = amount_print(result.our_amount)
    totals = (
        f"For the period, your records of this traffic total {theirs} {cur} and ours total"
        f" {ours} {cur}."
    )
    if result.role == "supplier":
        if result.difference > 0:
            return (
                f"{totals} You have over-billed us by {gap} {cur}. We dispute {gap} {cur} and"
                " ask for a credit note of that amount."
            )
        return (
            f"{totals} You have under-billed us by {gap} {cur}: your records lack or"
            " under-price calls that our records hold. We ask you to review them with us."
        )
    if result.difference < 0:
        return (
            f"{totals} Your records fall {gap} {cur} short of what we billed you. Our charge"
            f" stands: we claim {gap} {cur}, and enclose the calls that differ."
        )
    return (
        f"{totals} Your records exceed what we billed you by {gap} {cur}: we have"
        " under-billed you. We ask you to review the enclosed calls with us."
    )


def _percent_of(result: Reconciliation) -> str:
    """|difference| as a percentage of their amount, to 4 places rounded toward zero, so a
    shown value at or above a threshold is never below it."""
    share = abs(result.difference) * 100 / abs(result.their_amount)
    return f"{share.quantize(Decimal('0.0001'), ROUND_DOWN):f}"


def _threshold_text(result: Reconciliation, test: Threshold) -> str:
    cur = result.currency
    gap = amount_print(abs(result.difference))
    parts = []
    if result.their_amount:
        share = f"{_percent_of(result)} % of your billed amount"
        verdict = "at or above" if test.by_percent else "below"
        parts.append(f"{share}, {verdict} the threshold of {_plain(test.percent)} %")
    else:
        parts.append("of a billed amount of zero (the percentage threshold does not apply)")
    verdict = "at or above" if test.by_amount else "below"
    parts.append(f"{verdict} the fixed threshold of {amount_print(test.amount)} {cur}")
    passed = " and ".join(
        name
        for name, hit in (("percentage", test.by_percent), ("fixed amount", test.by_amount))
        if hit
    )
    return (
        f"The difference of {gap} {cur} is {parts[0]}; it is {parts[1]}. It therefore passes"
        f" the dispute threshold ({passed})."
    )


def _method_text(result: Reconciliation) -> str:
    offset = result.clock_offset_seconds
    return (
        f"Matching: calls were paired one to one by called number, start time and duration."
        f" Your clock was found {_plain(abs(offset))} s"
        f" {'ahead of' if offset > 0 else 'behind' if offset < 0 else 'in step with'} ours"
        f" (clock offset {offset:f} s, your time minus ours), and corrected before matching."
        f" Tolerances: start within {result.start_tolerance_seconds} s after the offset,"
        f" answered duration within {result.duration_tolerance_seconds} s."
        " Rounding: each call's amount is as each side rated it, with its own increment and"
        " rounding; amounts are compared call by call and summed without further rounding,"
        " to 6 decimal places. Minutes are answered seconds / 60, shown to 4 places."
        " Days are UTC days of the call's start (ours where both sides have the call)."
    )


def _table_style(header_rows: int = 1, bold_last: bool = False) -> TableStyle:
    commands = [
        ("FONT", (0, 0), (-1, -1), FONT, 7.5),
        ("FONT", (0, 0), (-1, header_rows - 1), FONT_BOLD, 7.5),
        ("BACKGROUND", (0, 0), (-1, header_rows - 1), _SHADE),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if bold_last:
        commands.append(("FONT", (0, -1), (-1, -1), FONT_BOLD, 7.5))
    return TableStyle(commands)


def _class_table(result: Reconciliation) -> Table:
    head = ["Class", "Calls", "Minutes", f"Difference ({result.currency})"]
    rows: list[list[str]] = [head]
    for name in CLASSES:
        total = result.totals[name]
        rows.append(
            [
                LABELS[name],
                f"{total.count:,}",
                f"{Decimal(minutes_text(total.seconds)):,f}",
                amount_print(total.difference),
            ]
        )
    rows.append(
        [
            "Total (your records - ours)",
            f"{sum(t.count for t in result.totals.values()):,}",
            "",
            amount_print(result.difference),
        ]
    )
    table = Table(rows, colWidths=[WIDTH - 100 * mm, 25 * mm, 30 * mm, 45 * mm], repeatRows=1)
    table.setStyle(_table_style(bold_last=True))
    return table


def _day_table(result: Reconciliation, days: Sequence[DayClass]) -> Table | None:
    """Each day with a difference (a call not matched, or money apart): both sides' calls,
    minutes and amounts, the difference and its share of theirs. The header repeats on
    every page the table runs to."""
    shown = [d for d in day_totals(days) if d.disputed or d.difference]
    if not shown:
        return None
    cur = result.currency
    head = [
        "Day\n(UTC)",
        "Calls\nours",
        "Calls\nyours",
        "Minutes\nours",
        "Minutes\nyours",
        f"Amount\nours ({cur})",
        f"Amount\nyours ({cur})",
        f"Difference\n({cur})",
        "Diff.\n%",
    ]
    rows: list[list[str]] = [head]
    for d in shown:
        share = d.difference_percent
        rows.append(
            [
                d.day.isoformat(),
                f"{d.our_calls:,}",
                f"{d.their_calls:,}",
                f"{Decimal(minutes_text(d.our_seconds)):,f}",
                f"{Decimal(minutes_text(d.their_seconds)):,f}",
                amount_print(d.our_amount),
                amount_print(d.their_amount),
                amount_print(d.difference),
                "" if share is None else f"{share:f}",
            ]
        )
    widths = [17 * mm, 14 * mm, 14 * mm, 18 * mm, 18 * mm]
    rest = WIDTH - sum(widths) - 13 * mm
    widths += [rest / 3, rest / 3, rest / 3, 13 * mm]
    table = Table(rows, colWidths=widths, repeatRows=1)
    style = _table_style()
    style.add("FONT", (0, 0), (-1, 0), FONT_BOLD, 7, 8.5)
    table.setStyle(style)
    return table


def _address(heading: str, party: Party) -> Paragraph:
    lines = [party.name, *party.address]
    if party.contact:
        lines.append(party.contact)
    text = "<br/>".join(escape(_printable(line)) for line in lines)
    return Paragraph(f"<b>{escape(heading)}</b><br/>{text}", _styles()["body"])


def dispute_letter_pdf(
    result: Reconciliation,
    test: Threshold,
    days: Sequence[DayClass],
    *,
    sender: Party,
    recipient: Party,
    reference: str,
    today: dt.date,
) -> bytes:
    """The letter to the partner, A4: the same arguments give the same bytes."""
    _fonts()
    style = _styles()
    style["right"] = ParagraphStyle("right", parent=style["body"], alignment=TA_RIGHT)
    title = "Billing dispute"

    def p(text: str, kind: str = "body") -> Paragraph:
        return _paragraph(text, style[kind])

    cur = result.currency
    respond_by = today + dt.timedelta(days=RESPONSE_DAYS)
    role = "supplier" if result.role == "supplier" else "customer"
    disputed = sum(t.count for name, t in result.totals.items() if name != "matched")
    story: list = [
        _grid(
            [[p(sender.name, "brand"), [p(title, "title"), p(reference, "right")]]],
            (WIDTH * 0.5, WIDTH * 0.5),
        ),
        Spacer(0, 6 * mm),
        _grid(
            [[_address("From", sender), _address("To", recipient)]],
            (WIDTH / 2, WIDTH / 2),
        ),
        Spacer(0, 5 * mm),
        _details(
            [
                ("Reference", reference),
                ("Date", today.isoformat()),
                (
                    "Period",
                    f"{result.date_from.isoformat()} to {result.date_to.isoformat()}"
                    " (inclusive, UTC)",
                ),
                ("Currency", cur),
                (
                    "Traffic",
                    "calls you carried for us: you are our supplier"
                    if role == "supplier"
                    else "calls we carried for you: you are our customer",
                ),
            ],
            style,
        ),
        Spacer(0, 5 * mm),
        p("Claim", "head"),
        Spacer(0, 1 * mm),
        p(_claim(result)),
        Spacer(0, 2 * mm),
        p(_threshold_text(result, test)),
        Spacer(0, 4 * mm),
        KeepTogether([p("Calls by class", "head"), Spacer(0, 1 * mm), _class_table(result)]),
        Spacer(0, 4 * mm),
    ]
    days_table = _day_table(result, days)
    if days_table is not None:
        story += [
            p("Days with a difference", "head"),
            Spacer(0, 1 * mm),
            days_table,
            Spacer(0, 4 * mm),
        ]
    closing = [
        p("How the records were compared", "head"),
        Spacer(0, 1 * mm),
        p(_method_text(result)),
        Spacer(0, 3 * mm),
        p("Enclosed", "head"),
        Spacer(0, 1 * mm),
        p(
            f"{DISPUTED_CSV}: the {disputed:,} calls that differ, one row each, with both"
            f" sides' start, answered seconds and amount.\n"
            f"{DAY_CSV}: both sides' calls, minutes and amounts per day and class.\n"
            f"{SUMMARY_JSON}: the totals of this letter, machine-readable."
        ),
        Spacer(0, 3 * mm),
        p(
            f"Please respond within {RESPONSE_DAYS} days of this letter, by"
            f" {respond_by.isoformat()}, quoting reference {reference}"
            + (f"; contact: {sender.contact}." if sender.contact else ".")
        ),
    ]
    story.append(KeepTogether(closing))
    return a4_document(
        story,
        title=f"{title} {reference}",
        author=sender.name,
        subject=f"{title} {reference} to {recipient.name}",
        footer=f"{sender.name} · {title} {reference}",
        padded=False,
    )


def _details(rows: Sequence[tuple[str, str]], style) -> Table:
    return details_table(list(rows), style, 30 * mm)
