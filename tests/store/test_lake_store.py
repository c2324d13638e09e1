"""S3 objects through boto3 against moto: Parquet, decks, raw drops, hash sets."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from functions import store
from functions.shared.money import decimal_array, units_from_decimal_array
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, lake

DAY = "2024-03-01"


def test_rated_table_round_trips_money_to_the_micro_unit(aws):
    units = np.array([1, -12_345_600, 2**62 - 1], dtype=np.int64)
    table = pa.table({"call_id": ["a", "b", "c"], "amount": decimal_array(units, 6)})
    key = lake.put_table("rated", "acme", DAY, "f1", table)
    assert key == "rated/tenant=acme/date=2024-03-01/f1.parquet"
    back = lake.get_table("rated", "acme", DAY, "f1")
    assert back.equals(table)
    assert units_from_decimal_array(back.column("amount"), 6).tolist() == units.tolist()
    assert back.column("amount")[1].as_py() == Decimal("-12.345600")


def test_tables_are_keyed_by_tenant_and_missing_ones_are_named(aws):
    lake.put_table("normalized", "acme", DAY, "f1", pa.table({"x": [1]}))
    with pytest.raises(NotFoundError, match="normalized/tenant=globex/date=2024-03-01/f1"):
        lake.get_table("normalized", "globex", DAY, "f1")
    with pytest.raises(ValueError, match="invalid area"):
        lake.table_key("decks", "acme", DAY, "f1")
    with pytest.raises(ValueError, match="invalid tenant id"):
        lake.table_key("rated", "acme/../globex", DAY, "f1")


def test_cdr_drop_lands_under_incoming_tenant_switch(aws):
    dropped = lake.put_cdr("acme", "sbc-1", "cdr 2024-03-01.csv", b"a,b\n1,2\n")
    assert dropped.key == "incoming/acme/sbc-1/cdr 2024-03-01.csv"
    body = store.client("s3").get_object(Bucket=settings().cdr_bucket, Key=dropped.key)
    assert body["Body"].read() == b"a,b\n1,2\n"
    data, etag = lake.get_cdr("acme", "sbc-1", "cdr 2024-03-01.csv")
    assert data == b"a,b\n1,2\n" and etag
    assert lake.parse_cdr_key(dropped.key) == dropped
    for bad in ("incoming/acme/a.csv", "other/acme/sbc-1/a.csv", "incoming/a#b/sbc-1/a.csv"):
        with pytest.raises(ValueError):
            lake.parse_cdr_key(bad)
    with pytest.raises(ValueError, match="invalid CDR file name"):
        lake.cdr_key("acme", "sbc-1", "../x")


def test_deck_versions_are_immutable_objects(aws):
    v1 = pa.table({"prefix": ["44"], "rate_e8": [1_000_000]})
    key, sha = lake.put_deck("acme", "cust", 1, v1)
    assert key == "decks/tenant=acme/account=cust/v1.parquet"
    assert lake.put_deck("acme", "cust", 1, v1) == (key, sha)  # a retry is harmless
    with pytest.raises(ConflictError, match="deck version 1"):
        lake.put_deck("acme", "cust", 1, pa.table({"prefix": ["44"], "rate_e8": [2]}))
    assert lake.get_deck("acme", "cust", 1).equals(v1)
    with pytest.raises(NotFoundError):
        lake.get_deck("globex", "cust", 1)


def test_a_versions_uploaded_rows_are_kept_beside_its_timeline(aws):
    rows = pa.table({"prefix": ["4420"], "rate_e8": [2_500_000]})
    key, sha = lake.put_deck_upload("acme", "cust", 2, rows)
    assert key == "decks/tenant=acme/account=cust/v2.upload.parquet"
    assert lake.put_deck_upload("acme", "cust", 2, rows) == (key, sha)
    with pytest.raises(ConflictError, match="upload of deck version 2"):
        lake.put_deck_upload("acme", "cust", 2, rows.slice(0, 0))
    assert lake.get_deck_upload("acme", "cust", 2).equals(rows)
    with pytest.raises(NotFoundError):
        lake.get_deck("acme", "cust", 2)  # the timeline is another object
    for bad in (0, -1, True, "2"):
        with pytest.raises(ValueError, match="invalid deck version"):
            lake.deck_upload_key("acme", "cust", bad)


def test_claimed_call_sets_hold_unique_call_keys(aws):
    key = lake.claim_set_key("acme", "sbc-1", DAY, 3, "f1")
    assert key == "dedup/tenant=acme/switch=sbc-1/date=2024-03-01/set/v00000003-f1.parquet"
    calls = pa.array(["a|1709251200000000", "b|1709251200000000", "a|1709251201000000"])
    lake.put_claim_set(key, calls)
    assert lake.get_claim_set(key).to_pylist() == calls.to_pylist()
    assert len(lake.get_claim_set(None)) == 0
    with pytest.raises(ValueError, match="unique"):
        lake.put_claim_set(key, pa.array(["a", "a"]))
    with pytest.raises(TypeError, match="string"):
        lake.put_claim_set(key, pa.array([1, 2]))
    with pytest.raises(ValueError, match="not a claimed-call set key"):
        lake.put_claim_set("rated/tenant=acme/date=2024-03-01/f1.parquet", calls)
    lake.delete_claim_set(key)
    with pytest.raises(NotFoundError):
        lake.get_claim_set(key)


def test_claim_results_are_per_file_and_version(aws):
    mask = np.array([True, False, True])
    key = lake.put_claim_result("acme", "sbc-1", DAY, "f1", 2, mask)
    assert key == "dedup/tenant=acme/switch=sbc-1/date=2024-03-01/claims/f1-v2.npy"
    assert lake.get_claim_result("acme", "sbc-1", DAY, "f1", 2).tolist() == mask.tolist()
    lake.put_claim_result("acme", "sbc-1", DAY, "f1", 3, mask.astype(np.uint8))
    assert lake.get_claim_result("acme", "sbc-1", DAY, "f1", 3).dtype == np.uint8
    with pytest.raises(NotFoundError):
        lake.get_claim_result("globex", "sbc-1", DAY, "f1", 2)
    with pytest.raises(TypeError):
        lake.put_claim_result("acme", "sbc-1", DAY, "f1", 4, np.array([1.5]))
