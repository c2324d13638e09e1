"""The invoice cycle's steps, one function per task of infra/invoice_cycle.asl.json.

Each step takes the state machine's small JSON (tenant, period, account, issue date, a chunk's
key) and the stores as ports (functions/invoice/handler.py passes the real adapters; tests may
pass fakes), and survives running twice:

- aggregate: which accounts the period bills (a customer or reseller whose profile's cycle is
  the period's, with charges booked in it), each account's postings of the period from the
  ledger (in the account's time zone), and its usage per component x destination x rate from
  the lake (cdrs_charges of the files those postings booked). Writes chunks of accounts to
  the documents bucket (runs/...): the same period gives the same chunks.
- draft: per chunk, each account's draft (functions.invoice.drafts) with its profiles, the
  FX rate in force at the period's end and the remainder its last invoice carried; a draft
  that was numbered is never touched again.
- number: every draft of the run, by account, gets its gap-free number (one writer).
- render: PDF, UBL XML, the lines' CSV and the CDR annex of each numbered invoice into the
  documents bucket under its number (unchanged bytes are not written again).
- send: e-mail with the PDF and XML, at most once (claimed before sending).
- post: the invoice's tax to the ledger, once per invoice number; a prepaid invoice (nothing
  due) is paid.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from functions.invoice.cycles import CYCLES, Period, last_closed, parse_period
from functions.invoice.drafts import (
    Conversion,
    FeeRow,
    Invoice,
    UsageRow,
    build_credit_note,
    build_invoice,
)
from functions.invoice.lake_sql import check_day
from functions.invoice.profiles import BillingProfile
from functions.invoice.statement import INVOICED_KINDS, period_bounds
from functions.shared.ids import check_name, check_token

BILLED_KINDS = ("customer", "reseller")  # a supplier is paid, not invoiced
READERS = 16  # concurrent per-account reads of a step (DynamoDB queries, one per account)
CHUNK_ACCOUNTS = 100  # accounts per chunk: one draft / render / send invocation each
FILES_PER_QUERY = 500  # file ids per lake query (Athena's query text stays far below 256 KB)
# A file booked in the period holds calls of days before it (late files): its charges are
# looked up this far back; older calls land on the re-rating differences line instead.
LOOKBACK_DAYS = 62
# A posting is stamped just before its transaction commits (retries included: seconds), so
# one stamped shortly before a run's cut-off may commit after the run read the journal. The
# next run reads back this far before the previous cut-off and skips what that invoice
# already had (its `tail`): a posting committed late is invoiced next time, never lost.
SETTLE = dt.timedelta(minutes=15)
USAGE_COMPONENTS = ("usage", "tier", "bundle", "surcharge", "did")
FEE_COMPONENT = {"recurring": "recurring", "tier": "true_up", "adjustment": "adjustment"}
MICRO = Decimal("0.000001")


class MailNotSent(Exception):
    """The mail service refused a message: it was certainly not sent (it may be tried again).

    Any other failure of a send leaves it unknown whether the message went out."""


class Documents(Protocol):
    def get(self, key: str) -> bytes: ...

    def put(self, key: str, body: bytes, content_type: str) -> None: ...


class Mail(Protocol):
    def send(
        self,
        *,
        display_name: str,
        to: str,
        reply_to: str | None,
        subject: str,
        text: str,
        attachments: Sequence[tuple[str, bytes, str]],
        tags: dict[str, str] | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class Ports:
    accounts: Any  # functions.store.accounts
    ledger: Any  # functions.store.ledger
    billing: Any  # functions.store.billing
    documents: Documents
    mail: Mail
    lake: Callable[[str, str, Sequence[str]], list[dict[str, Any]]]  # (tenant, sql, days)
    clock: Callable[[], dt.datetime]  # now, aware: a run's cut-off


@dataclass(frozen=True, slots=True)
class RunArgs:
    tenant: str
    period: Period
    account: str | None
    issue_date: dt.date

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> RunArgs:
        tenant = check_name("tenant", event["tenant"])
        period = parse_period(event["period"])
        account = event.get("account")
        issue_date = dt.date.fromisoformat(check_day(event["issue_date"]))
        if issue_date <= period.last_day:
            raise ValueError(
                f"the issue date {issue_date} must come after the period {period} "
                f"(it ends {period.last_day})"
            )
        return cls(
            tenant, period, None if account is None else check_name("account", account), issue_date
        )

    @property
    def scope(self) -> str:
        return self.account or "all"

    def chunk_key(self, index: int) -> str:
        return f"runs/{self.tenant}/{self.period}/{self.scope}/chunk-{index:04d}.json"


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _instant(moment: dt.datetime) -> str:
    """A UTC instant as both engines' TIMESTAMP literal (their timestamps are UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True, slots=True)
