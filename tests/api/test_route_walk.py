"""Every GET route of the OpenAPI document, walked with a key of every role (and refused
ones): never a 5xx, every answer a documented status and, below the carrier, no supplier, cost
or margin in any answer (tests/api/leaks.py). The walk reads the document, so a route added
to it is walked without a change here; the role matrix below pins each route's status per key.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from typing import Any

import jsonschema
import pytest

from functions.api.openapi import document
from tests.api.conftest import ALL, KEYS
from tests.api.leaks import CARRIER_ROLES, NOT_TENANT_DATA, SUPPLIER_IDS, leaks
from tests.api.test_openapi import json_schema

REFUSED = ("anon", "revoked", "wrong_ip", "unknown")
DAY = dt.date(2026, 11, 1)
# Tried in order for a string parameter with a pattern: the first that matches is sent.
CANDIDATES = (DAY.isoformat(), DAY.strftime("%Y-%m"), "EUR", "1", "RES_A", "acme", "x")


def plausible(name: str, schema: dict[str, Any]) -> str:
    """A value a client would send for a required parameter, from its schema."""
    for member in ("example", "default"):
        if member in schema:
            return str(schema[member]).lower() if schema[member] is True else str(schema[member])
    if "enum" in schema:
        return str(schema["enum"][0])
    kind = schema.get("type", "string")
    if kind in ("integer", "number"):
        return str(max(int(schema.get("minimum", 1)), 1))
    if kind == "boolean":
        return "true"
    if schema.get("format") == "date" or "date" in name or name in ("from", "to"):
        return DAY.isoformat()
    if schema.get("format") == "date-time":
        return f"{DAY.isoformat()}T00:00:00Z"
    pattern = schema.get("pattern")
    if pattern:
        return next((c for c in CANDIDATES if re.search(pattern, c)), "x")
    return "acme" if name == "tenant" else "x"


def get_operations() -> list[tuple[str, dict[str, Any]]]:
    """(path, operation) of every GET in the document, with the path's own parameters."""
    found = []
    for path, item in document()["paths"].items():
        if "get" in item:
            params = [*item.get("parameters", []), *item["get"].get("parameters", [])]
            found.append((path, {**item["get"], "parameters": params}))
    return found


def targets(path: str, operation: dict[str, Any]) -> list[str]:
    """The URLs to ask for a path: each world account (and one that does not exist) in an
    account parameter, a plausible value in any other, required query parameters filled."""
    params = operation["parameters"]
    choices = []
    for param in (p for p in params if p["in"] == "path"):
        name = param["name"]
        if "account" in name:
            choices.append([(name, a) for a in [*ALL, "NOBODY"]])
        else:
            choices.append([(name, plausible(name, param.get("schema", {})))])
    query = "&".join(
        f"{p['name']}={plausible(p['name'], p.get('schema', {}))}"
        for p in params
        if p["in"] == "query" and p.get("required")
    )
    urls = []
    for combination in itertools.product(*choices):
        url = path
        for name, value in combination:
            url = url.replace("{" + name + "}", value)
        urls.append(url + (f"?{query}" if query else ""))
    return urls


def ask(world, url: str, key: str):
    if key == "anon":
        return world.get(url)
    presented = {"revoked": world.revoked, "wrong_ip": world.wrong_ip, "unknown": world.unknown}
    return world.get(url, presented.get(key, key))


def conforms(operation: dict[str, Any], answer, components: dict[str, Any]) -> None:
    responses = operation["responses"]
    status = str(answer.status_code)
    assert status in responses, (status, answer.body[:300])
    content = responses[status].get("content", {})
    if answer.headers.get("Content-Type") == "application/json" and "application/json" in content:
        schema = json_schema(content["application/json"]["schema"])
        jsonschema.Draft202012Validator({**schema, "components": components}).validate(
            answer.json_body
        )


@pytest.mark.parametrize("path", [p for p, _ in get_operations()])
def test_every_get_route_with_every_key(world, path):
    operation = dict(get_operations())[path]
    doc = document()
    components = json_schema(doc["components"])
    for url in targets(path, operation):
        for key in [*KEYS, *REFUSED]:
            answer = ask(world, url, key)
            assert answer.status_code < 500, (url, key, answer.body[:300])
            conforms(operation, answer, components)
            role = KEYS[key][0] if key in KEYS else None
            if role in CARRIER_ROLES or path in NOT_TENANT_DATA:
                continue
            named = next((s for s in SUPPLIER_IDS if s in url), None)
            if named is None:
                assert leaks(answer.body) == [], (url, key)
            else:
                # Asking for the supplier by name: the answer one gets for an account that
                # does not exist, word for word (nothing tells the supplier is there).
                missing = ask(world, url.replace(named, "NOBODY"), key)
                assert answer.status_code == missing.status_code, (url, key)
                assert answer.body.replace(named.encode(), b"NOBODY") == missing.body


def test_the_walk_covers_every_get_route_and_account():
    """The walk asks each GET path at least once, and each account path for every account."""
    for path, operation in get_operations():
        urls = targets(path, operation)
        assert urls, path
        if "{account_id}" in path:
            assert {u.split("/")[3].split("?")[0] for u in urls} == {*ALL, "NOBODY"}


