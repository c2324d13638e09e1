"""The API's OpenAPI 3.0 document (plain data, built here; served at GET /v1/openapi.json).

tests/api/test_openapi.py holds it to app.routes both ways and checks every route's answers
against the schemas below, so the document cannot drift from the code.
"""

from __future__ import annotations

import copy
from typing import Any

from functions.api.keys import ROLES
from functions.api.money_views import MAX_STATEMENT_DAYS
from functions.api.paging import DEFAULT_LIMIT, MAX_LIMIT
from functions.api.usage import CDR_COLUMNS
from functions.invoice.statement import ENTRY_KINDS
from functions.rate.authorization import REASONS as AUTHZ_REASONS

VERSION = "1.0.0"
METHODS = frozenset({"get", "put", "post", "patch", "delete", "head", "options"})
_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{6}$"}  # micro-units, exactly
_DAY = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
_STAMP = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$",
}
_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("Error"))


def _page(item: str) -> dict[str, Any]:
    """A list route's answer: a page of `item`s and the cursor of the next (null: the last)."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": "string", "nullable": True},
        },
    }


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
    "AccountPage": _page("Account"),
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
    # --- money (reads): statements, invoices, payments -------------------------------------
    "StatementLine": {
        "type": "object",
        "required": ["day", "booked_at", "kind", "description", "reference", "amount", "balance"],
        "additionalProperties": False,
        "properties": {
            "day": _DAY,
            "booked_at": _STAMP,
            "kind": {"type": "string", "enum": list(ENTRY_KINDS)},
            "description": {
                "type": "string",
                "description": "for keys other than tenant-admin and finance, a CDR file's "
                "name and an adjustment text naming a supplier read as the kind's plain name",
            },
            "reference": {"type": "string", "nullable": True},
            "amount": {**_DECIMAL, "description": "signed as the balance moved"},
            "balance": {**_DECIMAL, "description": "the balance after this line"},
        },
    },
    "Statement": {
        "type": "object",
        "required": [
            "account",
            "currency",
            "timezone",
            "from",
            "to",
            "opening",
            "closing",
            "lines",
        ],
        "additionalProperties": False,
        "properties": {
            "account": {"type": "string"},
            "currency": _CURRENCY,
            "timezone": {"type": "string", "description": "the tenant's: the days' zone"},
            "from": _DAY,
            "to": _DAY,
            "opening": {**_DECIMAL, "description": "every entry booked before `from`"},
            "closing": {**_DECIMAL, "description": "opening + the lines, to the micro-unit"},
            "lines": {"type": "array", "items": _ref("StatementLine")},
        },
    },
    "Invoice": {
        "type": "object",
        "required": [
            "number",
            "kind",
            "account",
            "credits",
            "issue_date",
            "due_date",
            "period",
            "period_from",
            "period_to",
            "currency",
            "net",
            "tax",
            "total",
            "amount_due",
            "paid",
            "open",
            "credited",
            "status",
            "delivery",
            "documents",
        ],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "string"},
            "kind": {"type": "string", "enum": ["invoice", "credit_note"]},
            "account": {"type": "string", "description": "the account it was issued to"},
            "credits": {
                "type": "string",
                "nullable": True,
                "description": "a credit note: the invoice it credits",
            },
            "issue_date": _DAY,
            "due_date": _DAY,
            "period": {"type": "string"},
            "period_from": _DAY,
            "period_to": _DAY,
            "currency": _CURRENCY,
            "net": _DECIMAL,
            "tax": _DECIMAL,
            "total": _DECIMAL,
            "amount_due": {**_DECIMAL, "description": "0 for a prepaid account's invoice"},
            "paid": {**_DECIMAL, "description": "payments and credit notes allocated to it"},
            "open": {**_DECIMAL, "description": "still to pay (0: a credit note, void, paid)"},
            "credited": {**_DECIMAL, "description": "credit notes against it, before tax"},
            "status": {
                "type": "string",
                "enum": ["issued", "sent", "partially_paid", "paid", "void"],
            },
            "delivery": {
                "type": "string",
                "nullable": True,
                "enum": ["sending", "sent", "bounced", "no_address", None],
            },
            "documents": {
                "type": "array",
                "items": {"type": "string", "enum": ["pdf", "xml"]},
                "description": "the documents GET /v1/invoices/{number}/{format} links to",
            },
            "issuer": {
                "type": "string",
                "description": "tenant-level keys only: carrier, or the reseller that billed",
            },
        },
    },
    "InvoicePage": _page("Invoice"),
    "Payment": {
        "type": "object",
        "required": [
            "payment_id",
            "account",
            "currency",
            "direction",
            "amount",
            "reference",
            "booked_at",
            "allocations",
            "credit",
        ],
        "additionalProperties": False,
        "properties": {
            "payment_id": {"type": "string"},
            "account": {"type": "string"},
            "currency": _CURRENCY,
            "direction": {
                "type": "string",
                "enum": ["received", "made"],
                "description": "made: the carrier paid a supplier",
            },
            "amount": {**_DECIMAL, "description": "as paid, positive"},
            "reference": {"type": "string"},
            "booked_at": _STAMP,
            "allocations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["invoice", "amount", "day"],
                    "additionalProperties": False,
                    "properties": {
                        "invoice": {"type": "string"},
                        "amount": _DECIMAL,
                        "day": _DAY,
                    },
                },
            },
            "credit": {
                **_DECIMAL,
                "nullable": True,
                "description": "what it left as account credit; null: not allocated",
            },
        },
    },
    "PaymentPage": _page("Payment"),
    "Link": {
        "type": "object",
        "required": ["url", "expires_in"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "description": "the Location header's pre-signed link"},
            "expires_in": {"type": "integer", "description": "seconds"},
        },
    },
    # --- end of money ----------------------------------------------------------------------
    # --- guards: portal sign-in
    "SignIn": {
        "type": "object",
        "required": ["user", "password", "totp"],
        "additionalProperties": False,
        "properties": {
            "user": {"type": "string"},
            "password": {"type": "string"},
            "totp": {"type": "string", "description": "the authenticator app's 6-digit code"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["token", "expires_at"],
        "additionalProperties": False,
        "properties": {
            "token": {
                "type": "string",
                "pattern": "^tgs_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$",
                "description": "send as Authorization: Bearer <token>, like an API key",
            },
            "expires_at": {"type": "string", "format": "date-time"},
        },
    },
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
    "no key, or a refused one: code missing_key, malformed_key, unknown_key, revoked_key, "
    "ip_not_allowed or expired_session"
)
_RATE_LIMITED = {
    **_error("code rate_limited: beyond the key's request rate (per second, with a burst)"),
    "headers": {
        "Retry-After": {
            "description": "whole seconds until the key may ask again",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
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


# --- money (reads): statements, invoices and their documents, payments ---------------------


def _query(name: str, description: str, schema: dict[str, Any], required=False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _money_paths(paging: list[dict[str, Any]]) -> dict[str, Any]:
    day = {"type": "string", "format": "date"}
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    account = _query(
        "account", "only this account's (404 outside the key's view)", {"type": "string"}
    )
    not_found = _error("code not_found: no such invoice (or document) in the caller's view")
    link = {
        "303": {
            **_json("a pre-signed link to the stored document (also in Location)", _ref("Link")),
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        "401": _UNAUTHORIZED,
        "404": not_found,
    }
    document_paths = {
        f"/v1/invoices/{{number}}/{fmt}": {
            "get": {
                "summary": f"the invoice's {label}: 303 to a link valid a few minutes",
                "parameters": [],
                "responses": link,
            },
            "parameters": [number],
        }
        for fmt, label in (("pdf", "PDF"), ("xml", "UBL 2.1 / Peppol BIS XML"))
    }
    return {
        "/v1/accounts/{account_id}/statement": {
            **_get(
                "an account's statement: opening balance, every journal entry, closing balance",
                _json("the statement", _ref("Statement")),
                parameters=[
                    _query("from", "first day (tenant's time zone)", day, required=True),
                    _query(
                        "to",
                        f"last day, inclusive; at most {MAX_STATEMENT_DAYS} days after `from`",
                        day,
                        required=True,
                    ),
                ],
                not_found=True,
            ),
            "parameters": [_ACCOUNT_ID],
        },
        "/v1/invoices": _get(
            "invoices and credit notes issued to accounts the key may see, by issue date",
            _json("a page of invoices", _ref("InvoicePage")),
            parameters=[account, *paging],
            not_found=True,
        ),
        "/v1/invoices/{number}": {
            "get": {
                "summary": "one invoice or credit note",
                "parameters": [],
                "responses": {
                    "200": _json("the invoice", _ref("Invoice")),
                    "401": _UNAUTHORIZED,
                    "404": not_found,
                },
            },
            "parameters": [number],
        },
        **document_paths,
        "/v1/payments": _get(
            "payments recorded for accounts the key may see, by booking time",
            _json("a page of payments", _ref("PaymentPage")),
            parameters=[
                account,
                _query("from", "booked on or after this day (tenant's time zone)", day),
                _query("to", "booked on or before this day", day),
                *paging,
            ],
            not_found=True,
        ),
    }


# --- traffic (issue 13): GET /v1/usage and GET /v1/cdrs ---------------------------------
_AMOUNT = {**_DECIMAL, "nullable": True}
_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}
_DAY = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
_TRAFFIC_SCHEMAS: dict[str, Any] = {
    "UsageItem": {
        "type": "object",
        "required": [
            "group",
            "currency",
            "attempts",
            "answered",
            "minutes",
            "asr",
            "acd",
            "amount",
        ],
        "additionalProperties": False,
        "properties": {
            "group": {"type": "string", "description": "a destination, a day or an account"},
            "currency": _CURRENCY,
            "attempts": {"type": "integer", "minimum": 1},
            "answered": {"type": "integer", "minimum": 0},
            "minutes": {
                "type": "string",
                "pattern": r"^[0-9]+\.[0-9]{4}$",
                "description": "billed seconds / 60, 4 places (half up)",
            },
            "asr": {
                "type": "number",
                "nullable": True,
                "description": "answered / attempts, percent, 2 places",
            },
            "acd": {
                "type": "number",
                "nullable": True,
                "description": "answered seconds / answered calls, 2 places; null: none answered",
            },
            "amount": {
                **_DECIMAL,
                "description": "the caller's own price (tenant level: what the top of each "
                "chain paid the carrier)",
            },
            "margin": {
                **_AMOUNT,
                "description": "resellers: their customers' price minus their own; the "
                "carrier's roles: the carrier's margin. Null: no call of the item has one",
            },
            "cost": {**_AMOUNT, "description": "the carrier's roles only: the suppliers' cost"},
        },
    },
    "Usage": {
        "type": "object",
        "required": ["from", "to", "group_by", "items"],
        "additionalProperties": False,
        "properties": {
            "from": _DAY,
            "to": _DAY,
            "group_by": {"type": "string", "enum": ["destination", "day", "account"]},
            "items": {"type": "array", "items": _ref("UsageItem")},
        },
    },
    "Cdr": {
        "type": "object",
        "required": list(CDR_COLUMNS),
        "additionalProperties": False,
        "properties": {
            "call_id": {"type": "string"},
            "account": {"type": "string", "description": "the account that sent the call"},
            "start": {"type": "string", "format": "date-time"},
            "caller": {"type": "string", "nullable": True},
            "callee": {"type": "string"},
            "destination": {"type": "string", "nullable": True},
            "duration": {"type": "integer", "description": "answered seconds"},
            "billed_seconds": {"type": "integer", "nullable": True},
            "amount": {**_AMOUNT, "description": "the caller's own price; null: unrated"},
            "currency": {**_CURRENCY, "nullable": True},
            "customer_amount": {**_AMOUNT, "description": "resellers: what the level below paid"},
            "customer_currency": {**_CURRENCY, "nullable": True},
            "margin": _AMOUNT,
            "supplier": {"type": "string", "nullable": True, "description": "carrier only"},
            "cost": {**_AMOUNT, "description": "carrier only"},
            "cost_currency": {**_CURRENCY, "nullable": True},
        },
    },
    "CdrPage": _page("Cdr"),
}


def _traffic_paths(paging: list[dict[str, Any]]) -> dict[str, Any]:
    def query(name: str, description: str, schema: dict[str, Any], required: bool = False):
        return {
            "name": name,
            "in": "query",
            "required": required,
            "description": description,
            "schema": schema,
        }

    days = [
        query("from", "first UTC day, inclusive", _DAY, True),
        query("to", "last UTC day, inclusive; at most 92 days from `from`", _DAY, True),
    ]
    account = query(
        "account",
        "one account of the caller's view: its subtree's calls (the carrier: a supplier's)",
        {"type": "string"},
    )
    usage = _get(
        "traffic per destination, day or account x currency, as the caller's prices see it",
        _json("the totals", _ref("Usage")),
        parameters=[
            *days,
            query(
                "group_by",
                "default destination",
                {"type": "string", "enum": ["destination", "day", "account"]},
            ),
            account,
        ],
        not_found=True,
    )
    cdrs = _get(
        "the calls of the caller's subtree, by start",
        {
            "description": "a page of calls (JSON), or every call as a CSV file",
            "content": {
                "application/json": {"schema": _ref("CdrPage")},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        parameters=[
            *days,
            query(
                "number",
                "digits: calls whose callee or caller (its digits) starts with them",
                {"type": "string", "pattern": "^[0-9]{1,20}$"},
            ),
            account,
            query("format", "default json", {"type": "string", "enum": ["json", "csv"]}),
            *paging,
        ],
        not_found=True,
    )
    cdrs["get"]["responses"]["303"] = {
        **_json("a CSV over the inline row limit: a pre-signed link", _ref("Link")),
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
    unprovisioned = _error(
        "code lake_not_provisioned: the tenant's query role is missing (its operator runs "
        "`tollgate access provision`)"
    )
    for route in (usage, cdrs):
        route["get"]["responses"]["409"] = unprovisioned
    return {"/v1/usage": usage, "/v1/cdrs": cdrs}


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
        # --- money (reads) --------------------------------------------------------------
        **_money_paths(paging),
        # --- end of money ---------------------------------------------------------------
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
    paths.update(_traffic_paths(paging))  # traffic (issue 13)
    paths.update(_authz_paths())  # real-time authorization (issue 14)
    # --- writes and rates (functions/api/writes.py): paths ------------------------------------
    for path, operations in _write_paths(paging).items():
        paths.setdefault(path, {}).update(operations)
    # --- end of writes and rates: paths -------------------------------------------------------
    # --- guards: portal sign-in, the one route besides Stripe's webhook without a key
    paths["/v1/sessions"] = {
        "post": {
            "summary": "sign in: a session token for a portal user (password and TOTP code)",
            "description": "The token stands for the user's role and account until "
            "`expires_at`. Every refusal is 401 bad_credentials, whatever the reason; "
            "repeated failures lock the user for a while.",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("SignIn")}},
            },
            "responses": {
                "201": _json("signed in", _ref("Session")),
                "400": _error("code bad_field; `field` names the member at fault"),
                "401": _error("code bad_credentials"),
                "429": copy.deepcopy(_RATE_LIMITED),
            },
        }
    }
    # --- guards: every operation behind a key may be refused for its rate (api/throttle.py)
    for item in paths.values():
        for method, operation in item.items():
            if method in METHODS and operation.get("security") != []:
                operation["responses"].setdefault("429", copy.deepcopy(_RATE_LIMITED))
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
                },
                # POST /v1/authz/freeswitch only: mod_xml_curl sends no bearer header
                "switchBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "user the key id, password the key tg_<key id>_<secret> "
                    "(mod_xml_curl gateway-credentials, auth-scheme basic)",
                },
            },
            "schemas": copy.deepcopy({**_SCHEMAS, **_TRAFFIC_SCHEMAS, **_AUTHZ_SCHEMAS}),
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


# --- real-time authorization (issue 14; functions/api/authz.py): POST /v1/authz -------------
_AUTHZ_SCHEMAS: dict[str, Any] = {
    "AuthzRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["event", "call_id"],
        "properties": {
            "event": {"type": "string", "enum": ["start", "interim", "stop"]},
            "call_id": {
                "type": "string",
                "description": "the switch's call id: holds are kept per call id",
                "pattern": '^[!-"$-~]{1,256}$',
            },
            "account": {"type": "string", "description": "the calling customer (or `trunk`)"},
            "trunk": {
                "type": "string",
                "description": "the ingress trunk or IP, mapped to the customer as for CDRs",
            },
            "switch": {"type": "string", "description": "narrows `trunk` to one switch"},
            "caller": {"type": "string", "maxLength": 64},
            "callee": {
                "type": "string",
                "maxLength": 64,
                "description": "required for start and interim",
            },
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "when the call started (the rate in force); default now",
            },
            "answered_seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 604800,
                "description": "interim (required) and stop: seconds answered so far",
            },
        },
    },
    "AuthzAnswer": {
        "type": "object",
        "additionalProperties": False,
        "required": ["allow", "reason", "max_duration_seconds", "hold_amount", "routes"],
        "properties": {
            "allow": {"type": "boolean"},
            "reason": {"type": "string", "enum": list(AUTHZ_REASONS)},
            "max_duration_seconds": {
                "type": "integer",
                "minimum": 0,
                "description": "start: the longest answered time; interim: the time left",
            },
            "hold_amount": {
                **_DECIMAL,
                "description": "what the call holds of the account's money",
            },
            "routes": {
                "type": "array",
                "items": {"type": "object"},
                "description": "the suppliers to try, in order: supplier, host, port, "
                "transport, prefix, gateway, cost_per_minute, cost, flagged...",
            },
            "degraded": {
                "type": "string",
                "enum": ["store_timeout", "store_unreachable", "store_throttled"],
                "description": "present when the store could not answer in time: the "
                "tenant's fallback decided (reason fallback_open or unavailable)",
            },
        },
    },
    "XmlCurlForm": {
        "type": "object",
        "description": "the fields mod_xml_curl posts for a dialplan lookup that the "
        "authorization reads (functions/api/dialects.py FORM_FIELDS: the first present of "
        "each group); every other field of the event is ignored",
        "required": ["Unique-ID", "Caller-Destination-Number"],
        "properties": {
            "section": {"type": "string", "enum": ["dialplan"]},
            "Hunt-Context": {"type": "string", "description": "the answer's context"},
            "Unique-ID": {"type": "string", "description": "the call id (the A leg's uuid)"},
            "Caller-Destination-Number": {"type": "string", "maxLength": 64},
            "Caller-Caller-ID-Number": {"type": "string", "maxLength": 64},
            "Caller-Network-Addr": {
                "type": "string",
                "description": "the trunk when no account, gateway or From host is given",
            },
            "Event-Date-Timestamp": {
                "type": "string",
                "pattern": "^[0-9]{1,17}$",
                "description": "microseconds since the epoch: the rate in force",
            },
            "variable_tollgate_account": {
                "type": "string",
                "description": "the calling account (else variable_accountcode)",
            },
            "variable_accountcode": {"type": "string"},
            "variable_sip_gateway": {"type": "string", "description": "the trunk"},
            "variable_sip_from_host": {"type": "string", "description": "the trunk"},
        },
    },
    "KamailioAnswer": {
        "type": "object",
        "additionalProperties": False,
        "required": ["allow", "reason", "max_duration"],
        "description": "?dialect=kamailio: rtjson routes and the cap for dlg_set_timeout "
        "(docs/authorization.md)",
        "properties": {
            "allow": {"type": "boolean"},
            "reason": {"type": "string"},
            "max_duration": {"type": "integer", "minimum": 0},
            "sip_code": {"type": "integer"},
            "sip_reason": {"type": "string"},
            "rtjson": {
                "type": "object",
                "required": ["version", "routing", "routes"],
                "properties": {
                    "version": {"type": "string"},
                    "routing": {"type": "string", "enum": ["serial"]},
                    "routes": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                },
            },
        },
    },
}


def _authz_paths() -> dict[str, Any]:
    return {
        "/v1/authz": {
            "post": {
                "summary": "a switch's START, INTERIM or STOP of one call: may it go on, for "
                "how long; START and INTERIM hold the call's money, STOP releases it",
                "description": "A deny is a 200 with `allow` false and its `reason`. Keys of "
                "role switch or tenant-admin.",
                "parameters": [
                    {
                        "name": "dialect",
                        "in": "query",
                        "required": False,
                        "description": "the asking switch's format (default json; a STOP is "
                        "always answered in json): functions/api/dialects.py",
                        "schema": {"type": "string", "enum": ["json", "kamailio", "freeswitch"]},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AuthzRequest")}},
                },
                "responses": {
                    "200": {
                        "description": "the answer, in the dialect asked for",
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [_ref("AuthzAnswer"), _ref("KamailioAnswer")]}
                            },
                            "text/xml": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error("code bad_field; `field` names the body member at fault"),
                    "401": _UNAUTHORIZED,
                    "403": _error("code forbidden: not a switch or tenant-admin key"),
                    "409": _error("code conflict: the account's money kept moving; ask again"),
                    "503": _error(
                        "code unavailable, with Retry-After: a STOP the store could not "
                        "record in time, or a key it could not check (START and INTERIM get "
                        "the tenant's fallback as a 200)"
                    ),
                },
            }
        },
        "/v1/authz/freeswitch": {
            "post": {
                "summary": "FreeSWITCH mod_xml_curl's dialplan lookup: the call's START, "
                "answered as the dialplan document that bridges its routes or hangs it up",
                "description": "The form mod_xml_curl posts (the channel's REQUEST_PARAMS "
                "event; other fields are ignored, each field at most once), the key as HTTP "
                "Basic (user the key id, password the key) or Bearer. Always a 200 "
                "text/xml dialplan document when the request is taken, a denial too (a "
                "`hangup` with its cause); an HTTP error makes xml_curl fall through to the "
                "next binding or the static dialplan (docs/authorization.md). Keys of role "
                "switch or tenant-admin.",
                "security": [{"switchBasic": []}, {"apiKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": _ref("XmlCurlForm")}
                    },
                },
                "responses": {
                    "200": {
                        "description": "the mod_xml_curl document: section dialplan (bridge "
                        "with sched_hangup at the max duration, or hangup CAUSE), or section "
                        'result status="not found" (no route: the static dialplan routes)',
                        "content": {"text/xml": {"schema": {"type": "string"}}},
                    },
                    "400": _error(
                        "code bad_field; `field` names the form field at fault (or `body`)"
                    ),
                    "401": {
                        **_UNAUTHORIZED,
                        "headers": {
                            "WWW-Authenticate": {
                                "description": 'Basic realm="tollgate-freeswitch"',
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "403": _error("code forbidden: not a switch or tenant-admin key"),
                    "409": _error("code conflict: the account's money kept moving; ask again"),
                    "415": _error("code unsupported_media_type: send the form, not JSON"),
                },
            }
        },
    }


# --- end of real-time authorization ---------------------------------------------------------
