"""The API's OpenAPI 3.0 document (plain data, built here; served at GET /v1/openapi.json).

tests/api/test_openapi.py holds it to app.routes both ways and checks every route's answers
against the schemas below, so the document cannot drift from the code.
"""

from __future__ import annotations

import copy
from typing import Any

from functions.api.keys import ROLES
from functions.api.paging import DEFAULT_LIMIT, MAX_LIMIT

VERSION = "1.0.0"
_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{6}$"}  # micro-units, exactly


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("Error"))


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "string", "description": "stable; safe to branch on"},
            "message": {"type": "string"},
            "field": {
                "type": "string",
                "description": "the query parameter or body member at fault (400)",
            },
        },
    },
    "Me": {
        "type": "object",
        "required": ["key_id", "tenant", "role", "account", "allow_ips"],
        "additionalProperties": False,
        "properties": {
            "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "tenant": {"type": "string"},
            "role": {"type": "string", "enum": list(ROLES)},
            "account": {"type": "string", "nullable": True},
            "allow_ips": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Account": {
        "type": "object",
        "required": [
            "account",
            "kind",
            "parent",
            "prepaid",
            "credit_limit",
            "currency",
            "status",
        ],
        "additionalProperties": False,
        "properties": {
            "account": {"type": "string"},
            "kind": {"type": "string", "enum": ["customer", "reseller", "supplier"]},
            "parent": {
                "type": "string",
                "nullable": True,
                "description": "null above the caller's own account",
            },
            "prepaid": {"type": "boolean"},
            "credit_limit": _DECIMAL,
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "status": {"type": "string", "enum": ["active", "suspended"]},
            "status_reason": {
                "type": "string",
                "nullable": True,
                "description": "tenant-level keys only",
            },
        },
    },
    "AccountPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref("Account")},
            "next_cursor": {"type": "string", "nullable": True},
        },
    },
    "Balance": {
        "type": "object",
        "required": ["account", "currency", "balance", "reserved"],
        "additionalProperties": False,
        "properties": {
            "account": {"type": "string"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "balance": _DECIMAL,
            "reserved": _DECIMAL,
        },
    },
    "StripeOutcome": {
        "type": "object",
        "required": ["event", "outcome"],
        "properties": {
            "event": {"type": "string"},
            "outcome": {
                "type": "string",
                "enum": ["ignored", "duplicate", "recorded", "already recorded"],
            },
            "payment": {"type": "string"},
            "allocations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["invoice", "amount"],
                    "properties": {"invoice": {"type": "string"}, "amount": {"type": "string"}},
                },
            },
            "credit": {"type": "string"},
        },
    },
    "OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]},
    # --- the portal's white label (GET/PUT /v1/branding) ---
    "BrandColors": {
        "type": "object",
        "required": ["primary", "accent"],
        "additionalProperties": False,
        "properties": {
            "primary": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
            "accent": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        },
    },
    "BrandInput": {
        "type": "object",
        "required": ["name", "colors"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "logo": {
                "type": "string",
                "nullable": True,
                "pattern": "^data:image/(png|jpeg);base64,",
                "description": "a PNG or JPEG of at most 64 KiB as a data: URL (no SVG)",
            },
            "colors": _ref("BrandColors"),
        },
    },
    "Brand": {
        "type": "object",
        "required": ["name", "logo", "colors", "source"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "logo": {"type": "string", "nullable": True},
            "colors": _ref("BrandColors"),
            "source": {
                "type": "string",
                "enum": ["reseller", "tenant", "tollgate"],
                "description": "the nearest reseller's brand, the tenant's default or "
                "Tollgate's own",
            },
        },
    },
}

_UNAUTHORIZED = _error(
    "no key, or a refused one: code missing_key, malformed_key, unknown_key, revoked_key "
    "or ip_not_allowed"
)
_NOT_FOUND = _error("code not_found: no such account in the caller's view")
_ACCOUNT_ID = {
    "name": "account_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


def _get(summary: str, ok: dict[str, Any], *, parameters=(), not_found=False) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok, "401": _UNAUTHORIZED}
    if parameters:
        responses["400"] = _error("code bad_parameter; `field` names the parameter")
    if not_found:
        responses["404"] = _NOT_FOUND
    return {"get": {"summary": summary, "parameters": list(parameters), "responses": responses}}


def document() -> dict[str, Any]:
    """The whole document, a fresh dict each call (callers may change theirs)."""
    paging = [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "the previous page's next_cursor, as given (opaque)",
            "schema": {"type": "string"},
        },
    ]
    paths: dict[str, Any] = {
        "/v1/me": _get("the key's own record", _json("the key", _ref("Me"))),
        "/v1/accounts": _get(
            "the accounts the key may see, by account id",
            _json("a page of accounts", _ref("AccountPage")),
            parameters=paging,
        ),
        "/v1/accounts/{account_id}": {
            **_get("one account", _json("the account", _ref("Account")), not_found=True),
            "parameters": [_ACCOUNT_ID],
        },
        "/v1/accounts/{account_id}/balance": {
            **_get(
                "an account's ledger balance and reserved amount",
                _json("the balance", _ref("Balance")),
                not_found=True,
            ),
            "parameters": [_ACCOUNT_ID],
        },
        # Every route authenticates, the document too (it names no tenant's data, but a
        # route that answers without a key is one more thing to reason about).
        "/v1/openapi.json": _get("this document", _json("OpenAPI 3.0", _ref("OpenApiDocument"))),
        # --- the portal's white label ---
        "/v1/branding": {
            **_get(
                "the brand the caller's portal shows: the nearest reseller at or above the "
                "key's account that has one, else the tenant's default, else Tollgate's",
                _json("the brand", _ref("Brand")),
            ),
            "put": {
                "summary": "set the brand: a reseller-admin its own account's (its customers "
                "see it), a tenant-admin the tenant's default",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("BrandInput")}},
                },
                "responses": {
                    "200": _json("the brand the caller now sees", _ref("Brand")),
                    "400": _error("code bad_field; `field` names the member at fault"),
                    "401": _UNAUTHORIZED,
                    "403": _error("code forbidden: not a reseller-admin or tenant-admin key"),
                },
            },
        },
        "/v1/webhooks/stripe/{tenant}": {
            "post": {
                "summary": "Stripe's payment events for a tenant",
                "description": "Authenticated by the Stripe-Signature header (the tenant's "
                "webhook signing secret), not by an API key: Stripe cannot send one.",
                "security": [],
                "parameters": [
                    {
                        "name": "tenant",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "Stripe-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "200": _json("the event's outcome", _ref("StripeOutcome")),
                    "400": _error("code bad_signature, bad_event or unknown_account"),
                    "404": _error("code unknown_tenant"),
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Tollgate API", "version": VERSION},
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer tg_<key id>_<secret> "
                    "(tollgate apikey create)",
                }
            },
            "schemas": copy.deepcopy(_SCHEMAS),
        },
    }
