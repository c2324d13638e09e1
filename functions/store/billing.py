"""Billing profiles, FX rates, invoice drafts, gap-free numbers and issued invoices.

Key layout (table `settings().billing_table`; every pk is the tenant; boto3 low-level client):
    sk=PROFILE#TENANT | PROFILE#ACCOUNT#{account}      a billing profile (JSON)
    sk=FX#{from}#{to}#{day}                            an FX rate in force from that day
    sk=DRAFT#{period}#{account}                        a period's draft; `number` once numbered
    sk=SEQ#{issuer}#{series}#{year}                    the last number given in a series
    sk=INV#{number}                                    an issued invoice or credit note
    sk=ACCOUNTINV#{account}#{issue_date}#{number}      an account's invoices, in issue order
    sk=RUN#{period}#{scope}                            what a cycle run found and did

Gap-free numbering (docs/invoicing.md): one TransactWriteItems moves the series' counter from
the value read to the next, puts the invoice under its number and marks the draft numbered,
each conditional. A crash before it leaves nothing; after it, the draft's mark makes a retry
return the same number. Two writers of one series: one transaction is cancelled and retries
with the new counter, so no number is skipped or given twice. An issued invoice's document
is never rewritten: only its status, delivery and documents' keys change afterwards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from functions.invoice.drafts import Invoice, invoice_from_record, invoice_record
from functions.invoice.profiles import BillingProfile, TaxTreatment
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, check_name, client

_ATTEMPTS = 10


def _table() -> str:
    return settings().billing_table


def _key(tenant: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": check_name("tenant", tenant)}, "sk": {"S": sk}}


def _query(tenant: str, prefix: str, *, newest_first: bool = False) -> Iterator[dict[str, Any]]:
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :t AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":t": {"S": tenant}, ":p": {"S": prefix}},
        "ConsistentRead": True,
        "ScanIndexForward": not newest_first,
    }
    while True:
        page = client("dynamodb").query(**request)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _get(tenant: str, sk: str) -> dict[str, Any] | None:
    found = client("dynamodb").get_item(
        TableName=_table(), Key=_key(tenant, sk), ConsistentRead=True
    )
    return found.get("Item")


def _backoff(attempt: int) -> None:
    time.sleep(min(0.5, 0.01 * 2**attempt) * random.random())


def _cancel_codes(error: ClientError) -> list[str | None]:
    return [r.get("Code") for r in error.response.get("CancellationReasons") or []]


# --- profiles ------------------------------------------------------------------------------


def _profile_sk(account: str | None) -> str:
    return (
        "PROFILE#TENANT" if account is None else f"PROFILE#ACCOUNT#{check_name('account', account)}"
    )


def _profile_json(profile: BillingProfile) -> str:
    data = {
        name: getattr(profile, name)
        for name in profile.__dataclass_fields__
        if name not in ("tenant", "account", "taxes")
    }
    data["taxes"] = [
        {
            "treatment": t.treatment,
            "rate": str(t.rate),
            "since": t.since.isoformat(),
            "certificate": t.certificate,
        }
        for t in profile.taxes
    ]
    return json.dumps(data, sort_keys=True)


def _profile(tenant: str, account: str | None, text: str) -> BillingProfile:
    data = json.loads(text)
    taxes = tuple(
        TaxTreatment(
            t["treatment"], Decimal(t["rate"]), dt.date.fromisoformat(t["since"]), t["certificate"]
        )
        for t in data.pop("taxes")
    )
    return BillingProfile(tenant=tenant, account=account, taxes=taxes, **data)


def get_profile(tenant: str, account: str | None = None) -> BillingProfile:
    """The profile of an account (None: the tenant's own); an empty one if none was set."""
    item = _get(tenant, _profile_sk(account))
    if item is None:
        return BillingProfile(tenant=tenant, account=account)
    return _profile(tenant, account, item["profile"]["S"])


def list_profiles(tenant: str) -> dict[str | None, BillingProfile]:
    """Every profile the tenant holds, by account (None: the tenant's own)."""
    found: dict[str | None, BillingProfile] = {}
    for item in _query(tenant, "PROFILE#"):
        sk = item["sk"]["S"]
        account = None if sk == "PROFILE#TENANT" else sk.removeprefix("PROFILE#ACCOUNT#")
        found[account] = _profile(tenant, account, item["profile"]["S"])
    return found


def get_profiles(tenant: str, accounts: Iterable[str | None]) -> dict[str | None, BillingProfile]:
    """The profiles of `accounts` (None: the tenant's own), read in batches of 100; an empty
    profile for one never set. What a chunk of the cycle needs, without the tenant's all."""
    wanted = sorted(set(accounts), key=lambda a: (a is not None, a or ""))
    found = {a: BillingProfile(tenant=tenant, account=a) for a in wanted}
    by_sk = {_profile_sk(a): a for a in wanted}
    keys = [_key(tenant, sk) for sk in by_sk]
    dynamodb = client("dynamodb")
    for start in range(0, len(keys), 100):
        request = {_table(): {"Keys": keys[start : start + 100], "ConsistentRead": True}}
        for attempt in range(_ATTEMPTS):
            page = dynamodb.batch_get_item(RequestItems=request)
            for item in page.get("Responses", {}).get(_table(), []):
                account = by_sk[item["sk"]["S"]]
                found[account] = _profile(tenant, account, item["profile"]["S"])
            request = page.get("UnprocessedKeys") or {}
            if not request:
                break
            _backoff(attempt)
        else:
            raise ConflictError("DynamoDB kept keys of a profile batch unprocessed")
    return found


def put_profile(profile: BillingProfile) -> BillingProfile:
    """Store a profile whole (the CLI reads, merges and writes it back)."""
    client("dynamodb").put_item(
        TableName=_table(),
        Item={
            **_key(profile.tenant, _profile_sk(profile.account)),
            "profile": {"S": _profile_json(profile)},
        },
    )
    return profile


# --- FX rates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FxRate:
    source_currency: str
    target_currency: str
    day: dt.date
    rate: Decimal  # target units per source unit
    source: str


def set_fx_rate(tenant: str, rate: FxRate) -> FxRate:
    if rate.rate <= 0 or not rate.rate.is_finite():
        raise ValueError(f"invalid FX rate {rate.rate}: a positive number")
    client("dynamodb").put_item(
        TableName=_table(),
        Item={
            **_key(tenant, f"FX#{rate.source_currency}#{rate.target_currency}#{rate.day}"),
            "rate": {"S": str(rate.rate)},
            "source": {"S": rate.source},
        },
    )
    return rate


def fx_rate_on(tenant: str, source: str, target: str, day: dt.date) -> FxRate | None:
    """The rate from `source` to `target` in force on `day`: the latest set on or before it."""
    prefix = f"FX#{source}#{target}#"
    page = client("dynamodb").query(
        TableName=_table(),
        KeyConditionExpression="pk = :t AND sk BETWEEN :lo AND :hi",
        ExpressionAttributeValues={
            ":t": {"S": tenant},
            ":lo": {"S": prefix},
            ":hi": {"S": f"{prefix}{day.isoformat()}"},
        },
        ScanIndexForward=False,
        Limit=1,
        ConsistentRead=True,
    )
    for item in page.get("Items", []):
        return FxRate(
            source,
            target,
            dt.date.fromisoformat(item["sk"]["S"].rsplit("#", 1)[1]),
            Decimal(item["rate"]["S"]),
            item["source"]["S"],
        )
    return None


# --- drafts --------------------------------------------------------------------------------


def _digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Draft:
    invoice: Invoice
    digest: str
    number: str | None  # set once numbered: the draft is frozen from then on
    coverage: dict[str, Any] = field(default_factory=dict)  # what the invoice covers


def save_draft(invoice: Invoice, coverage: dict[str, Any] | None = None) -> str:
    """Store a period's draft and what it covers (functions.invoice.cycle.Coverage as JSON):
    "created", "unchanged", "replaced" or, when it was numbered already, "numbered" (a
    numbered draft is never changed: its invoice is issued)."""
    if invoice.number is not None or invoice.kind != "invoice":
        raise ValueError("a draft is an unnumbered invoice")
    record = invoice_record(invoice)
    coverage_text = json.dumps(coverage or {}, sort_keys=True)
    digest = _digest({"invoice": record, "coverage": coverage or {}})
    sk = f"DRAFT#{invoice.period}#{check_name('account', invoice.account)}"
    current = _get(invoice.tenant, sk)
    if current is not None and "number" in current:
        return "numbered"
    if current is not None and current["digest"]["S"] == digest:
        return "unchanged"
    try:
        client("dynamodb").put_item(
            TableName=_table(),
            Item={
                **_key(invoice.tenant, sk),
                "invoice": {"S": json.dumps(record, sort_keys=True)},
                "digest": {"S": digest},
                "coverage": {"S": coverage_text},
                "issuer": {"S": invoice.issuer},
                "series": {"S": invoice.series},
            },
            ConditionExpression="attribute_not_exists(#n)",
            ExpressionAttributeNames={"#n": "number"},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return "numbered"
        raise
    return "created" if current is None else "replaced"


def _draft(item: dict[str, Any]) -> Draft:
    return Draft(
        invoice_from_record(json.loads(item["invoice"]["S"])),
        item["digest"]["S"],
        item.get("number", {}).get("S"),
        json.loads(item.get("coverage", {}).get("S", "{}")),
    )


def list_drafts(tenant: str, period: str) -> list[Draft]:
    """A period's drafts, by account."""
    return [_draft(item) for item in _query(tenant, f"DRAFT#{period}#")]


def get_draft(tenant: str, period: str, account: str) -> Draft | None:
    item = _get(tenant, f"DRAFT#{period}#{check_name('account', account)}")
    return None if item is None else _draft(item)


# --- numbers -------------------------------------------------------------------------------


def format_number(series: str, year: int, sequence: int) -> str:
    return f"{series}-{year}-{sequence:06d}"


def _seq_sk(issuer: str, series: str, year: int) -> str:
    return f"SEQ#{issuer}#{series}#{year}"


def _invoice_items(tenant: str, invoice: Invoice) -> list[dict[str, Any]]:
    """The puts that make an invoice issued: the invoice under its number and its pointer."""
    assert invoice.number is not None
    record = invoice_record(invoice)
    return [
        {
            "Put": {
                "TableName": _table(),
                "Item": {
                    **_key(tenant, f"INV#{invoice.number}"),
                    "invoice": {"S": json.dumps(record, sort_keys=True)},
                    "account": {"S": invoice.account},
                    "kind": {"S": invoice.kind},
                    "status": {"S": "issued"},
                    "credited": {"S": "0"},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Put": {
                "TableName": _table(),
                "Item": {
                    **_key(
                        tenant,
                        f"ACCOUNTINV#{invoice.account}#{invoice.issue_date}#{invoice.number}",
                    ),
                    "number": {"S": invoice.number},
                    "kind": {"S": invoice.kind},
                },
            }
        },
    ]


def _next_sequence(
    tenant: str, issuer: str, series: str, year: int, known: int | None = None
) -> tuple[int, dict]:
    """The series' next number and the conditional update that claims it (`known`: the last
    number as the caller last saw it, instead of reading it)."""
    sk = _seq_sk(issuer, series, year)
    if known is None:
        item = _get(tenant, sk)
        last = int(item["last"]["N"]) if item else 0
    else:
        item, last = ({} if known else None), known
    update: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(tenant, sk),
        "UpdateExpression": "SET #l = :n",
        "ExpressionAttributeNames": {"#l": "last"},
        "ExpressionAttributeValues": {":n": {"N": str(last + 1)}},
    }
    if item is None:
        update["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        update["ConditionExpression"] = "#l = :last"
        update["ExpressionAttributeValues"][":last"] = {"N": str(last)}
    return last + 1, {"Update": update}


def number_draft(
    tenant: str,
    period: str,
    account: str,
    *,
    draft: Draft | None = None,
    counters: dict[str, int] | None = None,
) -> str:
    """Give a period's draft its number (or return the one it has): gap-free, once.

    `draft`: the draft as just listed (saves reading it again); `counters`: the series'
    last numbers this caller gave (saves reading them again; a stale one only makes the
    transaction fail and be retried with the counter read afresh)."""
    for attempt in range(_ATTEMPTS):
        if draft is None or attempt:
            draft = get_draft(tenant, period, account)
        if draft is None:
            raise NotFoundError(f"no draft of {account!r} for {period}")
        if draft.number is not None:
            return draft.number
        invoice = draft.invoice
        year = invoice.issue_date.year
        counter = _seq_sk(invoice.issuer, invoice.series, year)
        known = None if counters is None or attempt else counters.get(counter)
        sequence, claim = _next_sequence(tenant, invoice.issuer, invoice.series, year, known)
        number = format_number(invoice.series, year, sequence)
        issued = _issued(invoice, number)
        mark = {
            "Update": {
                "TableName": _table(),
                "Key": _key(tenant, f"DRAFT#{period}#{account}"),
                "UpdateExpression": "SET #n = :number",
                "ConditionExpression": "attribute_not_exists(#n) AND digest = :digest",
                "ExpressionAttributeNames": {"#n": "number"},
                "ExpressionAttributeValues": {
                    ":number": {"S": number},
                    ":digest": {"S": draft.digest},
                },
            }
        }
        if _issue([claim, mark, *_invoice_items(tenant, issued)]) is None:
            if counters is not None:
                counters[counter] = sequence
            return number
        _backoff(attempt)
    raise ConflictError(f"could not number {account}'s {period} invoice: the series kept moving")


def _issue(items: list[dict[str, Any]]) -> list[str | None] | None:
    """One issuing transaction: None if it committed, else why each item was refused (a
    counter moved, a draft or invoice changed meanwhile: the caller reads again and retries)."""
    try:
        client("dynamodb").transact_write_items(TransactItems=items)
        return None
    except ClientError as error:
        if error.response["Error"]["Code"] not in (
            "TransactionCanceledException",
            "TransactionConflictException",
        ):
            raise
        return _cancel_codes(error)


def _issued(invoice: Invoice, number: str) -> Invoice:
    return dataclasses.replace(invoice, number=number, status="issued")


def issue_credit_note(tenant: str, note: Invoice, credited_before: Decimal) -> Invoice:
    """Number and issue a credit note against `note.credits`, whose credited total must still
    be `credited_before` (two credits at once cannot both take what is left)."""
    if note.kind != "credit_note" or note.credits is None:
        raise ValueError("not a credit note")
    for attempt in range(_ATTEMPTS):
        year = note.issue_date.year
        sequence, claim = _next_sequence(tenant, note.issuer, note.series, year)
        issued = _issued(note, format_number(note.series, year, sequence))
        credit = {
            "Update": {
                "TableName": _table(),
                "Key": _key(tenant, f"INV#{note.credits}"),
                "UpdateExpression": "SET credited = :after",
                "ConditionExpression": "credited = :before",
                "ExpressionAttributeValues": {
                    ":before": {"S": str(credited_before)},
                    ":after": {"S": str(credited_before + note.subtotal)},
                },
            }
        }
        codes = _issue([claim, credit, *_invoice_items(tenant, issued)])
        if codes is None:
            return issued
        if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            raise ConflictError(
                f"invoice {note.credits} was credited meanwhile: run the command again"
            ) from None
        _backoff(attempt)
    raise ConflictError("could not number the credit note: the series kept moving")


# --- issued invoices -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issued:
    """An issued invoice or credit note and what happened to it since."""

    invoice: Invoice  # status: the current one
    credited: Decimal  # credit notes' subtotals against it
    delivery: str | None  # None, sending, sent, bounced, no_address
    documents: dict[str, str] = field(default_factory=dict)  # format -> S3 key
    posted: bool = False
    detail: str | None = None  # delivery detail: SES message id, bounce reason
    paid: Decimal = Decimal(0)  # what payments and credit notes allocated to it


def _issued_item(item: dict[str, Any]) -> Issued:
    invoice = invoice_from_record(json.loads(item["invoice"]["S"]))
    return Issued(
        invoice=dataclasses.replace(invoice, status=item["status"]["S"]),
        credited=Decimal(item.get("credited", {}).get("S", "0")),
        delivery=item.get("delivery", {}).get("S"),
        documents={k: v["S"] for k, v in item.get("documents", {}).get("M", {}).items()},
        posted="posted" in item,
        detail=item.get("delivery_detail", {}).get("S"),
        paid=Decimal(item.get("paid", {}).get("S", "0")),
    )


def get_invoice(tenant: str, number: str) -> Issued:
    item = _get(tenant, f"INV#{number}")
    if item is None:
        raise NotFoundError(f"no invoice {number!r} in tenant {tenant!r}")
    return _issued_item(item)


def list_invoices(tenant: str, account: str | None = None) -> list[Issued]:
    """Issued invoices and credit notes: one account's in issue order, or all by number."""
    if account is None:
        return [_issued_item(item) for item in _query(tenant, "INV#")]
    numbers = [
        item["number"]["S"]
        for item in _query(tenant, f"ACCOUNTINV#{check_name('account', account)}#")
    ]
    return [get_invoice(tenant, number) for number in numbers]


@dataclass(frozen=True, slots=True)
class InvoiceRef:
    """An issued invoice's pointer (ACCOUNTINV#): enough to order and page invoices before
    reading any of them."""

    account: str
    issue_date: dt.date
    number: str
    kind: str


def list_invoice_refs(tenant: str, account: str | None = None) -> list[InvoiceRef]:
    """The pointers of one account's invoices and credit notes (or the tenant's all), by
    account and issue date: small items, one query."""
    prefix = "ACCOUNTINV#" if account is None else f"ACCOUNTINV#{check_name('account', account)}#"
    refs = []
    for item in _query(check_name("tenant", tenant), prefix):
        owner, day, number = item["sk"]["S"].removeprefix("ACCOUNTINV#").rsplit("#", 2)
        refs.append(InvoiceRef(owner, dt.date.fromisoformat(day), number, item["kind"]["S"]))
    return refs


def get_invoices(tenant: str, numbers: Iterable[str]) -> list[Issued]:
    """Issued invoices by number, in the order asked, read in batches of 100; NotFoundError
    if one is missing."""
    wanted = list(dict.fromkeys(numbers))
    found: dict[str, Issued] = {}
    dynamodb = client("dynamodb")
    for start in range(0, len(wanted), 100):
        keys = [_key(tenant, f"INV#{n}") for n in wanted[start : start + 100]]
        request = {_table(): {"Keys": keys, "ConsistentRead": True}}
        for attempt in range(_ATTEMPTS):
            page = dynamodb.batch_get_item(RequestItems=request)
            for item in page.get("Responses", {}).get(_table(), []):
                found[item["sk"]["S"].removeprefix("INV#")] = _issued_item(item)
            request = page.get("UnprocessedKeys") or {}
            if not request:
                break
            _backoff(attempt)
        else:
            raise ConflictError("DynamoDB kept keys of an invoice batch unprocessed")
    missing = [n for n in wanted if n not in found]
    if missing:
        raise NotFoundError(f"no invoice {missing[0]!r} in tenant {tenant!r}")
    return [found[n] for n in wanted]


def previous_invoice(tenant: str, account: str, before: dt.date) -> Draft | None:
    """The draft (numbered: an issued invoice) of the account's latest invoice for a period
    that started before `before`: what it covered and the remainder it carried forward."""
    for item in _query(tenant, f"ACCOUNTINV#{check_name('account', account)}#", newest_first=True):
        if item["kind"]["S"] != "invoice":
            continue
        invoice = get_invoice(tenant, item["number"]["S"]).invoice
        if invoice.period_from < before:
            return get_draft(tenant, invoice.period, account)
    return None


def carried_remainder(tenant: str, account: str, before: dt.date) -> Decimal:
    """What the account's latest invoice for a period before `before` carried forward."""
    found = previous_invoice(tenant, account, before)
    return Decimal(0) if found is None else found.invoice.carried_out


def _update(
    tenant: str,
    number: str,
    expression: str,
    values: dict,
    condition: str | None = None,
    names: dict | None = None,
) -> bool:
    request: dict[str, Any] = {
        "TableName": _table(),
        "Key": _key(tenant, f"INV#{number}"),
        "UpdateExpression": expression,
        "ExpressionAttributeValues": values,
    }
    if condition:
        request["ConditionExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = names
    try:
        client("dynamodb").update_item(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def set_documents(tenant: str, number: str, documents: dict[str, str]) -> None:
    _update(
        tenant,
        number,
        "SET documents = :d",
        {":d": {"M": {k: {"S": v} for k, v in sorted(documents.items())}}},
        condition="attribute_exists(pk)",
    )


def claim_delivery(tenant: str, number: str) -> bool:
    """Mark an invoice `sending` before it is sent: True once, False ever after (SES has no
    idempotency key, so a crash after this mark leaves it unsent rather than sent twice)."""
    return _update(
        tenant,
        number,
        "SET delivery = :s",
        {":s": {"S": "sending"}},
        condition="attribute_exists(pk) AND attribute_not_exists(delivery)",
    )


def release_delivery(tenant: str, number: str) -> bool:
    """Withdraw a `sending` claim whose message was certainly not sent (SES refused it)."""
    return _update(
        tenant,
        number,
        "REMOVE delivery",
        {":s": {"S": "sending"}},
        condition="delivery = :s",
    )


def set_delivery(tenant: str, number: str, delivery: str, detail: str = "") -> None:
    """sent (status issued -> sent), bounced or no_address, with its detail."""
    _update(
        tenant,
        number,
        "SET delivery = :d, delivery_detail = :detail",
        {":d": {"S": delivery}, ":detail": {"S": detail}},
        condition="attribute_exists(pk)",
    )
    if delivery == "sent":
        set_status(tenant, number, "sent", only_from="issued")


def set_status(tenant: str, number: str, status: str, *, only_from: str | None = None) -> bool:
    condition = "attribute_exists(pk)" + (" AND #s = :from" if only_from else "")
    values = {":s": {"S": status}}
    if only_from:
        values[":from"] = {"S": only_from}
    return _update(
        tenant, number, "SET #s = :s", values, condition=condition, names={"#s": "status"}
    )


def mark_posted(tenant: str, number: str) -> None:
    _update(tenant, number, "SET posted = :p", {":p": {"BOOL": True}})


# --- runs ----------------------------------------------------------------------------------


def save_run(tenant: str, period: str, scope: str, report: dict[str, Any]) -> None:
    """What a step of a run found (merged into the run's item), e.g. the e-invoice gaps."""
    names = {f"#k{i}": key for i, key in enumerate(report)}
    values = {
        f":v{i}": {"S": json.dumps(value, sort_keys=True)}
        for i, value in enumerate(report.values())
    }
    client("dynamodb").update_item(
        TableName=_table(),
        Key=_key(tenant, f"RUN#{period}#{scope}"),
        UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(report))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def get_run(tenant: str, period: str, scope: str) -> dict[str, Any]:
    item = _get(tenant, f"RUN#{period}#{scope}") or {}
    return {k: json.loads(v["S"]) for k, v in item.items() if k not in ("pk", "sk")}


# ==========================================================================================
# Getting paid (issue 11 §5): allocations, Stripe events, dunning steps, credit-limit levels
# ==========================================================================================
#
# Key layout (same table, pk = tenant):
#     sk=PAYALLOC#{sha256(reference)}               a payment's (or credit note's) allocation:
#                                                   account, amount, currency, credit left
#     sk=ALLOC#{account}#{invoice}#{sha256(reference)}
#                                                   one row: payment, invoice, amount, day
#     sk=STRIPE#{event id}                          a Stripe event handled (each counts once)
#     sk=DUNPOLICY#TENANT | DUNPOLICY#ACCOUNT#{account}
#                                                   a dunning policy (JSON)
#     sk=DUNNING#{account}#{invoice}#{step}         a dunning step taken (claimed before sending)
#     sk=CREDITLEVEL#{account}                      the credit-limit level last acted on
#
# An allocation is one transaction: the payment's PAYALLOC marker (attribute_not_exists: a
# payment is allocated once), and per invoice its ALLOC row and the invoice's `paid` and
# `status`, conditioned on the values the allocation was computed from; a concurrent
# allocation to the same invoice cancels it and it is computed again. So an invoice is never
# paid beyond its amount due, and its status always matches its rows.

_MAX_ALLOCATED_INVOICES = 49  # 1 marker + 2 items per invoice <= 100 per transaction


def _ref_hash(reference: str) -> str:
    return hashlib.sha256(reference.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PaymentAllocation:
    """How one payment (or credit note) was allocated; `new` False: it had been before."""

    reference: str
    account: str
    amount: Decimal
    currency: str
    day: dt.date
    allocations: tuple[Any, ...]  # functions.invoice.payments.Allocation
    credit: Decimal
    new: bool = True


def _due(issued: Issued) -> Any:
    from functions.invoice.payments import Due

    invoice = issued.invoice
    return Due(
        number=invoice.number or "",
        account=invoice.account,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=invoice.currency,
        amount_due=invoice.amount_due,
        status=invoice.status,
    )


def account_dues(tenant: str, account: str) -> list[Any]:
    """An account's issued invoices (not credit notes) as allocation sees them."""
    return [_due(i) for i in list_invoices(tenant, account) if i.invoice.kind == "invoice"]


def _allocation(item: dict[str, Any]) -> Any:
    from functions.invoice.payments import Allocation

    return Allocation(
        payment=item["payment"]["S"],
        invoice=item["invoice"]["S"],
        amount=Decimal(item["amount"]["S"]),
        day=dt.date.fromisoformat(item["day"]["S"]),
    )


def list_allocations(tenant: str, account: str, invoice: str | None = None) -> list[Any]:
    """An account's allocation rows (of one invoice if given), by invoice."""
    prefix = f"ALLOC#{check_name('account', account)}#"
    if invoice is not None:
        prefix += f"{check_name('invoice', invoice)}#"
    return [_allocation(item) for item in _query(tenant, prefix)]


def _payment_allocation(tenant: str, item: dict[str, Any], *, new: bool) -> PaymentAllocation:
    account = item["account"]["S"]
    reference = item["reference"]["S"]
    rows = [
        _allocation(row)
        for number in json.loads(item["invoices"]["S"])
        for row in _query(tenant, f"ALLOC#{account}#{number}#{_ref_hash(reference)}")
    ]
    return PaymentAllocation(
        reference=reference,
        account=account,
        amount=Decimal(item["amount"]["S"]),
        currency=item["currency"]["S"],
        day=dt.date.fromisoformat(item["day"]["S"]),
        allocations=tuple(rows),
        credit=Decimal(item["credit"]["S"]),
        new=new,
    )


def get_payment_allocation(tenant: str, reference: str) -> PaymentAllocation | None:
    item = _get(tenant, f"PAYALLOC#{_ref_hash(reference)}")
    return None if item is None else _payment_allocation(tenant, item, new=False)


def allocate_payment(
    tenant: str,
    account: str,
    reference: str,
    amount: Decimal,
    currency: str,
    day: dt.date,
    *,
    named: tuple[str, ...] = (),
) -> PaymentAllocation:
    """Allocate a recorded payment (or an issued credit note, `reference` its number) to the
    account's invoices, once per reference: the named invoice(s) first, then oldest open.

    Again with the same reference: the stored allocation, `new` False, nothing written.
    """
    from functions.invoice import payments

    check_name("account", account)
    for attempt in range(_ATTEMPTS):
        before = get_payment_allocation(tenant, reference)
        if before is not None:
            return before
        dues = account_dues(tenant, account)
        rows = list_allocations(tenant, account)
        result = payments.allocate(
            payment=reference,
            amount=amount,
            currency=currency,
            day=day,
            invoices=dues,
            allocations=rows,
            named=named,
        )
        if len(result.allocations) > _MAX_ALLOCATED_INVOICES:
            raise ValueError(
                f"a payment allocated to more than {_MAX_ALLOCATED_INVOICES} invoices at once: "
                "name the invoices in smaller payments"
            )
        items = [_allocation_marker(tenant, account, reference, currency, day, amount, result)]
        by_number = {d.number: d for d in dues}
        for row in result.allocations:
            items += _allocation_items(
                tenant, account, reference, row, by_number[row.invoice], rows
            )
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
            return PaymentAllocation(
                reference, account, amount, currency, day, result.allocations, result.credit
            )
        except ClientError as error:
            if error.response["Error"]["Code"] not in (
                "TransactionCanceledException",
                "TransactionConflictException",
            ):
                raise
        _backoff(attempt)  # allocated meanwhile (read back above) or an invoice moved
    raise ConflictError(f"could not allocate payment {reference!r}: its invoices kept changing")


def _allocation_marker(
    tenant: str,
    account: str,
    reference: str,
    currency: str,
    day: dt.date,
    amount: Decimal,
    result: Any,
) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": _table(),
            "Item": {
                **_key(tenant, f"PAYALLOC#{_ref_hash(reference)}"),
                "reference": {"S": reference},
                "account": {"S": account},
                "amount": {"S": str(amount)},
                "currency": {"S": currency},
                "day": {"S": day.isoformat()},
                "credit": {"S": str(result.credit)},
                "invoices": {"S": json.dumps([r.invoice for r in result.allocations])},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def _allocation_items(
    tenant: str, account: str, reference: str, row: Any, due: Any, rows: list[Any]
) -> list[dict[str, Any]]:
    from functions.invoice import payments

    paid_before = payments.paid_on(row.invoice, rows)
    status_after = payments.status(due, [*rows, row])
    return [
        {
            "Put": {
                "TableName": _table(),
                "Item": {
                    **_key(tenant, f"ALLOC#{account}#{row.invoice}#{_ref_hash(reference)}"),
                    "payment": {"S": reference},
                    "invoice": {"S": row.invoice},
                    "amount": {"S": str(row.amount)},
                    "day": {"S": row.day.isoformat()},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Update": {
                "TableName": _table(),
                "Key": _key(tenant, f"INV#{row.invoice}"),
                "UpdateExpression": "SET #s = :after, paid = :paid",
                # the invoice as the allocation read it: its status and what was paid on it
                "ConditionExpression": "#s = :before AND "
                + ("attribute_not_exists(paid)" if paid_before == 0 else "paid = :paid_before"),
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    ":after": {"S": status_after},
                    ":before": {"S": due.status},
                    ":paid": {"S": str(paid_before + row.amount)},
                    **({":paid_before": {"S": str(paid_before)}} if paid_before else {}),
                },
            }
        },
    ]


def allocate_credit_note(tenant: str, note: Invoice) -> PaymentAllocation:
    """An issued credit note pays the invoice it credits (its total, tax included); what that
    invoice no longer needs is account credit. Once per credit note."""
    if note.kind != "credit_note" or note.number is None or note.credits is None:
        raise ValueError("only an issued credit note is allocated")
    return allocate_payment(
        tenant,
        note.account,
        note.number,
        note.total,
        note.currency,
        note.issue_date,
        named=(note.credits,),
    )


# --- Stripe events -----------------------------------------------------------------------


def _stripe_sk(event_id: str) -> str:
    from functions.store import check_token

    return f"STRIPE#{check_token('event id', event_id)}"


def stripe_event_seen(tenant: str, event_id: str) -> bool:
    return _get(tenant, _stripe_sk(event_id)) is not None


def mark_stripe_event(tenant: str, event_id: str, event_type: str, outcome: str) -> bool:
    """Record a handled event: True the first time, False if it was recorded before."""
    try:
        client("dynamodb").put_item(
            TableName=_table(),
            Item={
                **_key(tenant, _stripe_sk(event_id)),
                "type": {"S": event_type},
                "outcome": {"S": outcome},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


# --- dunning --------------------------------------------------------------------------------


def _policy_sk(account: str | None) -> str:
    return (
        "DUNPOLICY#TENANT"
        if account is None
        else f"DUNPOLICY#ACCOUNT#{check_name('account', account)}"
    )


def set_dunning_policy(tenant: str, account: str | None, policy: Any) -> None:
    """An account's dunning policy (None: the tenant's default for its accounts)."""
    client("dynamodb").put_item(
        TableName=_table(),
        Item={**_key(tenant, _policy_sk(account)), "policy": {"S": json.dumps(policy.as_json())}},
    )


def get_dunning_policy(tenant: str, account: str | None = None) -> tuple[Any, str]:
    """(policy, where it comes from: account | tenant | default)."""
    from functions.invoice.dunning import Policy

    candidates = [(account, "account")] if account is not None else []
    for owner, source in [*candidates, (None, "tenant")]:
        item = _get(tenant, _policy_sk(owner))
        if item is not None:
            return Policy.from_json(json.loads(item["policy"]["S"])), source
    return Policy(), "default"


def dunning_steps(tenant: str, account: str) -> set[tuple[str, str]]:
    """The (invoice, step) pairs taken for an account."""
    return {
        (item["invoice"]["S"], item["step"]["S"])
        for item in _query(tenant, f"DUNNING#{check_name('account', account)}#")
    }


def claim_dunning_step(
    tenant: str, account: str, invoice: str, step: str, day: dt.date, kind: str
) -> bool:
    """Record a step as taken, before it is acted on: True once, False ever after (a crash
    after the claim leaves a reminder unsent rather than sent twice)."""
    try:
        client("dynamodb").put_item(
            TableName=_table(),
            Item={
                **_key(tenant, f"DUNNING#{check_name('account', account)}#{invoice}#{step}"),
                "invoice": {"S": invoice},
                "step": {"S": step},
                "kind": {"S": kind},
                "day": {"S": day.isoformat()},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def get_credit_level(tenant: str, account: str) -> str:
    item = _get(tenant, f"CREDITLEVEL#{check_name('account', account)}")
    return "ok" if item is None else item["level"]["S"]


def set_credit_level(tenant: str, account: str, level: str, *, before: str) -> bool:
    """Move the recorded level from `before` to `level`: False if another run moved it first
    (that run acts on the crossing, this one must not)."""
    condition = "attribute_not_exists(pk)" if before == "ok" else "#l = :before"
    values = {":level": {"S": level}}
    if before != "ok":
        values[":before"] = {"S": before}
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key=_key(tenant, f"CREDITLEVEL#{check_name('account', account)}"),
            UpdateExpression="SET #l = :level",
            ConditionExpression=condition if before != "ok" else f"({condition} OR #l = :ok)",
            ExpressionAttributeNames={"#l": "level"},
            ExpressionAttributeValues=values if before != "ok" else {**values, ":ok": {"S": "ok"}},
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True
