"""Issue 9 §3: the ingest and rate services hold a part of a file, never the whole of it.

Against real moto stores. Each file is read and priced in parts; the lake, the file records,
the balances and the `FileRated` event must be exactly what reading the file whole gives, and
the pyarrow memory pool's high-water mark must stay below the size of one whole-file table.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import functions.rate.service as rate_service
from functions.ingest.formats import parse_cdr_file
from functions.ingest.samples import generate_generic_csv
from functions.ingest.service import DroppedFile, assign_parties, split_by_day
from functions.rate.parties import charge_deltas
from functions.store import accounts, files, lake, ledger
from tests.conftest import FAKE_ENVIRONMENT, moto_account
from tests.pipeline.carrier import (
    DAY,
    EXPECTED_BALANCES,
    FIRST_FILE,
    SWITCH,
    TENANT,
    Published,
    drop,
    ingest_drop,
    rate_ingested,
    set_up_carrier,
)

ROOT = Path(__file__).resolve().parents[2]
CALLS = 3_000


def generated(calls: int = CALLS, span_seconds: int = 3_600) -> bytes:
    """A generic CSV for the test carrier: bad rows, resent rows, two customers, two suppliers
    (India and UK calls are priced; the others are unrated for want of a rate), started
    within `span_seconds` (an hour: two duplicate-claim slots, where the claim is not what a
    test is about)."""
    return generate_generic_csv(
        calls,
        seed=5,
        bad_fraction=0.02,
        duplicate_fraction=0.02,
        customers=("direct", "retail"),
        suppliers=("tata", "bt"),
        span_seconds=span_seconds,
    )


def row_groups(area: str, day: str, file_id: str) -> list[int]:
    with lake.Spool() as spool:
        local = lake.fetch_table(area, TENANT, day, file_id, spool)
        return [local.metadata.row_group(i).num_rows for i in range(local.num_row_groups)]


def by_line(table: pa.Table) -> list[dict]:
    return table.combine_chunks().sort_by("line").to_pylist()


def test_ingest_reads_a_file_in_parts_and_stores_what_reading_it_whole_gives(aws, tmp_path):
    """Fails on the old service, which read the file into memory whole, parsed it in one piece
    and wrote each table as one row group (it had no part size to give)."""
    set_up_carrier(tmp_path)
    data = generated()
    dropped = drop("big.csv", data.decode())
    outcome = ingest_drop(dropped, chunk_bytes=16 * 1024)

    switch = accounts.get_switch(TENANT, SWITCH)
    whole = parse_cdr_file(data, "generic", source="big.csv")
    cdrs = assign_parties(
        whole.cdrs, switch.customer_field, switch.supplier_field, switch.default_supplier
    )
    expected = split_by_day(cdrs)
    assert (outcome.status, outcome.rows, outcome.accepted, outcome.quarantined) == (
        "ingested",
        CALLS,
        cdrs.num_rows,
        whole.quarantine.num_rows,
    )
    assert whole.quarantine.num_rows > 50  # bad rows and resent rows, in several parts
    record = files.get_file(TENANT, dropped.file_id)
    assert record.meta["days"] == [day.isoformat() for day, _ in expected]
    assert (record.counts["rows"], record.counts["quarantined"]) == (
        CALLS,
        whole.quarantine.num_rows,
    )
    for day, table in expected:
        stored = lake.get_table("normalized", TENANT, day, dropped.file_id)
        assert stored.schema == table.schema
        assert by_line(stored) == by_line(table)
        assert len(row_groups("normalized", day.isoformat(), dropped.file_id)) >= 4
    quarantine = lake.get_table("quarantine", TENANT, dropped.arrived, dropped.file_id)
    assert set(quarantine.column("file").to_pylist()) == {"big.csv"}
    assert by_line(quarantine.drop_columns(["file"])) == by_line(whole.quarantine)


def test_a_gzip_drop_is_gunzipped_on_disk_and_a_truncated_one_is_refused(aws, tmp_path):
    set_up_carrier(tmp_path)
    plain = generated(2_000)
    as_text = drop("plain.csv", plain.decode())
    ingest_drop(as_text, chunk_bytes=16 * 1024)
    packed = gzip.compress(plain)
    gz = _drop_bytes("packed.csv.gz", packed)
    outcome = ingest_drop(gz, chunk_bytes=16 * 1024)
    assert outcome.status == "ingested" and outcome.rows == 2_000
    for day in files.get_file(TENANT, as_text.file_id).meta["days"]:
        assert by_line(lake.get_table("normalized", TENANT, day, gz.file_id)) == by_line(
            lake.get_table("normalized", TENANT, day, as_text.file_id)
        )

    cut = _drop_bytes("cut.csv.gz", packed[: len(packed) // 2])
    refused = ingest_drop(cut)
    assert refused.status == "rejected"
    assert refused.error.startswith("cut.csv.gz: gzip data is corrupt or truncated")
    record = files.get_file(TENANT, cut.file_id)
    assert record.status == "rejected" and "truncated" in record.meta["error"]


def _drop_bytes(name: str, data: bytes) -> DroppedFile:
    """`carrier.drop` for a file given as bytes (a gzip file is not text)."""
    obj = lake.put_cdr(TENANT, SWITCH, name, data)
    _, etag = lake.get_cdr(TENANT, SWITCH, name)
    return DroppedFile("tollgate-cdr", obj.key, etag, TENANT, SWITCH, name, DAY)


def rate_in_parts(tmp_path: Path, data: bytes, part_rows: int, monkeypatch) -> dict:
    """One generated file through a fresh account, rated `part_rows` calls at a time."""
    priced: list[int] = []
    real = rate_service.rate_parties

    def pricing(calls, parties, file_id="", **kw):
        priced.append(calls.num_rows)
        return real(calls, parties, file_id, **kw)

    monkeypatch.setattr(rate_service, "rate_parties", pricing)
    with moto_account():
        set_up_carrier(tmp_path)
        dropped = drop("big.csv", data.decode())
        ingest_drop(dropped)
        published = Published()
        outcome = rate_ingested(dropped.file_id, events=published, part_rows=part_rows)
        [day] = files.get_file(TENANT, dropped.file_id).meta["days"]
        rated = lake.get_table("rated", TENANT, day, dropped.file_id)
        charges = lake.get_table("charges", TENANT, day, dropped.file_id)
        state = {
            "outcome": (outcome.status, outcome.counts),
            "record": files.get_file(TENANT, dropped.file_id).counts,
            "rated": by_line(rated),
            "charges": sorted(
                charges.to_pylist(),
                key=lambda c: (c["line"], c["role"], c["level"] or 0, c["account"] or ""),
            ),
            "balances": {a: ledger.get_balance(TENANT, a)[0] for a in EXPECTED_BALANCES},
            "lake_deltas": charge_deltas(charges),
            "event": published.details,
        }
        state["row_groups"] = {
            area: row_groups(area, day, dropped.file_id) for area in ("rated", "charges")
        }
    monkeypatch.setattr(rate_service, "rate_parties", real)
    return state | {"priced": priced}


def test_the_rate_service_prices_a_file_in_parts_to_the_same_lake_and_balances(
    aws_environment, tmp_path, monkeypatch
):
    """Fails on the old service, which priced every call of a day at once and wrote the rated
    and charges tables whole (it had no part size to give)."""
    data = generated()
    parts = rate_in_parts(tmp_path / "parts", data, 300, monkeypatch)
    whole = rate_in_parts(tmp_path / "whole", data, 10**9, monkeypatch)

    new_calls = parts["outcome"][1]["rated"] + parts["outcome"][1]["unrated"]
    assert max(parts["priced"]) <= 300 and sum(parts["priced"]) == new_calls
    assert len(parts["priced"]) >= new_calls // 300 >= 8
    assert whole["priced"] == [new_calls]
    assert max(parts["row_groups"]["rated"]) <= 300
    assert len(parts["row_groups"]["rated"]) == len(parts["priced"])
    assert sum(parts["row_groups"]["rated"]) == new_calls
    assert whole["row_groups"]["rated"] == [new_calls]
    for key in ("outcome", "record", "rated", "charges", "balances", "event"):
        assert parts[key] == whole[key], key
    # The balances moved by exactly what the lake's charges say, to the micro-unit.
    for state in (parts, whole):
        assert state["balances"] == {a: state["lake_deltas"].get(a, 0) for a in EXPECTED_BALANCES}
    counts = parts["outcome"][1]
    assert counts["rated"] > 500 and counts["unrated"] > 500
    assert counts["rows"] == (
        counts["rated"] + counts["unrated"] + counts["quarantined"] + counts["duplicates"]
    )


def test_a_run_committed_without_stored_totals_is_posted_from_its_staged_tables(aws, tmp_path):
    """A pricing run staged by the service before runs stored their totals (deployed while a
    file was between its commit and its posting) still posts exactly what its tables say."""
    set_up_carrier(tmp_path)
    dropped = drop("day1.csv", FIRST_FILE)
    ingest_drop(dropped)

    class OldLake:
        def __getattr__(self, name):
            return getattr(lake, name)

        def put_run_totals(self, *args, **kwargs) -> str:
            return ""  # the old service stored none

    class Crash(Exception):
        pass

    class CrashingLedger:
        def post_balances(self, *args, **kwargs):
            raise Crash("after the commit, before the posting")

    with pytest.raises(Crash):
        rate_ingested(dropped.file_id, lake=OldLake(), ledger=CrashingLedger())
    run = files.get_pricing_run(TENANT, dropped.file_id)
    with pytest.raises(LookupError):
        lake.get_run_totals(TENANT, dropped.file_id, run)
    outcome = rate_ingested(dropped.file_id)
    assert outcome.counts == {
        "rows": 7,
        "rated": 4,
        "unrated": 1,
        "quarantined": 2,
        "duplicates": 0,
        "unknown_account": 0,
    }
    assert ledger.get_balance(TENANT, "direct") == (-(8_000 + 13_200), 0)
    assert ledger.get_balance(TENANT, "retail") == (-9_658, 0)
    assert ledger.get_balance(TENANT, "resellco") == (-7_625, 0)
    assert ledger.get_balance(TENANT, "tata") == (6_500 + 6_608, 0)
    assert ledger.get_balance(TENANT, "bt") == (6_300, 0)


# The child measures the pyarrow memory pool's high-water mark, which only ever grows in a
# process: a fresh interpreter, with nothing allocated through Arrow before the file comes.
CHILD = """
import json, sys
from pathlib import Path
import pyarrow as pa
from tests.conftest import moto_account
from tests.pipeline.carrier import TENANT, drop, ingest_drop, rate_ingested, set_up_carrier
from functions.store import files, lake

