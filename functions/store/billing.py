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

import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Iterator
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


def save_draft(invoice: Invoice) -> str:
    """Store a period's draft: "created", "unchanged", "replaced" or, when it was numbered
    already, "numbered" (a numbered draft is never changed: its invoice is issued)."""
    if invoice.number is not None or invoice.kind != "invoice":
        raise ValueError("a draft is an unnumbered invoice")
    record = invoice_record(invoice)
    digest = _digest(record)
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


def _next_sequence(tenant: str, issuer: str, series: str, year: int) -> tuple[int, dict]:
    """The series' next number and the conditional update that claims it."""
    sk = _seq_sk(issuer, series, year)
    item = _get(tenant, sk)
    last = int(item["last"]["N"]) if item else 0
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


def number_draft(tenant: str, period: str, account: str) -> str:
    """Give a period's draft its number (or return the one it has): gap-free, once."""
    for attempt in range(_ATTEMPTS):
        draft = get_draft(tenant, period, account)
        if draft is None:
            raise NotFoundError(f"no draft of {account!r} for {period}")
        if draft.number is not None:
            return draft.number
        invoice = draft.invoice
        year = invoice.issue_date.year
        sequence, claim = _next_sequence(tenant, invoice.issuer, invoice.series, year)
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
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[claim, mark, *_invoice_items(tenant, issued)]
            )
            return number
        except ClientError as error:
            if error.response["Error"]["Code"] not in (
                "TransactionCanceledException",
                "TransactionConflictException",
            ):
                raise
        _backoff(attempt)
    raise ConflictError(f"could not number {account}'s {period} invoice: the series kept moving")


def _issued(invoice: Invoice, number: str) -> Invoice:
    import dataclasses

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
        try:
            client("dynamodb").transact_write_items(
                TransactItems=[claim, credit, *_invoice_items(tenant, issued)]
            )
            return issued
        except ClientError as error:
            if error.response["Error"]["Code"] not in (
                "TransactionCanceledException",
                "TransactionConflictException",
            ):
                raise
            codes = _cancel_codes(error)
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


def _issued_item(item: dict[str, Any]) -> Issued:
    import dataclasses

    invoice = invoice_from_record(json.loads(item["invoice"]["S"]))
    return Issued(
        invoice=dataclasses.replace(invoice, status=item["status"]["S"]),
        credited=Decimal(item.get("credited", {}).get("S", "0")),
        delivery=item.get("delivery", {}).get("S"),
        documents={k: v["S"] for k, v in item.get("documents", {}).get("M", {}).items()},
        posted="posted" in item,
        detail=item.get("delivery_detail", {}).get("S"),
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


def carried_remainder(tenant: str, account: str, before: dt.date) -> Decimal:
    """What the account's latest invoice for a period before `before` carried forward."""
    for item in _query(tenant, f"ACCOUNTINV#{check_name('account', account)}#", newest_first=True):
        if item["kind"]["S"] != "invoice":
            continue
        invoice = get_invoice(tenant, item["number"]["S"]).invoice
        if invoice.period_from < before:
            return invoice.carried_out
    return Decimal(0)


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
