"""The lake's spool: tables written and read a part at a time through local disk, against moto.

What the rate and ingest services rely on: a spooled table reaches S3 only whole, in row groups
no larger than the bound; a run's staged table is published once and never replaced; a run's
totals come back as the integers they were.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions import store
from functions.shared.settings import settings
from functions.store import NotFoundError, lake

DAY = "2024-03-01"


def _objects(prefix: str) -> list[str]:
    listed = store.client("s3").list_objects_v2(Bucket=settings().lake_bucket, Prefix=prefix)
    return [entry["Key"] for entry in listed.get("Contents", [])]


def test_a_spooled_table_is_uploaded_whole_in_row_groups_no_larger_than_the_bound(aws):
    big = lake.ROW_GROUP_ROWS + 5
    parts = [
        pa.table({"line": pa.array(range(3), pa.int64()), "call_id": ["a", "b", "c"]}),
        pa.table({"line": pa.array([], pa.int64()), "call_id": pa.array([], pa.string())}),
        pa.table({"line": pa.array(range(3, 3 + big), pa.int64()), "call_id": ["x"] * big}),
    ]
    with lake.Spool() as spool:
        for part in parts:
            spool.write("rated", part)
        assert spool.parts["rated"] == 2  # the empty part after the first adds nothing
        assert spool.rows["rated"] == 3 + big
        key = lake.put_spooled("rated", "acme", DAY, "f1", spool, "rated")
        with pytest.raises(ValueError, match="already finished"):
            spool.write("rated", parts[0])
    assert key == "rated/tenant=acme/date=2024-03-01/f1.parquet"
    back = lake.get_table("rated", "acme", DAY, "f1")
    assert back.equals(pa.concat_tables(parts).combine_chunks())
    with lake.Spool() as spool:
        local = lake.fetch_table("rated", "acme", DAY, "f1", spool)
        sizes = [local.metadata.row_group(i).num_rows for i in range(local.num_row_groups)]
    assert sizes == [3, lake.ROW_GROUP_ROWS, 5]


def test_a_part_whose_column_is_all_null_takes_the_first_parts_type(aws):
    with lake.Spool() as spool:
        spool.write("charges", pa.table({"prefix": ["44"], "rate": [1]}))
        spool.write("charges", pa.table({"prefix": pa.nulls(2), "rate": [2, 3]}))
        with pytest.raises((pa.ArrowInvalid, ValueError)):
            spool.write("charges", pa.table({"other": [1]}))
        lake.put_spooled("charges", "acme", DAY, "f1", spool, "charges")
    back = lake.get_table("charges", "acme", DAY, "f1")
    assert back.schema.field("prefix").type == pa.string()
    assert back.column("prefix").to_pylist() == ["44", None, None]


def test_an_abandoned_spool_uploads_nothing_and_keeps_no_local_file(aws):
    class Refused(Exception):
        pass

    with pytest.raises(Refused), lake.Spool() as spool:
        spool.write(("normalized", DAY), pa.table({"line": [1, 2]}))
        local = spool.path(("normalized", DAY))
        assert local.exists()
        raise Refused("a bad row half-way through the file")
    assert not local.exists() and not local.parent.exists()
    assert _objects("normalized/") == []


def test_a_cdr_drop_is_copied_to_disk_byte_for_byte(aws):
    data = gzip.compress(b"call_id,caller\n" + b"c1,4420\n" * 50_000)
    lake.put_cdr("acme", "sbc-1", "big.csv.gz", data)
    with lake.Spool() as spool:
        local = lake.fetch_cdr("acme", "sbc-1", "big.csv.gz", spool)
        assert isinstance(local, Path) and local.read_bytes() == data
        with pytest.raises(NotFoundError, match=r"no CDR file 'gone\.csv' from switch 'sbc-1'"):
            lake.fetch_cdr("acme", "sbc-1", "gone.csv", spool)


def _stage(run: str, rows: list[str]) -> None:
    with lake.Spool() as spool:
        spool.write("rated", pa.table({"call_id": rows}))
        lake.stage_spooled("rated", "acme", DAY, "f1", run, spool, "rated")


def test_a_staged_run_is_published_once_and_never_replaced(aws):
    _stage("run-a", ["a1", "a2"])
    _stage("run-b", ["b1"])
    with lake.Spool() as spool:  # a fresh spool: the staged object is downloaded first
        assert lake.publish_staged("rated", "acme", DAY, "f1", "run-a", spool) is True
    with lake.Spool() as spool:
        assert lake.publish_staged("rated", "acme", DAY, "f1", "run-b", spool) is False
        assert lake.publish_staged("rated", "acme", DAY, "f1", "run-a", spool) is False
    assert lake.get_table("rated", "acme", DAY, "f1").column("call_id").to_pylist() == [
        "a1",
        "a2",
    ]


def test_the_committing_run_publishes_from_its_own_local_copy(aws):
    with lake.Spool() as spool:
        spool.write("rated", pa.table({"call_id": ["a1"]}))
        staged = lake.stage_spooled("rated", "acme", DAY, "f1", "run-a", spool, "rated")
        # Gone from S3 (as if expired): the spool's copy is what gets published.
        store.client("s3").delete_object(Bucket=settings().lake_bucket, Key=staged)
        assert lake.publish_staged("rated", "acme", DAY, "f1", "run-a", spool) is True
        with pytest.raises(NotFoundError):
            lake.fetch_staged("charges", "acme", DAY, "f1", "run-a", spool)
    assert lake.get_table("rated", "acme", DAY, "f1").column("call_id").to_pylist() == ["a1"]


def test_a_runs_totals_come_back_as_the_integers_they_were(aws):
    totals = {"deltas": {"retail": -(2**62), "tata": 13_000}, "rated": 3, "destinations": []}
    key = lake.put_run_totals("acme", "f1", "run-a", totals)
    assert key == "staging/tenant=acme/file=f1/run=run-a/totals.json"
    assert lake.get_run_totals("acme", "f1", "run-a") == totals
    with pytest.raises(NotFoundError):
        lake.get_run_totals("acme", "f1", "run-b")
    with pytest.raises(ValueError, match="invalid pricing run"):
        lake.run_totals_key("acme", "f1", "../run-a")


def test_a_fetched_table_is_read_from_disk_a_row_group_at_a_time(aws):
    with lake.Spool() as spool:
        spool.write("normalized", pa.table({"line": list(range(10))}))
        lake.put_spooled("normalized", "acme", DAY, "f1", spool, "normalized")
        local = lake.fetch_table("normalized", "acme", DAY, "f1", spool)
        assert isinstance(local, pq.ParquetFile)
        assert local.read_row_group(0).column("line").to_pylist() == list(range(10))
