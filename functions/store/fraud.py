"""The fraud checks' store: counters, evidence, first sightings, rules, ranges and alerts.

Key layout (table `settings().fraud_table`; boto3 low-level client; TTL on `expires_at`):
    pk=C#{tenant}#{party}#{account}  sk=H#{yyyymmddhh}           an hour's counters: per
                                                                  group and field a number
                                                                  ("n|Somalia": calls), and
                                                                  `files`, the file parts counted
    pk=C#{tenant}#customer#{account} sk=SEEN#{group}             first sighting: hour, file
    pk=E#{tenant}#{account}          sk={group}#{yyyymmddhh}#{file}  a file's evidence
    pk=T#{tenant}                    sk=ACTIVE#{party}#{account}  first and last hour counted
                                     sk=FILE#{file_id}            a file checked
                                     sk=RULES | RANGES            the tenant's policy, its edits
                                     sk=ALERT#{alert_id}          an alert
                                     sk=OUTBOX#{alert_id}         an alert still to deliver

A counter's partition is its account's: the writes of a busy tenant spread over partitions.
Every counter update is `ADD ... , files :f` under `NOT contains(files, :part)`: one part of
one file adds to an item once, however often it is retried (a ConditionalCheckFailed means
"counted before"). Counters and evidence live 9 weeks (the 8-week baselines), alerts 400 days; reads
never trust TTL (deletion lags by up to 48 h) and ask for the hours they need.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from functions.fraud.alerts import RANK, merge
from functions.fraud.counters import Counter, Evidence
from functions.shared.settings import settings
from functions.store import ConflictError, check_name, client

WRITERS = 16  # concurrent requests: a file's counter items are independent of each other
COUNTER_DAYS = 63
ALERT_DAYS = 400
_ATTEMPTS = 10


def _table() -> str:
    return settings().fraud_table


def _hour_text(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y%m%d%H")


def _hour_of(text: str) -> int:
    stamp = dt.datetime.strptime(text, "%Y%m%d%H").replace(tzinfo=dt.UTC)
    return int(stamp.timestamp()) // 3600


def _counter_pk(tenant: str, party: str, account: str) -> str:
    return f"C#{check_name('tenant', tenant)}#{party}#{account}"


def _tenant_pk(tenant: str) -> str:
    return f"T#{check_name('tenant', tenant)}"


def _expires(hour: int, days: int) -> str:
    return str(hour * 3600 + days * 86400)


def _query(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    request = {"TableName": _table(), **request}
    while True:
        page = client("dynamodb").query(**request)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _conditional_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


# --- counters --------------------------------------------------------------------------


# One item per (party, account, hour) holds every destination group's counters, one number
# attribute per group and field: "n|Somalia" (calls), "a|..." (answered), "s|..." (seconds),
# "m|..." (amount), "t|..." (short calls). A file writes one item per account and hour it
# touches, not one per group: an A-Z account's hour is one 1-20 KB item instead of hundreds
# of 1 KB ones, several times fewer write units (DynamoDB bills an update by the item's size).
FIELD_CODES = {"calls": "n", "answered": "a", "seconds": "s", "amount": "m", "short": "t"}
_FIELD_OF = {code: name for name, code in FIELD_CODES.items()}
# Clauses per UpdateExpression: each "#nK :vK, " is ~12 bytes and an expression may hold
# 4 KB; an item with more groups is written in several updates, each claimed on its own.
CLAUSES = 200


def _updates(counters: Sequence[Counter]) -> list[tuple[tuple[str, str, int], int, list]]:
    """The updates a file's counters make: per (party, account, hour) item its nonzero
    (attribute, value) pairs in a fixed order, cut into chunks of CLAUSES. The same counters
    always give the same chunks, so a retry claims exactly what the first attempt did."""
    items: dict[tuple[str, str, int], list[tuple[str, int]]] = {}
    for counter in counters:
        pairs = items.setdefault((counter.party, counter.account, counter.hour), [])
        for name, value in counter.values().items():
            if value:
                pairs.append((f"{FIELD_CODES[name]}|{counter.group}", value))
    out = []
    for key, pairs in sorted(items.items()):
        pairs.sort()
        for chunk, start in enumerate(range(0, max(len(pairs), 1), CLAUSES)):
            out.append((key, chunk, pairs[start : start + CLAUSES]))
    return out


def _add_item(
    tenant: str, file_id: str, key: tuple[str, str, int], chunk: int, pairs: list
) -> bool:
    """ADD one chunk of a file's counters to an item, unless that chunk was added before."""
    party, account, hour = key
    names = {f"#n{i}": name for i, (name, _) in enumerate(pairs)}
    values = {f":v{i}": {"N": str(value)} for i, (_, value) in enumerate(pairs)}
    marker = f"{file_id}#{chunk}"
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key={
                "pk": {"S": _counter_pk(tenant, party, account)},
                "sk": {"S": f"H#{_hour_text(hour)}"},
            },
            UpdateExpression="ADD "
            + "".join(f"#n{i} :v{i}, " for i in range(len(pairs)))
            + "files :files SET expires_at = :expires",
            ConditionExpression="NOT contains(files, :file)",
            **({"ExpressionAttributeNames": names} if names else {}),
            ExpressionAttributeValues={
                **values,
                ":files": {"SS": [marker]},
                ":file": {"S": marker},
                ":expires": {"N": _expires(hour, COUNTER_DAYS)},
            },
        )
    except ClientError as error:
        if _conditional_failed(error):
            return False  # this part of the file was counted here before
        raise
    return True


