"""Benchmark the invoice's human documents: render N invoices of L destination lines each
(default 1,000 x 30, docs/invoicing.md §3's yardstick) to PDF, and their lines CSV.

Each invoice is distinct (its own account, number and amounts), as in a monthly run; the
first render, which registers the fonts, is timed apart. Prints ms and KiB per invoice.

    .venv/bin/python bench/documents_bench.py [--invoices 1000] [--lines 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.invoice.drafts import Invoice, UsageRow, build_invoice  # noqa: E402
from functions.invoice.pdf import invoice_pdf  # noqa: E402
from functions.invoice.profiles import BillingProfile, parse_tax  # noqa: E402
from functions.invoice.tables import lines_csv  # noqa: E402
from tests.invoice.samples import CARRIER, ISSUED, MARCH, SINCE  # noqa: E402

DESTINATIONS = (
    "Afghanistan Mobile", "Albania Fixed", "Algeria Mobile", "Argentina Fixed", "Austria Mobile",
    "Bangladesh Mobile", "Belgium Fixed", "Brazil Mobile", "Côte d'Ivoire Mobile", "Egypt Mobile",
    "France Mobile", "Germany Fixed", "Ghana Mobile", "India Mobile", "Indonesia Mobile",
    "Italy Fixed", "Kenya Mobile", "Mexico Mobile", "Morocco Mobile", "Nigeria Mobile",
    "Pakistan Mobile", "Philippines Mobile", "Poland Fixed", "Romania Mobile", "Senegal Mobile",
    "Spain Mobile", "Türkiye Mobile", "UK Mobile", "USA Landline", "Vietnam Mobile",
)  # fmt: skip


def invoice(index: int, lines: int) -> Invoice:
    rows = [
        UsageRow(
            "usage",
            DESTINATIONS[i % len(DESTINATIONS)] + ("" if i < len(DESTINATIONS) else f" {i}"),
            Decimal("0.0042") + Decimal(i) / 10_000,
            (500 + 97 * i + index) * 60 + i,
            40 + i + index,
            (2_100_000 + 487_003 * i) * (1 + index % 7),
        )
        for i in range(lines)
    ]
    buyer = BillingProfile(
        tenant="acme",
        account=f"ACCOUNT_{index:05d}",
        legal_name=f"Customer {index:05d} Télécom SARL",
        address="12 rue de Rivoli",
        city="Paris",
        postcode="75001",
        country="FR",
        vat_id="FR12345678901",
        taxes=(parse_tax("reverse_charge", SINCE),),
    )
    draft = build_invoice(
        tenant="acme",
        account=buyer.account,
        issuer="carrier",
        period=MARCH,
        issue_date=ISSUED,
        seller=CARRIER,
        buyer=buyer,
        account_currency="EUR",
        usage=rows,
        fees=[],
        posted_micro=sum(r.amount_micro for r in rows),
    )
    return dataclasses.replace(draft, number=f"INV-2026-{index + 1:06d}", status="issued")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000)
    parser.add_argument("--lines", type=int, default=30)
    args = parser.parse_args()

    invoices = [invoice(i, args.lines) for i in range(args.invoices)]
    start = time.perf_counter()
    first = invoice_pdf(invoices[0])
    first_ms = (time.perf_counter() - start) * 1000

    times, sizes, csv_times = [], [], []
    for each in invoices:
        start = time.perf_counter()
        pdf = invoice_pdf(each)
        times.append(time.perf_counter() - start)
        sizes.append(len(pdf))
        start = time.perf_counter()
        lines_csv(each)
        csv_times.append(time.perf_counter() - start)
    assert invoice_pdf(invoices[0]) == first  # deterministic under load too

    ms = [t * 1000 for t in times]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.invoices} invoices x {args.lines} lines, A4 PDF (reportlab, Vera embedded)")
    print(f"  first render (font registration): {first_ms:.1f} ms")
    print(
        f"  PDF: {statistics.mean(ms):.2f} ms/invoice (median {statistics.median(ms):.2f},"
        f" p95 {sorted(ms)[int(len(ms) * 0.95) - 1]:.2f}, total {sum(times):.1f} s)"
    )
    print(
        f"  PDF size: {statistics.mean(sizes) / 1024:.1f} KiB/invoice (max {max(sizes) / 1024:.1f})"
    )
    print(f"  lines CSV: {statistics.mean(csv_times) * 1000:.3f} ms/invoice")
    print(f"  peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
