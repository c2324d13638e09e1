"""Exactly once under faults: the invoice cycle's tasks die at their worst moments, the run
fails (or Step Functions retries), `invoice run` starts the successor, and still every invoice
has one number, one set of documents, one e-mail at most and one tax posting.

Each test is its own tenant on one local stack (the real state machine, tasks in-process).
"""

from __future__ import annotations

import datetime as dt
import itertools

import boto3
import pytest
from moto.ses.models import ses_backends

from functions.cli import main
from functions.invoice import cycle, handler
from functions.shared.settings import settings
from functions.store import billing, ledger, mail, states
from tests.conftest import local_stack

BOOKED = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
RUN_AT = dt.datetime(2026, 4, 1, 6, 0, tzinfo=dt.UTC)
ACCOUNTS = ("ALPHA", "BRAVO", "CHARLIE")
_tenants = itertools.count(1)


def run(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture(scope="module")
def stack():
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    }.items():
        patch.setenv(name, value)
    patch.setattr(ledger, "_now", lambda: BOOKED)
    patch.setattr(handler, "_now", lambda: RUN_AT)
    with local_stack(retry_wait_scale=0) as running:
        yield running
    patch.undo()


@pytest.fixture
def tenant(stack, tmp_path) -> str:
    """A carrier with three customers, each with a few rated calls in March."""
    name = f"t{next(_tenants)}"
    assert run("tenant", "create", name, "--currency", "EUR", "--timezone", "Europe/Berlin") == 0
    assert run("switch", "create", name, "sbc", "--format", "generic") == 0
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate,increment\n49,Germany,0.01,60/60\n")
    rows = [
        "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,"
        "supplier"
    ]
    for index, account in enumerate(ACCOUNTS):
        assert run("account", "create", name, account, "--kind", "customer") == 0
        assert run("deck", "upload", name, account, str(deck), "--effective", "2026-01-01") == 0
        assert (
            run(
                "billing",
                "set",
                name,
                account,
                "--email",
                f"{account.lower()}@x.example",
                "--tax",
                "standard:19",
                "--tax-from",
                "2026-01-01",
            )
            == 0
        )
        start = BOOKED + dt.timedelta(minutes=index)
        end = start + dt.timedelta(minutes=10 * (index + 1))
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        rows.append(
            f"{account}-1,4930000,4930111,{start:{stamp}},{start:{stamp}},{end:{stamp}},"
            f"{600 * (index + 1)},ANSWERED,{account},"
        )
    cdrs = tmp_path / "march.csv"
    cdrs.write_text("\n".join(rows) + "\n")
    assert run("cdr", "drop", name, "sbc", str(cdrs)) == 0
    stack.wait_idle(timeout=60)
    assert run("billing", "set", name, "--legal-name", f"{name} Carrier GmbH") == 0
    return name


def invoice_run(tenant: str) -> int:
    return run(
        "invoice", "run", tenant, "--period", "2026-03", "--issue-date", "2026-04-01", "--wait"
    )


def fail_once(monkeypatch, module, name: str, after: int = 0, error: type = RuntimeError):
    """`module.name` raises `error` on its call number `after` + 1, once; else works."""
    real = getattr(module, name)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == after + 1:
            raise error(f"injected: {name} dies")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)
    return calls


def mails_to(tenant: str) -> dict[str, int]:
    """Messages sent so far to each account's address (the tests compare before and after:
    every tenant's accounts share the addresses)."""
    sent: dict[str, int] = {}
    for account in ACCOUNTS:
        address = f"{account.lower()}@x.example"
        sent[account] = sum(
            address in message.destinations["ToAddresses"]
            for backend in ses_backends.values()
            for region in backend.values()
            for message in region.sent_messages
        )
    return sent


def issued(tenant: str) -> dict[str, billing.Issued]:
    return {i.invoice.account: i for i in billing.list_invoices(tenant)}


def document_versions(tenant: str) -> dict[str, int]:
    s3 = boto3.client("s3")
    found = s3.list_object_versions(
        Bucket=settings().documents_bucket, Prefix=f"invoices/{tenant}/"
    ).get("Versions", [])
    counted: dict[str, int] = {}
    for version in found:
        counted[version["Key"]] = counted.get(version["Key"], 0) + 1
    return counted


def taxes(tenant: str) -> dict[str, list[int]]:
    return {
        a: [e.amount for e in ledger.list_entries(tenant, a) if e.kind == "tax"] for a in ACCOUNTS
    }