def test_plausible_values_of_required_parameters():
    assert plausible("from", {"type": "string", "format": "date"}) == "2026-11-01"
    assert plausible("month", {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}$"}) == "2026-11"
    assert plausible("currency", {"type": "string", "pattern": "^[A-Z]{3}$"}) == "EUR"
    assert plausible("limit", {"type": "integer", "minimum": 1, "maximum": 200}) == "1"
    assert plausible("status", {"type": "string", "enum": ["open", "paid"]}) == "open"
    assert plausible("prepaid", {"type": "boolean"}) == "true"
    assert plausible("tenant", {"type": "string"}) == "acme"


# The role matrix: each route's status for each key. A route added to the document needs its
# row here (test_the_matrix_names_every_get_route says which are missing).
KEY_COLUMNS = ["admin", "finance", "readonly", "reseller", "readonly_res", "customer", "direct"]
KEY_COLUMNS += list(REFUSED)
MATRIX = """
route                          admin fin ro  res ro_res cust direct anon revoked wrong_ip unknown
/v1/me                         200   200 200 200 200    200  200    401  401     401      401
/v1/accounts                   200   200 200 200 200    200  200    401  401     401      401
/v1/accounts?limit=0           400   400 400 400 400    400  400    401  401     401      401
/v1/accounts/RES_A             200   200 200 200 200    404  404    401  401     401      401
/v1/accounts/CUST_A1           200   200 200 200 200    200  404    401  401     401      401
/v1/accounts/DIRECT            200   200 200 404 404    404  200    401  401     401      401
/v1/accounts/CARRIER_X         200   200 404 404 404    404  404    401  401     401      401
/v1/accounts/NOBODY            404   404 404 404 404    404  404    401  401     401      401
/v1/accounts/RES_A/balance     200   200 200 200 200    404  404    401  401     401      401
/v1/accounts/CUST_A1/balance   200   200 200 200 200    200  404    401  401     401      401
/v1/accounts/DIRECT/balance    200   200 200 404 404    404  200    401  401     401      401
/v1/accounts/CARRIER_X/balance 200   200 404 404 404    404  404    401  401     401      401
/v1/openapi.json               200   200 200 200 200    200  200    401  401     401      401
/v1/accounts/RES_A/statement?{D} 200 200 200 200 200 404 404 401 401 401 401
/v1/accounts/CARRIER_X/statement?{D} 200 200 404 404 404 404 404 401 401 401 401
/v1/accounts/RES_A/statement   400   400 400 400 400    400  400    401  401     401      401
/v1/invoices                   200   200 200 200 200    200  200    401  401     401      401
/v1/invoices/INV-2026-000001   404   404 404 404 404    404  404    401  401     401      401
/v1/invoices/INV-2026-000001/pdf 404 404 404 404 404    404  404    401  401     401      401
/v1/invoices/INV-2026-000001/xml 404 404 404 404 404    404  404    401  401     401      401
/v1/payments                   200   200 200 200 200    200  200    401  401     401      401
/v1/branding                   200   200 200 200 200    200  200    401  401     401      401
/v1/rates                      400   400 400 200 200    200  200    401  401     401      401
/v1/rates?account=CUST_A1      200   200 200 200 200    200  404    401  401     401      401
/v1/rates?account=CARRIER_X    200   200 404 404 404    404  404    401  401     401      401
/v1/usage?{D} 200 200 200 200 200 200 200 401 401     401      401
/v1/usage?from=2026-01-01      400   400 400 400 400    400  400    401  401     401      401
/v1/cdrs?{D} 200 200 200 200 200 200 200 401 401      401      401
"""


def matrix() -> dict[tuple[str, str], int]:
    text = MATRIX.replace("{D}", "from=2026-01-01&to=2026-01-31")  # {D}: a month of days
    rows = [line.split() for line in text.strip().splitlines()[1:]]
    return {
        (row[0], key): int(s) for row in rows for key, s in zip(KEY_COLUMNS, row[1:], strict=True)
    }


def template_of(url: str) -> str:
    bare = url.split("?")[0]
    for path, _ in get_operations():
        if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", path), bare):
            return path
    raise AssertionError(f"{url} is no GET route of the document")


def test_the_matrix_names_every_get_route():
    named = {template_of(url) for url, _ in matrix()}
    assert sorted({p for p, _ in get_operations()} - named) == []


def test_role_matrix(world):
    got = {(url, key): ask(world, url, key).status_code for url, key in matrix()}
    wrong = {cell: (got[cell], want) for cell, want in matrix().items() if got[cell] != want}
    assert wrong == {}, json.dumps({f"{u} {k}": v for (u, k), v in wrong.items()}, indent=1)


def test_leaks_finds_supplier_costs_and_margin_at_any_depth():
    assert leaks(b'{"items": [{"account": "RES_A", "reseller_margin": "1.00"}]}') == []
    body = {"items": [{"lines": [{"supplier_cost": "0.1", "carrier_margin": "0.2"}]}]}
    assert leaks(json.dumps(body)) == ["supplier", "carrier_margin", "supplier_cost"]
    assert leaks(b'{"route": "CARRIER_X"}') == ["CARRIER_X"]
    assert leaks(b'{"kind": "Supplier"}') == ["supplier"]
    assert leaks(b'{"unit_cost": "1"}') == ["unit_cost"]
