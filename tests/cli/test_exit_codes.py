"""Exit status: 0 done, 1 error, 2 bad usage or bad input; documented in --help.

Issue 9 §6: every failure exited 2 before (CliError), a tenant that already exists as much
as a mistyped amount, and AWS being unreachable as much as either; the epilog said nothing.
The cases for 1 and the help text fail on that code.
"""

from __future__ import annotations

import pytest

from functions import store
from functions.cli import main
from functions.shared.settings import settings


def run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    if status:
        assert captured.out == ""  # a failure prints nothing a script could mistake for data
    return status, captured.err


@pytest.fixture
def acme(aws, capsys):
    run(capsys, "tenant", "create", "acme")
    run(capsys, "account", "create", "acme", "cust", "--kind", "customer")


def test_the_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 done" in text
    assert "1 error: AWS unreachable or refusing, a conflict with the stored state" in text
    assert "2 bad usage or bad input" in text
    assert "exactly one JSON document" in text


def test_done_is_0_even_when_there_was_nothing_to_do(acme, capsys):
    argv = ("payment", "record", "acme", "cust", "5", "--reference", "BANK-1")
    assert run(capsys, *argv) == (0, "")
    assert run(capsys, *argv) == (0, "")  # already recorded: nothing changed, not a failure


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("balance", "acme", "ghost"), "unknown account 'ghost'"),
        (("payment", "record", "acme", "cust", "1.0000001", "--reference", "R"),
         "more than 6 decimal places"),
        (("tenant", "create", "a#b"), "invalid tenant id"),
        (("account", "update", "acme", "cust", "--currency", "dollars"), "invalid currency"),
        (("statement", "acme", "cust", "--from", "2024-05-02", "--to", "2024-05-01"),
         "after it ends"),
        (("deck", "check", "/nonexistent/deck.csv"), "cannot read"),
        (("reconcile", "acme", "cust", "/nonexistent/theirs.csv", "--from", "2024-05-01",
          "--to", "2024-05-01"), "cannot read"),
        (("switch", "columns", "acme", "ghost", "--column", "calee=D"),
         "unknown switch 'ghost'"),
    ],
)  # fmt: skip
def test_bad_input_is_2(acme, capsys, argv, message):
    status, err = run(capsys, *argv)
    assert status == 2 and message in err and err.startswith("tollgate: error: ")


def test_bad_usage_is_2(capsys):
    for argv in (["balance"], ["tenant", "create", "acme", "--no-such-flag"], ["nope"]):
        with pytest.raises(SystemExit) as usage:
            main(argv)
        assert usage.value.code == 2


def test_a_conflict_with_the_stored_state_is_1(acme, capsys):
    status, err = run(capsys, "tenant", "create", "acme")
    assert (status, err) == (1, "tollgate: error: tenant 'acme' already exists\n")
    run(capsys, "payment", "record", "acme", "cust", "5", "--reference", "BANK-1")
    status, err = run(capsys, "payment", "record", "acme", "cust", "6", "--reference", "BANK-1")
    assert status == 1 and "reference 'BANK-1' is already a payment of 5.000000" in err
    status, err = run(capsys, "account", "update", "acme", "cust", "--currency", "EUR")
    assert status == 1 and "has a balance history" in err


def test_aws_refusing_is_1(acme, capsys):
    store.client("dynamodb").delete_table(TableName=settings().ledger_table)
    status, err = run(capsys, "balance", "acme", "cust")
    assert status == 1 and "AWS refused" in err and "ResourceNotFoundException" in err


def test_aws_unreachable_is_1(aws_environment, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    store.reset()
    try:
        status, err = run(capsys, "account", "show", "acme", "cust")
    finally:
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        store.reset()
    assert status == 1 and err.startswith("tollgate: error: cannot reach AWS: ")
