"""The portal's white-label routes: GET /v1/branding (the brand the caller's portal shows)
and PUT /v1/branding (a reseller-admin sets its own account's brand, a tenant-admin the
tenant's default). The rules are functions.api.brands; the store is functions.store.branding.
"""

from __future__ import annotations

from typing import Any

from chalice import Response
from chalice.app import Request

from functions.api import brands
from functions.api.handler import serve
from functions.api.requests import Call
from functions.store import accounts, branding

WRITERS = frozenset({"reseller-admin", "tenant-admin"})


def _seen(caller_tenant: str, account: str | None) -> dict[str, Any]:
    tenant_accounts = accounts.list_accounts(caller_tenant)
    above = brands.resellers_above(account, tenant_accounts)
    found, tenant_brand = branding.get_brands(caller_tenant, above)
    brand, source = brands.resolve(account, tenant_accounts, found.get, tenant_brand)
    return brand.view(source)


def get_branding(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any]:
        return _seen(call.caller.tenant, call.caller.account)

    return serve(request, work)


def put_branding(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any]:
        brand = brands.parse_brand(call.body)
        # A reseller-admin key always holds its reseller account; a tenant-admin key none.
        actor = accounts.caller(by=f"apikey:{call.key.key_id}")
        branding.put_brand(call.caller.tenant, call.caller.account, brand, actor=actor)
        return _seen(call.caller.tenant, call.caller.account)

    return serve(request, work, roles=WRITERS, body=True)