class Scope:
    """Which of the lake's charges an invoice of a group of accounts covers.

    `pairs` (account/file) are the files whose charges were booked in the accounts' window:
    all their calls before `end` are billed now. `carried` pairs are files an earlier invoice
    deferred: their calls from `carried_from` to `end` are billed now. Calls at or after `end`
    are deferred to the next invoice (bucket `later`)."""

    end: dt.datetime
    carried_from: dt.datetime | None
    pairs: tuple[str, ...]
    carried: tuple[str, ...] = ()

    def where(self, first: str, last: str, alias: str = "") -> str:
        c = alias
        window = f"{c}account || '/' || {c}file_id IN ({_sql_list(self.pairs) or 'NULL'})"
        if self.carried and self.carried_from is not None:
            window = (
                f"({window} OR ({c}account || '/' || {c}file_id IN ({_sql_list(self.carried)})"
                f" AND {c}start_time >= TIMESTAMP '{_instant(self.carried_from)}'))"
            )
        return (
            f"{c}status = 'rated'\n  AND {c}date BETWEEN '{check_day(first)}' AND "
            f"'{check_day(last)}'\n  AND {c}component IN ({_sql_list(USAGE_COMPONENTS)})\n"
            f"  AND {window}"
        )

    def bucket(self, alias: str = "") -> str:
        end = _instant(self.end)
        return f"CASE WHEN {alias}start_time >= TIMESTAMP '{end}' THEN 'later' ELSE 'now' END"


def pair(account: str, file_id: str) -> str:
    return f"{check_name('account', account)}/{check_token('file id', file_id)}"


def usage_sql(scope: Scope, first: str, last: str) -> str:
    """The covered charges per account x bucket x component x destination x rate."""
    return f"""SELECT account, bucket, component, destination, rate,
    sum(billed_seconds) AS billed_seconds, count(*) AS calls, sum(amount) AS amount
FROM (SELECT *, {scope.bucket()} AS bucket FROM cdrs_charges
WHERE {scope.where(first, last)}) covered
GROUP BY account, bucket, component, destination, rate
ORDER BY account, bucket, component, destination, rate"""


def deferred_sql(scope: Scope, first: str, last: str) -> str:
    """The files holding covered calls at or after the period's end, per account."""
    return f"""SELECT DISTINCT account, file_id FROM cdrs_charges
WHERE {scope.where(first, last)}
  AND start_time >= TIMESTAMP '{_instant(scope.end)}'
ORDER BY account, file_id"""


def annex_sql(scope: Scope, first: str, last: str) -> str:
    """Every call billed now behind the usage lines: the invoice's CDR annex."""
    return f"""SELECT c.account, c.call_id, c.start_time, r.caller, r.callee, c.destination,
    c.billed_seconds, c.rate, c.amount
FROM cdrs_charges c
JOIN cdrs_rated r ON r.file_id = c.file_id AND r.line = c.line AND r.date = c.date
WHERE {scope.where(first, last, "c.")}
  AND c.start_time < TIMESTAMP '{_instant(scope.end)}'
ORDER BY c.account, c.start_time, c.call_id, c.component"""


def lake_days(period: Period, cutoff: dt.datetime) -> tuple[str, str]:
    """The UTC days whose partitions can hold covered calls: from LOOKBACK_DAYS before the
    period to the run's cut-off (a file booked by then holds no later call)."""
    first = period.first_day - dt.timedelta(days=LOOKBACK_DAYS)
    last = cutoff.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return first.isoformat(), last.isoformat()


def _days(first: str, last: str) -> list[str]:
    start, stop = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=n)).isoformat() for n in range((stop - start).days + 1)]


def _micro(value: Any) -> int:
    """A lake amount (Decimal from DuckDB, a string from Athena) in exact micro-units."""
    exact = Decimal(str(value)) / MICRO
    if exact != exact.to_integral_value():
        raise ValueError(f"amount {value} has more than 6 decimals")
    return int(exact)


