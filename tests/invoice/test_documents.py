"""The invoice's human documents: the PDF (read back with pypdf) and the CSVs (read back with
the csv module), for every sample invoice, a 400-line one, a white-label one and the CDR annex.

New in issue 11: functions.invoice.pdf and functions.invoice.tables did not exist before.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import itertools
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pypdf
import pytest

from functions.invoice.drafts import Invoice, Line, UsageRow, build_invoice
from functions.invoice.pdf import iban, invoice_pdf, minutes, money, rate
from functions.invoice.profiles import BillingProfile, parse_tax
from functions.invoice.tables import (
    CDR_COLUMNS,
    LINE_COLUMNS,
    SUMMARY_COLUMNS,
    cdr_annex_chunks,
    cdr_annex_csv,
    lines_csv,
    summary_csv,
)
from tests.invoice import samples

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(samples.ALL)


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[Invoice, bytes]]:
    """Each sample rendered once for the whole module (rendering is the slow part)."""
    out = {}
    for name in SAMPLES:
        invoice = samples.ALL[name]()
        out[name] = (invoice, invoice_pdf(invoice))
    return out


def pages(pdf: bytes) -> list[str]:
    """Each page's text with whitespace runs made single spaces: wrapped cells read as one."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [re.sub(r"\s+", " ", page.extract_text()).strip() for page in reader.pages]


def text(pdf: bytes) -> str:
    return " ".join(pages(pdf))


def row_text(line: Line) -> str:
    """A line's row as printed: description, then calls, minutes and rate for minutes, then
    the amount."""
    cells = [line.description]
    if line.unit == "MIN":
        if line.calls:
            cells.append(f"{line.calls:,}")
        cells += [minutes(line.quantity), rate(line.unit_price)]
    cells.append(money(line.amount))
    return " ".join(cells)


# --- formatting ----------------------------------------------------------------------------


def test_money_has_two_decimals_and_thousands_separators_and_never_rounds():
    assert money(Decimal("1234567.89")) == "1,234,567.89"
    assert money(Decimal("100")) == "100.00"
    assert money(Decimal("-0.01")) == "-0.01"
    assert money(Decimal("0.00")) == "0.00"
    with pytest.raises(ValueError, match="not an amount in cents"):
        money(Decimal("0.005"))


def test_minutes_and_rates_are_printed_as_the_lines_hold_them():
    assert minutes(Decimal("12500")) == "12,500"
    assert minutes(Decimal("40000.5")) == "40,000.5"
    assert minutes(Decimal("1234.9167")) == "1,234.9167"
    assert rate(Decimal("0.00414585")) == "0.00414585"
    assert rate(Decimal("1E-7")) == "0.0000001"
    assert iban("DE89370400440532013000") == "DE89 3704 0044 0532 0130 00"


# --- the PDF of every sample ---------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_prints_its_parties_numbers_lines_and_totals(rendered, name):
    invoice, pdf = rendered[name]
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    printed = text(pdf)
    assert invoice.number in printed
    assert invoice.brand in printed
    assert invoice.buyer.name in printed
    assert invoice.seller.name in printed
    assert f"Account: {invoice.account}" in printed
    assert invoice.issue_date.isoformat() in printed
    assert f"{invoice.period_from} to {invoice.period_to} ({invoice.period})" in printed
    for line in invoice.lines:
        assert row_text(line) in printed, line
    currency = invoice.currency
    assert f"Subtotal ({currency}) {money(invoice.subtotal)}" in printed
    for tax in invoice.taxes:
        assert f"on {money(tax.taxable)} {money(tax.amount)}" in printed
    assert f"Total ({currency}) {money(invoice.total)}" in printed
    assert f"Amount due ({currency}) {money(invoice.amount_due)}" in printed
    if invoice.kind == "invoice":
        assert f"Due date {invoice.due_date.isoformat()}" in printed
        assert f"reference {invoice.number}" in printed


