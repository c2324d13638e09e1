"""Errors Chalice itself answers, in the API's shape: `{"code", "message"}`, a stable code.

Chalice refuses a method a route lacks (405), a request body of a media type the route does
not take (415) and answers an exception no route caught (500) with `{"Code", "Message"}` of
its own. This HTTP middleware (app.py) rewrites those to the API's error shape, so a client
branches on one `code` member whatever answered; an unexpected exception is logged with its
traceback (by Chalice, or here if one escapes it) and answered 500 `internal_error`, telling
the client nothing of it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from chalice import Response

LOG = logging.getLogger(__name__)
_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def _snake(code: str) -> str:
    """Chalice's `MethodNotAllowedError` -> `method_not_allowed`."""
    if code == "InternalServerError":
        return "internal_error"
    words = re.sub(r"(?<!^)(?=[A-Z])", "_", code.removesuffix("Error")).lower()
    return words or "error"


def api_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    try:
        response = get_response(event)
    except Exception:
        LOG.exception("unhandled error in an API route")
        body = {"code": "internal_error", "message": "internal error; it has been logged"}
        return Response(body=body, status_code=500, headers=_HEADERS)
    body = response.body
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            return response
    if isinstance(body, dict) and set(body) == {"Code", "Message"}:
        code = _snake(str(body["Code"]))
        message = str(body["Message"])
        if code == "internal_error":  # Chalice logged the traceback (its app log)
            message = "internal error; it has been logged"
        answer = {"code": code, "message": message}
        headers = {**(response.headers or {}), **_HEADERS}
        return Response(body=answer, status_code=response.status_code, headers=headers)
    return response