def add_counters(tenant: str, file_id: str, counters: Sequence[Counter]) -> int:
    """Add a file's counters, each part of each item at most once per file; how many item
    updates were made now (0: all were made before)."""
    updates = _updates(counters)
    if not updates:
        return 0
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(updates))) as pool:
        return sum(pool.map(lambda u: _add_item(tenant, file_id, *u), updates))


def _counters(party: str, account: str, item: dict[str, Any]) -> list[Counter]:
    """The per-group counters an hour's item holds."""
    hour = _hour_of(item["sk"]["S"].removeprefix("H#"))
    groups: dict[str, dict[str, int]] = {}
    for name, value in item.items():
        code, bar, group = name.partition("|")
        if bar and code in _FIELD_OF:
            groups.setdefault(group, {})[_FIELD_OF[code]] = int(value["N"])
    return [Counter(party, account, group, hour, **fields) for group, fields in groups.items()]


def get_span(tenant: str, party: str, account: str, first: int, last: int) -> list[Counter]:
    """Every group's counters of an account for hours first..last (inclusive)."""
    items = _query(
        {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {
                ":pk": {"S": _counter_pk(tenant, party, account)},
                ":a": {"S": f"H#{_hour_text(first)}"},
                ":b": {"S": f"H#{_hour_text(last)}"},
            },
        }
    )
    return [c for item in items for c in _counters(party, account, item)]


def get_spans(tenant: str, spans: Mapping[tuple[str, str], tuple[int, int]]) -> list[Counter]:
    """`get_span` of each (party, account): first..last, the accounts' queries at once."""
    if not spans:
        return []
    work = sorted(spans.items())
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(work))) as pool:
        found = pool.map(lambda item: get_span(tenant, *item[0], *item[1]), work)
        return [counter for counters in found for counter in counters]


def _batch_get_chunk(keys: list[dict[str, Any]], extra: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    request = {_table(): {"Keys": keys, **extra}}
    for _ in range(_ATTEMPTS):
        page = client("dynamodb").batch_get_item(RequestItems=request)
        found += page.get("Responses", {}).get(_table(), [])
        request = page.get("UnprocessedKeys") or {}
        if not request:
            return found
    raise ConflictError("DynamoDB kept some keys unprocessed; run it again")


def _batch_get(keys: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    """Items by key, 100 to a request (DynamoDB's limit), the requests at once."""
    chunks = [keys[start : start + 100] for start in range(0, len(keys), 100)]
    if not chunks:
        return []
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(chunks))) as pool:
        found = pool.map(lambda chunk: _batch_get_chunk(chunk, extra), chunks)
        return [item for items in found for item in items]


def get_counters(tenant: str, keys: Iterable[tuple[str, str, str, int]]) -> list[Counter]:
    """The counters of these (party, account, group, hour) keys that exist."""
    wanted = set(keys)
    hours = sorted({(party, account, hour) for party, account, _, hour in wanted})
    by_pk = {_counter_pk(tenant, party, account): (party, account) for party, account, _ in hours}
    requests = [
        {"pk": {"S": _counter_pk(tenant, party, account)}, "sk": {"S": f"H#{_hour_text(hour)}"}}
        for party, account, hour in hours
    ]
    found = []
    for item in _batch_get(requests):
        found += [c for c in _counters(*by_pk[item["pk"]["S"]], item) if c.key in wanted]
    return found


