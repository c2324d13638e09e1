"""What a caller below the carrier must never be shown, in one place: the route walk
(test_route_walk.py) and the fuzzing (test_fuzz.py) check every answer against it.

The carrier's costs, its suppliers' names and its margin stay with the carrier's own roles
(tenant-admin, finance). A reseller's own margin over its customers is its business, hence
`reseller_margin` is allowed.
"""

from __future__ import annotations

import json
import re
from typing import Any

SUPPLIER_IDS = ("CARRIER_X",)  # the world's supplier (tests/api/conftest.py)
FORBIDDEN_WORDS = ("supplier",)  # anywhere in a body, member or value, any case
# Member names (any depth) that would carry the carrier's costs, supplier or margin. What a
# reseller pays the carrier is its price, not a cost: name such members `price`, `charge` or
# `amount`. A member that must pass anyway is listed in ALLOWED_MEMBERS, with the reason.
FORBIDDEN_MEMBER = re.compile(r"cost|supplier|margin|buy_(price|rate)", re.IGNORECASE)
ALLOWED_MEMBERS = frozenset({"reseller_margin"})  # the reseller's own, over its customers
CARRIER_ROLES = frozenset({"tenant-admin", "finance"})
# Routes whose answer describes the API and holds no tenant's data (the OpenAPI document
# names the account kind "supplier" in its schemas).
NOT_TENANT_DATA = frozenset({"/v1/openapi.json"})


def members(node: Any) -> set[str]:
    """Every object member name in a JSON document, at any depth."""
    if isinstance(node, dict):
        return set(node).union(*(members(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(members(v) for v in node))
    return set()


def leaks(body: bytes | str) -> list[str]:
    """What in an answer's body a caller below the carrier must not see (empty: nothing)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    found = [s for s in SUPPLIER_IDS if s in text]
    found += [w for w in FORBIDDEN_WORDS if w in text.lower()]
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    found += sorted(
        name
        for name in members(document)
        if FORBIDDEN_MEMBER.search(name) and name not in ALLOWED_MEMBERS
    )
    return found