def _scopes(billable: Sequence[dict[str, Any]]) -> list[Scope]:
    """The accounts' scopes, one per (period end, carried-from) they share, in batches."""
    groups: dict[tuple[str, str | None], tuple[list[str], list[str]]] = {}
    for a in billable:
        pairs, carried = groups.setdefault((a["end"], a["carried_from"]), ([], []))
        pairs += [pair(a["account"], f) for f in a["files"]]
        carried += [pair(a["account"], f) for f in a["carried_files"]]
    scopes = []
    for (end, carried_from), (pairs, carried) in sorted(groups.items()):
        for start in range(0, max(len(pairs), len(carried), 1), FILES_PER_QUERY):
            scopes.append(
                Scope(
                    dt.datetime.fromisoformat(end),
                    None if carried_from is None else dt.datetime.fromisoformat(carried_from),
                    tuple(pairs[start : start + FILES_PER_QUERY]),
                    tuple(carried[start : start + FILES_PER_QUERY]),
                )
            )
    return [s for s in scopes if s.pairs or s.carried]


def _usage(
    ports: Ports, run: RunArgs, billable: Sequence[dict[str, Any]], cutoff: dt.datetime
) -> tuple[dict[str, list], dict[str, int], dict[str, list[str]]]:
    """Per account: the usage rows billed now, the amount deferred, the files deferred."""
    first, last = lake_days(run.period, cutoff)
    days = _days(first, last)
    sums: dict[tuple, list[int]] = {}
    deferred: dict[str, int] = {}
    files: dict[str, set[str]] = {}
    for scope in _scopes(billable):
        for row in ports.lake(run.tenant, usage_sql(scope, first, last), days):
            amount = _micro(row["amount"] or 0)
            if row["bucket"] == "later":
                deferred[row["account"]] = deferred.get(row["account"], 0) + amount
                continue
            rate = str(Decimal(str(row["rate"])).normalize())
            key = (row["account"], row["component"], row["destination"] or "", rate)
            total = sums.setdefault(key, [0, 0, 0])
            total[0] += int(row["billed_seconds"] or 0)
            total[1] += int(row["calls"])
            total[2] += amount
        for row in ports.lake(run.tenant, deferred_sql(scope, first, last), days):
            files.setdefault(row["account"], set()).add(row["file_id"])
    usage: dict[str, list] = {}
    for (account, component, destination, rate), (seconds, calls, amount) in sorted(sums.items()):
        usage.setdefault(account, []).append([component, destination, rate, seconds, calls, amount])
    return usage, deferred, {account: sorted(found) for account, found in files.items()}


def fee_description(entry: Any) -> str:
    text = entry.description or entry.reference or entry.kind
    return f"Adjustment: {text}" if entry.kind == "adjustment" else text


def entry_key(entry: Any) -> str:
    """A journal entry's identity within its account: when it was booked and by what."""
    return f"{entry.booked_at.isoformat()}|{entry.kind}|{entry.posting_id}"


