"""The OpenAPI document against the app: the same routes both ways, a valid OpenAPI 3.0
document, and every answer the routes give (each documented status met at least once)
validated against the document's schema for it."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import jsonschema
import pytest
import stripe
from openapi_spec_validator import validate as validate_spec

from app import app
from functions.api import handler, signin
from functions.api.openapi import document
from functions.api.throttle import Limit, Limiter
from functions.store import accounts, users
from tests.api.conftest import WEBHOOK_SECRET
from tests.api.money_world import seed

METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
# Routes whose answers need data this module's world lacks: checked in their own modules.
CHECKED_ELSEWHERE = {"/v1/usage", "/v1/cdrs"}  # tests/api/test_traffic.py
UNAUTHENTICATED = {"/v1/webhooks/stripe/{tenant}", "/v1/sessions"}


def operations(doc: dict) -> set[tuple[str, str]]:
    return {(p, m) for p, item in doc["paths"].items() for m in item if m in METHODS}


def test_the_document_lists_exactly_the_apps_routes():
    routes = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    assert operations(document()) == routes


def test_the_document_is_valid_openapi_3_0_and_names_each_path_parameter():
    doc = document()
    validate_spec(doc)
    assert doc["openapi"].startswith("3.0.")
    for path, item in doc["paths"].items():
        for method in set(item) & METHODS:
            params = [*item.get("parameters", []), *item[method].get("parameters", [])]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            assert in_path == set(re.findall(r"{(\w+)}", path)), path
            security = item[method].get("security", doc["security"])
            # only Stripe's signed webhook and the sign-in go without a key
            assert (security == []) is (path in UNAUTHENTICATED)


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0's schema dialect as JSON Schema: `nullable` becomes a null type."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    return out


def check(doc: dict, path: str, method: str, answer, met: set) -> None:
    responses = doc["paths"][path][method]["responses"]
    status = str(answer.status_code)
    assert status in responses, (path, method, status, answer.body)
    assert answer.headers["Content-Type"] == "application/json"
    schema = responses[status]["content"]["application/json"]["schema"]
    root = {**json_schema(schema), "components": json_schema(doc["components"])}
    jsonschema.Draft202012Validator(root).validate(answer.json_body)
    met.add((path, method, status))


@pytest.fixture(scope="module")
def money(world):
    return seed()


def test_every_answer_matches_its_schema(world, money):
    doc = document()
    met: set[tuple[str, str, str]] = set()
    keys = [None, "admin", "readonly", "reseller", "customer", world.revoked, "tg_x"]
    for key in keys:
        for path, target in [
            ("/v1/me", "/v1/me"),
            ("/v1/accounts", "/v1/accounts"),
            ("/v1/accounts", "/v1/accounts?limit=1"),
            ("/v1/accounts", "/v1/accounts?limit=0"),
            ("/v1/openapi.json", "/v1/openapi.json"),
        ]:
            check(doc, path, "get", world.get(target, key), met)
        for account in ("RES_A", "CUST_A1", "CARRIER_X", "NOBODY"):
            for path in ("/v1/accounts/{account_id}", "/v1/accounts/{account_id}/balance"):
                target = path.replace("{account_id}", account)
                check(doc, path, "get", world.get(target, key), met)
    # --- money (reads) ---------------------------------------------------------------------
    statement = "/v1/accounts/{account_id}/statement"
    numbers = (money.reseller_invoice, money.customer_invoice, "INV-2026-999999")
    for key in keys:
        for account, query in [
            ("RES_A", "from=2026-03-01&to=2026-04-30"),
            ("CARRIER_X", "from=2026-03-01&to=2026-04-30"),
            ("RES_A", "from=2026-03-01"),
        ]:
            target = f"/v1/accounts/{account}/statement?{query}"
            check(doc, statement, "get", world.get(target, key), met)
        for query in ("", "?limit=1", "?account=CUST_A1", "?account=DIRECT", "?limit=0"):
            check(doc, "/v1/invoices", "get", world.get(f"/v1/invoices{query}", key), met)
            check(doc, "/v1/payments", "get", world.get(f"/v1/payments{query}", key), met)
        for number in numbers:
            for path in (
                "/v1/invoices/{number}",
                *(f"/v1/invoices/{{number}}/{f}" for f in ("pdf", "xml")),
            ):
                check(doc, path, "get", world.get(path.replace("{number}", number), key), met)
    # --- end of money ----------------------------------------------------------------------
    assert world.get("/v1/openapi.json", "customer").json_body == doc
    assert world.get("/v1/openapi.json").status_code == 401
    webhook = "/v1/webhooks/stripe/{tenant}"
    body = json.dumps({"id": "evt_api_1", "type": "customer.created", "data": {"object": {}}})
    for tenant, secret in [("acme", WEBHOOK_SECRET), ("acme", "whsec_wrong"), ("nobody", "x")]:
        header = stripe.WebhookSignature.generate_signature_header(body, secret)
        answer = world.http.post(
            f"/v1/webhooks/stripe/{tenant}",
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
            body=body.encode(),
        )
        check(doc, webhook, "post", answer, met)
    # Sign-in: a user's session (201), refused (401), a body at fault (400)
    sessions = "/v1/sessions"
    actor = accounts.caller(by="test")
    _, secret = users.create_user(
        "acme", "doc.user", "a long enough password", "customer", account="DIRECT", actor=actor
    )
    good = {"user": "doc.user", "password": "a long enough password"}
    for body in [
        {**good, "totp": signin.totp(secret, time.time())},
        {**good, "totp": "12345"},
        {**good, "totp": None},
    ]:
        answer = world.http.post(
            sessions, headers={"Content-Type": "application/json"}, body=json.dumps(body).encode()
        )
        check(doc, sessions, "post", answer, met)
    # Every operation behind a key: 429 once its key's bucket is empty (before the role, the
    # parameters and the body are looked at, so any request of the right shape will do).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(handler, "LIMITER", Limiter(Limit(1e-6, 1), clock=lambda: 0.0))
        world.get("/v1/me", "readonly")  # the one token
        for path, method in sorted(operations(doc)):
            if doc["paths"][path][method].get("security") == []:
                continue
            target = re.sub(r"{\w+}", "x", path)
            headers = {"Authorization": f"Bearer {world.keys['readonly']}"}
            if method in ("post", "put", "patch"):
                headers["Content-Type"] = "application/json"
            answer = world.http.request(method.upper(), target, headers=headers, body=b"{}")
            assert answer.headers["Retry-After"] == str(10**6), path
            check(doc, path, method, answer, met)
        for _ in range(2):  # sign-in attempts: counted per caller address
            answer = world.http.post(
                sessions, headers={"Content-Type": "application/json"}, body=b"{}"
            )
        assert answer.headers["Retry-After"] == str(10**6)
        check(doc, sessions, "post", answer, met)
    documented = {
        (p, m, s)
        for p, item in doc["paths"].items()
        if p not in CHECKED_ELSEWHERE
        for m in set(item) & METHODS
        for s in item[m]["responses"]
    }
    assert {m for m in met if m[0] not in CHECKED_ELSEWHERE} == documented
