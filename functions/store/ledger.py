"""Balances, balance postings, payments, adjustments and their journal: the ledger table.

Key layout (table `settings().ledger_table`; every pk is the tenant; boto3 low-level client):
    pk={tenant}  sk=BALANCE#{account}                  balance, reserved (integer micro-units)
    pk={tenant}  sk=POST#{posting_id}#{chunk}          marker: chunks, accounts, total, digest
    pk={tenant}  sk=PAYMENT#{sha256(reference)}        a payment, named by its reference
    pk={tenant}  sk=ADJUSTMENT#{sha256(reference)}     an adjustment, named by its reference
    pk={tenant}  sk=ENTRY#{account}#{booked_at}#{posting_id}#{chunk}
                                                       journal: kind, amount, description, ...

Exactly once: a posting is one TransactWriteItems per chunk of at most 49 accounts, made of the
chunk's marker put under `attribute_not_exists(pk)` and, per account, one `ADD balance :delta`
and the journal entry of that movement. A retry of an applied chunk is cancelled by the
marker's condition and changes nothing (no second entry either); a chunk that never ran is
applied by the retry. ADD is atomic, so postings of different files to the same account add
up whatever their interleaving. A payment or adjustment is the same shape with one account:
its reference's item is the marker. Amounts are integers, never floats.

The journal's sort key orders an account's entries by booking time (UTC, fixed width), so a
statement is one range query. The low-level client is used so the transaction's items and
cancellation reasons stay in the order written here (the marker is always item 0).
"""

from __future__ import annotations

import hashlib
import operator
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from functions.invoice.statement import Entry, payment_delta
from functions.rate.recurring import RecurringCharge
from functions.shared.settings import settings
from functions.store import ConflictError, check_name, check_token, client

# 1 marker + 2 items (balance, journal entry) per account <= DynamoDB's 100 per transaction
CHUNK_ACCOUNTS = 49
POSTING_KINDS = ("charges", "rerate")  # payments and adjustments have their own commands
_DESCRIPTION_CHARS = 1024
_REFERENCE_CHARS = 256
_ATTEMPTS = 8  # transaction conflicts with concurrent writers of the same balance


def _table() -> str:
    return settings().ledger_table