# --- evidence ------------------------------------------------------------------------------


def put_evidence(tenant: str, file_id: str, evidence: Sequence[Evidence]) -> None:
    """A file's evidence per account x group (written whole: a retry writes the same)."""
    requests = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": f"E#{check_name('tenant', tenant)}#{e.account}"},
                    "sk": {"S": f"{e.group}#{_hour_text(e.first_hour)}#{file_id}"},
                    "first_hour": {"N": str(e.first_hour)},
                    "last_hour": {"N": str(e.last_hour)},
                    "evidence": {"S": json.dumps(e.as_json(), separators=(",", ":"))},
                    "expires_at": {"N": _expires(e.last_hour, COUNTER_DAYS)},
                }
            }
        }
        for e in evidence
    ]
    for start in range(0, len(requests), 25):
        pending = {_table(): requests[start : start + 25]}
        for _ in range(_ATTEMPTS):
            left = client("dynamodb").batch_write_item(RequestItems=pending)
            pending = left.get("UnprocessedItems") or {}
            if not pending:
                break
        else:
            raise ConflictError("DynamoDB kept some evidence unwritten; run it again")


def get_evidence(
    tenant: str, account: str, group: str | None, first: int, last: int
) -> list[Evidence]:
    """The evidence of the files whose calls to `group` (None: any group) overlap hours
    first..last."""
    values = {
        ":pk": {"S": f"E#{check_name('tenant', tenant)}#{account}"},
        ":first": {"N": str(first)},
        ":last": {"N": str(last)},
    }
    key = "pk = :pk"
    if group is not None:
        key += " AND sk BETWEEN :a AND :b"
        values[":a"] = {"S": f"{group}#"}
        values[":b"] = {"S": f"{group}#{_hour_text(last)}#\U0010ffff"}
    items = _query(
        {
            "KeyConditionExpression": key,
            "FilterExpression": "last_hour >= :first AND first_hour <= :last",
            "ExpressionAttributeValues": values,
        }
    )
    return [Evidence.from_json(json.loads(item["evidence"]["S"])) for item in items]


# --- sightings, activity, files -----------------------------------------------------------


def sightings(tenant: str, account: str) -> dict[str, str]:
    """The destination groups an account has called, each with the file that first did."""
    items = _query(
        {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {
                ":pk": {"S": _counter_pk(tenant, "customer", account)},
                ":p": {"S": "SEEN#"},
            },
        }
    )
    return {item["sk"]["S"].removeprefix("SEEN#"): item["file_id"]["S"] for item in items}