def test_the_seed_invoice_reads_as_its_table_to_the_cent(rendered):
    """Literal values, not the formatter's: 12,500 min x 0.008 = 100.00, 8,200 x 0.004 =
    32.80, VAT 19 % of 132.80 = 25.23."""
    printed = text(rendered["seed_a"][1])
    assert "Acme Voice Carrier GmbH Invoice INV-2026-000001" in printed
    assert "India Mobile 4,100 12,500 0.008 100.00" in printed
    assert "USA Landline 2,050 8,200 0.004 32.80" in printed
    assert "Subtotal (EUR) 132.80 VAT 19 % (S) on 132.80 25.23 Total (EUR) 158.03" in printed
    assert "Amount due (EUR) 158.03" in printed
    assert "Due date 2026-05-02" in printed
    assert "VAT ID: DE123456789" in printed and "VAT ID: DE987654321" in printed
    assert (
        "Please pay 158.03 EUR by 2026-05-02 to IBAN DE89 3704 0044 0532 0130 00 "
        "(Acme Voice Carrier GmbH), reference INV-2026-000001." in printed
    )


def test_reverse_charge_says_so_with_its_article_and_both_vat_ids(rendered):
    invoice, pdf = rendered["reverse_charge"]
    printed = text(pdf)
    assert "Reverse charge" in printed
    assert "Art. 196 Council Directive 2006/112/EC" in printed
    assert "VAT reverse charge (AE, 0 %) on 504.10 0.00" in printed
    assert f"VAT ID: {invoice.seller.vat_id}" in printed  # DE123456789
    assert f"VAT ID: {invoice.buyer.vat_id}" in printed  # FR12345678901
    assert "FR12345678901" in printed and "DE123456789" in printed
    # Fees are their own rows, with no minutes or rate.
    assert "DID +33140000000, March 2026 1.50" in printed
    assert "France Mobile 9,000 40,000.5 0.0125 500.01" in printed


def test_a_credit_note_names_the_invoice_it_credits_and_why_and_asks_for_nothing(rendered):
    printed = text(rendered["credit_note"][1])
    assert "Credit note CN-2026-000001" in printed
    assert "Credits invoice INV-2026-000001" in printed
    assert "credits invoice INV-2026-000001 of period 2026-03: Disputed India calls." in printed
    assert "Credited 11.90 EUR including tax." in printed
    assert "Amount due (EUR) 0.00" in printed
    assert "Please pay" not in printed
    assert "Due date" not in printed


def test_an_invoice_in_another_currency_states_its_one_fx_rate(rendered):
    printed = text(rendered["tiered"][1])
    assert (
        "Charges in USD converted to EUR at 0.9213 EUR per USD (ECB rate of 2026-03-31)." in printed
    )
    assert "India Mobile (tier) 30,000 100,000 0.00414585 414.59" in printed
    assert "FX" not in text(rendered["seed_a"][1]) and "converted" not in text(
        rendered["seed_a"][1]
    )


def test_a_white_label_invoice_shows_the_resellers_brand_and_nothing_of_the_carrier(rendered):
    _, pdf = rendered["white_label"]
    printed = text(pdf)
    assert printed.startswith("SkyLine Voice Invoice RA-2026-000001")
    assert "Reseller A Telecom GmbH" in printed
    assert "IBAN DE02 1203 0000 0000 2020 51 (Reseller A Telecom GmbH)" in printed
    carrier = samples.CARRIER
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    metadata = " ".join(str(v) for v in reader.metadata.values())
    assert "SkyLine Voice" in metadata
    for trace in (
        carrier.legal_name,
        "Acme",
        carrier.tenant,
        carrier.vat_id,
        carrier.iban,
        iban(carrier.iban),
        carrier.address,
        carrier.email,
    ):
        assert trace.lower() not in printed.lower(), trace
        assert trace.lower() not in metadata.lower(), trace
        assert trace.encode() not in pdf, trace