def aggregate(event: Mapping[str, Any], ports: Ports) -> dict[str, Any]:
    """Step 1: the accounts the period bills and what each invoice covers, in chunks in S3.

    An account's invoice covers the charges booked since its previous invoice's cut-off and
    before this run's, for calls before the period's end (in the account's time zone), plus
    the calls an earlier invoice deferred; calls after the end are deferred in turn. So every
    posting is invoiced exactly once, a late file on the next invoice. The cut-off is the
    first run's time, kept in the run's manifest: running the step again reuses it all.
    """
    run = RunArgs.of(event)
    manifest = run.chunk_key(0).rsplit("/", 1)[0] + "/manifest.json"
    try:
        return json.loads(ports.documents.get(manifest))
    except LookupError:
        pass
    cutoff = ports.clock()
    owner = ports.accounts.get_tenant(run.tenant)
    profiles = ports.billing.list_profiles(run.tenant)
    accounts = [
        a
        for a in ports.accounts.list_accounts(run.tenant)
        if a.kind in BILLED_KINDS and run.account in (None, a.account)
    ]
    if run.account is not None and not accounts:
        raise ValueError(f"{run.account!r} is not a customer or reseller of {run.tenant!r}")
    in_cycle = []
    for account in sorted(accounts, key=lambda a: a.account):
        profile = profiles.get(account.account) or BillingProfile(run.tenant, account.account)
        if profile.cycle != run.period.cycle:
            continue
        _, end = period_bounds(
            profile.timezone or owner.timezone, run.period.first_day, run.period.last_day
        )
        if cutoff < end:
            raise ValueError(f"period {run.period} has not ended for {account.account} yet")
        in_cycle.append((account, end))

    def booked(item: tuple[Any, dt.datetime]) -> dict[str, Any] | None:
        account, end = item
        previous = ports.billing.previous_invoice(run.tenant, account.account, run.period.first_day)
        covered = previous.coverage if previous is not None else {}
        since = dt.datetime.fromisoformat(covered["cutoff"]) - SETTLE if covered else None
        invoiced_before = set(covered.get("tail", []))
        entries = [
            e
            for e in ports.ledger.list_entries(
                run.tenant, account.account, since=since, before=cutoff
            )
            if e.kind in INVOICED_KINDS and entry_key(e) not in invoiced_before
        ]
        if not entries and not covered.get("deferred_files"):
            return (
                None  # nothing booked, nothing deferred: no invoice (a zero invoice helps no one)
            )
        return {
            "account": account.account,
            "parent": account.parent,
            "prepaid": account.prepaid,
            "currency": account.currency,
            "end": end.isoformat(),
            "carried_from": covered.get("end"),
            # the ledger's sign is the balance's: a charge lowers it; an invoice states
            # what is owed
            "posted": -sum(e.amount for e in entries),
            "carried_micro": covered.get("deferred_micro", 0),
            "files": sorted({e.posting_id for e in entries if e.kind == "charges"}),
            "tail": sorted(entry_key(e) for e in entries if e.booked_at >= cutoff - SETTLE),
            "carried_files": covered.get("deferred_files", []),
            "fees": [
                [FEE_COMPONENT[e.kind], fee_description(e), -e.amount]
                for e in entries
                if e.kind in FEE_COMPONENT
            ],
            "carried_in": str(previous.invoice.carried_out if previous else Decimal(0)),
        }

    # Two reads per account (its previous invoice, its journal since then): concurrent, as
    # the accounts are independent; boto3's clients are thread-safe.
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        billable = [found for found in pool.map(booked, in_cycle) if found is not None]
    usage, deferred, deferred_files = _usage(ports, run, billable, cutoff)
    keys = []
    for index, start in enumerate(range(0, len(billable), CHUNK_ACCOUNTS)):
        chunk = []
        for a in billable[start : start + CHUNK_ACCOUNTS]:
            name = a["account"]
            coverage = {
                "cutoff": cutoff.isoformat(),
                "end": a["end"],
                "deferred_micro": deferred.get(name, 0),
                "deferred_files": deferred_files.get(name, []),
                "tail": a["tail"],
            }
            # what this invoice states: the window's postings, less what they hold for
            # calls after the end, plus what the previous invoice held back
            owed = a["posted"] - coverage["deferred_micro"] + a["carried_micro"]
            chunk.append({**a, "usage": usage.get(name, []), "owed": owed, "coverage": coverage})
        body = json.dumps({"accounts": chunk}, sort_keys=True).encode()
        keys.append(run.chunk_key(index))
        ports.documents.put(keys[-1], body, "application/json")
    result = {"chunks": keys, "accounts": len(billable), "cutoff": cutoff.isoformat()}
    ports.documents.put(manifest, json.dumps(result, sort_keys=True).encode(), "application/json")
    return result


def _chunk(ports: Ports, key: str) -> list[dict[str, Any]]:
    return json.loads(ports.documents.get(key))["accounts"]


def default_series(issuer: str) -> str:
    """A reseller's series when its profile names none: its id's letters and digits."""
    return "".join(ch for ch in issuer.upper() if ch.isalnum())[:10] or "INV"


def seller_profile(
    profiles: Mapping[str | None, BillingProfile], tenant: str, issuer: str
) -> BillingProfile:
    """Who issues: the carrier (the tenant's own profile) or a reseller (white label)."""
    if issuer == "carrier":
        return profiles.get(None) or BillingProfile(tenant, None)
    seller = profiles.get(issuer) or BillingProfile(tenant, issuer)
    return seller if seller.series else dataclasses.replace(seller, series=default_series(issuer))


