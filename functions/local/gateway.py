"""Chalice's local API Gateway answering its own refusals as the deployed one does.

On AWS the stage's GatewayResponses (infra/package.yaml, made from functions.api.usagekeys.
GATEWAY_RESPONSES) give API Gateway's refusals the API's `{"code", "message"}` shape: a
missing Authorization header (UNAUTHORIZED, the authorizer is not called) is 401 missing_key,
the authorizer's Deny (ACCESS_DENIED) 401 malformed_key. Chalice's local gateway runs the same
authorizer (app.py `usage_key`) but answers those with its own bodies; this one answers them
from the same table. The local stack has no usage plan: what API Gateway's key check and
limits refuse on AWS (INVALID_API_KEY, THROTTLED) reaches serve() here, which refuses it with
the same codes (unknown_key, revoked_key; rate_limited from functions/api/throttle.py).

    LocalGateway(app, config)._authorizer = Authorizer(app)  # functions/local/web.py
    use_gateway_responses(chalice.test.Client(app).http)    # the tests' client
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Chalice
from chalice.local import (
    ForbiddenError,
    LocalGatewayAuthorizer,
    LocalGatewayException,
    NotAuthorizedError,
)

from functions.api.usagekeys import GATEWAY_RESPONSES

__all__ = ["Authorizer", "GatewayRefusal", "use_gateway_responses"]


class GatewayRefusal(LocalGatewayException):
    """One of API Gateway's own answers, as the stage's GatewayResponses shape it."""

    def __init__(self, response_type: str) -> None:
        response = GATEWAY_RESPONSES[response_type]
        super().__init__(response.headers(), json.dumps(response.body()).encode())
        self.CODE = response.status
        self.response_type = response_type


class Authorizer(LocalGatewayAuthorizer):
    """Chalice's local authorizer run, its refusals answered as the deployed stage's."""

    def authorize(self, raw_path: str, lambda_event: Any, lambda_context: Any) -> Any:
        try:
            return super().authorize(raw_path, lambda_event, lambda_context)
        except NotAuthorizedError:  # no Authorization header
            raise GatewayRefusal("UNAUTHORIZED") from None
        except ForbiddenError:  # the authorizer denied
            raise GatewayRefusal("ACCESS_DENIED") from None


def use_gateway_responses(http_client: Any, app: Chalice | None = None) -> Any:
    """chalice.test's HTTP client (Client(app).http) answering as the deployed stage."""
    gateway = http_client._local_gateway  # chalice.test.TestHTTPClient's own gateway
    gateway._authorizer = Authorizer(app or gateway._app_object)
    return http_client
