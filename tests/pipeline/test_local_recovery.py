"""Poison files on the embedded local stack, recovered the way an operator would at 3 a.m.

The app's own handlers poll the template's queues; a fault injected into one store call
makes a file fail on every delivery until the operator "fixes" it. Failed messages come back
at once (retry_delay=0), so a file reaches its dead-letter queue after the template's
maxReceiveCount deliveries in well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.local.provision import load_template
from functions.local.stack import LocalStack
from functions.store import accounts, lake, ledger
from tests.cli.conftest import json_document, run_command
from tests.conftest import local_stack
from tests.pipeline.carrier import (
    EXPECTED_BALANCES,
    FIRST_FILE,
    SECOND_FILE,
    SWITCH,
    TENANT,
    set_up_carrier,
)

MAX_RECEIVES = load_template()["Resources"]["RateQueue"]["Properties"]["RedrivePolicy"][
    "maxReceiveCount"
]


@pytest.fixture
def stack(aws_environment):
    with local_stack(retry_delay=0) as running:
        yield running


def statuses(capsys) -> dict[str, dict]:
    return {row["file"]: row for row in json_document(capsys, "file", "status", TENANT)}


def balances(capsys) -> dict[str, str]:
    return {
        account: json_document(capsys, "balance", TENANT, account)["balance"]
        for account in EXPECTED_BALANCES
    }


def expected_balances() -> dict[str, str]:
    return {account: f"{units / 1_000_000:.6f}" for account, units in EXPECTED_BALANCES.items()}


class Fault:
    """A store call that fails while `broken` (an outage, a bad configuration)."""

    def __init__(self, monkeypatch, module, name: str, applies=lambda *a, **k: True) -> None:
        self.broken = True
        self.calls = 0
        original = getattr(module, name)

        def call(*args, **kwargs):
            if self.broken and applies(*args, **kwargs):
                self.calls += 1
                raise RuntimeError(f"{name} unavailable")
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, call)


def drop(stack: LocalStack, name: str, text: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert run_command(capsys, "cdr", "drop", TENANT, SWITCH, str(path))[0] == 0
    stack.wait_idle(timeout=60)


def test_a_file_whose_rating_fails_is_parked_shown_failed_and_charged_once_after_redrive(
    stack, tmp_path, capsys, monkeypatch
):
    set_up_carrier(tmp_path)
    fault = Fault(
        monkeypatch, ledger, "post_balances", lambda *a, **k: k.get("description") == "first.csv"
    )
    drop(stack, "first.csv", FIRST_FILE, tmp_path, capsys)
    drop(stack, "resent.csv", SECOND_FILE, tmp_path, capsys)  # meanwhile: goes through

    assert fault.calls == MAX_RECEIVES  # then SQS's redrive policy parked it
    files_now = statuses(capsys)
    assert {k: files_now["first.csv"][k] for k in ("status", "stage", "error")} == {
        "status": "failed",
        "stage": "rate",
        "error": "RuntimeError: post_balances unavailable",
    }
    assert files_now["resent.csv"]["status"] == "done"
    [letter] = json_document(capsys, "dlq", "list")
    assert (letter["queue"], letter["tenant"], letter["file"], letter["status"]) == (
        "rate",
        TENANT,
        "first.csv",
        "failed",
    )
    assert letter["error"] == "RuntimeError: post_balances unavailable"
    assert balances(capsys)["direct"] == "0.000000"  # its calls were all in the failed file

    fault.broken = False  # the operator fixed the cause
    moved = json_document(capsys, "dlq", "redrive", "--queue", "rate")
    assert [(row["file"], row["status"]) for row in moved] == [("first.csv", "ingested")]
    stack.wait_idle(timeout=60)

    assert statuses(capsys)["first.csv"]["status"] == "done"
    assert balances(capsys) == expected_balances()
    assert json_document(capsys, "dlq", "list") == []
    status, _, err = run_command(capsys, "file", "retry", TENANT, "first.csv")
    assert status == 1 and "is done: its calls were charged once" in err
    stack.wait_idle(timeout=60)
    assert balances(capsys) == expected_balances()


def test_rejected_and_failed_drops_are_retried_and_each_call_charged_once(
    stack, tmp_path, capsys, monkeypatch
):
    # A switch's file arrives before anyone registered the switch: rejected, with the reason.
    lake.put_cdr(TENANT, SWITCH, "resent.csv", SECOND_FILE.encode())
    stack.wait_idle(timeout=60)
    set_up_carrier(tmp_path)
    rejected = statuses(capsys)["resent.csv"]
    assert rejected["status"] == "rejected" and TENANT in rejected["reason"]

    # Another file's ingest fails on every delivery (here: reading the switch's settings).
    fault = Fault(monkeypatch, accounts, "get_switch")
    lake.put_cdr(TENANT, SWITCH, "first.csv", FIRST_FILE.encode())
    stack.wait_idle(timeout=60)
    assert fault.calls == MAX_RECEIVES
    failed = statuses(capsys)["first.csv"]
    assert (failed["status"], failed["stage"], failed["error"]) == (
        "failed",
        "ingest",
        "RuntimeError: get_switch unavailable",
    )
    assert [row["file"] for row in json_document(capsys, "dlq", "list", "--queue", "ingest")] == [
        "first.csv"
    ]

    fault.broken = False
    for name in ("first.csv", "resent.csv"):  # in drop order: resent calls are duplicates
        [row] = json_document(capsys, "file", "retry", TENANT, name)
        assert row["requested"] == "ingest"
        stack.wait_idle(timeout=60)
    # The dead letter of the failed ingest goes back too: it finds its file done.
    json_document(capsys, "dlq", "redrive")
    stack.wait_idle(timeout=60)

    counts = {
        name: {k: row[k] for k in ("status", "rows", "rated", "duplicates")}
        for name, row in statuses(capsys).items()
    }
    assert counts == {
        "first.csv": {"status": "done", "rows": 7, "rated": 4, "duplicates": 0},
        "resent.csv": {"status": "done", "rows": 3, "rated": 1, "duplicates": 2},
    }
    assert balances(capsys) == expected_balances()
    assert json_document(capsys, "dlq", "list") == []
