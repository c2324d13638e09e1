"""`tollgate file reindex`: files recorded before the registry's day index existed (a FILE#
record without its ARRIVED# item) get their index item, so the day's assurance check sees a
file refused whole; a second run writes nothing; a record that cannot be placed is named."""

from __future__ import annotations

import json

import pytest

from functions.cli import main
from functions.shared.settings import settings
from functions.store import accounts, client, files
from tests.conftest import operator_account

TENANT = "acme"
REASON = "unknown format: no header"


def forget_arrival(tenant: str, file_id: str) -> None:
    """The record as it was written before the index: its ARRIVED# item deleted."""
    model = files._m().arrived
    for item in model.query(tenant, model.sk.startswith("ARRIVED#")):
        if item.sk.endswith(f"#{file_id}"):
            item.delete()


@pytest.fixture(scope="module")
def old_registry():
    """acme's registry: a rejected file and an ingested one recorded the old way, one with
    its index item already, one naming no switch and one without an arrival time."""
    with operator_account():
        accounts.create_tenant(TENANT)
        accounts.create_switch(TENANT, "sw1", format="generic")
        files.put_file(TENANT, "f-bad", "rejected", meta={"switch": "sw1", "name": "bad.csv",
                                                           "error": REASON})  # fmt: skip
        files.put_file(TENANT, "f-old", "ingested", {"rows": 2},
                       {"switch": "sw1", "name": "old.csv", "days": []})  # fmt: skip
        files.put_file(TENANT, "f-new", "ingested", {"rows": 1},
                       {"switch": "sw1", "name": "new.csv", "days": []})  # fmt: skip
        files.put_file(TENANT, "f-noswitch", "rejected", meta={"name": "x.csv", "error": "?"})
        forget_arrival(TENANT, "f-bad")
        forget_arrival(TENANT, "f-old")
        client("dynamodb").put_item(  # written by hand long ago: no created_at
            TableName=settings().files_table,
            Item={
                "pk": {"S": TENANT},
                "sk": {"S": "FILE#f-notime"},
                "status": {"S": "rejected"},
                "meta": {"M": {"switch": {"S": "sw1"}, "name": {"S": "t.csv"}}},
            },
        )
        day = files.get_file(TENANT, "f-bad").created_at.date().isoformat()
        yield day


def run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out + err


def test_reindex_writes_the_missing_items_once_and_the_check_sees_the_rejected_file(
    old_registry, capsys
):
    day = old_registry
    assert files.arrived_files(TENANT, day, day) == [(day, "sw1", "f-new")]
    status, out = run(capsys, "assurance", TENANT, "--day", day, "--json")
    assert status == 0, out
    [sw1] = [s for s in json.loads(out)["switches"] if s["switch"] == "sw1"]
    assert sw1["rejected_files"] == []  # the old rejected file is invisible

    status, out = run(capsys, "file", "reindex", TENANT, "--json")
    assert status == 0, out
    assert json.loads(out) == {
        "tenant": TENANT,
        "files": 5,
        "present": 1,
        "written": 2,
        "skipped": 2,
        "skipped_files": [
            {"file_id": "f-noswitch", "reason": "no switch"},
            {"file_id": "f-notime", "reason": "no arrival time"},
        ],
    }
    assert sorted(files.arrived_files(TENANT, day, day)) == [
        (day, "sw1", "f-bad"),
        (day, "sw1", "f-new"),
        (day, "sw1", "f-old"),
    ]
    status, out = run(capsys, "assurance", TENANT, "--day", day, "--json")
    assert status == 0, out
    [sw1] = [s for s in json.loads(out)["switches"] if s["switch"] == "sw1"]
    assert [(f["file_id"], f["status"], f["reason"]) for f in sw1["rejected_files"]] == [
        ("f-bad", "rejected", REASON)
    ]
    assert sw1["files"]["rejected"] == 1

    # Twice: nothing new written, every placeable file present.
    again = files.backfill_arrivals(TENANT)
    assert (again.present, again.written, len(again.skipped)) == (3, 0, 2)
    status, out = run(capsys, "file", "reindex", TENANT)
    assert status == 0, out
    assert "3 present, 0 written, 2 skipped" in out
    assert "f-notime: no arrival time" in out and "f-noswitch: no switch" in out


def test_reindex_of_an_unknown_tenant_names_it(old_registry, capsys):
    status, out = run(capsys, "file", "reindex", "nobody")
    assert status != 0 and "nobody" in out
