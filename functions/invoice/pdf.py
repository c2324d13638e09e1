"""The invoice (or credit note) as a PDF its recipient reads: A4, one font, byte-identical on
every render of the same invoice. Pure: an `Invoice` in, bytes out, no I/O.

What is on it, top to bottom: the brand (a reseller's own for its white-label customers: the
issuing party is the invoice's seller, and nothing of the carrier behind it is printed), the
seller and bill-to blocks, the document's number, dates, period and currency, the table of
lines (destinations, then fees, adjustments and the rounding line, each its own row; the
header repeats on every page a long invoice runs to), subtotal, each tax and the totals, the
notes (reverse charge and its legal reference, what a credit note credits and why, the FX
rate), and how to pay. docs/invoicing.md §3 chose reportlab: a pure-Python wheel, ~10 ms an
invoice, deterministic output with `invariant`.

The font is Bitstream Vera, which reportlab ships (reportlab/fonts), embedded as a subset:
it covers Latin-1 and most of Latin Extended-A (é ü ß ł č ž €); a letter it lacks (ő ű) is
printed as its unaccented base letter instead of an empty box (`_printable`).
"""

from __future__ import annotations

import functools
import io
import os
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    BaseDocTemplate,
    Frame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from functions.invoice.drafts import CENT, UNIT_MINUTE, Invoice, Line, Party, TaxLine

FONT = "TollgateVera"
FONT_BOLD = "TollgateVera-Bold"
MARGIN = 18 * mm
WIDTH = A4[0] - 2 * MARGIN  # the frame's width: every table spans it
TITLES = {"invoice": "Invoice", "credit_note": "Credit note"}
_GREY = colors.HexColor("#555555")
_RULE = colors.HexColor("#BBBBBB")
_SHADE = colors.HexColor("#EEEEEE")
# The lines table: description, calls, minutes, rate, amount (mm); the description wraps.
_COLUMNS = (72 * mm, 18 * mm, 26 * mm, 32 * mm, WIDTH - 148 * mm)


