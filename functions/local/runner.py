"""Runs a Chalice app's Lambda handlers in-process, fed by the local stack like Lambda would be.

moto cannot run Lambda code here (no Docker), so the runner plays Lambda's part with public
APIs only, reading what to run from the app's own declarations (`app.event_sources`):
- `@app.on_sqs_message`: a poller per queue. It receives up to `batch_size` messages, calls the
  handler with a real SQS Lambda event, deletes what succeeded and leaves the rest to come back
  after their visibility timeout (`retry_delay` shortens that for tests): at-least-once, as on
  AWS. A handler exception fails the whole batch; `batchItemFailures` fails only those records.
  The dead-letter queue is SQS's own: moto applies a queue's RedrivePolicy when it receives,
  moving a message that was delivered `maxReceiveCount` times to the dead-letter queue
  instead of delivering it again (tests/local/test_redrive.py proves it), as SQS does.
- `@app.on_cw_event`: a rule with the same pattern on the event bus, targeting a shim queue
  that is polled the same way, one event per invocation. Schedule rules are never put on the
  bus: moto's schedule rules match every put_events call. A failed event is tried
  `EVENT_ATTEMPTS` times in all, as Lambda tries an asynchronous invocation, then parked in
  the shim's dead-letter queue (Lambda would discard it, or send it to an on-failure
  destination).
- `@app.schedule`: a timer per `rate(...)` expression (moto never fires schedules); any
  schedule can also be fired by hand with `trigger_schedule`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from chalice import Chalice
from chalice.app import (
    CloudWatchEventConfig,
    ScheduledEventConfig,
    ScheduleExpression,
    SQSEventConfig,
)
from chalice.config import Config as ChaliceConfig
from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE, DEFAULT_LAMBDA_TIMEOUT

from functions.local.errors import LocalStackError
from functions.local.provision import FAKE_CREDENTIALS, REGION

logger = logging.getLogger(__name__)

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
EVENT_ATTEMPTS = 3  # Lambda's asynchronous invocations: the first try and two retries


class RunnerError(LocalStackError):
    """The app declares something the local runner cannot wire up."""


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    memory_mb: int = DEFAULT_LAMBDA_MEMORY_SIZE
    timeout_s: int = DEFAULT_LAMBDA_TIMEOUT


def function_configs(
    app: Chalice, config_path: Path | None, stage: str
) -> dict[str, FunctionConfig]:
    """Memory and timeout per function, as `chalice deploy` would read .chalice/config.json."""
    on_disk = json.loads(config_path.read_text()) if config_path and config_path.exists() else {}
    configs = {}
    for name in app.handler_map:
        scoped = ChaliceConfig(chalice_stage=stage, function_name=name, config_from_disk=on_disk)
        configs[name] = FunctionConfig(
            memory_mb=scoped.lambda_memory_size or DEFAULT_LAMBDA_MEMORY_SIZE,
            timeout_s=scoped.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT,
        )
    return configs


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, config: FunctionConfig, account: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{account}:function:{function_name}"
        self.memory_limit_in_mb = config.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + config.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True, slots=True)
class InvocationError:
    """A handler invocation that raised (its records stay queued for redelivery)."""

    function_name: str
    error: BaseException


@dataclass(slots=True)
class _Feed:
    """One queue the runner polls for one function."""

    function_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    sqs_records: bool  # True: SQS batch event; False: one EventBridge event per message


def schedule_interval(expression: str | ScheduleExpression) -> float | None:
    """Seconds between runs of a `rate(...)` schedule; None for cron (not fired locally)."""
    text = expression if isinstance(expression, str) else expression.to_string()
    match = _RATE.fullmatch(text.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


class LambdaRunner:
    """Invokes `app`'s handlers from the local stack's queues, rules and timers."""

    def __init__(
        self,
        app: Chalice,
        endpoint_url: str,
        *,
        event_bus: str,
        stage: str = "dev",
        chalice_config: Path | None = None,
        visibility_timeout: int | None = None,
        poll_wait_seconds: int = 1,
        retry_delay: int | None = None,
    ) -> None:
        """`poll_wait_seconds`: SQS long-poll wait (0: short polls, quicker to stop).

        `retry_delay`: seconds a failed message stays hidden before it is delivered again
        (None: its visibility timeout, as with Lambda; 0 lets a test see a message reach its
        dead-letter queue in milliseconds, through the same receives).
        """
        self.app = app
        self.stage = stage
        self.event_bus = event_bus
        self.visibility_timeout = visibility_timeout
        self.poll_wait_seconds = poll_wait_seconds
        self.retry_delay = retry_delay
        self.configs = function_configs(app, chalice_config, stage)
        # The most recent failures (a long-running `local up` must not grow without bound).
        self.errors: deque[InvocationError] = deque(maxlen=1000)
        session = boto3.session.Session(region_name=REGION, **FAKE_CREDENTIALS)
        # Clients are thread-safe; the read timeout must outlast a long poll.
        boto_config = BotoConfig(read_timeout=poll_wait_seconds + 30, retries={"max_attempts": 2})
        self._sqs = session.client("sqs", endpoint_url=endpoint_url, config=boto_config)
        self._events = session.client("events", endpoint_url=endpoint_url, config=boto_config)
        self._account = session.client("sts", endpoint_url=endpoint_url).get_caller_identity()[
            "Account"
        ]
        self._feeds: dict[str, _Feed] = {}
        self._schedules: dict[str, ScheduledEventConfig] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self._finished = 0  # invocations completed, to tell "idle" from "between two steps"
        self._bind()

    # --- wiring -------------------------------------------------------------------------------

    def _bind(self) -> None:
        for source in self.app.event_sources:
            if source.name not in self.app.handler_map:
                raise RunnerError(f"event source {source.name} has no handler")
            if isinstance(source, SQSEventConfig):
                self._feeds[source.name] = self._sqs_feed(source)
            elif isinstance(source, CloudWatchEventConfig):
                self._feeds[source.name] = self._event_rule_feed(source)
            elif isinstance(source, ScheduledEventConfig):
                self._schedules[source.name] = source
            else:
                raise RunnerError(
                    f"{source.name}: {type(source).__name__} sources are not run locally"
                )

    def _sqs_feed(self, source: SQSEventConfig) -> _Feed:
        name = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
        try:
            url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except self._sqs.exceptions.QueueDoesNotExist as error:
            raise RunnerError(
                f"{source.name} reads queue {name}, which the stack does not have "
                "(declare it in infra/template.yaml)"
            ) from error
        return _Feed(source.name, url, self._queue_arn(url), source.batch_size, sqs_records=True)

    def _event_rule_feed(self, source: CloudWatchEventConfig) -> _Feed:
        shim = f"{self.app.app_name}-local-{source.name}"
        parked = self._queue_arn(self._sqs.create_queue(QueueName=f"{shim}-dlq")["QueueUrl"])
        redrive = {"deadLetterTargetArn": parked, "maxReceiveCount": EVENT_ATTEMPTS}
        url = self._sqs.create_queue(
            QueueName=shim, Attributes={"RedrivePolicy": json.dumps(redrive)}
        )["QueueUrl"]
        arn = self._queue_arn(url)
        self._events.put_rule(
            Name=shim,
            EventBusName=self.event_bus,
            EventPattern=json.dumps(source.event_pattern),
            State="ENABLED",
        )
        self._events.put_targets(
            Rule=shim, EventBusName=self.event_bus, Targets=[{"Id": "local-runner", "Arn": arn}]
        )
        return _Feed(source.name, url, arn, batch_size=1, sqs_records=False)

    def _queue_arn(self, url: str) -> str:
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    @property
    def function_names(self) -> list[str]:
        return [*self._feeds, *self._schedules]

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for name in self._feeds:
            self._spawn(f"poll-{name}", self._poll_forever, name)
        for name, source in self._schedules.items():
            interval = schedule_interval(source.schedule_expression)
            if interval is None:
                # A cron schedule (the month-end job) is expected not to fire here: the CLI runs
                # its work on demand (`tollgate recurring run`), so this is no warning.
                logger.info("cron schedule %s is not fired locally; use trigger_schedule", name)
                continue
            self._spawn(f"schedule-{name}", self._tick_forever, name, interval)

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("runner thread %s did not stop in time", thread.name)
        self._threads.clear()

    def _spawn(self, label: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(
            target=target, args=args, name=f"tollgate-local-{label}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _poll_forever(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                if not self.poll_once(name) and not self.poll_wait_seconds:
                    self._stopping.wait(0.05)  # short polling: don't spin
            except Exception:
                if self._stopping.is_set():
                    return
                logger.exception("polling for %s failed; retrying", name)
                self._stopping.wait(1.0)

    def _tick_forever(self, name: str, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.trigger_schedule(name)
            except Exception:
                logger.exception("scheduled run of %s failed", name)

    # --- invocation ---------------------------------------------------------------------------

    def poll_once(self, name: str, wait_seconds: int | None = None) -> int:
        """One receive → invoke → delete cycle for function `name`; returns messages received."""
        feed = self._feeds[name]
        extra = {"VisibilityTimeout": self.visibility_timeout} if self.visibility_timeout else {}
        received = self._sqs.receive_message(
            QueueUrl=feed.queue_url,
            MaxNumberOfMessages=min(feed.batch_size, 10),
            WaitTimeSeconds=self.poll_wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            **extra,
        )
        messages = received.get("Messages", [])
        if not messages:
            return 0
        with self._running():
            if feed.sqs_records:
                done = self._deliver_batch(feed, messages)
            else:
                done = [m for m in messages if self._deliver_event(feed, m)]
            self._delete(feed, done)
            if self.retry_delay is not None:
                kept = {m["MessageId"] for m in done}
                self._hide(feed, [m for m in messages if m["MessageId"] not in kept])
        return len(messages)

    def _deliver_batch(self, feed: _Feed, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Invoke with an SQS batch; return the messages to delete."""
        # S3 sends s3:TestEvent when a notification is configured; Lambda users drop it too.
        tests = [m for m in messages if _is_s3_test_event(m["Body"])]
        batch = [m for m in messages if m not in tests]
        if not batch:
            return tests
        event = {"Records": [self._sqs_record(feed, m) for m in batch]}
        try:
            result = self.invoke(feed.function_name, event)
        except Exception as error:
            self._failed(feed.function_name, error, len(batch))
            return tests
        failed = _batch_item_failures(result, {m["MessageId"] for m in batch})
        if failed:
            logger.info("%s reported %d failed record(s)", feed.function_name, len(failed))
        return tests + [m for m in batch if m["MessageId"] not in failed]

    def _deliver_event(self, feed: _Feed, message: dict[str, Any]) -> bool:
        event = json.loads(message["Body"])
        # moto's EventBridge → SQS delivery leaves out envelope fields AWS always sends
        # (`account`, and `resources` on some paths); Chalice's CloudWatchEvent requires them.
        event.setdefault("account", self._account)
        event.setdefault("region", REGION)
        event.setdefault("resources", [])
        try:
            self.invoke(feed.function_name, event)
        except Exception as error:
            self._failed(feed.function_name, error, 1)
            return False
        return True

    def _failed(self, name: str, error: Exception, count: int) -> None:
        logger.error(
            "%s raised %r; %d record(s) stay queued for redelivery",
            name,
            error,
            count,
            exc_info=error,
        )
        with self._lock:
            self.errors.append(InvocationError(name, error))

    def _hide(self, feed: _Feed, messages: list[dict[str, Any]]) -> None:
        """Deliver failed messages again after `retry_delay` rather than the visibility timeout."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self._sqs.change_message_visibility_batch(
                QueueUrl=feed.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_delay,
                    }
                    for i, m in enumerate(chunk)
                ],
            )

    def _delete(self, feed: _Feed, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = self._sqs.delete_message_batch(
                QueueUrl=feed.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                logger.warning("could not delete a %s message: %s", feed.function_name, failure)

    def _sqs_record(self, feed: _Feed, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                key: _lambda_message_attribute(value)
                for key, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": feed.queue_arn,
            "awsRegion": REGION,
        }

    def invoke(self, name: str, event: Mapping[str, Any]) -> Any:
        """Call function `name` with `event` and a fresh context, as one Lambda invocation."""
        config = self.configs.get(name, FunctionConfig())
        context = LambdaContext(self.function_name(name), config, self._account)
        started = time.monotonic()
        with self._running():
            result = self.app.handler_map[name](dict(event), context)
        elapsed = time.monotonic() - started
        if elapsed > config.timeout_s:
            # Lambda would have killed it; a thread cannot be killed, so say it loudly.
            logger.warning("%s ran %.1fs, over its %ss timeout", name, elapsed, config.timeout_s)
        return result

    def trigger_schedule(self, name: str) -> Any:
        """Run scheduled function `name` now with an EventBridge "Scheduled Event"."""
        if name not in self._schedules:
            raise RunnerError(f"{name} is not a scheduled function")
        rule = f"{self.function_name(name)}-event"
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self._account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{self._account}:rule/{rule}"],
            "detail": {},
        }
        return self.invoke(name, event)

    def function_name(self, name: str) -> str:
        """The deployed name of app function `name` (Chalice's default naming)."""
        return f"{self.app.app_name}-{self.stage}-{name}"

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{REGION}:{self._account}:function:{self.function_name(name)}"

    @property
    def account(self) -> str:
        return self._account

    @contextmanager
    def _running(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._finished += 1

    # --- idleness -----------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Block until every polled queue is empty and no handler runs; TimeoutError if not.

        Idle is two quiet scans in a row: moto's threaded server may count a queue while a
        receive is half done and answer zero for a message in flight, once.
        """
        deadline = time.monotonic() + timeout
        quiet = 0
        while True:
            pending = self._pending()
            quiet = quiet + 1 if not pending else 0
            if quiet >= 2:
                return
            if pending and time.monotonic() >= deadline:
                raise TimeoutError(f"local stack not idle after {timeout}s: {pending}")
            time.sleep(interval)

    def _pending(self) -> dict[str, Any]:
        """What is still going on; empty when idle."""
        with self._lock:
            busy, finished = self._busy, self._finished
        pending: dict[str, Any] = {"running": busy} if busy else {}
        for name, feed in self._feeds.items():
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=feed.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            queued = sum(int(value) for value in attributes.values())
            if queued:
                pending[name] = queued
        # A handler that started and finished during the scan may have fed a queue already
        # counted as empty, so the scan only counts if no invocation completed meanwhile.
        with self._lock:
            if self._busy or self._finished != finished:
                pending["running"] = max(self._busy, 1)
        return pending


def _is_s3_test_event(body: str) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("Event") == "s3:TestEvent"


def _batch_item_failures(result: Any, ids: set[str]) -> set[str]:
    """Ids Lambda would leave on the queue, given a handler's partial-batch response."""
    if not isinstance(result, Mapping) or not result.get("batchItemFailures"):
        return set()
    failed = {(item or {}).get("itemIdentifier") for item in result["batchItemFailures"]}
    # Lambda treats a malformed or unknown identifier as the failure of the whole batch.
    if not failed <= ids:
        logger.warning("batchItemFailures names unknown records %s", sorted(map(str, failed - ids)))
        return set(ids)
    return failed


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API attribute shape (StringValue) -> Lambda event shape (stringValue)."""
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": [
            base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])
        ],
        "dataType": value["DataType"],
    }