def test_the_same_invoice_gives_the_same_bytes_and_another_invoice_other_bytes(rendered):
    for name in SAMPLES:
        invoice, pdf = rendered[name]
        assert invoice_pdf(invoice) == pdf, name
    assert rendered["seed_a"][1] != rendered["seed_b"][1]
    # The dates are reportlab's fixed invariant ones, not the clock's.
    dates = re.findall(rb"/(?:CreationDate|ModDate) \(D:(\d{14})", rendered["seed_a"][1])
    assert dates == [b"20000101000000", b"20000101000000"]


def test_another_process_renders_the_same_bytes(rendered):
    """No hash seed, registry order or clock leaks into the file."""
    script = (
        "import hashlib, sys\n"
        "from functions.invoice.pdf import invoice_pdf\n"
        "from tests.invoice.samples import ALL\n"
        "sys.stdout.write(hashlib.sha256(invoice_pdf(ALL['reverse_charge']())).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, check=True
    )
    assert out.stdout.decode() == hashlib.sha256(rendered["reverse_charge"][1]).hexdigest()


def test_accented_names_print_in_the_embedded_font():
    invoice = samples.ALL["seed_a"]()
    buyer = dataclasses.replace(
        invoice.buyer,
        name="Société Télécom Müller & Söhne <AG>",
        address="Straße des 17. Juni 1",
        city="Győr",  # ő is not in Vera: printed as o
    )
    invoice = dataclasses.replace(invoice, buyer=buyer)
    pdf = invoice_pdf(invoice)
    printed = text(pdf)
    assert "Société Télécom Müller & Söhne <AG>" in printed
    assert "Straße des 17. Juni 1" in printed
    assert "Gyor" in printed
    fonts = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"]
    names = sorted(str(font.get_object()["/BaseFont"]) for font in fonts.values())
    # Subsets of the TrueType Vera faces, embedded; no unembedded base-14 font.
    assert names and all(re.fullmatch(r"/[A-Z]{6}\+BitstreamVeraSans-\w+", n) for n in names)


def test_a_draft_prints_as_draft_and_a_prepaid_invoice_asks_for_nothing():
    draft = samples.seed_invoice()
    assert draft.number is None
    printed = text(invoice_pdf(draft))
    assert printed.startswith("Acme Voice Carrier GmbH Invoice DRAFT")
    assert "reference DRAFT" in printed
    prepaid = dataclasses.replace(samples.ALL["seed_b"](), amount_due=Decimal("0.00"))
    printed = text(invoice_pdf(prepaid))
    assert "Amount due (EUR) 0.00" in printed
    assert "Please pay" not in printed
    assert "Nothing to pay: this invoice is settled from your prepaid balance." in printed


# --- a long invoice ------------------------------------------------------------------------


def long_invoice(count: int = 400) -> Invoice:
    """`count` destinations, minutes and amounts all different, numbered."""
    rows = [
        UsageRow(
            "usage",
            f"Destination {i:03d} Mobile",
            Decimal("0.0123") + Decimal(i) / 100_000,
            (1_000 + 37 * i) * 60 + i % 60,
            10 + i,
            1_234_567 * i + 4_321,
        )
        for i in range(count)
    ]
    buyer = BillingProfile(
        tenant="acme",
        account="BIGCO",
        legal_name="Big Co Telecom BV",
        address="Damrak 1",
        city="Amsterdam",
        postcode="1012 LG",
        country="NL",
        vat_id="NL123456789B01",
        taxes=(parse_tax("reverse_charge", samples.SINCE),),
    )
    invoice = build_invoice(
        tenant="acme",
        account="BIGCO",
        issuer="carrier",
        period=samples.MARCH,
        issue_date=samples.ISSUED,
        seller=samples.CARRIER,
        buyer=buyer,
        account_currency="EUR",
        usage=rows,
        fees=[],
        posted_micro=sum(r.amount_micro for r in rows),
    )
    return samples.numbered(invoice, "INV-2026-000400")


