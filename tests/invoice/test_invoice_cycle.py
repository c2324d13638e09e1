"""The invoice cycle end to end on the local stack: CDR files rated and charged, then the real
state machine (infra/invoice_cycle.asl.json) on moto's Step Functions with the tasks in-process,
driven through the CLI as an operator would.

The carrier (Europe/Berlin, EUR): the seed's table (Reseller A: India Mobile 12,500 min x 0.008
= 100.00 and USA Landline 8,200 x 0.004 = 32.80; Reseller B: UK Mobile 6,700 x 0.007 = 46.90),
a graduated-tier customer invoiced in USD, a French reverse-charge customer and a reseller's
white-label customer.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from moto.ses.models import ses_backends
from pypdf import PdfReader

from functions.cli import main
from functions.invoice import handler
from functions.store import billing, ledger
from tests.cli.conftest import json_document
from tests.conftest import local_stack

TENANT = "acme"
SWITCH = "sbc1"
BOOKED = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
DECKS = {
    "RESELLER_A": "prefix,destination,rate,increment\n917,India Mobile,0.008,60/60\n"
    "1,USA Landline,0.004,60/60\n",
    "RESELLER_B": "prefix,destination,rate,increment\n447,UK Mobile,0.007,60/60\n",
    "RESELLER_C": "prefix,destination,rate,increment\n917,India Mobile,0.0075,60/60\n",
    "SKYLINE": "prefix,destination,rate,increment\n917,India Mobile,0.0095,60/60\n",
    "BLUEWAVE": "prefix,destination,rate,increment\n917,India Mobile,0.0050,60/60\n",
    "PARIS": "prefix,destination,rate,increment\n336,France Mobile,0.0125,60/60\n",
    "CARRIER1": "prefix,destination,rate\n91,India,0.0065\n1,USA,0.003\n44,UK,0.005\n"
    "33,France,0.009\n",
}
# (customer, callee, calls of 100 minutes)
TRAFFIC = [
    ("RESELLER_A", "917012345678", 125),  # 12,500 min
    ("RESELLER_A", "12125551234", 82),  # 8,200 min
    ("RESELLER_B", "447700900123", 67),  # 6,700 min
    ("SKYLINE", "917012345678", 10),  # 1,000 min, white label under RESELLER_C
    ("BLUEWAVE", "917012345678", 3),  # 300 min: tiers 100 at 0.0045, then 0.0040
    ("PARIS", "33612345678", 40),  # 4,000 min
]
MARCH_RUN = dt.datetime(2026, 4, 2, 6, 0, tzinfo=dt.UTC)
# RESELLER_B's call at 00:30 on 1 April, Berlin time, comes in March's file: April's invoice
ON_APRIL_FIRST = dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC)


def run(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def cdrs() -> str:
    lines = [HEADER]
    n = 0
    for customer, callee, calls in TRAFFIC:
        for _ in range(calls):
            n += 1
            start = BOOKED.replace(hour=8) + dt.timedelta(seconds=n)
            end = start + dt.timedelta(seconds=6000)
            lines.append(
                f"c{n},4930123456,{callee},{start:%Y-%m-%dT%H:%M:%SZ},{start:%Y-%m-%dT%H:%M:%SZ},"
                f"{end:%Y-%m-%dT%H:%M:%SZ},6000,ANSWERED,{customer},CARRIER1"
            )
    lines.append(call("april", "RESELLER_B", "447700900123", ON_APRIL_FIRST, 3600))
    return "\n".join(lines) + "\n"


def call(call_id: str, customer: str, callee: str, start: dt.datetime, seconds: int) -> str:
    end = start + dt.timedelta(seconds=seconds)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return (
        f"{call_id},4930123456,{callee},{start:{stamp}},{start:{stamp}},{end:{stamp}},{seconds},"
        f"ANSWERED,{customer},CARRIER1"
    )


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """The carrier, a day of traffic rated, and the March cycle run once."""
    folder = tmp_path_factory.mktemp("cycle")
    patch = pytest.MonkeyPatch()
    patch.setattr(ledger, "_now", lambda: BOOKED)
    patch.setattr(handler, "_now", lambda: MARCH_RUN)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        patch.setenv(name, value)
    with local_stack(retry_wait_scale=0) as stack:
        run("tenant", "create", TENANT, "--currency", "EUR", "--timezone", "Europe/Berlin")
        run("switch", "create", TENANT, SWITCH, "--format", "generic")
        for account in ("RESELLER_A", "RESELLER_B", "RESELLER_C"):
            run("account", "create", TENANT, account, "--kind", "reseller")
        run("account", "create", TENANT, "SKYLINE", "--kind", "customer", "--parent", "RESELLER_C")
        run("account", "create", TENANT, "BLUEWAVE", "--kind", "customer")
        run("account", "create", TENANT, "PARIS", "--kind", "customer", "--prepaid")
        run("account", "create", TENANT, "CARRIER1", "--kind", "supplier")
        for account, text in DECKS.items():
            path = folder / f"{account}.csv"
            path.write_text(text)
            run("deck", "upload", TENANT, account, str(path), "--effective", "2026-01-01")
        run("tier", "set", TENANT, "BLUEWAVE", "india", "--prefixes", "91", "--mode",
            "graduated", "--tiers", "100:0.0045,:0.0040")  # fmt: skip
        run("billing", "set", TENANT, "--legal-name", "Acme Voice Carrier GmbH", "--address",
            "Friedrichstrasse 123", "--city", "Berlin", "--postcode", "10117", "--country", "DE",
            "--email", "billing@acme-voice.example", "--vat-id", "DE123456789", "--iban",
            "DE89370400440532013000", "--phone", "+49 30 1234567")  # fmt: skip
        for account, country, vat in (("RESELLER_A", "DE", "DE987654321"),
                                      ("RESELLER_B", "DE", "DE811111111")):  # fmt: skip
            run("billing", "set", TENANT, account, "--legal-name", f"{account} GmbH", "--address",
                "Hauptstrasse 1", "--city", "Hamburg", "--postcode", "20095", "--country",
                country, "--email", f"{account.lower()}@example.com", "--vat-id", vat, "--tax",
                "standard:19", "--tax-from", "2026-01-01")  # fmt: skip
        run("billing", "set", TENANT, "RESELLER_C", "--legal-name", "Reseller C Telecom GmbH",
            "--brand", "SkyLine Voice", "--series", "SLV", "--address", "Am Wall 1", "--city",
            "Bremen", "--postcode", "28195", "--country", "DE", "--email",
            "billing@skyline-voice.example", "--vat-id", "DE276452187", "--iban",
            "DE02120300000000202051", "--phone", "+49 421 55555")  # fmt: skip
        run("billing", "set", TENANT, "SKYLINE", "--legal-name", "Skyline Shop UG", "--country",
            "DE", "--email", "shop@skyline.example", "--tax", "standard:19", "--tax-from",
            "2026-01-01")  # fmt: skip
        run("billing", "set", TENANT, "BLUEWAVE", "--legal-name", "Bluewave Communications Ltd",
            "--country", "GB", "--email", "ap@bluewave.example", "--vat-id", "GB123456789",
            "--currency", "USD", "--tax", "standard:20", "--tax-from", "2026-01-01")  # fmt: skip
        run("billing", "fx", TENANT, "--from", "EUR", "--to", "USD", "--rate", "1.0825", "--day",
            "2026-03-31", "--source-name", "ECB")  # fmt: skip
        run("billing", "set", TENANT, "PARIS", "--legal-name", "Paris Voix SAS", "--country",
            "FR", "--email", "factures@parisvoix.example", "--vat-id", "FR12345678901", "--tax",
            "reverse_charge", "--tax-from", "2026-01-01")  # fmt: skip
        run("payment", "record", TENANT, "PARIS", "100.00", "--reference", "wire-1")
        path = folder / "march.csv"
        path.write_text(cdrs())
        run("cdr", "drop", TENANT, SWITCH, str(path))
        stack.wait_idle(timeout=120)
        assert list(stack.runner.errors) == []
        yield stack, folder
    patch.undo()


def issue(capsys, *extra: str) -> dict:
    return json_document(
        capsys, "invoice", "run", TENANT, "--period", "2026-03", "--issue-date", "2026-04-02",
        "--wait", *extra,
    )  # fmt: skip


def by_account(report: dict) -> dict[str, dict]:
    return {item["account"]: item for item in report["invoices"]}


def lines(capsys, number: str) -> list[tuple[str, str, str, str]]:
    shown = json_document(capsys, "invoice", "show", TENANT, number)
    return [(x["description"], x["quantity"], x["unit_price"], x["amount"]) for x in shown["lines"]]


def test_the_seed_table_invoices_exactly(cycle, capsys):
    report = issue(capsys)
    invoices = by_account(report)
    assert sorted(invoices) == ["BLUEWAVE", "PARIS", "RESELLER_A", "RESELLER_B", "RESELLER_C",
                                "SKYLINE"]  # fmt: skip
    a, b = invoices["RESELLER_A"]["number"], invoices["RESELLER_B"]["number"]
    assert lines(capsys, a) == [
        ("India Mobile", "12500", "0.008", "100.00"),
        ("USA Landline", "8200", "0.004", "32.80"),
    ]
    assert lines(capsys, b) == [("UK Mobile", "6700", "0.007", "46.90")]
    shown = json_document(capsys, "invoice", "show", TENANT, a)
    assert (shown["subtotal"], shown["taxes"], shown["total"]) == (
        "132.80",
        [{"category": "S", "rate": "19", "taxable": "132.80", "amount": "25.23"}],
        "158.03",
    )
    assert (shown["issue_date"], shown["due_date"], shown["status"]) == (
        "2026-04-02",
        "2026-05-02",
        "sent",
    )


def test_totals_equal_the_postings_and_the_tax_is_posted_once(cycle, capsys):
    report = issue(capsys)
    for account, item in by_account(report).items():
        shown = json_document(capsys, "invoice", "show", TENANT, item["number"])
        entries = ledger.list_entries(TENANT, account)
        charged = -sum(e.amount for e in entries if e.kind in ("charges", "rerate", "tier"))
        # what the postings hold for calls after 31 March is April's (RESELLER_B's call)
        deferred = billing.get_draft(TENANT, "2026-03", account).coverage["deferred_micro"]
        assert deferred == (420_000 if account == "RESELLER_B" else 0)
        if shown["fx"] is None:
            assert Decimal(shown["subtotal"]) == (Decimal(charged - deferred) / 10**6).quantize(
                Decimal("0.01")
            ), account
        taxes = [e for e in entries if e.kind == "tax"]
        expected_tax = Decimal(shown["total"]) - Decimal(shown["subtotal"])
        if expected_tax:
            assert len(taxes) == 1 and taxes[0].reference == f"invoice:{item['number']}"
        else:
            assert taxes == []


def test_a_second_run_changes_nothing(cycle, capsys):
    first = issue(capsys)
    sent_before = sum(len(b.sent_messages) for b in _ses())
    versions = _document_versions()
    second = issue(capsys)
    assert second["invoices"] == first["invoices"]
    assert sum(len(b.sent_messages) for b in _ses()) == sent_before
    assert _document_versions() == versions  # same bytes: nothing rewritten


def test_the_tiered_customer_is_invoiced_per_tier_in_usd(cycle, capsys):
    number = by_account(issue(capsys))["BLUEWAVE"]["number"]
    shown = json_document(capsys, "invoice", "show", TENANT, number)
    assert shown["currency"] == "USD"
    assert shown["fx"] == {"from": "EUR", "rate": "1.0825", "day": "2026-03-31", "source": "ECB"}
    # 100 min x 0.0045 + 200 min x 0.0040 = 1.25 EUR = 1.353125 USD; tax 20 % on 1.35
    assert sorted(lines(capsys, number)) == sorted(
        [
            ("India Mobile (tier)", "100", "0.00487125", "0.49"),
            ("India Mobile (tier)", "200", "0.00433", "0.87"),
            ("Rounding", "1", "-0.01", "-0.01"),
        ]
    )
    assert (shown["subtotal"], shown["total"], shown["carried_out"]) == ("1.35", "1.62", "0.003125")


def test_the_reverse_charge_customer_pays_no_vat_and_says_so(cycle, capsys, tmp_path):
    number = by_account(issue(capsys))["PARIS"]["number"]
    shown = json_document(capsys, "invoice", "show", TENANT, number)
    assert shown["taxes"] == [{"category": "AE", "rate": "0", "taxable": "50.00", "amount": "0.00"}]
    assert (shown["total"], shown["amount_due"], shown["status"]) == ("50.00", "0.00", "paid")
    run("invoice", "download", TENANT, number, "--format", "pdf", "--out", str(tmp_path / "p.pdf"))
    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "p.pdf").pages)
    assert "Reverse charge" in text and "FR12345678901" in text and "DE123456789" in text
    run("invoice", "download", TENANT, number, "--format", "xml", "--out", str(tmp_path / "p.xml"))
    assert b"VATEX-EU-AE" in (tmp_path / "p.xml").read_bytes()


def test_the_white_label_customer_is_invoiced_by_its_reseller(cycle, capsys, tmp_path):
    invoices = by_account(issue(capsys))
    number = invoices["SKYLINE"]["number"]
    assert number.startswith("SLV-2026-")
    assert lines(capsys, number) == [("India Mobile", "1000", "0.0095", "9.50")]
    run("invoice", "download", TENANT, number, "--format", "pdf", "--out", str(tmp_path / "s.pdf"))
    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "s.pdf").pages)
    assert "SkyLine Voice" in text and "Acme" not in text
    # the reseller itself is invoiced by the carrier for its customer's calls, at its own rate
    reseller = invoices["RESELLER_C"]["number"]
    assert reseller.startswith("INV-2026-")
    assert lines(capsys, reseller) == [("India Mobile", "1000", "0.0075", "7.50")]
    sent = [
        m
        for b in _ses()
        for m in b.sent_messages
        if "shop@skyline.example" in m.destinations["ToAddresses"]
    ]
    assert len(sent) == 1 and "SkyLine Voice" in sent[0].source and "Acme" not in sent[0].source


def test_numbers_are_gap_free_per_series(cycle, capsys):
    numbers = [i["number"] for i in issue(capsys)["invoices"]]
    carrier = sorted(n for n in numbers if n.startswith("INV-"))
    assert carrier == [f"INV-2026-{n:06d}" for n in range(1, len(carrier) + 1)]
    assert [n for n in numbers if n.startswith("SLV-")] == ["SLV-2026-000001"]


def test_a_credit_note_references_its_invoice_and_gives_the_money_back(cycle, capsys):
    number = by_account(issue(capsys))["RESELLER_B"]["number"]
    before = ledger.get_balance(TENANT, "RESELLER_B")[0]
    note = json_document(capsys, "invoice", "credit", TENANT, number, "--amount", "6.90",
                         "--reason", "disputed UK calls")  # fmt: skip
    assert note["number"].startswith("CN-2026-") and note["credits"] == number
    assert (note["subtotal"], note["total"]) == ("6.90", "8.21")  # 19 % of 6.90 = 1.311 -> 1.31
    assert ledger.get_balance(TENANT, "RESELLER_B")[0] - before == 8_210_000
    assert billing.get_invoice(TENANT, number).credited == Decimal("6.90")
    assert main(["invoice", "credit", TENANT, number, "--amount", "40.01", "--reason", "x"]) == 2


def _ses():
    return [region for account in ses_backends.values() for region in account.values()]


def _document_versions() -> dict[str, int]:
    import boto3

    from functions.shared.settings import settings

    s3 = boto3.client("s3")
    versions = s3.list_object_versions(Bucket=settings().documents_bucket).get("Versions", [])
    counted: dict[str, int] = {}
    for version in versions:
        counted[version["Key"]] = counted.get(version["Key"], 0) + 1
    return counted


def test_the_run_is_json_serialisable(cycle, capsys):
    assert json.loads(json.dumps(issue(capsys)))["period"] == "2026-03"


def test_calls_after_the_end_and_late_files_go_on_the_next_invoice(cycle, capsys, monkeypatch):
    stack, folder = cycle
    march = by_account(issue(capsys))["RESELLER_B"]["number"]
    assert lines(capsys, march)[0] == (
        "UK Mobile",
        "6700",
        "0.007",
        "46.90",
    )  # not the 1 April call
    assert billing.get_draft(TENANT, "2026-03", "RESELLER_B").coverage["deferred_micro"] == 420_000
    # a March call that arrives on 5 April, after March was invoiced
    monkeypatch.setattr(ledger, "_now", lambda: dt.datetime(2026, 4, 5, 9, 0, tzinfo=dt.UTC))
    late = folder / "late.csv"
    late.write_text(HEADER + "\n" + call("late", "RESELLER_B", "447700900123", BOOKED, 600) + "\n")
    run("cdr", "drop", TENANT, SWITCH, str(late))
    stack.wait_idle(timeout=60)
    # a goodwill credit stamped 30 s before March's run read the journal but committed after
    # it (a slow transaction): March never saw it, April must
    monkeypatch.setattr(ledger, "_now", lambda: MARCH_RUN - dt.timedelta(seconds=30))
    run("adjust", TENANT, "RESELLER_B", "1.00", "--reason", "goodwill", "--reference", "gw-1")
    monkeypatch.setattr(handler, "_now", lambda: dt.datetime(2026, 5, 2, 6, tzinfo=dt.UTC))
    april = json_document(
        capsys, "invoice", "run", TENANT, "--period", "2026-04", "--issue-date", "2026-05-02",
        "--account", "RESELLER_B", "--wait",
    )  # fmt: skip
    [invoice] = april["invoices"]
    # 60 min deferred from March's file + the late 10 min, both at 0.007; the credit
    assert lines(capsys, invoice["number"]) == [
        ("UK Mobile", "70", "0.007", "0.49"),
        ("Adjustment: goodwill", "1", "-1.00", "-1.00"),
    ]
    charged = -sum(
        e.amount
        for e in ledger.list_entries(TENANT, "RESELLER_B")
        if e.kind in ("charges", "adjustment")
    )
    subtotals = [
        Decimal(json_document(capsys, "invoice", "show", TENANT, n)["subtotal"])
        for n in (march, invoice["number"])
    ]
    assert sum(subtotals) == Decimal(charged) / 10**6 == Decimal("46.39")


def test_a_full_credit_voids_the_invoice(cycle, capsys):
    number = by_account(issue(capsys))["RESELLER_C"]["number"]
    note = json_document(capsys, "invoice", "credit", TENANT, number, "--reason", "cancelled")
    original = json_document(capsys, "invoice", "show", TENANT, number)
    assert (note["subtotal"], note["total"]) == (original["subtotal"], original["total"])
    assert original["status"] == "void"
    assert main(["invoice", "credit", TENANT, number, "--reason", "again"]) == 2  # nothing left
