"""The API and the portal on this machine, on one origin, as CloudFront puts them in front of
API Gateway and the portal's S3 bucket: the portal's static files (portal/) at `/`, the API
at `/v1/` through Chalice's own local gateway over app.py, in this process.

    with PortalServer(port=0) as web:      # port 0: any free port
        web.api_url                        # http://127.0.0.1:PORT/v1
        web.portal_url                     # http://127.0.0.1:PORT/

Each API request carries the caller's address as API Gateway's request context does
(identity.sourceIp), so a key's IP allow-list holds here too. Requests to the app are served
one at a time: Chalice keeps the current request on the app object, as one Lambda container
handles one event at a time.
"""

from __future__ import annotations

import base64
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from chalice import Chalice
from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException

from functions.local.errors import LocalStackError
from functions.local.gateway import Authorizer

__all__ = ["PORTAL_DIR", "PortalServer", "security_headers"]

PORTAL_DIR = Path(__file__).resolve().parents[2] / "portal"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
# What CloudFront's response headers policy adds in front of the portal: no script but the
# portal's own, images only from itself or data: URLs (the brands' logos), calls only to its
# own origin and to where the pre-signed links of large files point (S3; here the local
# stack's endpoint), never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'{connect}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def security_headers(connect: tuple[str, ...] = ()) -> dict[str, str]:
    policy = CONTENT_SECURITY_POLICY.format(connect="".join(f" {c}" for c in connect))
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


class _Gateway(LocalGateway):
    """Chalice's local API Gateway, with the caller's own address in the request context and
    its own refusals answered as the deployed stage's GatewayResponses (functions.local.gateway)."""

    def __init__(self, app: Chalice, config: Config, source_ip: str) -> None:
        super().__init__(app, config)
        self._source_ip = source_ip
        self._authorizer = Authorizer(app)  # API Gateway's own refusals, as deployed

    def _generate_lambda_event(self, method, path, headers, body):  # type: ignore[override]
        event = super()._generate_lambda_event(method, path, headers, body)
        event["requestContext"]["identity"]["sourceIp"] = self._source_ip
        return event


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log on the console: `local up` talks on stderr

    def _reply(self, status: int, headers: dict[str, Any], body: bytes | None) -> None:
        body = body or b""
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            for one in value if isinstance(value, list) else [value]:
                self.send_header(name, str(one))
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the browser went away (a page closed): nothing to do

    def _api(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        gateway = _Gateway(self.server.app, self.server.config, self.client_address[0])
        try:
            with self.server.app_lock:
                answer = gateway.handle_request(
                    method=self.command, path=self.path, headers=dict(self.headers), body=body
                )
        except LocalGatewayException as error:  # no such route: as API Gateway answers
            self._reply(
                error.CODE, {**error.headers, "Content-Type": "application/json"}, error.body
            )
            return
        headers = {**answer.get("headers", {}), **answer.get("multiValueHeaders", {})}
        content = answer.get("body")
        if answer.get("isBase64Encoded"):
            content = base64.b64decode(content)
        elif isinstance(content, str):
            content = content.encode()
        self._reply(answer["statusCode"], headers, content)

    def _static(self) -> None:
        if self.command not in ("GET", "HEAD"):
            self._reply(405, {"Allow": "GET, HEAD", "Content-Type": "text/plain"}, b"")
            return
        found = self.server.static_file(unquote(urlsplit(self.path).path))
        if found is None:
            self._reply(404, {"Content-Type": "text/plain; charset=utf-8"}, b"not found\n")
            return
        kind = _TYPES.get(found.suffix) or mimetypes.guess_type(found.name)[0]
        headers = {
            "Content-Type": kind or "application/octet-stream",
            "Cache-Control": "no-cache",
            **security_headers(self.server.connect),
        }
        self._reply(200, headers, found.read_bytes())

    def _any(self) -> None:
        path = urlsplit(self.path).path
        if path == "/v1" or path.startswith("/v1/"):
            self._api()
        else:
            self._static()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: Chalice, portal_dir: Path, connect: tuple[str, ...]
    ) -> None:
        super().__init__(address, _Handler)
        self.connect = connect
        self.app = app
        self.config = Config.create()
        self.app_lock = threading.Lock()
        self.portal_dir = portal_dir.resolve()

    def static_file(self, path: str) -> Path | None:
        """The file a URL path names under the portal's folder, never outside it."""
        relative = path.lstrip("/") or "index.html"
        if relative.endswith("/"):
            relative += "index.html"
        candidate = (self.portal_dir / relative).resolve()
        if not candidate.is_relative_to(self.portal_dir) or not candidate.is_file():
            return None
        return candidate


class PortalServer:
    """The API (app.py through Chalice's local gateway) and the portal, on one port."""

    def __init__(
        self,
        port: int = 0,
        *,
        app: Chalice | None = None,
        host: str = "127.0.0.1",
        portal_dir: Path = PORTAL_DIR,
        documents_origin: str | None = None,
    ) -> None:
        """`documents_origin`: where the API's pre-signed links point (the local stack's
        endpoint), which the portal may fetch besides its own origin."""
        self.host, self.port, self.app, self.portal_dir = host, port, app, portal_dir
        self.connect = (documents_origin,) if documents_origin else ()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def portal_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def environment(self) -> dict[str, str]:
        return {"TOLLGATE_API_URL": self.api_url, "TOLLGATE_PORTAL_URL": self.portal_url}

    def start(self) -> PortalServer:
        if self.app is None:
            from functions.local.stack import default_app

            self.app = default_app()
        try:
            self._server = _Server((self.host, self.port), self.app, self.portal_dir, self.connect)
        except OSError as error:
            raise LocalStackError(
                f"cannot listen on {self.host}:{self.port}: {error.strerror}"
            ) from error
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tollgate-portal", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> PortalServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
