"""The whole pipeline on the embedded local stack, driven as an operator drives it.

moto in server mode, the resources of infra/template.yaml, the handlers that app.py declares
polled from their queues, and the operator CLI: drop, wait, read balances and file status.
"""

from __future__ import annotations

import json

import pytest

from functions.cli import main
from functions.local.stack import LocalStack
from functions.store import reset
from tests.pipeline.carrier import (
    EXPECTED_BALANCES,
    FIRST_FILE,
    SECOND_FILE,
    SWITCH,
    TENANT,
    set_up_carrier,
)


@pytest.fixture
def stack(aws_environment):
    with LocalStack(0, visibility_timeout=1, poll_wait_seconds=0) as running:
        reset()
        yield running
    reset()


def cli_json(capsys, *argv: str) -> dict | list[dict]:
    """The one JSON document a command prints with --json."""
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_dropped_files_are_ingested_rated_and_charged_once(stack, tmp_path, capsys):
    set_up_carrier(tmp_path)
    for name, text in (("first.csv", FIRST_FILE), ("resent.csv", SECOND_FILE)):
        path = tmp_path / name
        path.write_text(text)
        assert main(["cdr", "drop", TENANT, SWITCH, str(path)]) == 0
        stack.wait_idle(timeout=60)  # in order: the second file resends calls of the first

    assert list(stack.runner.errors) == []
    statuses = {f["file"]: f for f in cli_json(capsys, "file", "status", TENANT)}
    counts = {
        name: {
            k: statuses[name][k] for k in ("status", "rows", "rated", "quarantined", "duplicates")
        }
        for name in statuses
    }
    assert counts == {
        "first.csv": {"status": "done", "rows": 7, "rated": 4, "quarantined": 2, "duplicates": 0},
        "resent.csv": {"status": "done", "rows": 3, "rated": 1, "quarantined": 0, "duplicates": 2},
    }
    for account, expected in EXPECTED_BALANCES.items():
        balance = cli_json(capsys, "balance", TENANT, account)
        assert balance["balance"] == f"{expected / 1_000_000:.6f}", account