def test_a_400_line_invoice_runs_over_pages_each_with_the_header_and_every_line_on_one():
    invoice = long_invoice()
    assert len(invoice.lines) == 401  # 400 destinations and the rounding line
    assert invoice.lines[-1].description == "Rounding"
    pdf = invoice_pdf(invoice)
    printed = pages(pdf)
    assert len(printed) >= 5
    for number, page in enumerate(printed, 1):
        assert page.endswith(f"Acme Voice Carrier GmbH · Invoice INV-2026-000400 Page {number}")
    holding = {}
    for line in invoice.lines:
        found = [number for number, page in enumerate(printed) if row_text(line) in page]
        assert len(found) == 1, line  # on exactly one page: no line lost or printed twice
        holding.setdefault(found[0], []).append(line)
    assert len(holding) >= 5
    for number in holding:  # the table's header repeats on every page it runs over
        assert printed[number].count("Description Calls Minutes Rate (EUR/min) Amount") == 1
    # In order: each page holds the lines after the previous page's.
    assert [line for number in sorted(holding) for line in holding[number]] == list(invoice.lines)
    assert sum(page.count(" Mobile ") for page in printed) == 400
    # Totals and how to pay end the invoice together, after the last line.
    assert f"Total (EUR) {money(invoice.total)}" in printed[-1]
    assert "reference INV-2026-000400." in printed[-1]


# --- CSV -----------------------------------------------------------------------------------


def read_csv(data: bytes) -> list[list[str]]:
    assert not data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.mark.parametrize("name", SAMPLES)
def test_lines_csv_reads_back_as_the_invoice_lines_and_sums_to_the_subtotal(name):
    invoice = samples.ALL[name]()
    header, *rows = read_csv(lines_csv(invoice))
    assert tuple(header) == LINE_COLUMNS
    assert len(rows) == len(invoice.lines)
    for row, line in zip(rows, invoice.lines, strict=True):
        description, destination, quantity, unit, unit_price, amount, component = row
        assert description == line.description
        assert destination == (line.destination or "")
        assert Decimal(quantity) == line.quantity and quantity == f"{line.quantity:f}"
        assert unit == line.unit
        assert Decimal(unit_price) == line.unit_price and "E" not in unit_price
        assert Decimal(amount) == line.amount and re.fullmatch(r"-?\d+\.\d\d", amount)
        assert component == line.component
    assert sum(Decimal(row[5]) for row in rows) == invoice.subtotal


def test_the_seed_lines_csv_is_exactly_this():
    assert lines_csv(samples.ALL["seed_a"]()) == (
        b"description,destination,quantity,unit,unit_price,amount,component\r\n"
        b"India Mobile,India Mobile,12500,MIN,0.008,100.00,usage\r\n"
        b"USA Landline,USA Landline,8200,MIN,0.004,32.80,usage\r\n"
    )


def test_a_long_invoices_csv_keeps_the_rounding_line_and_adds_up():
    invoice = long_invoice()
    _, *rows = read_csv(lines_csv(invoice))
    assert len(rows) == 401
    assert rows[-1][0] == "Rounding" and rows[-1][6] == "rounding"
    assert sum(Decimal(row[5]) for row in rows) == invoice.subtotal


@pytest.mark.parametrize("name", SAMPLES)
def test_summary_csv_holds_subtotal_each_tax_total_and_amount_due(name):
    invoice = samples.ALL[name]()
    header, *rows = read_csv(summary_csv(invoice))
    assert tuple(header) == SUMMARY_COLUMNS
    assert rows[0] == ["subtotal", "", "", "", str(invoice.subtotal), invoice.currency]
    taxes = rows[1:-2]
    assert [(r[1], Decimal(r[2]), Decimal(r[3]), Decimal(r[4])) for r in taxes] == [
        (t.category, t.rate, t.taxable, t.amount) for t in invoice.taxes
    ]
    assert rows[-2] == ["total", "", "", "", str(invoice.total), invoice.currency]
    assert rows[-1] == ["amount_due", "", "", "", str(invoice.amount_due), invoice.currency]
    assert Decimal(rows[0][4]) + sum(Decimal(r[4]) for r in taxes) == Decimal(rows[-2][4])


