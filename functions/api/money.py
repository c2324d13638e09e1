"""The API's money routes (reads): an account's statement, invoices and their documents,
payments. The edge: authentication and errors in functions.api.handler.serve, what is shown in
functions.api.money_views (pure), one store read per thing needed.

Every route sees only what scope.visible lets the key see: an account, an invoice (by the
account it was issued to) or a payment outside it is 404 `not_found`, as if it did not exist.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Request

from functions.api import money_views as views
from functions.api.handler import serve
from functions.api.paging import page, parse_limit
from functions.api.requests import Call, Redirect
from functions.api.scope import AccountLike, Caller, find_visible, visible
from functions.invoice.statement import build_statement, period_bounds
from functions.store import NotFoundError, accounts, billing, documents, ledger


def _visible_account(caller: Caller, account_id: str, everyone: list) -> AccountLike:
    found = find_visible(caller, account_id, everyone)
    if found is None:
        raise views.not_found(f"account {account_id!r}")
    return found


def _chosen(caller: Caller, everyone: list, account_id: str | None) -> list[AccountLike]:
    """The accounts a list route covers: the one `?account=` names (404 outside the view) or
    every account the caller sees."""
    if account_id is not None:
        return [_visible_account(caller, account_id, everyone)]
    return visible(caller, everyone)


def _supplier_names(tenant: str, everyone: list) -> list[str]:
    """What names a supplier: its account id and its billing profile's names."""
    ids = [a.account for a in everyone if a.kind == "supplier"]
    names = list(ids)
    for profile in billing.get_profiles(tenant, ids).values():
        names += [n for n in (profile.legal_name, profile.brand) if n]
    return names


def get_statement(request: Request, account_id: str) -> Any:
    def work(call: Call) -> dict[str, Any]:
        caller = call.caller
        first, last = views.statement_period(call.query)
        everyone = accounts.list_accounts(caller.tenant)
        account = _visible_account(caller, account_id, everyone)
        timezone = accounts.get_tenant(caller.tenant).timezone
        _, end = period_bounds(timezone, first, last)
        entries = ledger.list_entries(caller.tenant, account.account, before=end)
        statement = build_statement(account.account, timezone, first, last, entries)
        suppliers = []
        if views.needs_supplier_names(caller, statement):
            suppliers = _supplier_names(caller.tenant, everyone)
        return views.statement_view(account, statement, caller, suppliers)

    return serve(request, work, params=("from", "to"))


# A few accounts: one small query each for their invoices' pointers; more: one query of the
# tenant's pointers (an invoice's pointer is ~100 bytes), filtered here.
_PER_ACCOUNT_QUERIES = 20


def list_invoices(request: Request) -> Any:
    def work(call: Call) -> dict[str, Any]:
        caller = call.caller
        limit = parse_limit(call.query.get("limit"))
        everyone = accounts.list_accounts(caller.tenant)
        chosen = {a.account for a in _chosen(caller, everyone, call.query.get("account"))}
        if len(chosen) <= _PER_ACCOUNT_QUERIES:
            refs = [r for a in sorted(chosen) for r in billing.list_invoice_refs(caller.tenant, a)]
        else:
            refs = [r for r in billing.list_invoice_refs(caller.tenant) if r.account in chosen]
        chunk, next_cursor = page(refs, views.invoice_order, limit, call.query.get("cursor"))
        found = billing.get_invoices(caller.tenant, [r.number for r in chunk])
        return {
            "items": [views.invoice_view(i, caller) for i in found],
            "next_cursor": next_cursor,
        }

    return serve(request, work, params=("account", "limit", "cursor"))


def _visible_invoice(caller: Caller, number: str) -> Any:
    views.check_number(number)
    try:
        issued = billing.get_invoice(caller.tenant, number)
    except NotFoundError:
        raise views.not_found(f"invoice {number!r}") from None
    everyone = accounts.list_accounts(caller.tenant)
    if not views.visible_invoices(caller, [issued], everyone):
        raise views.not_found(f"invoice {number!r}")
    return issued


def get_invoice(request: Request, number: str) -> Any:
    def work(call: Call) -> dict[str, Any]:
        return views.invoice_view(_visible_invoice(call.caller, number), call.caller)

    return serve(request, work)


def get_invoice_document(request: Request, number: str, fmt: str) -> Any:
    def work(call: Call) -> Redirect:
        issued = _visible_invoice(call.caller, number)
        key = views.document_key(issued, fmt)
        url = documents.presigned_url(
            key, views.LINK_SECONDS, filename=f"{issued.invoice.number}.{fmt}"
        )
        return Redirect(url, views.LINK_SECONDS)

    return serve(request, work)


def list_payments(request: Request) -> Any:
    def work(call: Call) -> dict[str, Any]:
        caller = call.caller
        limit = parse_limit(call.query.get("limit"))
        first, last = views.payment_period(call.query)
        everyone = accounts.list_accounts(caller.tenant)
        chosen = {a.account: a for a in _chosen(caller, everyone, call.query.get("account"))}
        since = before = None
        if first is not None or last is not None:
            timezone = accounts.get_tenant(caller.tenant).timezone
            since = None if first is None else period_bounds(timezone, first, first)[0]
            before = None if last is None else period_bounds(timezone, last, last)[1]
        found = [
            entry
            for entry in ledger.list_payments(caller.tenant)
            if entry.account in chosen
            and (since is None or entry.booked_at >= since)
            and (before is None or entry.booked_at < before)
        ]
        chunk, next_cursor = page(found, views.payment_order, limit, call.query.get("cursor"))
        items = []
        for entry in chunk:
            account = chosen[entry.account]
            allocation = None  # a supplier's payment is not allocated: suppliers get no invoice
            if account.kind != "supplier":
                allocation = billing.get_payment_allocation(caller.tenant, entry.reference)
            items.append(views.payment_view(account, entry, allocation))
        return {"items": items, "next_cursor": next_cursor}

    return serve(request, work, params=("account", "from", "to", "limit", "cursor"))