def first_sighting(tenant: str, account: str, group: str, hour: int, file_id: str) -> str:
    """The file that first brought traffic of `account` to `group`: this one if none had."""
    key = {
        "pk": {"S": _counter_pk(tenant, "customer", account)},
        "sk": {"S": f"SEEN#{group}"},
    }
    try:
        client("dynamodb").put_item(
            TableName=_table(),
            Item={**key, "hour": {"N": str(hour)}, "file_id": {"S": file_id}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        return file_id
    except ClientError as error:
        if not _conditional_failed(error):
            raise
    item = client("dynamodb").get_item(TableName=_table(), Key=key, ConsistentRead=True)["Item"]
    return item["file_id"]["S"]


def touch_active(tenant: str, spans: Mapping[tuple[str, str], tuple[int, int]]) -> None:
    """Widen each account's first..last hour counted to cover these spans."""
    for (party, account), (first, last) in sorted(spans.items()):
        key = {"pk": {"S": _tenant_pk(tenant)}, "sk": {"S": f"ACTIVE#{party}#{account}"}}
        for attribute, value, better in (("first_hour", first, ">"), ("last_hour", last, "<")):
            try:
                client("dynamodb").update_item(
                    TableName=_table(),
                    Key=key,
                    UpdateExpression=f"SET {attribute} = :h",
                    ConditionExpression=f"attribute_not_exists({attribute}) OR "
                    f"{attribute} {better} :h",
                    ExpressionAttributeValues={":h": {"N": str(value)}},
                )
            except ClientError as error:
                if not _conditional_failed(error):
                    raise


def _active(tenant: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    items = _query(
        {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {
                ":pk": {"S": _tenant_pk(tenant)},
                ":p": {"S": "ACTIVE#"},
            },
        }
    )
    for item in items:
        party, account = item["sk"]["S"].removeprefix("ACTIVE#").split("#", 1)
        yield party, account, item


def active_accounts(tenant: str, since_hour: int) -> list[tuple[str, str]]:
    """(party, account) of every account with calls counted in an hour since `since_hour`."""
    return [
        (party, account)
        for party, account, item in _active(tenant)
        if int(item["last_hour"]["N"]) >= since_hour
    ]


def first_hours(tenant: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The first hour counted of each (party, account) that has one."""
    requests = [
        {"pk": {"S": _tenant_pk(tenant)}, "sk": {"S": f"ACTIVE#{party}#{account}"}}
        for party, account in sorted(set(keys))
    ]
    found = {}
    for item in _batch_get(requests, ConsistentRead=True):
        party, account = item["sk"]["S"].removeprefix("ACTIVE#").split("#", 1)
        found[(party, account)] = int(item["first_hour"]["N"])
    return found


def file_checked(tenant: str, file_id: str) -> bool:
    item = client("dynamodb").get_item(
        TableName=_table(),
        Key={"pk": {"S": _tenant_pk(tenant)}, "sk": {"S": f"FILE#{file_id}"}},
        ConsistentRead=True,
    )
    return "Item" in item


def mark_file_checked(tenant: str, file_id: str, summary: Mapping[str, int]) -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    client("dynamodb").put_item(
        TableName=_table(),
        Item={
            "pk": {"S": _tenant_pk(tenant)},
            "sk": {"S": f"FILE#{file_id}"},
            "summary": {"S": json.dumps(dict(summary), sort_keys=True)},
            "expires_at": {"N": str(now + COUNTER_DAYS * 86400)},
        },
    )


# --- policy and ranges -----------------------------------------------------------------------


def _get_document(tenant: str, sk: str) -> tuple[Any, int]:
    item = (
        client("dynamodb")
        .get_item(
            TableName=_table(),
            Key={"pk": {"S": _tenant_pk(tenant)}, "sk": {"S": sk}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    if item is None:
        return None, 0
    return json.loads(item["document"]["S"]), int(item["version"]["N"])


def _put_document(tenant: str, sk: str, document: Any, version: int, actor: str) -> None:
    """Write a policy document if nobody changed it since `version` was read."""
    try:
        client("dynamodb").put_item(
            TableName=_table(),
            Item={
                "pk": {"S": _tenant_pk(tenant)},
                "sk": {"S": sk},
                "document": {"S": json.dumps(document, sort_keys=True)},
                "version": {"N": str(version + 1)},
                "changed_by": {"S": actor},
                "changed_at": {"S": dt.datetime.now(dt.UTC).isoformat()},
            },
            ConditionExpression="attribute_not_exists(pk) OR version = :v",
            ExpressionAttributeValues={":v": {"N": str(version)}},
        )
    except ClientError as error:
        if _conditional_failed(error):
            raise ConflictError(
                f"{sk.lower()} of {tenant} changed meanwhile; run it again"
            ) from None
        raise


def get_rules(tenant: str) -> dict | None:
    return _get_document(tenant, "RULES")[0]


def get_rules_versioned(tenant: str) -> tuple[dict | None, int]:
    return _get_document(tenant, "RULES")


def put_rules(tenant: str, document: dict, *, version: int, actor: str) -> None:
    _put_document(tenant, "RULES", document, version, actor)


def get_ranges(tenant: str) -> list[dict]:
    return _get_document(tenant, "RANGES")[0] or []


def get_ranges_versioned(tenant: str) -> tuple[list[dict], int]:
    document, version = _get_document(tenant, "RANGES")
    return document or [], version


def put_ranges(tenant: str, edits: list[dict], *, version: int, actor: str) -> None:
    _put_document(tenant, "RANGES", edits, version, actor)


# --- alerts ----------------------------------------------------------------------------------


def _alert_key(tenant: str, alert_id: str) -> dict[str, Any]:
    return {"pk": {"S": _tenant_pk(tenant)}, "sk": {"S": f"ALERT#{alert_id}"}}


def _get_alert(tenant: str, alert_id: str) -> tuple[dict[str, Any] | None, int]:
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key=_alert_key(tenant, alert_id), ConsistentRead=True)
        .get("Item")
    )
    if item is None:
        return None, 0
    return json.loads(item["alert"]["S"]), int(item["version"]["N"])


def put_alert(tenant: str, record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Store a finding's alert, merged into the one of its window (functions.fraud.alerts
    .merge); a new or escalated alert is put in the outbox in the same transaction.
    Returns the alert as stored and what changed."""
    alert_id = record["alert_id"]
    for _ in range(_ATTEMPTS):
        existing, version = _get_alert(tenant, alert_id)
        merged, change = merge(existing, record)
        if change == "same":
            return merged, change
        item = {
            **_alert_key(tenant, alert_id),
            "alert": {"S": json.dumps(merged, sort_keys=True)},
            "account": {"S": merged["account"]},
            "version": {"N": str(version + 1)},
            "expires_at": {"N": str(int(dt.datetime.now(dt.UTC).timestamp()) + ALERT_DAYS * 86400)},
        }
        condition = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if existing is None
            else {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        )
        writes = [{"Put": {"TableName": _table(), "Item": item, **condition}}]
        if change in ("new", "escalated"):
            writes.append(
                {
                    "Put": {
                        "TableName": _table(),
                        "Item": {
                            "pk": {"S": _tenant_pk(tenant)},
                            "sk": {"S": f"OUTBOX#{alert_id}"},
                            "severity": {"S": merged["severity"]},
                        },
                    }
                }
            )
        try:
            client("dynamodb").transact_write_items(TransactItems=writes)
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                continue  # another writer moved the alert: merge again
            raise
        return merged, change
    raise ConflictError(f"alert {alert_id} kept changing meanwhile; run it again")


def outbox(tenant: str) -> list[dict[str, Any]]:
    """The alerts still to deliver (new or escalated, not yet published), oldest first."""
    items = _query(
        {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {
                ":pk": {"S": _tenant_pk(tenant)},
                ":p": {"S": "OUTBOX#"},
            },
            "ConsistentRead": True,
        }
    )
    found = []
    for item in items:
        alert, _ = _get_alert(tenant, item["sk"]["S"].removeprefix("OUTBOX#"))
        if alert is not None:
            found.append(alert)
    return sorted(found, key=lambda a: (a["first_seen"], a["alert_id"]))


def set_action(tenant: str, alert_id: str, action: str) -> dict[str, Any]:
    for _ in range(_ATTEMPTS):
        alert, version = _get_alert(tenant, alert_id)
        if alert is None:
            raise ConflictError(f"alert {alert_id} is gone")
        if alert["action"] == action:
            return alert
        alert["action"] = action
        try:
            client("dynamodb").update_item(
                TableName=_table(),
                Key=_alert_key(tenant, alert_id),
                UpdateExpression="SET alert = :a, version = :n",
                ConditionExpression="version = :v",
                ExpressionAttributeValues={
                    ":a": {"S": json.dumps(alert, sort_keys=True)},
                    ":n": {"N": str(version + 1)},
                    ":v": {"N": str(version)},
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                continue
            raise
        return alert
    raise ConflictError(f"alert {alert_id} kept changing meanwhile; run it again")


def delivered(tenant: str, alert_id: str, severity: str) -> None:
    """Take the alert out of the outbox, unless it escalated since it was read."""
    try:
        client("dynamodb").delete_item(
            TableName=_table(),
            Key={"pk": {"S": _tenant_pk(tenant)}, "sk": {"S": f"OUTBOX#{alert_id}"}},
            ConditionExpression="severity = :s",
            ExpressionAttributeValues={":s": {"S": severity}},
        )
    except ClientError as error:
        if not _conditional_failed(error):
            raise


def list_alerts(tenant: str, account: str | None = None) -> list[dict[str, Any]]:
    """A tenant's alerts (of one account), the most severe and latest first."""
    request: dict[str, Any] = {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":pk": {"S": _tenant_pk(tenant)}, ":p": {"S": "ALERT#"}},
    }
    if account is not None:
        request["FilterExpression"] = "account = :a"
        request["ExpressionAttributeValues"][":a"] = {"S": account}
    alerts = [json.loads(item["alert"]["S"]) for item in _query(request)]
    latest_first = sorted(alerts, key=lambda a: (a["last_seen"], a["alert_id"]), reverse=True)
    return sorted(latest_first, key=lambda a: -RANK[a["severity"]])  # stable: latest first
