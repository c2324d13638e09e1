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
        suppliers = [a.account for a in everyone if a.kind == "supplier"]
        return views.statement_view(account, statement, caller, suppliers)

    return serve(request, work, params=("from", "to"))


def _invoices_of(caller: Caller, chosen: list[AccountLike], everyone: list) -> list:
    if caller.tenant_level and len(chosen) > 1:  # one query for the tenant's all
        found = billing.list_invoices(caller.tenant)
    else:
        found = [i for a in chosen for i in billing.list_invoices(caller.tenant, a.account)]
    wanted = {a.account for a in chosen}
    seen = views.visible_invoices(caller, found, everyone)
    return [i for i in seen if i.invoice.account in wanted]


def list_invoices(request: Request) -> Any:
    def work(call: Call) -> dict[str, Any]:
        caller = call.caller
        limit = parse_limit(call.query.get("limit"))
        everyone = accounts.list_accounts(caller.tenant)
        chosen = _chosen(caller, everyone, call.query.get("account"))
        found = _invoices_of(caller, chosen, everyone)
        items, next_cursor = page(found, views.invoice_order, limit, call.query.get("cursor"))
        return {
            "items": [views.invoice_view(i, caller) for i in items],
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
        chosen = _chosen(caller, everyone, call.query.get("account"))
        since = before = None
        if first is not None or last is not None:
            timezone = accounts.get_tenant(caller.tenant).timezone
            if first is not None:
                since = period_bounds(timezone, first, first)[0]
            if last is not None:
                before = period_bounds(timezone, last, last)[1]
        found = [
            (account, entry)
            for account in chosen
            for entry in ledger.list_entries(
                caller.tenant, account.account, since=since, before=before
            )
            if entry.kind == "payment"
        ]
        items, next_cursor = page(
            found, lambda pair: views.payment_order(pair[1]), limit, call.query.get("cursor")
        )
        return {
            "items": [
                views.payment_view(
                    account, entry, billing.get_payment_allocation(caller.tenant, entry.reference)
                )
                if account.kind != "supplier"
                else views.payment_view(account, entry, None)
                for account, entry in items
            ],
            "next_cursor": next_cursor,
        }

    return serve(request, work, params=("account", "from", "to", "limit", "cursor"))
