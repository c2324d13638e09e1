from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice import Chalice

from functions.local.stack import LocalStack


@pytest.fixture
def start_stack() -> Iterator[Callable[..., LocalStack]]:
    """Start a LocalStack on a free port for a test app; stopped after the test.

    Failed messages come back after 1 s (the queues' own timeout is 1800 s); short polls
    let the pollers stop at once.
    """
    started: list[LocalStack] = []

    def start(app: Chalice, **options: Any) -> LocalStack:
        options.setdefault("visibility_timeout", 1)
        options.setdefault("poll_wait_seconds", 0)
        stack = LocalStack(0, app=app, chalice_config=None, **options)
        started.append(stack)
        return stack.start()

    yield start
    for stack in reversed(started):
        stack.stop()
