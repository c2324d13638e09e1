"""The whole pipeline on the embedded local stack, driven as an operator drives it.

moto in server mode, the resources of infra/template.yaml, the handlers that app.py declares
polled from their queues, and the operator CLI: drop, wait, read balances and file status.
"""

from __future__ import annotations

import pytest

from functions.cli import main
from tests.cli.conftest import json_document
from tests.conftest import local_stack
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
    with local_stack() as running:
        yield running


def test_dropped_files_are_ingested_rated_and_charged_once(stack, tmp_path, capsys):
    set_up_carrier(tmp_path)
    for name, text in (("first.csv", FIRST_FILE), ("resent.csv", SECOND_FILE)):
        path = tmp_path / name
        path.write_text(text)
        assert main(["cdr", "drop", TENANT, SWITCH, str(path)]) == 0
        stack.wait_idle(timeout=60)  # in order: the second file resends calls of the first

    assert list(stack.runner.errors) == []
    statuses = {f["file"]: f for f in json_document(capsys, "file", "status", TENANT)}
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
        balance = json_document(capsys, "balance", TENANT, account)
        assert balance["balance"] == f"{expected / 1_000_000:.6f}", account