def draft(event: Mapping[str, Any], ports: Ports) -> dict[str, Any]:
    """Step 2 (per chunk): each account's draft; the e-invoice gaps and what stopped one."""
    run = RunArgs.of(event)
    entries = _chunk(ports, event["chunk"])
    # the chunk's accounts, their resellers (white label) and the tenant: not every profile
    wanted = {
        None,
        *(e["account"] for e in entries),
        *(e["parent"] for e in entries if e["parent"]),
    }
    profiles = ports.billing.get_profiles(run.tenant, wanted)
    saved: dict[str, int] = {}
    gaps: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    for entry in entries:
        account = entry["account"]
        buyer = profiles.get(account) or BillingProfile(run.tenant, account)
        issuer = entry["parent"] or "carrier"
        seller = seller_profile(profiles, run.tenant, issuer)
        currency = buyer.currency or entry["currency"]
        conversion = None
        if currency != entry["currency"]:
            fx = ports.billing.fx_rate_on(
                run.tenant, entry["currency"], currency, run.period.last_day
            )
            if fx is None:
                problems[account] = (
                    f"no FX rate {entry['currency']}->{currency} on or before "
                    f"{run.period.last_day}: tollgate billing fx {run.tenant} ..."
                )
                continue
            conversion = Conversion(entry["currency"], currency, fx.rate, fx.day, fx.source)
        invoice = build_invoice(
            tenant=run.tenant,
            account=account,
            issuer=issuer,
            period=run.period,
            issue_date=run.issue_date,
            seller=seller,
            buyer=buyer,
            account_currency=entry["currency"],
            usage=[UsageRow(c, d, Decimal(r), s, n, a) for c, d, r, s, n, a in entry["usage"]],
            fees=[FeeRow(c, d, a) for c, d, a in entry["fees"]],
            posted_micro=entry["owed"],
            prepaid=entry["prepaid"],
            carried_in=Decimal(entry["carried_in"]),
            conversion=conversion,
        )
        status = ports.billing.save_draft(invoice, entry["coverage"])
        saved[status] = saved.get(status, 0) + 1
        if invoice.gaps:
            gaps[account] = list(invoice.gaps)
    return {"saved": saved, "gaps": gaps, "problems": problems}


def _drafts_in_scope(ports: Ports, run: RunArgs) -> list:
    drafts = ports.billing.list_drafts(run.tenant, str(run.period))
    return sorted(
        (d for d in drafts if run.account in (None, d.invoice.account)),
        key=lambda d: d.invoice.account,
    )


def number(event: Mapping[str, Any], ports: Ports) -> dict[str, Any]:
    """Step 3 (one writer): number every draft of the run, in account order."""
    run = RunArgs.of(event)
    numbered = 0
    counters: dict[str, int] = {}  # each series' last number, as this step gave it
    for found in _drafts_in_scope(ports, run):
        ports.billing.number_draft(
            run.tenant, str(run.period), found.invoice.account, draft=found, counters=counters
        )
        numbered += 1
    return {"numbered": numbered}


def _issued_in_chunk(ports: Ports, run: RunArgs, key: str) -> Iterable[tuple[dict, Any]]:
    for entry in _chunk(ports, key):
        found = ports.billing.get_draft(run.tenant, str(run.period), entry["account"])
        if found is not None and found.number is not None:
            yield entry, ports.billing.get_invoice(run.tenant, found.number)


def document_key(tenant: str, number: str, name: str) -> str:
    return f"invoices/{tenant}/{number}/{name}"


def documents_of(invoice: Invoice, annex: Iterable[Mapping[str, Any]] | None) -> dict:
    """Every document of an issued invoice: kind -> (file name, bytes, content type)."""
    from functions.invoice.pdf import invoice_pdf
    from functions.invoice.tables import cdr_annex_csv, lines_csv, summary_csv
    from functions.invoice.ubl import invoice_xml

    number = invoice.number
    found = {
        "pdf": (f"{number}.pdf", invoice_pdf(invoice), "application/pdf"),
        "xml": (f"{number}.xml", invoice_xml(invoice), "application/xml"),
        "lines": (f"{number}-lines.csv", lines_csv(invoice), "text/csv"),
        "summary": (f"{number}-summary.csv", summary_csv(invoice), "text/csv"),
    }
    if annex is not None:
        found["cdrs"] = (f"{number}-cdrs.csv", cdr_annex_csv(annex), "text/csv")
    return found


def store_documents(ports: Ports, invoice: Invoice, annex: Iterable[Mapping] | None) -> dict:
    """Render and store an issued invoice's documents; their keys by kind."""
    keys = {}
    for kind, (name, body, content_type) in documents_of(invoice, annex).items():
        keys[kind] = document_key(invoice.tenant, invoice.number, name)
        ports.documents.put(keys[kind], body, content_type)
    ports.billing.set_documents(invoice.tenant, invoice.number, keys)
    return keys


