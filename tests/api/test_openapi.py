"""The OpenAPI document against the app: the same routes both ways, a valid OpenAPI 3.0
document, and every answer the routes give (each documented status met at least once)
validated against the document's schema for it."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import stripe
from openapi_spec_validator import validate as validate_spec

from app import app
from functions.api.openapi import document
from tests.api.conftest import WEBHOOK_SECRET

METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


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
            # only Stripe's signed webhook goes without a key
            assert (security == []) is (path == "/v1/webhooks/stripe/{tenant}")


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


def test_every_answer_matches_its_schema(world):
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
    documented = {
        (p, m, s)
        for p, item in doc["paths"].items()
        for m in set(item) & METHODS
        for s in item[m]["responses"]
    }
    assert met == documented
