"""The API's traffic routes read the lake as the key's tenant's query role: moto, enforcing
IAM, lets that reader list and read the tenant's own rated and charges tables and refuses
another tenant's, whatever key the code asks for."""

from __future__ import annotations

import pyarrow as pa
from botocore.exceptions import ClientError

from functions.shared.settings import settings
from functions.store import lake
from tests.access.conftest import iam_enforced
from tests.access.test_query_role import DAY, provisioned  # noqa: F401 (a fixture)


def refused(call) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] == "AccessDenied"
    return False


def test_the_traffic_reader_reads_its_own_tenants_tables_only(provisioned):  # noqa: F811
    for area in ("rated", "charges"):
        lake.put_table(area, "acme", DAY, "f2", pa.table({"line": [2, 3], "call_id": ["a", "b"]}))
    reader = lake.tenant_reader("acme")
    with iam_enforced():
        files = lake.day_files("acme", DAY, DAY, reader)
        assert files == [lake.DayFile(DAY, "f1", True), lake.DayFile(DAY, "f2", True)]
        [(_, rated, charges)] = lake.read_file_pairs(
            "acme", files[1:], ["line"], ["call_id"], reader
        )
        assert (rated.to_pydict(), charges.to_pydict()) == (
            {"line": [2, 3]},
            {"call_id": ["a", "b"]},
        )
        theirs = [lake.DayFile(DAY, "f1", True)]
        # (moto does not apply the role's s3:prefix condition on ListBucket: the listing of
        # another tenant's keys is refused on AWS only; the reads are refused here too)
        assert refused(lambda: list(lake.read_file_pairs("globex", theirs, ["line"], [], reader)))
        # exports are the API's own, never the tenant role's
        assert refused(
            lambda: reader.put_object(Bucket=settings().lake_bucket, Key="exports/x", Body=b"")
        )
