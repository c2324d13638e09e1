"""The embedded local stack: a moto server, the template's resources, the app's handlers.

    with LocalStack(port=0) as stack:      # port 0: any free port
        boto3.client("s3").put_object(Bucket="tollgate-cdr", Key="incoming/...", Body=...)
        stack.wait_idle()                  # every queue drained, no handler running

moto keeps its state in process-wide backends, so there is one LocalStack per process at a
time: starting one resets moto's state.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import socket
import sys
import urllib.request
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from chalice import Chalice
from moto.server import ThreadedMotoServer

from functions.local import states
from functions.local.errors import LocalStackError
from functions.local.provision import (
    FAKE_CREDENTIALS,
    REGION,
    TEMPLATE_PATH,
    provision,
)
from functions.local.runner import LambdaRunner
from functions.shared.settings import settings

__all__ = ["LocalStack", "LocalStackError", "default_app", "environment"]

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[2]
CHALICE_CONFIG = PROJECT_DIR / ".chalice" / "config.json"
# What the handlers (and anything else in this process) need to find the local stack.
_ENVIRONMENT_KEYS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "MOTO_PORT",
    "TOLLGATE_LAKE_ENGINE",
)


def default_app() -> Chalice:
    """The project's Chalice app (app.py at the repository root)."""
    module = sys.modules.get("app")
    if module is None or not isinstance(getattr(module, "app", None), Chalice):
        spec = importlib.util.spec_from_file_location("app", PROJECT_DIR / "app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["app"] = module
        spec.loader.exec_module(module)
    return module.app


class LocalStack:
    """moto server + provisioned template + the app's handlers running on their event sources."""

    def __init__(
        self,
        port: int = 0,
        *,
        app: Chalice | None = None,
        host: str = "127.0.0.1",
        stage: str = "dev",
        template_path: Path = TEMPLATE_PATH,
        chalice_config: Path | None = CHALICE_CONFIG,
        visibility_timeout: int | None = None,
        poll_wait_seconds: int = 1,
        retry_delay: int | None = None,
        start_pollers: bool = True,
        set_environ: bool = True,
        retry_wait_scale: float = 1.0,
        asl_path: Path = states.ASL_PATH,
    ) -> None:
        """`retry_wait_scale`: how long the state machine's Retry waits, as a share of the
        definition's (0 in tests: retries are taken at once; see functions/local/states.py)."""
        self.host = host
        self.port = port
        self.app = app
        self.stage = stage
        self.template_path = template_path
        self.chalice_config = chalice_config
        self.visibility_timeout = visibility_timeout
        self.poll_wait_seconds = poll_wait_seconds
        self.retry_delay = retry_delay
        self.start_pollers = start_pollers
        self.set_environ = set_environ
        self.retry_wait_scale = retry_wait_scale
        self.asl_path = asl_path
        self.state_machine_arn: str | None = None
        self.resources: dict[str, Any] = {}
        self._server: ThreadedMotoServer | None = None
        self._runner: LambdaRunner | None = None
        self._saved_environ: dict[str, str | None] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def runner(self) -> LambdaRunner:
        if self._runner is None:
            raise LocalStackError("the local stack is not running")
        return self._runner

    def start(self) -> LocalStack:
        try:
            self._start_server()
            self._configure_moto()
            if self.set_environ:
                self._export_environ()
            self.resources = provision(self.endpoint_url, template_path=self.template_path)
            _cold_containers()
            self._runner = LambdaRunner(
                self.app or default_app(),
                self.endpoint_url,
                event_bus=settings().event_bus,
                stage=self.stage,
                chalice_config=self.chalice_config,
                visibility_timeout=self.visibility_timeout,
                poll_wait_seconds=self.poll_wait_seconds,
                retry_delay=self.retry_delay,
            )
            self.state_machine_arn = self._provision_state_machine(self._runner)
            if self.start_pollers:
                self._runner.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        if self._server is not None:
            try:
                self._moto_api("reset")  # free the state now rather than at the next start
            except OSError as error:
                logger.warning("could not reset moto: %s", error)
            self._server.stop()
            self._server = None
        states.uninstall()
        self._restore_environ()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until all polled queues are drained and no handler runs (TimeoutError if not)."""
        self.runner.wait_idle(timeout)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _provision_state_machine(self, runner: LambdaRunner) -> str | None:
        """The invoice cycle from its ASL file, its tasks the app's functions in this process."""
        declared = set(runner.app.handler_map)
        states.register(
            {
                runner.function_name(name): functools.partial(runner.invoke, name)
                for name in declared
            }
        )
        return states.provision_state_machine(
            self.endpoint_url,
            name=settings().invoice_state_machine,
            function_arn=runner.function_arn,
            declared=declared,
            account=runner.account,
            asl_path=self.asl_path,
        )

    # --- internals ----------------------------------------------------------------------------

    def _start_server(self) -> None:
        if self.port:
            _ensure_free(self.host, self.port)
        _quiet_moto()
        # Before the server: moto makes its Lambda backend from this class (states.py). Its
        # handlers are registered once the runner knows the functions.
        states.install({}, retry_wait_scale=self.retry_wait_scale)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]

    def _configure_moto(self) -> None:
        # A previous stack in this process (or a mock_aws test) may have left state behind.
        self._moto_api("reset")
        # moto's Lambda never runs Docker here: its invocations (the state machine's tasks) go
        # to states.InProcessLambda; Step Functions runs the real ASL interpreter.
        self._moto_api(
            "config",
            {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}},
        )

    def _moto_api(self, path: str, body: dict[str, Any] | None = None) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/{path}",
            data=json.dumps(body or {}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _export_environ(self) -> None:
        self._saved_environ = {key: os.environ.get(key) for key in _ENVIRONMENT_KEYS}
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                # moto's own service integrations (Step Functions tasks) call back on this port.
                "MOTO_PORT": str(self.port),
                # Athena runs no SQL under moto: the invoice cycle reads the lake with DuckDB.
                "TOLLGATE_LAKE_ENGINE": "duckdb",
            }
        )

    def _restore_environ(self) -> None:
        if self._saved_environ is None:
            return
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ = None


def environment(endpoint_url: str) -> dict[str, str]:
    """The variables another process needs to use the local stack."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
    }


def _ensure_free(host: str, port: int) -> None:
    # ThreadedMotoServer binds in its thread and would wait forever if the bind failed.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LocalStackError(f"cannot listen on {host}:{port}: {error.strerror}") from error


def _quiet_moto() -> None:
    """Drop per-request access logs, the CloudFormation "not supported" notices and the
    Step Functions interpreter's dump of a failed state.

    provision() handles every resource moto's CloudFormation skips, or fails loudly; a failed
    execution keeps its error and cause (describe_execution), which `invoice run` reports.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    moto_logger = logging.getLogger("moto")
    if _skip_notice not in moto_logger.filters:
        moto_logger.addFilter(_skip_notice)
    warnings.filterwarnings("ignore", message=".*not supported by moto's CloudFormation")


def _skip_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("No Moto CloudFormation support")


def _cold_containers() -> None:
    """A new stack is a new AWS account: no warm Lambda container survives into it.

    The rate handler keeps compiled decks by (tenant, account, version) across invocations;
    those names are reused by the next stack in this process (tests, a second demo) with other
    decks under the same version numbers.
    """
    handler = sys.modules.get("functions.rate.handler")
    if handler is not None:
        from functions.rate.deck_cache import DeckCache

        handler.DECKS = DeckCache()