@functools.cache
def _fonts() -> frozenset[int]:
    """Registers the fonts once per process; the code points the regular face can draw."""
    folder = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
    regular = TTFont(FONT, os.path.join(folder, "Vera.ttf"))
    pdfmetrics.registerFont(regular)
    pdfmetrics.registerFont(TTFont(FONT_BOLD, os.path.join(folder, "VeraBd.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD)
    return frozenset(regular.face.charToGlyph)


def _printable(text: str) -> str:
    """`text` with each letter the font lacks replaced by its base letter (ő -> o), or by "?"
    when it has none: a readable name rather than an empty box."""
    drawable = _fonts()
    if all(ord(c) in drawable for c in text):
        return text
    out = []
    for c in text:
        if ord(c) in drawable or c in "\n\t":
            out.append(c)
            continue
        base = "".join(b for b in unicodedata.normalize("NFKD", c) if not unicodedata.combining(b))
        out.append(base if base and all(ord(b) in drawable for b in base) else "?")
    return "".join(out)


def money(value: Decimal) -> str:
    """Cents with thousands separators: 1,234,567.89, -0.01. Amounts on an invoice are
    already rounded to cents; one that is not is a defect, not something to round here."""
    if value != value.quantize(CENT):
        raise ValueError(f"{value} is not an amount in cents")
    return f"{value:,.2f}"


def minutes(value: Decimal) -> str:
    """Billed minutes as the line holds them (up to 4 places), with thousands separators:
    12,500 and 40,000.5."""
    return f"{value:,f}"


def rate(value: Decimal) -> str:
    """A per-minute rate as the deck holds it, never in exponent form: 0.0045, 0.00414585."""
    return f"{value:f}"


def percent(value: Decimal) -> str:
    return f"{value.normalize():f}"


def iban(value: str) -> str:
    """In groups of four, as banks print it: DE89 3704 0044 0532 0130 00."""
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def invoice_pdf(invoice: Invoice) -> bytes:
    """The PDF of `invoice`: the same invoice gives the same bytes (reportlab's fixed
    creation date and a document id digested from the content, not the clock)."""
    _fonts()  # before the story's styles and measurements
    title = TITLES[invoice.kind]
    number = invoice.number or "DRAFT"
    return a4_document(
        _story(invoice, title, number),
        title=f"{title} {number}",
        author=invoice.brand,
        subject=f"{title} {number} for {invoice.buyer.name}",
        footer=f"{invoice.brand} · {title} {number}",
    )


def a4_document(
    story: list, *, title: str, author: str, subject: str, footer: str, padded: bool = True
) -> bytes:
    """A4 pages of `story` with the footer line on each, the same story giving the same bytes
    (reportlab's fixed creation date and a document id digested from the content). `padded`:
    reportlab's frame padding; without it the tables span exactly the width between margins."""
    _fonts()
    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 6 * mm,  # room for the footer
        title=_printable(title),
        author=_printable(author),
        subject=_printable(subject),
        creator="Tollgate",
        invariant=1,  # fixed timestamps and document id: re-rendering gives the same bytes
        pageCompression=1,
        initialFontName=FONT,  # else every page also names an unembedded Helvetica
    )
    padding = (
        {}
        if padded
        else dict.fromkeys(("leftPadding", "rightPadding", "topPadding", "bottomPadding"), 0)
    )
    frame = Frame(
        doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body", showBoundary=0,
        **padding,
    )  # fmt: skip
    # The footer is drawn when a page ends, so a text extractor reads it after the page's body.
    doc.addPageTemplates(
        [PageTemplate(id="page", frames=[frame], onPageEnd=_footer(_printable(footer)))]
    )
    doc.build(story)
    return buffer.getvalue()


def _footer(text: str) -> Callable[..., None]:
    def draw(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.setFillColor(_GREY)
        canvas.drawString(MARGIN, MARGIN, text)
        canvas.drawRightString(A4[0] - MARGIN, MARGIN, f"Page {doc.page}")
        canvas.restoreState()

    return draw


Styles = dict[str, ParagraphStyle]


def _styles() -> Styles:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=11.5)
    return {
        "body": base,
        "brand": ParagraphStyle("brand", parent=base, fontName=FONT_BOLD, fontSize=20, leading=24),
        "title": ParagraphStyle(
            "title", parent=base, fontName=FONT_BOLD, fontSize=14, leading=18, alignment=TA_RIGHT
        ),
        "head": ParagraphStyle("head", parent=base, fontName=FONT_BOLD),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8.5, leading=10.5),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(_printable(text)).replace("\n", "<br/>"), style)


def _party(
    heading: str, party: Party, style: ParagraphStyle, extra: Sequence[str] = ()
) -> Paragraph:
    rows = [party.name]
    if party.address:
        rows.append(party.address)
    place = " ".join(x for x in (party.postcode, party.city) if x)
    if place:
        rows.append(place)
    if party.country:
        rows.append(party.country)
    if party.vat_id:
        rows.append(f"VAT ID: {party.vat_id}")
    rows.extend(extra)
    if party.email:
        rows.append(party.email)
    text = "<br/>".join(escape(_printable(row)) for row in rows)
    return Paragraph(f"<b>{escape(heading)}</b><br/>{text}", style)


def _story(invoice: Invoice, title: str, number: str) -> list:
    style = _styles()
    story: list = []
    story.append(
        _grid(
            [[_p(invoice.brand, style["brand"]), _p(f"{title}\n{number}", style["title"])]],
            (WIDTH * 0.6, WIDTH * 0.4),
        )
    )
    story.append(Spacer(0, 6 * mm))
    buyer_extra = [f"Account: {invoice.buyer.account}"] if invoice.buyer.account else []
    story.append(
        _grid(
            [
                [
                    _party("From", invoice.seller, style["body"]),
                    _party("Bill to", invoice.buyer, style["body"], buyer_extra),
                ]
            ],
            (WIDTH / 2, WIDTH / 2),
        )
    )
    story.append(Spacer(0, 5 * mm))
    story.append(_details(invoice, title, number, style))
    story.append(Spacer(0, 5 * mm))
    story.append(_lines(invoice, style))
    # Totals, notes and how to pay stay on one page: what is owed is read with its terms.
    closing: list = [Spacer(0, 3 * mm), _totals(invoice), Spacer(0, 5 * mm)]
    for paragraph in _notes(invoice, number):
        closing += [_p(paragraph, style["body"]), Spacer(0, 2 * mm)]
    story.append(KeepTogether(closing))
    return story


def _grid(rows: list[list], widths: Sequence[float]) -> Table:
    table = Table(rows, colWidths=list(widths))
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 9),  # a table's default is Helvetica
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return table


def _details(invoice: Invoice, title: str, number: str, style: Styles) -> Table:
    rows = [
        (f"{title} number", number),
        ("Issue date", invoice.issue_date.isoformat()),
        (
            "Period",
            f"{invoice.period_from.isoformat()} to {invoice.period_to.isoformat()}"
            f" ({invoice.period})",
        ),
    ]
    if invoice.kind == "credit_note":
        rows.append(("Credits invoice", invoice.credits or ""))
    else:
        rows.append(("Due date", invoice.due_date.isoformat()))
    rows.append(("Currency", invoice.currency))
    return details_table(rows, style, 40 * mm)