def _annex(ports: Ports, run: RunArgs, entries: Sequence[dict]) -> dict[str, list[dict]]:
    if not entries:
        return {}
    first, last = lake_days(run.period, dt.datetime.fromisoformat(entries[0]["coverage"]["cutoff"]))
    rows: dict[str, list[dict]] = {}
    for scope in _scopes(entries):
        for row in ports.lake(run.tenant, annex_sql(scope, first, last), _days(first, last)):
            rows.setdefault(row["account"], []).append(row)
    return rows


def render(event: Mapping[str, Any], ports: Ports) -> dict[str, Any]:
    """Step 4 (per chunk): each numbered invoice's documents, stored under its number."""
    run = RunArgs.of(event)
    issued = list(_issued_in_chunk(ports, run, event["chunk"]))
    annex = _annex(ports, run, [entry for entry, _ in issued])
    for entry, found in issued:
        store_documents(ports, found.invoice, annex.get(entry["account"], []))
    return {"rendered": len(issued)}


def mail_text(invoice: Invoice) -> tuple[str, str]:
    """Subject and body of an invoice's e-mail (the PDF and XML are attached)."""
    what = "Credit note" if invoice.kind == "credit_note" else "Invoice"
    subject = f"{what} {invoice.number} from {invoice.brand}"
    body = (
        f"{what} {invoice.number} for {invoice.period_from} to {invoice.period_to}: "
        f"{invoice.total} {invoice.currency}"
        + (f", due {invoice.due_date}." if invoice.amount_due > 0 else ".")
        + "\nThe PDF and the e-invoice (UBL XML) are attached.\n"
    )
    return subject, body


def deliver(ports: Ports, found: Any) -> str:
    """E-mail one issued invoice at most once: its delivery state after the attempt."""
    invoice: Invoice = found.invoice
    if found.delivery is not None:
        return found.delivery
    if not invoice.buyer.email:
        if ports.billing.claim_delivery(invoice.tenant, invoice.number):
            ports.billing.set_delivery(invoice.tenant, invoice.number, "no_address")
        return "no_address"
    if not ports.billing.claim_delivery(invoice.tenant, invoice.number):
        return "sending"  # another attempt claimed it: never send twice
    subject, text = mail_text(invoice)
    # the documents as stored by render (the same bytes the customer can download later)
    attachments = [
        (f"{invoice.number}.{kind}", ports.documents.get(found.documents[kind]), content_type)
        for kind, content_type in (("pdf", "application/pdf"), ("xml", "application/xml"))
    ]
    try:
        message = ports.mail.send(
            display_name=invoice.brand,
            to=invoice.buyer.email,
            reply_to=invoice.seller.email,
            subject=subject,
            text=text,
            attachments=attachments,
            tags={"tenant": invoice.tenant, "invoice": invoice.number},
        )
    except MailNotSent:
        # refused, so not sent: the claim goes, and the task's retry sends it. Any other
        # failure keeps the claim: it may have gone out, and it must not go twice.
        ports.billing.release_delivery(invoice.tenant, invoice.number)
        raise
    ports.billing.set_delivery(invoice.tenant, invoice.number, "sent", message)
    return "sent"


def send(event: Mapping[str, Any], ports: Ports) -> dict[str, Any]:
    """Step 5 (per chunk): e-mail each numbered invoice with its PDF and XML, once."""
    run = RunArgs.of(event)
    outcome: dict[str, int] = {}
    for _, found in _issued_in_chunk(ports, run, event["chunk"]):
        state = deliver(ports, found)
        outcome[state] = outcome.get(state, 0) + 1
    return outcome


