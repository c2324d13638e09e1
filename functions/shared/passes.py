"""A scheduled pass over every tenant (the fraud pass, dunning, revenue assurance): each
tenant's work on its own, so one tenant's failure neither stops the others nor goes unseen.
The handler fails the invocation after the pass when any tenant failed (its alarm fires and
EventBridge's retry reruns the pass, whose steps are each claimed once)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class TenantPass(Generic[T]):
    done: list[tuple[str, T]] = field(default_factory=list)  # (tenant, what its work returned)
    failed: list[str] = field(default_factory=list)


def over_tenants(
    tenants: Iterable[str],
    work: Callable[[str], T],
    on_failure: Callable[[str], None],
) -> TenantPass[T]:
    """`work(tenant)` for each tenant; a tenant whose work raises is named in `failed` (and
    `on_failure(tenant)` is called inside the `except`, to log the traceback), the rest go on."""
    result: TenantPass[T] = TenantPass()
    for tenant in tenants:
        try:
            result.done.append((tenant, work(tenant)))
        except Exception:
            on_failure(tenant)
            result.failed.append(tenant)
    return result


def scheduled_time(event: Mapping[str, Any], default: Callable[[], dt.datetime]) -> dt.datetime:
    """The time of a scheduled EventBridge event (`time`, ISO 8601 with Z), else `default()`
    (an invocation by hand)."""
    if "time" not in event:
        return default()
    return dt.datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
