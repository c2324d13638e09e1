"""Route quality stats: per supplier x destination, hourly buckets (boto3 low-level).

The destination D is the supplier deck's destination name of the matched row as
functions.rate.routing.destination_key makes it ("india mobile"), or the row's prefix when
the deck names none: carriers judge a supplier per destination, and a deck's hundreds of
prefixes per destination would each rarely reach the minimum of calls.

Key layout (table `settings().fraud_table`, the hourly-counter table with TTL on
`expires_at`; these items live beside the fraud counters under their own `Q#` partitions):
    pk=Q#{tenant}#{supplier}  sk=H#{yyyymmddhh}   per destination D: n|A attempts,
                                                  a|A answered, s|A answered seconds,
                                                  p|A PDD sum (ms), q|A calls with a PDD;
                                                  files (the file parts counted)

where A is D itself when it is at most 44 UTF-8 bytes without '#', else '#' and 32 hex
digits of its SHA-256 (attribute names stay bounded; a raw name never starts a hashed one).
A destination key is checked strictly (`check_destination`: text of 1-256 characters, no
control or format characters, no surrounding spaces) before anything is written or read.

One item per supplier and hour, as the fraud counters keep one per account and hour
(functions/store/fraud.py): a rated file adds one update per (supplier, hour) it touches and
per CLAUSES counters, never one per destination nor per CDR:
`ADD n|A :v, ... files :part` under `NOT contains(files, :part)` (part = file id # chunk, the
chunks cut the same way each time), so a redelivered FileRated event or a retry after a crash
counts each file once. The window's items of the suppliers in question are read in one
BatchGetItem (100 keys a request, the requests at once). Items live `STATS_DAYS`; reads ask
for the hours they need and never trust TTL. A supplier's busiest hour holds five numbers per
destination called in it: some 35 KB at 300 destinations, not 5 numbers per prefix.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from functions.rate.routing import Stats
from functions.shared.settings import settings
from functions.store import ConflictError, check_name, client

WRITERS = 16
# Counters per update: under the 4 KB expression limit (moto parses them recursively: 200
# overflow its stack); an item's parts go one after another (moto does not serialise).
CLAUSES = 100
STATS_DAYS = 15  # the longest window (14 days) and a day's margin
_ATTEMPTS = 10
_BATCH = 100
_FIELDS = (("n", "attempts"), ("a", "answered"), ("s", "seconds"), ("p", "pdd_sum_ms"),
           ("q", "pdd_count"))  # fmt: skip


def _table() -> str:
    return settings().fraud_table


def _hour_text(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y%m%d%H")


def _key(tenant: str, supplier: str, hour: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"Q#{check_name('tenant', tenant)}#{check_name('account', supplier)}"},
        "sk": {"S": f"H#{_hour_text(hour)}"},
    }


DESTINATION_CHARS = 256
_RAW_BYTES = 44  # a longer destination (or one with '#') is stored under its hash


def check_destination(destination: Any) -> str:
    """A destination key as stored: text of 1-256 characters, no control or format
    characters, no surrounding spaces; ValueError naming the destination otherwise."""
    if (
        not isinstance(destination, str)
        or not 0 < len(destination) <= DESTINATION_CHARS
        or destination != destination.strip()
        or any(unicodedata.category(ch).startswith("C") for ch in destination)
    ):
        raise ValueError(
            f"invalid destination {destination!r}: 1-{DESTINATION_CHARS} characters of text, "
            "no control characters, no surrounding spaces"
        )
    return destination


def _attribute(code: str, destination: str) -> str:
    """A counter's attribute name: bounded, one per destination (a raw name has no '#')."""
    raw = destination.encode()
    if len(raw) <= _RAW_BYTES and "#" not in destination:
        return f"{code}|{destination}"
    return f"{code}|#{hashlib.sha256(raw).hexdigest()[:32]}"


Part = tuple[str, int, int, list[tuple[str, Stats]]]  # supplier, hour, chunk, destinations