def account_micro(invoice: Invoice, amount: Decimal) -> int:
    """An invoice amount in the account's (ledger's) currency, micro-units, half up."""
    if invoice.conversion is not None:
        amount = amount / invoice.conversion.rate
    return int((amount / MICRO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def post_invoice(ports: Ports, found: Any) -> bool:
    """Post what issuing moved (the tax; a credit note's credit), once. True if posted now."""
    invoice: Invoice = found.invoice
    if found.posted:
        return False
    if invoice.kind == "credit_note":  # what it gives back, tax included
        kind, amount, reference = "credit", invoice.total, f"credit:{invoice.number}"
        description = f"credit note {invoice.number} on {invoice.credits}"
    else:  # the tax is what issuing adds to what the account owes
        kind, amount, reference = "tax", invoice.tax_total, f"invoice:{invoice.number}"
        description = f"tax on invoice {invoice.number}"
    micro = account_micro(invoice, amount)
    if micro > 0:
        ports.ledger.record_invoice_posting(
            invoice.tenant,
            invoice.account,
            micro,
            kind=kind,
            reference=reference,
            description=description,
        )
    paid_already = invoice.kind == "invoice" and invoice.amount_due == 0  # prepaid
    if paid_already and invoice.status in ("issued", "sent"):
        ports.billing.set_status(invoice.tenant, invoice.number, "paid")
    ports.billing.mark_posted(invoice.tenant, invoice.number)
    return True


def post(event: Mapping[str, Any], ports: Ports) -> dict[str, Any]:
    """Step 6: every numbered invoice of the run posted to the ledger once."""
    run = RunArgs.of(event)
    posted = already = 0
    numbers = [found.number for found in _drafts_in_scope(ports, run) if found.number]
    with ThreadPoolExecutor(max_workers=READERS) as pool:  # the reads concurrent
        issued = list(pool.map(lambda n: ports.billing.get_invoice(run.tenant, n), numbers))
    for found in issued:  # the postings one after another
        if post_invoice(ports, found):
            posted += 1
        else:
            already += 1
    return {"posted": posted, "already_posted": already}


def credit(
    ports: Ports,
    tenant: str,
    number: str,
    *,
    reason: str,
    amount: Decimal | None,
    issue_date: dt.date,
) -> Invoice:
    """Issue a credit note against an issued invoice: numbered, documents stored, posted."""
    found = ports.billing.get_invoice(tenant, number)
    if found.invoice.status == "void":
        raise ValueError(f"invoice {number} is void")
    note = build_credit_note(
        found.invoice,
        issue_date=issue_date,
        reason=reason,
        amount=amount,
        credited_before=found.credited,
    )
    issued = ports.billing.issue_credit_note(tenant, note, found.credited)
    store_documents(ports, issued, None)
    post_invoice(ports, ports.billing.get_invoice(tenant, issued.number))
    # settled like a payment against the invoice it credits (its status follows)
    ports.billing.allocate_credit_note(tenant, issued)
    if found.credited + issued.subtotal == found.invoice.subtotal:
        # credited in full: the invoice is cancelled, nothing is owed on it any more
        ports.billing.set_status(tenant, number, "void")
    return issued


# --- the daily start and what SES reports back --------------------------------------------


def periods_due(cycles: Iterable[str], today: dt.date) -> list[Period]:
    """The latest closed period of each cycle in use on `today` (in the tenant's zone): what
    the daily schedule starts a run for. A run that exists already is left alone."""
    return [last_closed(cycle, today) for cycle in CYCLES if cycle in set(cycles)]


@dataclass(frozen=True, slots=True)
class MailOutcome:
    """What SES said became of an invoice's message (its event, through EventBridge)."""

    tenant: str
    number: str
    delivery: str  # bounced | complained
    detail: str


def mail_outcome(event: Mapping[str, Any]) -> MailOutcome | None:
    """An SES event (EventBridge, detail-type "Email Bounced" or "Email Complaint Received")
    for one of our invoices, named by the message's tags; None for anything else (a transient
    bounce: SES retries it itself)."""
    detail = event.get("detail") or {}
    tags = (detail.get("mail") or {}).get("tags") or {}
    tenant, number = (tags.get("tenant") or [None])[0], (tags.get("invoice") or [None])[0]
    if not tenant or not number:
        return None
    kind = event.get("detail-type")
    if kind == "Email Bounced":
        bounce = detail.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return None
        reasons = [
            r.get("diagnosticCode") or r.get("status") or ""
            for r in bounce.get("bouncedRecipients") or []
        ]
        text = f"{bounce.get('bounceSubType', 'bounce')}: {'; '.join(filter(None, reasons))}"
        return MailOutcome(tenant, number, "bounced", text.strip().rstrip(":"))
    if kind == "Email Complaint Received":
        complaint = detail.get("complaint") or {}
        return MailOutcome(
            tenant, number, "complained", complaint.get("complaintFeedbackType") or "complaint"
        )
    return None
