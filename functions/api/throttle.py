"""Request rate limits per API key: a token bucket per key id (plain Python, no AWS).

Each key may make `rate` requests per second on average and `burst` at once: its bucket holds
up to `burst` tokens, refills at `rate` tokens a second, and each request takes one. A request
that finds the bucket empty is refused with the seconds until a token is back (429
`rate_limited`, `Retry-After`).

On AWS the per-key limit is API Gateway's: a usage plan (infra/package.yaml UsagePlan, its
ApiKeyRateLimit/ApiKeyBurstLimit default to DEFAULT_RATE/DEFAULT_BURST, tests/infra keep them
equal) holds each key and portal session across every Lambda container, through the usage key
app.py's authorizer names (functions/api/usagekeys.py) and the API Gateway key made with the
Tollgate key (functions/store/gateway.py); API Gateway answers 429 `rate_limited` itself. This
bucket is the local stack's enforcement of the same numbers (the local gateway has no usage
plans), and on AWS a second, per-container check behind the plan; tenant overrides
(TOLLGATE_API_RATE_LIMITS) are only this bucket's. See `Limiter` for what a bucket in one
process can and cannot promise.

The bucket is a pure function of its state and the time (`take`); `Limiter` keeps the states
of the keys it has seen, with the clock injected, so tests run on a fake clock.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from functions.api.requests import ApiError

DEFAULT_RATE = 20.0  # requests per second, per key
DEFAULT_BURST = 40  # requests at once, per key
_EPSILON = 1e-9  # a clock's float readings: 0.05 s at 20/s is one token, not 0.99999999
MAX_KEYS = 10_000  # buckets kept per process; the least recently used go first (they are full)
# TOLLGATE_API_RATE_LIMIT="20/40" (rate/burst), TOLLGATE_API_RATE_LIMITS="acme=50/100 b=5/10"
_LIMIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)/([0-9]+)")


class RateLimited(ApiError):
    """429 `rate_limited`: `retry_after` whole seconds until the key may ask again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"too many requests for this key; retry in {retry_after} s",
            retry_after=retry_after,
        )


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens per second
    burst: int  # bucket size

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)) or self.burst < 1:
            raise ValueError(f"invalid rate limit {self.rate}/{self.burst}: both above zero")


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    at: float  # the clock's reading when `tokens` was counted


def take(bucket: Bucket | None, now: float, limit: Limit) -> tuple[Bucket, float]:
    """(the bucket after this request, 0 if it was allowed, else the seconds to wait). A key
    not seen before starts full; a clock that went back refills nothing."""
    if bucket is None:
        tokens = float(limit.burst)
    else:
        elapsed = max(0.0, now - bucket.at)
        tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.rate)
    if tokens >= 1.0 - _EPSILON:
        return Bucket(max(0.0, tokens - 1.0), now), 0.0
    return Bucket(tokens, now), (1.0 - tokens) / limit.rate


def parse_limit(text: str) -> Limit:
    found = _LIMIT.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"invalid rate limit {text!r}: RATE/BURST, e.g. 20/40")
    return Limit(float(found.group(1)), int(found.group(2)))


def limits_from(env: Mapping[str, str]) -> tuple[Limit, dict[str, Limit]]:
    """(the default limit, each tenant's own) from TOLLGATE_API_RATE_LIMIT ("20/40") and
    TOLLGATE_API_RATE_LIMITS ("acme=50/100 other=5/10"); ValueError naming the bad one."""
    default = Limit(DEFAULT_RATE, DEFAULT_BURST)
    if env.get("TOLLGATE_API_RATE_LIMIT"):
        default = parse_limit(env["TOLLGATE_API_RATE_LIMIT"])
    tenants = {}
    for entry in env.get("TOLLGATE_API_RATE_LIMITS", "").replace(",", " ").split():
        tenant, _, limit = entry.partition("=")
        if not tenant or not limit:
            raise ValueError(f"invalid tenant rate limit {entry!r}: TENANT=RATE/BURST")
        tenants[tenant] = parse_limit(limit)
    return default, tenants


class Limiter:
    """The buckets of the keys one process has served.

    In one process (the local stack, tests, one warm Lambda container) this is the limit,
    exactly. On AWS each concurrent container keeps its own buckets, so a key spread over n
    containers could get up to n times its rate from them alone: the usage plan's per-key
    throttling in API Gateway (infra/package.yaml) is what holds there.
    """

    def __init__(
        self,
        default: Limit,
        tenants: Mapping[str, Limit] | None = None,
        *,
        clock: Callable[[], float],
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.default, self.tenants = default, dict(tenants or {})
        self._clock, self._max_keys = clock, max_keys
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def limit_of(self, tenant: str) -> Limit:
        return self.tenants.get(tenant, self.default)

    def check(self, tenant: str, key_id: str) -> None:
        """Count one request of the key; RateLimited if its bucket is empty."""
        bucket, wait = take(self._buckets.pop(key_id, None), self._clock(), self.limit_of(tenant))
        self._buckets[key_id] = bucket
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if wait > 0:
            raise RateLimited(max(1, math.ceil(wait)))
