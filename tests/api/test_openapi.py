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
CHECKED_ELSEWHERE |= {"/v1/authz"}  # tests/api/test_authz_route.py
CHECKED_ELSEWHERE |= {"/v1/authz/freeswitch"}  # tests/api/test_xml_curl.py
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


def send(world, method: str, path: str, key, body=b"", content_type="application/json"):
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {world.keys.get(key, key)}"
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return world.http.request(method, path, headers=headers, body=body)


def exercise_writes(world, doc: dict, met: set, monkeypatch) -> None:
    """The writes and rates routes (functions/api/writes.py), each documented status met.
    They write: after every read above, on accounts of their own (this module's world)."""
    from functions.store import decks

    accounts_path, one, deck = (
        "/v1/accounts",
        "/v1/accounts/{account_id}",
        ("/v1/accounts/{account_id}/deck"),
    )
    for key, body in [
        ("reseller", {"account": "OA_NEW", "kind": "customer", "credit_limit": "250.123456"}),
        ("admin", {"account": "OA_SUP", "kind": "supplier"}),
        ("admin", {"account": "OA_SUBR", "kind": "reseller", "parent": "RES_A"}),
        ("reseller", {"account": "OA_NEW", "kind": "customer"}),  # 409
        ("reseller", {"account": "OA_X", "kind": "customer", "credit_limit": 1}),  # 400
        ("customer", {"account": "OA_Y", "kind": "customer"}),  # 403
        (None, {"account": "OA_Z", "kind": "customer"}),  # 401
    ]:
        check(doc, accounts_path, "post", send(world, "POST", accounts_path, key, body), met)
    for key, account, body in [
        ("reseller", "OA_NEW", {"status": "suspended", "reason": "unpaid"}),
        ("admin", "OA_NEW", {"prepaid": True}),
        ("reseller", "OA_NEW", {"status": "active"}),  # 400: no reason
        ("reseller", "RES_A", {"prepaid": True}),  # 403 own_account
        ("finance", "OA_NEW", {"prepaid": True}),  # 403 forbidden
        ("reseller", "DIRECT", {"prepaid": True}),  # 404
        ("admin", "RES_A", {"parent": "OA_SUBR"}),  # 409 parent_cycle
        (None, "OA_NEW", {}),
    ]:
        target = one.replace("{account_id}", account)
        check(doc, one, "patch", send(world, "PATCH", target, key, body), met)
    csv = b"prefix,destination,rate,connect fee,increment\n44,UK,0.01234567,0.05,60/6\n"
    for key, account, body in [
        ("reseller", "CUST_A1", csv),  # 201
        ("reseller", "CUST_A1", csv),  # 200: already the head
        ("reseller", "CUST_A1", b"prefix,rate\n44,abc\n"),  # 400 bad_deck
        ("reseller", "RES_A", csv),  # 403 own_account
        ("reseller", "CARRIER_X", csv),  # 404
        (None, "CUST_A1", csv),
    ]:
        target = deck.replace("{account_id}", account)
        check(doc, deck, "put", send(world, "PUT", target, key, body, "text/csv"), met)
    with monkeypatch.context() as patch:  # other uploads keep landing first: 409
        patch.setattr(decks, "_RACE_ATTEMPTS", 0)
        answer = send(world, "PUT", "/v1/accounts/OA_NEW/deck", "admin", csv, "text/csv")
        assert answer.json_body["code"] == "conflict"
        check(doc, deck, "put", answer, met)
    for key, target in [
        ("customer", "/v1/rates"),
        ("admin", "/v1/rates?account=CARRIER_X&limit=1"),
        ("admin", "/v1/rates"),  # 400: a tenant-level key names the account
        ("reseller", "/v1/rates?account=DIRECT"),  # 404
        (None, "/v1/rates"),
    ]:
        check(doc, "/v1/rates", "get", world.get(target, key), met)
    items = world.get("/v1/rates", "customer").json_body["items"]
    assert [(r["prefix"], r["rate"], r["connect_fee"]) for r in items] == [
        ("44", "0.01234567", "0.05000000")
    ]


def branding_answers(world, doc: dict, met: set) -> None:
    """GET and PUT /v1/branding: every documented status, each answer against its schema."""
    brand = {
        "name": "Acme Voice",
        "logo": None,
        "colors": {"primary": "#123456", "accent": "#abcdef"},
    }
    for key, body in [
        (None, brand),
        ("customer", brand),
        ("reseller", {**brand, "logo": "data:image/svg+xml;base64,PHN2Zz4="}),
        ("reseller", brand),
        ("admin", {**brand, "name": "Acme Carrier"}),
    ]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {world.keys[key]}"
        answer = world.http.put("/v1/branding", headers=headers, body=json.dumps(body))
        check(doc, "/v1/branding", "put", answer, met)
    for key in (None, "admin", "reseller", "customer", "direct"):
        check(doc, "/v1/branding", "get", world.get("/v1/branding", key), met)


def test_every_answer_matches_its_schema(world, money, monkeypatch):
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
    branding_answers(world, doc, met)
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
    exercise_writes(world, doc, met, monkeypatch)
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
            if method in ("post", "put", "patch"):  # the body's documented type (text/csv...)
                media = doc["paths"][path][method]["requestBody"]["content"]
                headers["Content-Type"] = next(iter(media))
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
