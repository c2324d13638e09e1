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
}

# --- writes and rates (functions/api/writes.py): schemas -------------------------------------
_RATE_DECIMAL = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{8}$"}  # 10^-8, exactly
_MONEY_IN = {
    "type": "string",
    "pattern": r"^[0-9]{1,12}(\.[0-9]{1,6})?$",
    "description": "a decimal string, never a JSON number: at most 6 places",
    "example": "250.123456",
}
_SCHEMAS.update(
    {
        "NewAccount": {
            "type": "object",
            "required": ["account", "kind"],
            "additionalProperties": False,
            "properties": {
                "account": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                "kind": {
                    "type": "string",
                    "enum": ["customer", "reseller", "supplier"],
                    "description": "supplier: tenant-admin keys only",
                },
                "parent": {
                    "type": "string",
                    "nullable": True,
                    "description": "a reseller in the caller's subtree (default: the "
                    "caller's own account; null, the top level, for tenant-admin keys only)",
                },
                "prepaid": {"type": "boolean", "default": False},
                "credit_limit": {**_MONEY_IN, "default": "0"},
                "currency": {
                    "type": "string",
                    "pattern": "^[A-Z]{3}$",
                    "description": "default: the parent's, else the tenant's",
                },
            },
        },
        "AccountPatch": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "credit_limit": _MONEY_IN,
                "prepaid": {"type": "boolean"},
                "status": {"type": "string", "enum": ["active", "suspended"]},
                "reason": {
                    "type": "string",
                    "maxLength": 1024,
                    "description": "required when the status changes; kept in the audit log",
                },
                "parent": {"type": "string", "nullable": True},
                "kind": {"type": "string", "enum": ["customer", "reseller", "supplier"]},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            },
        },
        "Rate": {
            "type": "object",
            "required": [
                "prefix",
                "origin",
                "destination",
                "rate",
                "connect_fee",
                "increment",
                "minimum_charge",
                "free_seconds",
                "surcharge",
                "effective_from",
                "effective_to",
                "status",
            ],
            "additionalProperties": False,
            "properties": {
                "prefix": {"type": "string", "pattern": "^[0-9]+$"},
                "origin": {
                    "type": "string",
                    "nullable": True,
                    "description": "the callers' prefix the entry is for; null: any caller",
                },
                "destination": {"type": "string"},
                "rate": {**_RATE_DECIMAL, "description": "per minute"},
                "connect_fee": {**_RATE_DECIMAL, "description": "per answered call"},
                "increment": {
                    "type": "string",
                    "pattern": "^[0-9]+/[0-9]+$",
                    "description": "first/next billing increments, seconds",
                },
                "minimum_charge": _RATE_DECIMAL,
                "free_seconds": {"type": "integer", "minimum": 0},
                "surcharge": {**_RATE_DECIMAL, "description": "per minute, on top of the rate"},
                "effective_from": {"type": "string", "nullable": True},
                "effective_to": {"type": "string", "nullable": True},
                "status": {"type": "string", "enum": ["open", "closed"]},
            },
        },
        "RatePage": {
            "type": "object",
            "required": ["account", "currency", "version", "items", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "account": {"type": "string"},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "version": {"type": "integer", "nullable": True},
                "items": {"type": "array", "items": _ref("Rate")},
                "next_cursor": {"type": "string", "nullable": True},
            },
        },
        "DeckVersion": {
            "type": "object",
            "required": ["account", "plan", "version", "created", "mode", "currency", "rows"],
            "additionalProperties": False,
            "properties": {
                "account": {"type": "string"},
                "plan": {"type": "string"},
                "version": {"type": "integer"},
                "created": {"type": "boolean", "description": "false: the head already was it"},
                "mode": {"type": "string", "enum": ["full", "changes"]},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "effective": {"type": "string", "nullable": True},
                "rows": {"type": "integer"},
                "timeline_rows": {"type": "integer"},
                "added": {"type": "integer"},
                "unchanged": {"type": "integer"},
                "superseded": {"type": "integer"},
                "end_dated": {"type": "integer"},
                "closed": {"type": "integer"},
                "base": {"type": "integer", "nullable": True},
                "sha256": {"type": "string"},
                "uploaded_at": {"type": "string", "nullable": True},
            },
        },
        "DeckError": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "bad_deck, bad_parameter"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the deck's column at fault"},
                "line": {
                    "type": "integer",
                    "nullable": True,
                    "description": "the CSV line at fault (header = 1)",
                },
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["line", "field", "value", "message"],
                        "properties": {
                            "line": {"type": "integer"},
                            "field": {"type": "string"},
                            "value": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    }
)
# --- end of writes and rates: schemas --------------------------------------------------------

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
    # --- writes and rates (functions/api/writes.py): paths ------------------------------------
    for path, operations in _write_paths(paging).items():
        paths.setdefault(path, {}).update(operations)
    # --- end of writes and rates: paths -------------------------------------------------------
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