def _key(tenant: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": tenant}, "sk": {"S": sk}}


def _now() -> datetime:
    """The booking clock (UTC); tests replace it to compare runs entry for entry."""
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    """A UTC time, fixed width, so that sort keys order as time does."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


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


def post_balances(
    tenant: str,
    posting_id: str,
    deltas: Mapping[str, int],
    *,
    kind: str = "charges",
    description: str = "",
) -> bool:
    """Add integer micro-unit deltas to balances and journal them, exactly once per posting id.

    True if anything was applied by this call, False if the whole posting had been applied
    before. `kind` is "charges" (a file's charges) or "rerate" (a re-rating's difference);
    `description` names what was posted (the file name, the re-rated day and file). The chunks
    are the sorted accounts in groups of 49, so a retry with the same deltas rebuilds the same
    chunks; a retry with different deltas raises ConflictError.
    """
    check_name("tenant", tenant)
    check_token("posting id", posting_id)
    if kind not in POSTING_KINDS:
        raise ValueError(f"invalid posting kind {kind!r}: use one of {', '.join(POSTING_KINDS)}")
    description = _description(description)
    entries = sorted(
        (check_name("account", account), _int(delta)) for account, delta in deltas.items()
    )
    entries = [(account, delta) for account, delta in entries if delta != 0]
    chunks = [entries[i : i + CHUNK_ACCOUNTS] for i in range(0, len(entries), CHUNK_ACCOUNTS)]
    chunks = chunks or [[]]  # an empty posting still leaves its marker
    booked_at = _now()
    journal = {"kind": kind, "description": description, "booked_at": booked_at}
    applied = False
    for index, chunk in enumerate(chunks):
        applied |= _post_chunk(tenant, posting_id, index, len(chunks), chunk, journal)
    return applied


def _description(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"a description is text, not {type(text).__name__}")
    if len(text) > _DESCRIPTION_CHARS:
        raise ValueError(f"a description has at most {_DESCRIPTION_CHARS} characters")
    return text


def _post_chunk(
    tenant: str,
    posting_id: str,
    index: int,
    count: int,
    chunk: list[tuple[str, int]],
    journal: dict[str, Any],
) -> bool:
    table = _table()
    # The digest covers the money only: a retry that names the file differently is the same
    # posting, one that moves other amounts is not.
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
                "kind": {"S": journal["kind"]},
                "created_at": {"S": _stamp(journal["booked_at"])},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }
    movements = []
    for account, delta in chunk:
        entry = Entry(
            account=account,
            booked_at=journal["booked_at"],
            kind=journal["kind"],
            posting_id=posting_id,
            amount=delta,
            description=journal["description"],
        )
        movements += _movement(table, tenant, entry, index)
    existing = _transact([marker, *movements])
    if existing is None:
        return True
    if _digest(existing) not in (None, digest):
        raise ConflictError(f"posting {posting_id!r} chunk {index} was applied with other amounts")
    return False


def _movement(table: str, tenant: str, entry: Entry, chunk: int) -> list[dict[str, Any]]:
    """The two transaction items of one balance movement: the ADD and its journal entry."""
    item = {
        **_key(tenant, _entry_sk(entry, chunk)),
        "account": {"S": entry.account},
        "kind": {"S": entry.kind},
        "posting_id": {"S": entry.posting_id},
        "amount": {"N": str(entry.amount)},
        "description": {"S": entry.description},
        "booked_at": {"S": _stamp(entry.booked_at)},
    }
    if entry.reference is not None:
        item["reference"] = {"S": entry.reference}
    return [
        {
            "Update": {
                "TableName": table,
                "Key": _key(tenant, f"BALANCE#{entry.account}"),
                "UpdateExpression": "ADD balance :d",
                "ExpressionAttributeValues": {":d": {"N": str(entry.amount)}},
            }
        },
        {
            "Put": {
                "TableName": table,
                "Item": item,
                # never overwritten: the marker already makes it once; this makes a bug loud
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ]


def _entry_sk(entry: Entry, chunk: int) -> str:
    return f"ENTRY#{entry.account}#{_stamp(entry.booked_at)}#{entry.posting_id}#{chunk}"


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


# --- the journal -----------------------------------------------------------------------


def list_entries(
    tenant: str,
    account: str,
    *,
    before: datetime | None = None,
    since: datetime | None = None,
) -> list[Entry]:
    """An account's journal entries booked in [since, before) (open ends if None), in
    booking order."""
    check_name("tenant", tenant)
    check_name("account", account)
    prefix = f"ENTRY#{account}#"
    if since is not None:
        condition = "pk = :t AND sk BETWEEN :lo AND :hi"
        values = {
            ":t": {"S": tenant},
            ":lo": {"S": prefix + _stamp(since)},
            # "~" sorts after every stamp character: no upper bound but the account's own.
            ":hi": {"S": prefix + (_stamp(before) if before is not None else "~")},
        }
    elif before is None:
        condition = "pk = :t AND begins_with(sk, :lo)"
        values = {":t": {"S": tenant}, ":lo": {"S": prefix}}
    else:
        # Every sk of the account is prefix + stamp + "#...", so BETWEEN prefix and
        # prefix + stamp(before) is exactly "booked before `before`".
        condition = "pk = :t AND sk BETWEEN :lo AND :hi"
        values = {
            ":t": {"S": tenant},
            ":lo": {"S": prefix},
            ":hi": {"S": prefix + _stamp(before)},
        }
    query = {
        "TableName": _table(),
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ConsistentRead": True,
    }
    dynamodb = client("dynamodb")
    entries: list[Entry] = []
    while True:
        page = dynamodb.query(**query)
        entries += [_entry(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return entries
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def list_payments(tenant: str) -> list[Entry]:
    """Every payment of the tenant (received or made), as its journal entry, in booking order:
    one query of the payments' own items, not every account's journal."""
    check_name("tenant", tenant)
    query = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :t AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":t": {"S": tenant}, ":p": {"S": "PAYMENT#"}},
        "ConsistentRead": True,
    }
    dynamodb = client("dynamodb")
    entries: list[Entry] = []
    while True:
        page = dynamodb.query(**query)
        entries += [_entry(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return sorted(entries, key=lambda e: (e.booked_at, e.posting_id))
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _entry(item: dict[str, Any]) -> Entry:
    return Entry(
        account=item["account"]["S"],
        booked_at=_parse_stamp(item["booked_at"]["S"]),
        kind=item["kind"]["S"],
        posting_id=item["posting_id"]["S"],
        amount=int(item["amount"]["N"]),
        description=item.get("description", {}).get("S", ""),
        reference=item.get("reference", {}).get("S"),
    )


# --- payments and adjustments ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    """A payment or adjustment as the ledger holds it; `recorded` False: it was there before."""

    entry: Entry
    paid: int  # a payment's amount as paid (positive); an adjustment's signed amount
    recorded: bool


class ReferenceConflictError(ConflictError):
    """A reference already names another payment (or adjustment) than the one asked for."""

    def __init__(self, message: str, recorded: Recorded) -> None:
        super().__init__(message)
        self.recorded = recorded


def check_reference(reference: str) -> str:
    """A bank's or PSP's reference, trimmed; any printable text, as banks spell them."""
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError("a reference is required and must not be empty")
    reference = reference.strip()
    if len(reference) > _REFERENCE_CHARS or not reference.isprintable():
        raise ValueError(
            f"invalid reference {reference[:40]!r}: use at most {_REFERENCE_CHARS} printable "
            "characters"
        )
    return reference


def record_payment(
    tenant: str, account: str, amount_micro: int, *, reference: str, account_kind: str
) -> Recorded:
    """Record a payment once per reference (tenant-wide): the balance moves by payment_delta.

    A customer or reseller paying raises its balance; paying a supplier lowers what the
    carrier owes it. The same reference again with the same account and amount records
    nothing (`recorded` False); with another account or amount it raises
    ReferenceConflictError naming the recorded payment.
    """
    amount = _int(amount_micro)
    delta = payment_delta(account_kind, amount)
    description = "payment received" if delta > 0 else "payment made"
    return _record_once(tenant, account, amount, delta, "payment", reference, description)


def record_adjustment(
    tenant: str, account: str, amount_micro: int, *, reference: str, reason: str
) -> Recorded:
    """Credit (amount > 0: the balance rises) or debit (< 0) a balance, once per reference.

    The same reference again with the same account, amount and reason records nothing;
    otherwise it raises ReferenceConflictError naming the recorded adjustment.
    """
    amount = _int(amount_micro)
    if amount == 0:
        raise ValueError("an adjustment must not be zero")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("an adjustment needs a reason")
    reason = _description(reason.strip())
    return _record_once(tenant, account, amount, amount, "adjustment", reference, reason)


def record_true_up(
    tenant: str, account: str, amount_micro: int, *, reference: str, description: str
) -> Recorded:
    """Post a volume tier's true-up the account owes (amount > 0: its balance falls; < 0: a
    refund), once per reference; the same again records nothing, another amount under the
    reference raises ReferenceConflictError."""
    amount = _int(amount_micro)
    if amount == 0:
        raise ValueError("a true-up must not be zero")
    return _record_once(
        tenant, account, amount, -amount, "tier", reference, _description(description)
    )


INVOICE_POSTINGS = ("tax", "credit")


def record_invoice_posting(
    tenant: str, account: str, amount_micro: int, *, kind: str, reference: str, description: str
) -> Recorded:
    """Post what issuing an invoice moves, once per reference: `tax` (the account owes it:
    its balance falls) or `credit` (a credit note gives it back: the balance rises)."""
    if kind not in INVOICE_POSTINGS:
        raise ValueError(f"invalid invoice posting {kind!r}: use tax or credit")
    amount = _int(amount_micro)
    if amount <= 0:
        raise ValueError(f"an invoice posting must be positive, not {amount} micro-units")
    delta = -amount if kind == "tax" else amount
    return _record_once(tenant, account, amount, delta, kind, reference, _description(description))


RECURRING_ACCOUNT_KINDS = ("customer", "reseller")  # they owe a DID's or bundle's fee


def record_recurring(tenant: str, charge: RecurringCharge, account_kind: str) -> Recorded:
    """Post a recurring fee the account owes (its balance falls), once per charge.reference.

    The same charge again records nothing (`recorded` False); another account, amount or
    description under the same reference raises ReferenceConflictError.
    """
    if account_kind not in RECURRING_ACCOUNT_KINDS:
        raise ValueError(
            f"account {charge.account!r} is a {account_kind}: only a customer or reseller "
            "owes a recurring fee"
        )
    amount = _int(charge.amount_units)
    if amount <= 0:
        raise ValueError(f"a recurring fee must be positive, not {amount} micro-units")
    description = _description(charge.description)
    return _record_once(
        tenant, charge.account, amount, -amount, "recurring", charge.reference, description
    )


def _record_once(
    tenant: str,
    account: str,
    paid: int,
    delta: int,
    kind: str,
    reference: str,
    description: str,
) -> Recorded:
    check_name("tenant", tenant)
    check_name("account", account)
    reference = check_reference(reference)
    # References are free text (spaces, slashes); their hash is a safe, fixed-size key.
    key = hashlib.sha256(reference.encode()).hexdigest()
    entry = Entry(
        account=account,
        booked_at=_now(),
        kind=kind,
        posting_id=f"{kind}:{key}",
        amount=delta,
        description=description,
        reference=reference,
    )
    table = _table()
    marker_key = _key(tenant, f"{kind.upper()}#{key}")
    marker = {
        "Put": {
            "TableName": table,
            "Item": {
                **marker_key,
                "account": {"S": account},
                "paid": {"N": str(paid)},
                "amount": {"N": str(delta)},
                "description": {"S": description},
                "reference": {"S": reference},
                "posting_id": {"S": entry.posting_id},
                "kind": {"S": kind},
                "booked_at": {"S": _stamp(entry.booked_at)},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }
    existing = _transact([marker, *_movement(table, tenant, entry, 0)])
    if existing is None:
        return Recorded(entry, paid, recorded=True)
    if not existing:  # a store that does not return the old item: read it
        existing = client("dynamodb").get_item(
            TableName=table, Key=marker_key, ConsistentRead=True
        )["Item"]
    before = Recorded(_entry(existing), int(existing["paid"]["N"]), recorded=False)
    same = (before.entry.account, before.paid, before.entry.description) == (
        account,
        paid,
        description,
    )
    if not same:
        raise ReferenceConflictError(
            f"reference {reference!r} already names a {kind} of {before.paid} micro-units "
            f"to account {before.entry.account!r}"
            + (f" ({before.entry.description})" if kind == "adjustment" else "")
            + f", booked {_stamp(before.entry.booked_at)}; nothing recorded",
            before,
        )
    return before