folder, data = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()
pool = pa.default_memory_pool()
with moto_account():
    set_up_carrier(folder)
    dropped = drop("big.csv", data.decode())
    before = pool.max_memory()
    ingest_drop(dropped, chunk_bytes=64 * 1024)
    after_ingest = pool.max_memory()
    done = rate_ingested(dropped.file_id, part_rows=2_000)
    after_rate = pool.max_memory()
    [day] = files.get_file(TENANT, dropped.file_id).meta["days"]
    sizes = {area: lake.get_table(area, TENANT, day, dropped.file_id).nbytes
             for area in ("normalized", "rated")}
print(json.dumps({"before": before, "ingest": after_ingest, "rate": after_rate,
                  "status": done.status, "counts": done.counts, "sizes": sizes}))
"""


def test_neither_service_ever_holds_a_whole_file_table(tmp_path):
    """Fails on the old services: the pool's high-water mark was several whole-file tables
    (the parsed file, the normalised day, its rated and charges tables: ~20 MB here)."""
    data = tmp_path / "big.csv"
    # A day's calls, so each hour's claim holds 1/24 of them, as a switch's daily file does.
    data.write_bytes(generated(20_000, span_seconds=86_400))
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env |= FAKE_ENVIRONMENT | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "carrier"), str(data)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["status"] == "done" and measured["counts"]["rows"] == 20_000
    assert measured["before"] < 1 << 20  # nothing of the file yet
    # Reading a file whole holds at least its normalised table, pricing it whole at least its
    # rated table. In parts, ingest holds a part plus the call ids and attempts of the file
    # (for duplicates across parts), rating a part plus the day's attempt keys.
    assert measured["ingest"] < measured["sizes"]["normalized"], measured
    assert measured["rate"] < measured["sizes"]["rated"], measured
