"""Balances, balance postings and payments: the ledger table (boto3 low-level client).

Key layout (table `settings().ledger_table`; every pk is the tenant):
    pk={tenant}  sk=BALANCE#{account}                  balance, reserved (integer micro-units)
    pk={tenant}  sk=POST#{posting_id}#{chunk}          marker: chunks, accounts, total, digest
    pk={tenant}  sk=PAYMENT#{account}#{payment_id}     amount (micro-units), reference

Exactly once: a posting is one TransactWriteItems per chunk of at most 99 accounts, made of the
chunk's marker put under `attribute_not_exists(pk)` and one `ADD balance :delta` per account.
A retry of an applied chunk is cancelled by the marker's condition and changes nothing; a
chunk that never ran is applied by the retry. ADD is atomic, so postings of different files to
the same account add up whatever their interleaving. Amounts are integers, never floats.
The low-level client is used so the transaction's items and cancellation reasons stay in the
order written here (the marker is always item 0).
"""

from __future__ import annotations

import hashlib
import operator
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from functions.shared.settings import settings
from functions.store import ConflictError, check_name, check_token, client

CHUNK_ACCOUNTS = 99  # + 1 marker = DynamoDB's limit of 100 items per transaction
_ATTEMPTS = 8  # transaction conflicts with concurrent writers of the same balance


def _table() -> str:
    return settings().ledger_table


def _key(tenant: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": tenant}, "sk": {"S": sk}}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _int(value: Any) -> int:
    """An exact integer amount; floats (and bools) are refused, numpy integers accepted."""
    if isinstance(value, bool):
        raise TypeError("amount must be an integer number of micro-units, not a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"amount must be an integer number of micro-units, not {type(value).__name__}"
        ) from None


def _transact(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Run one transaction whose item 0 is a conditional marker put.

    None if it committed; the marker's existing item if the marker's condition failed.

    Transaction conflicts (another transaction on the same balance at the same instant) and
    throttling are retried here with jittered backoff; they never mean "already applied".
    """
    dynamodb = client("dynamodb")
    for attempt in range(_ATTEMPTS):
        try:
            dynamodb.transact_write_items(TransactItems=items)
            return None
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons") or []
                first = reasons[0] if reasons else {}
                if first.get("Code") == "ConditionalCheckFailed":
                    return first.get("Item") or {}
                retryable = {"TransactionConflict", "ThrottlingError"}
                if not any(r.get("Code") in retryable for r in reasons):
                    raise
            elif code not in ("TransactionInProgressException", "ThrottlingException"):
                raise
        time.sleep(min(1.0, 0.02 * 2**attempt) * random.random())
    raise ConflictError(f"transaction still conflicting after {_ATTEMPTS} attempts")


def _digest(item: dict[str, Any]) -> str | None:
    return item.get("digest", {}).get("S")


# --- balances and postings -------------------------------------------------------------


def post_balances(tenant: str, posting_id: str, deltas: Mapping[str, int]) -> bool:
    """Add integer micro-unit deltas to balances, exactly once per posting id.

    True if anything was applied by this call, False if the whole posting had been applied
    before. The chunks are the sorted accounts in groups of 99, so a retry with the same
    deltas rebuilds the same chunks; a retry with different deltas raises ConflictError.
    """
    check_name("tenant", tenant)
    check_token("posting id", posting_id)
    entries = sorted(
        (check_name("account", account), _int(delta)) for account, delta in deltas.items()
    )
    entries = [(account, delta) for account, delta in entries if delta != 0]
    chunks = [entries[i : i + CHUNK_ACCOUNTS] for i in range(0, len(entries), CHUNK_ACCOUNTS)]
    chunks = chunks or [[]]  # an empty posting still leaves its marker
    applied = False
    for index, chunk in enumerate(chunks):
        applied |= _post_chunk(tenant, posting_id, index, len(chunks), chunk)
    return applied


def _post_chunk(
    tenant: str, posting_id: str, index: int, count: int, chunk: list[tuple[str, int]]
) -> bool:
    table = _table()
    body = "".join(f"{account}:{delta}\n" for account, delta in chunk)
    digest = hashlib.sha256(f"{count}\n{body}".encode()).hexdigest()
    marker = {
        "Put": {
            "TableName": table,
            "Item": {
                **_key(tenant, f"POST#{posting_id}#{index}"),
                "chunks": {"N": str(count)},
                "accounts": {"N": str(len(chunk))},
                "total": {"N": str(sum(delta for _, delta in chunk))},
                "digest": {"S": digest},
                "created_at": {"S": _now()},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }
    updates = [
        {
            "Update": {
                "TableName": table,
                "Key": _key(tenant, f"BALANCE#{account}"),
                "UpdateExpression": "ADD balance :d",
                "ExpressionAttributeValues": {":d": {"N": str(delta)}},
            }
        }
        for account, delta in chunk
    ]
    existing = _transact([marker, *updates])
    if existing is None:
        return True
    if _digest(existing) not in (None, digest):
        raise ConflictError(f"posting {posting_id!r} chunk {index} was applied with other amounts")
    return False


def get_balance(tenant: str, account: str) -> tuple[int, int]:
    """(balance, reserved) in micro-units; (0, 0) for an account never posted to."""
    response = client("dynamodb").get_item(
        TableName=_table(),
        Key=_key(check_name("tenant", tenant), f"BALANCE#{check_name('account', account)}"),
        ConsistentRead=True,
    )
    item = response.get("Item") or {}
    return (
        int(item.get("balance", {}).get("N", "0")),
        int(item.get("reserved", {}).get("N", "0")),
    )


def posting_applied(tenant: str, posting_id: str) -> bool:
    """Whether every chunk of a posting has been applied."""
    check_name("tenant", tenant)
    check_token("posting id", posting_id)
    dynamodb = client("dynamodb")
    first = dynamodb.get_item(
        TableName=_table(), Key=_key(tenant, f"POST#{posting_id}#0"), ConsistentRead=True
    ).get("Item")
    if not first:
        return False
    for index in range(1, int(first["chunks"]["N"])):
        item = dynamodb.get_item(
            TableName=_table(), Key=_key(tenant, f"POST#{posting_id}#{index}"), ConsistentRead=True
        ).get("Item")
        if not item:
            return False
    return True


# --- payments --------------------------------------------------------------------------


def record_payment(
    tenant: str,
    account: str,
    amount_micro: int,
    payment_id: str,
    *,
    reference: str | None = None,
) -> bool:
    """Credit a payment to the balance once per (account, payment id); False if recorded.

    A customer's balance is payments minus charges. Recording the same payment id with
    another amount raises ConflictError.
    """
    check_name("tenant", tenant)
    check_name("account", account)
    check_token("payment id", payment_id)
    amount = _int(amount_micro)
    if amount <= 0:
        raise ValueError("a payment amount must be positive")
    table = _table()
    item = {
        **_key(tenant, f"PAYMENT#{account}#{payment_id}"),
        "amount": {"N": str(amount)},
        "created_at": {"S": _now()},
        "digest": {"S": str(amount)},
    }
    if reference:
        item["reference"] = {"S": reference}
    existing = _transact(
        [
            {
                "Put": {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": {
                    "TableName": table,
                    "Key": _key(tenant, f"BALANCE#{account}"),
                    "UpdateExpression": "ADD balance :d",
                    "ExpressionAttributeValues": {":d": {"N": str(amount)}},
                }
            },
        ]
    )
    if existing is None:
        return True
    if _digest(existing) not in (None, str(amount)):
        raise ConflictError(f"payment {payment_id!r} was already recorded with another amount")
    return False