def assert_once(tenant: str, before_mails: dict[str, int]) -> dict[str, billing.Issued]:
    found = issued(tenant)
    assert sorted(i.invoice.number for i in found.values()) == [
        "INV-2026-000001",
        "INV-2026-000002",
        "INV-2026-000003",
    ]
    assert set(document_versions(tenant).values()) == {1}  # rendered again: same bytes
    assert len(document_versions(tenant)) == 3 * 5  # pdf, xml, lines, summary, cdrs
    # 10, 20, 30 minutes at 0.01: tax 19 % of 0.10, 0.20, 0.30 -> 0.02, 0.04, 0.06
    assert taxes(tenant) == {"ALPHA": [-20_000], "BRAVO": [-40_000], "CHARLIE": [-60_000]}
    after = mails_to(tenant)
    assert {a: after[a] - before_mails[a] for a in ACCOUNTS} == dict.fromkeys(ACCOUNTS, 1)
    return found


def test_a_refused_mail_is_retried_by_the_state_machine_and_sent_once(tenant, monkeypatch):
    before = mails_to(tenant)
    fail_once(monkeypatch, mail, "send", after=1, error=cycle.MailNotSent)
    assert invoice_run(tenant) == 0  # one run: Step Functions retried the Send task
    found = assert_once(tenant, before)
    assert {i.delivery for i in found.values()} == {"sent"}


def test_a_crash_after_sending_never_sends_twice(tenant, monkeypatch):
    before = mails_to(tenant)
    fail_once(monkeypatch, billing, "set_delivery", after=1)  # BRAVO's mail went, no mark
    assert invoice_run(tenant) == 1  # the run failed
    assert invoice_run(tenant) == 0  # its successor finished the rest
    found = assert_once(tenant, before)
    assert {a: i.delivery for a, i in found.items()} == {
        "ALPHA": "sent",
        "BRAVO": "sending",  # unconfirmed: at most once, reported, not resent
        "CHARLIE": "sent",
    }
    names = [c["name"] for c in states.list_cycles(tenant)]
    assert len(names) == 2 and names[1] == names[0] + "-2"


def test_a_crash_while_numbering_leaves_no_gap(tenant, monkeypatch):
    before = mails_to(tenant)
    fail_once(monkeypatch, billing, "number_draft", after=1)  # ALPHA numbered, then dies
    assert invoice_run(tenant) == 1
    assert invoice_run(tenant) == 0
    found = assert_once(tenant, before)
    assert [found[a].invoice.number for a in ACCOUNTS] == [
        "INV-2026-000001",
        "INV-2026-000002",
        "INV-2026-000003",
    ]


def test_a_crash_while_posting_posts_each_tax_once(tenant, monkeypatch):
    before = mails_to(tenant)
    fail_once(monkeypatch, billing, "mark_posted", after=0)  # ALPHA's tax posted, not marked
    assert invoice_run(tenant) == 1
    assert invoice_run(tenant) == 0
    found = assert_once(tenant, before)
    assert all(i.posted for i in found.values())


def test_a_crash_while_rendering_writes_each_document_once(tenant, monkeypatch):
    before = mails_to(tenant)
    fail_once(monkeypatch, billing, "set_documents", after=1)  # BRAVO's files put, not noted
    assert invoice_run(tenant) == 1
    assert invoice_run(tenant) == 0
    assert_once(tenant, before)


def test_the_daily_schedule_starts_a_closed_period_once(tenant):
    first = handler.handle_invoice_schedule({}, None)
    assert f"{tenant}:2026-03" in first["started"]
    [run_] = states.list_cycles(tenant)
    assert states.wait_cycle(run_["arn"], 60)["status"] == "SUCCEEDED"
    assert len(issued(tenant)) == 3
    again = handler.handle_invoice_schedule({}, None)
    assert not any(name.startswith(f"{tenant}:") for name in again["started"])
    assert len(states.list_cycles(tenant)) == 1


def ses_event(kind: str, tenant: str, number: str, **detail) -> dict:
    """An SES event as EventBridge delivers it (docs.aws.amazon.com/ses: event publishing)."""
    mail = {"messageId": "m-1", "tags": {"tenant": [tenant], "invoice": [number]}}
    return {"source": "aws.ses", "detail-type": kind, "detail": {"mail": mail, **detail}}


def test_a_hard_bounce_is_recorded_on_the_invoice(tenant):
    assert invoice_run(tenant) == 0
    number = issued(tenant)["ALPHA"].invoice.number
    soft = {"bounce": {"bounceType": "Transient", "bounceSubType": "MailboxFull"}}
    assert handler.handle_mail_event(ses_event("Email Bounced", tenant, number, **soft), None) == {
        "recorded": False
    }
    assert issued(tenant)["ALPHA"].delivery == "sent"
    hard = {
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "alpha@x.example",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        }
    }
    handler.handle_mail_event(ses_event("Email Bounced", tenant, number, **hard), None)
    found = issued(tenant)["ALPHA"]
    assert (found.delivery, found.detail) == ("bounced", "General: smtp; 550 5.1.1 user unknown")
    assert found.invoice.status == "sent"  # the invoice stands; only its delivery failed
    untagged = {"source": "aws.ses", "detail-type": "Email Bounced", "detail": {"mail": {}}}
    assert handler.handle_mail_event(untagged, None) == {"recorded": False}
