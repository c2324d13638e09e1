"""The OpenAPI document fuzzed with schemathesis against the app in-process: every operation,
with valid and invalid input, under a tenant-admin key and a reseller key. No answer is a 5xx,
each has a documented status, content type and schema, and the reseller's show no supplier,
cost or margin (tests/api/leaks.py).

Chalice is neither WSGI nor ASGI: `wsgi` below hands each request to Chalice's local gateway
(the chalice.test client of the shared `world`). Bounded and reproducible: a few examples per
operation and mode, derandomized, no example database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from functions.api.openapi import document
from tests.api.conftest import ALL
from tests.api.leaks import NOT_TENANT_DATA, leaks

EXAMPLES = 25  # per operation, mode and key
SCHEMA = schemathesis.openapi.from_dict(document())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def wsgi(http) -> Callable[[dict[str, Any], Callable], Iterable[bytes]]:
    """A WSGI app over Chalice's local gateway. The path is passed as sent (still
    percent-encoded, as API Gateway matches it), the query string as is."""

    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        raw = environ.get("RAW_URI") or quote(environ.get("PATH_INFO", "/").encode("latin-1"))
        if "?" not in raw and environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
        headers = {
            name[5:].replace("_", "-").lower(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        answer = http.request(environ["REQUEST_METHOD"], raw, headers=headers, body=body)
        status = f"{answer.status_code} {HTTPStatus(answer.status_code).phrase}"
        start_response(status, [(k, str(v)) for k, v in answer.headers.items()])
        return [answer.body or b""]

    return app


def strategy(operation, mode: GenerationMode):
    """The operation's cases; a path parameter naming an account also gets the world's
    accounts (random ids alone would only ever meet 404)."""
    cases = [operation.as_strategy(mode)]
    names = [p.name for p in operation.path_parameters if "account" in p.name]
    if names and mode.is_positive:
        cases += [operation.as_strategy(mode, path_parameters={n: a for n in names}) for a in ALL]
    return st.one_of(cases)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("key", ["admin", "reseller"])
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_fuzz_every_operation(world, label, key, mode):
    operation = OPERATIONS[label]
    app = wsgi(world.http)
    auth = {"Authorization": f"Bearer {world.keys[key]}"}
    checks = CHECKS if mode.is_positive else [*CHECKS, negative_data_rejection]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy(operation, mode))
    def fuzz(case):
        response = case.call(app=app, headers=auth)
        case.validate_response(response, checks=checks, headers=auth)
        below_carrier = key == "reseller" and operation.path not in NOT_TENANT_DATA
        if below_carrier and "CARRIER_X" not in str(case.path_parameters):
            assert leaks(response.content) == [], (case.path_parameters, case.query)

    fuzz()
