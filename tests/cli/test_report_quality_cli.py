"""`tollgate report quality` on the pipeline's own rated lake (tests/pipeline/carrier.py's
carrier and first file), in a world of its own: test_json_output.py's world is changed by
the commands it runs (a trunk mapped, a plan rule, a rerate), in whatever order xdist
hands them out."""

from __future__ import annotations

import json

import pytest

from functions.cli import main
from tests.conftest import operator_account
from tests.pipeline.carrier import DAY, FIRST_FILE, TENANT, process_file, set_up_carrier


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    with operator_account():
        set_up_carrier(folder)
        process_file("first.csv", FIRST_FILE)
        yield folder


def test_report_quality_reads_the_pipelines_rated_lake(world, capsys):
    """`report quality` is `report`'s view: one JSON list, from Parquet rated without MOS."""
    capsys.readouterr()
    day = str(DAY)
    status = main(["report", "quality", TENANT, "--from", day, "--to", day, "--engine", "duckdb",
                   "--by", "hour", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err
    got = {
        (r["utc_hour"], r["supplier"], r["destination"]): (r["attempts"], r["answered"], r["ner"])
        for r in json.loads(out)
    }
    # c1, c2 answered and c4 not (tata, India); c3 (bt, UK); c5 answered, no rate (tata)
    assert got == {
        (10, "tata", "India - Mobile"): (3, 2, 1.0),
        (10, "bt", "UK"): (1, 1, 1.0),
        (10, "tata", None): (1, 1, 1.0),
    }