# --- writes and rates (functions/api/writes.py): operations -----------------------------------
_FORBIDDEN = _error(
    "code forbidden (the key's role may not write, or a reseller naming a supplier), "
    "own_account (a reseller's own account) or fraud_suspension (lifted by the carrier only)"
)
_BAD_FIELD = _error("code bad_field; `field` names the body member at fault")
_CONFLICT = _error(
    "code account_exists, parent_cycle, change_refused (the account's history forbids the "
    "kind or currency change) or conflict (changed meanwhile: try again)"
)


def _write_paths(paging: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    account = _json("the account, as GET returns it", _ref("Account"))
    return {
        "/v1/accounts": {
            "post": {
                "summary": "create a customer or reseller (suppliers: tenant-admin) in the "
                "caller's subtree; audited with the key's id",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewAccount")}},
                },
                "responses": {
                    "201": {
                        **account,
                        "headers": {
                            "Location": {
                                "description": "/v1/accounts/{account}",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "400": _BAD_FIELD,
                    "401": _UNAUTHORIZED,
                    "403": _FORBIDDEN,
                    "409": _CONFLICT,
                },
            }
        },
        "/v1/accounts/{account_id}": {
            "patch": {
                "summary": "change an account below the caller: credit limit, billing, status "
                "(with a reason), parent, kind, currency; audited with the key's id",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AccountPatch")}},
                },
                "responses": {
                    "200": account,
                    "400": _BAD_FIELD,
                    "401": _UNAUTHORIZED,
                    "403": _FORBIDDEN,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                },
            }
        },
        "/v1/accounts/{account_id}/deck": {
            "parameters": [_ACCOUNT_ID],
            "put": {
                "summary": "set an account's rate deck (a new version of its default plan), "
                "as `tollgate deck upload` does; audited with the key's id",
                "parameters": [
                    {
                        "name": "mode",
                        "in": "query",
                        "required": False,
                        "description": "full: an A-Z deck, the whole truth from its effective "
                        "date; changes: only its rows change",
                        "schema": {
                            "type": "string",
                            "enum": ["full", "changes"],
                            "default": "full",
                        },
                    },
                    {
                        "name": "effective",
                        "in": "query",
                        "required": False,
                        "description": "YYYY-MM-DD (00:00 UTC); default: the earliest "
                        "effective date in the deck, else now",
                        "schema": {"type": "string", "format": "date"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "description": "the deck CSV, the columns `tollgate deck upload` takes "
                    "(prefix, destination, rate, connect fee, increment, effective date...)",
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": _json(
                        "the head already was this deck: nothing changed", _ref("DeckVersion")
                    ),
                    "201": _json("the new active version", _ref("DeckVersion")),
                    "400": _json(
                        "code bad_deck (`line` and `field` name the first error, `errors` "
                        "lists them) or bad_parameter",
                        _ref("DeckError"),
                    ),
                    "401": _UNAUTHORIZED,
                    "403": _FORBIDDEN,
                    "404": _NOT_FOUND,
                    "409": _CONFLICT,
                },
            },
        },
        "/v1/rates": _get(
            "the rates in force now of the caller's own account (what it is charged), or of "
            "`account` in its view; tenant-level keys must name the account",
            _json("a page of rates, by prefix", _ref("RatePage")),
            parameters=[
                {
                    "name": "account",
                    "in": "query",
                    "required": False,
                    "description": "an account in the caller's view (required for "
                    "tenant-level keys)",
                    "schema": {"type": "string"},
                },
                *paging,
            ],
            not_found=True,
        ),
    }


# --- end of writes and rates: operations ------------------------------------------------------
