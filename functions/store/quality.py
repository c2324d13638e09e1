"""Route quality stats: per supplier x matched prefix, hourly buckets (boto3 low-level).

Key layout (table `settings().fraud_table`, the hourly-counter table with TTL on
`expires_at`; these items live beside the fraud counters under their own `Q#` partitions):
    pk=Q#{tenant}#{supplier}  sk=P#{prefix}#H#{yyyymmddhh}   n attempts, a answered,
                                                              s answered seconds, p PDD sum
                                                              (ms), q calls with a PDD,
                                                              files (the files counted)

A rated file adds ONE update per (supplier, prefix, hour) it touches, never one per CDR:
`ADD n :n, a :a, ... files :files` under `NOT contains(files, :file)`, as the fraud counters
do (functions/store/fraud.py), so a redelivered FileRated event or a retry after a crash
counts each file once (ConditionalCheckFailed: counted before). The window's buckets of the
routes in question are read in one BatchGetItem (100 keys a request, the requests at once).
Items live `STATS_DAYS`; reads ask for the hours they need and never trust TTL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from functions.rate.routing import Stats
from functions.shared.settings import settings
from functions.store import ConflictError, check_name, client

WRITERS = 16
STATS_DAYS = 15  # the longest window (14 days) and a day's margin
_ATTEMPTS = 10
_BATCH = 100
_FIELDS = (("n", "attempts"), ("a", "answered"), ("s", "seconds"), ("p", "pdd_sum_ms"),
           ("q", "pdd_count"))  # fmt: skip


def _table() -> str:
    return settings().fraud_table


def _hour_text(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y%m%d%H")


def _key(tenant: str, supplier: str, prefix: str, hour: int) -> dict[str, Any]:
    if not prefix.isdigit():
        raise ValueError(f"invalid prefix {prefix!r}: digits only")
    return {
        "pk": {"S": f"Q#{check_name('tenant', tenant)}#{check_name('account', supplier)}"},
        "sk": {"S": f"P#{prefix}#H#{_hour_text(hour)}"},
    }


def _add(tenant: str, file_id: str, bucket: tuple[str, str, int], stats: Stats) -> bool:
    supplier, prefix, hour = bucket
    values = {f":{code}": {"N": str(getattr(stats, name))} for code, name in _FIELDS}
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key=_key(tenant, supplier, prefix, hour),
            UpdateExpression="ADD "
            + "".join(f"{code} :{code}, " for code, _ in _FIELDS)
            + "files :files SET expires_at = :expires",
            ConditionExpression="NOT contains(files, :file)",
            ExpressionAttributeValues={
                **values,
                ":files": {"SS": [file_id]},
                ":file": {"S": file_id},
                ":expires": {"N": str(hour * 3600 + STATS_DAYS * 86400)},
            },
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False  # this file was counted into this bucket before
        raise
    return True


def add_stats(tenant: str, file_id: str, buckets: Mapping[tuple[str, str, int], Stats]) -> int:
    """Add a file's stats, each (supplier, prefix, hour) bucket at most once per file; how
    many buckets were updated now (0: the file was counted before)."""
    work = sorted(buckets.items())
    if not work:
        return 0
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(work))) as pool:
        return sum(pool.map(lambda item: _add(tenant, file_id, *item), work))


def _batch_get(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def chunk(part: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request = {_table(): {"Keys": part}}
        for _ in range(_ATTEMPTS):
            page = client("dynamodb").batch_get_item(RequestItems=request)
            found += page.get("Responses", {}).get(_table(), [])
            request = page.get("UnprocessedKeys") or {}
            if not request:
                return found
        raise ConflictError("DynamoDB kept some keys unprocessed; run it again")

    parts = [keys[start : start + _BATCH] for start in range(0, len(keys), _BATCH)]
    if len(parts) <= 1:
        return chunk(parts[0]) if parts else []
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(parts))) as pool:
        return [item for items in pool.map(chunk, parts) for item in items]


def get_stats(
    tenant: str, routes: Iterable[tuple[str, str]], first_hour: int, last_hour: int
) -> dict[tuple[str, str], Stats]:
    """Each (supplier, prefix)'s stats summed over hours first..last (inclusive); routes
    without a counted call are absent."""
    wanted = sorted(set(routes))
    keys = [
        _key(tenant, supplier, prefix, hour)
        for supplier, prefix in wanted
        for hour in range(first_hour, last_hour + 1)
    ]
    found: dict[tuple[str, str], Stats] = {}
    for item in _batch_get(keys):
        supplier = item["pk"]["S"].split("#", 2)[2]
        prefix = item["sk"]["S"].split("#")[1]
        one = Stats(**{name: int(item.get(code, {"N": "0"})["N"]) for code, name in _FIELDS})
        found[(supplier, prefix)] = found.get((supplier, prefix), Stats()) + one
    return found


__all__ = ["STATS_DAYS", "add_stats", "get_stats"]