def details_table(rows: list[tuple[str, str]], style: Styles, key_width: float) -> Table:
    """Label and value in two columns, no grid (an invoice's or a letter's details)."""
    table = Table(
        [[_p(k, style["head"]), _p(v, style["body"])] for k, v in rows],
        colWidths=[key_width, WIDTH - key_width],
    )
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 9),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    return table


def _cell(text: str, style: ParagraphStyle) -> str | Paragraph:
    """A description as a plain string when it fits its column (fast), else a wrapping
    paragraph."""
    text = _printable(text)
    room = _COLUMNS[0] - 12  # the cell's default padding, 6 points each side
    if pdfmetrics.stringWidth(text, FONT, style.fontSize) <= room:
        return text
    return Paragraph(escape(text), style)


def _row(line: Line, style: ParagraphStyle) -> list:
    usage = line.unit == UNIT_MINUTE
    return [
        _cell(line.description, style),
        f"{line.calls:,}" if usage and line.calls else "",
        minutes(line.quantity) if usage else "",
        rate(line.unit_price) if usage else "",
        money(line.amount),
    ]


def _lines(invoice: Invoice, style: Styles) -> Table:
    head = ["Description", "Calls", "Minutes", f"Rate ({invoice.currency}/min)", "Amount"]
    rows = [head, *(_row(line, style["cell"]) for line in invoice.lines)]
    table = Table(rows, colWidths=list(_COLUMNS), repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 8.5),
                ("FONT", (0, 0), (-1, 0), FONT_BOLD, 8.5),
                ("BACKGROUND", (0, 0), (-1, 0), _SHADE),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
            ]
        )
    )
    return table


def _tax_label(tax: TaxLine) -> str:
    if tax.category == "AE":
        return f"VAT reverse charge (AE, {percent(tax.rate)} %) on {money(tax.taxable)}"
    label = f"VAT {percent(tax.rate)} % ({tax.category}) on {money(tax.taxable)}"
    if tax.exemption_reason and tax.category != "S":
        label += f": {tax.exemption_reason}"
    return label


def _totals(invoice: Invoice) -> Table:
    currency = invoice.currency
    rows = [[f"Subtotal ({currency})", money(invoice.subtotal)]]
    rows += [[_printable(_tax_label(tax)), money(tax.amount)] for tax in invoice.taxes]
    rows.append([f"Total ({currency})", money(invoice.total)])
    rows.append([f"Amount due ({currency})", money(invoice.amount_due)])
    table = Table(rows, colWidths=[WIDTH - 35 * mm, 35 * mm])
    last = len(rows) - 1
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 9),
                ("FONT", (0, last - 1), (-1, last), FONT_BOLD, 9),
                ("ALIGN", (0, 0), (-1, -1), "RIGHT"),
                ("LINEABOVE", (0, last - 1), (-1, last - 1), 0.5, colors.black),
            ]
        )
    )
    return table


def _notes(invoice: Invoice, number: str) -> list[str]:
    """What the recipient must be told in words: reverse charge, credit, FX, how to pay."""
    notes: list[str] = []
    if invoice.kind == "credit_note":
        notes.append(
            f"Credit note {number} credits invoice {invoice.credits}"
            f" of period {invoice.period}: {invoice.reason}."
            f" Credited {money(invoice.total)} {invoice.currency} including tax."
        )
    notes.extend(invoice.notes)
    if invoice.conversion is not None:
        fx = invoice.conversion
        notes.append(
            f"Charges in {fx.source_currency} converted to {fx.target_currency} at"
            f" {rate(fx.rate)} {fx.target_currency} per {fx.source_currency}"
            f" ({fx.source} rate of {fx.day.isoformat()})."
        )
    if invoice.amount_due > 0:
        to = (
            f" to IBAN {iban(invoice.seller.iban)} ({invoice.seller.name})"
            if invoice.seller.iban
            else ""
        )
        notes.append(
            f"Please pay {money(invoice.amount_due)} {invoice.currency} by"
            f" {invoice.due_date.isoformat()}{to}, reference {number}."
        )
    elif invoice.kind == "invoice" and invoice.total > 0:
        notes.append("Nothing to pay: this invoice is settled from your prepaid balance.")
    return notes