def _parts(buckets: Mapping[tuple[str, str, int], Stats]) -> list[Part]:
    """The updates a file makes: per (supplier, hour), its destinations in sorted order cut
    into chunks of CLAUSES counters (the same cut on every delivery of the same file)."""
    by_item: dict[tuple[str, int], list[tuple[str, Stats]]] = {}
    for _, destination, _ in buckets:
        check_destination(destination)
    for (supplier, destination, hour), stats in sorted(buckets.items()):
        by_item.setdefault((supplier, hour), []).append((destination, stats))
    size = CLAUSES // len(_FIELDS)
    return [
        (supplier, hour, chunk, entries[start : start + size])
        for (supplier, hour), entries in sorted(by_item.items())
        for chunk, start in enumerate(range(0, len(entries), size))
    ]


def _add(tenant: str, file_id: str, part: Part) -> bool:
    supplier, hour, chunk, entries = part
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    clauses = []
    for i, (destination, stats) in enumerate(entries):
        for code, name in _FIELDS:
            names[f"#{code}{i}"] = _attribute(code, destination)
            values[f":{code}{i}"] = {"N": str(getattr(stats, name))}
            clauses.append(f"#{code}{i} :{code}{i}")
    counted = f"{file_id}#{chunk}"
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key=_key(tenant, supplier, hour),
            UpdateExpression="ADD " + ", ".join(clauses) + ", files :files SET expires_at = :e",
            ConditionExpression="NOT contains(files, :part)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                **values,
                ":files": {"SS": [counted]},
                ":part": {"S": counted},
                ":e": {"N": str(hour * 3600 + STATS_DAYS * 86400)},
            },
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False  # this part of the file was counted into this item before
        raise
    return True


def add_stats(tenant: str, file_id: str, buckets: Mapping[tuple[str, str, int], Stats]) -> int:
    """Add a file's stats, each part at most once per file; how many updates were made now
    (0: the file was counted before)."""
    by_item: dict[tuple[str, int], list[Part]] = {}
    for part in _parts(buckets):
        by_item.setdefault(part[:2], []).append(part)
    if not by_item:
        return 0

    def one_item(parts: list[Part]) -> int:  # an item's parts one after another
        return sum(_add(tenant, file_id, part) for part in parts)

    with ThreadPoolExecutor(max_workers=min(WRITERS, len(by_item))) as pool:
        return sum(pool.map(one_item, by_item.values()))


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
    # Each worker runs in a copy of the caller's context: a time budget (the switches'
    # authorization, functions/store/budget.py) holds for its reads too.
    contexts = [contextvars.copy_context() for _ in parts]
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(parts))) as pool:
        pages = pool.map(lambda context, part: context.run(chunk, part), contexts, parts)
        return [item for items in pages for item in items]


def get_stats(
    tenant: str, routes: Iterable[tuple[str, str]], first_hour: int, last_hour: int
) -> dict[tuple[str, str], Stats]:
    """Each (supplier, destination)'s stats summed over hours first..last (inclusive);
    routes without a counted call are absent."""
    destinations: dict[str, set[str]] = {}
    for supplier, destination in routes:
        destinations.setdefault(supplier, set()).add(check_destination(destination))
    keys = [
        _key(tenant, supplier, hour)
        for supplier in sorted(destinations)
        for hour in range(first_hour, last_hour + 1)
    ]
    found: dict[tuple[str, str], Stats] = {}
    for item in _batch_get(keys):
        supplier = item["pk"]["S"].split("#", 2)[2]
        for destination in sorted(destinations[supplier]):
            if _attribute("n", destination) not in item:
                continue
            one = Stats(
                **{name: int(item[_attribute(code, destination)]["N"]) for code, name in _FIELDS}
            )
            key = (supplier, destination)
            found[key] = found.get(key, Stats()) + one
    return found


__all__ = ["CLAUSES", "STATS_DAYS", "add_stats", "check_destination", "get_stats"]