def test_the_reverse_charge_summary_is_exactly_this():
    assert summary_csv(samples.ALL["reverse_charge"]()).decode() == (
        "item,category,rate,taxable,amount,currency\r\n"
        "subtotal,,,,504.10,EUR\r\n"
        "tax,AE,0,504.10,0.00,EUR\r\n"
        "total,,,,504.10,EUR\r\n"
        "amount_due,,,,504.10,EUR\r\n"
    )


def cdr(i: int, **changes) -> dict:
    row = {
        "call_id": f"call-{i}",
        "start_time": dt.datetime(2026, 3, 1, 12, 0, i % 60, tzinfo=dt.UTC),
        "caller": "+4930123456",
        "callee": "919876543210",
        "destination": "India Mobile",
        "billed_seconds": 60 + i,
        "rate": Decimal("0.00800000"),
        "amount": Decimal("0.008000") + Decimal(i) / 1_000_000,
        "file_id": "not in the annex",
    }
    row.update(changes)
    return row


def test_the_cdr_annex_writes_each_call_exactly_and_its_times_in_utc():
    paris = dt.timezone(dt.timedelta(hours=1))
    rows = [
        cdr(1),
        cdr(2, start_time=dt.datetime(2026, 3, 1, 13, 0, 2, 250_000, tzinfo=paris)),
        cdr(3, start_time=dt.datetime(2026, 3, 31, 23, 59, 59), amount="0.123456", rate=1),
        cdr(4, start_time="2026-03-02T00:00:00+00:00", amount=None, caller=None),
        cdr(5, destination="Côte d'Ivoire, Mobile"),
    ]
    header, *out = read_csv(cdr_annex_csv(rows))
    assert tuple(header) == CDR_COLUMNS
    assert out == [
        ["call-1", "2026-03-01T12:00:01Z", "+4930123456", "919876543210", "India Mobile",
         "61", "0.00800000", "0.008001"],
        ["call-2", "2026-03-01T12:00:02.250000Z", "+4930123456", "919876543210",
         "India Mobile", "62", "0.00800000", "0.008002"],
        ["call-3", "2026-03-31T23:59:59Z", "+4930123456", "919876543210", "India Mobile",
         "63", "1", "0.123456"],
        ["call-4", "2026-03-02T00:00:00Z", "", "919876543210", "India Mobile", "64",
         "0.00800000", ""],
        ["call-5", "2026-03-01T12:00:05Z", "+4930123456", "919876543210",
         "Côte d'Ivoire, Mobile", "65", "0.00800000", "0.008005"],
    ]  # fmt: skip
    assert cdr_annex_csv(iter(rows)) == cdr_annex_csv(rows)  # deterministic


def test_the_cdr_annex_refuses_floats_and_rows_without_a_column():
    with pytest.raises(TypeError, match="amount must be exact"):
        cdr_annex_csv([cdr(1, amount=0.008)])
    with pytest.raises(TypeError, match="rate must be exact"):
        cdr_annex_csv([cdr(1, rate=0.008)])
    row = cdr(1)
    del row["callee"]
    with pytest.raises(KeyError, match="callee"):
        cdr_annex_csv([row])


def test_the_cdr_annex_streams_its_rows_in_chunks():
    """An endless iterable still yields its first chunks: nothing is collected first."""
    chunks = cdr_annex_chunks((cdr(i) for i in itertools.count()), chunk_rows=1_000)
    first, second = next(chunks), next(chunks)
    lines = (first + second).decode().splitlines()
    assert len(lines) == 1 + 2_000
    assert lines[1].startswith("call-0,") and lines[-1].startswith("call-1999,")
    whole = b"".join(cdr_annex_chunks([cdr(i) for i in range(2_500)], chunk_rows=1_000))
    assert whole == cdr_annex_csv(cdr(i) for i in range(2_500))
    assert len(read_csv(whole)) == 2_501
    assert (
        cdr_annex_csv([])
        == b"call_id,start_time,caller,callee,destination,billed_seconds,rate,amount\r\n"
    )
