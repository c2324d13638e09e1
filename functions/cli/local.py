"""`tollgate local up`: the AWS stack and the Lambda handlers on this machine, no Docker; and
the API and the portal on one origin (functions/local/web.py), as CloudFront serves them."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from functions.cli import OperationError, json_flag

DEFAULT_PORT = 5077  # not moto's 5000 nor LocalStack's 4566, so it runs beside either


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "local", help="run the stack locally (moto + in-process Lambda handlers)"
    )
    commands = parser.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start moto, provision infra/template.yaml, run app.py's handlers; Ctrl-C stops",
    )
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    up.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    up.add_argument(
        "--web-port",
        type=int,
        default=None,
        metavar="PORT",
        help="the API (/v1/) and the portal (/): default the next port after --port "
        "(any free one if that is taken), any free one with --port 0",
    )
    up.add_argument(
        "--visibility-timeout",
        type=int,
        default=None,
        metavar="SECONDS",
        help="redeliver failed messages after this long (default: the queue's own, 1800 s)",
    )
    json_flag(up)
    up.set_defaults(run=run_up)


def run_up(args: argparse.Namespace) -> int:
    # Imported here: moto and boto3 are heavy, and other commands should not pay for them.
    from functions.local.stack import LocalStack, LocalStackError, environment
    from functions.local.web import PortalServer

    stopping = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stopping.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    stack = LocalStack(args.port, host=args.host, visibility_timeout=args.visibility_timeout)
    web = None
    try:
        try:
            stack.start()
            web = _start_web(PortalServer, LocalStackError, args, stack.endpoint_url)
        except LocalStackError as error:  # e.g. the port is taken: nothing wrong was typed
            raise OperationError(str(error)) from error
        variables = environment(stack.endpoint_url) | web.environment()
        if args.json:  # the one document; the rest of the session talks on stderr
            document = {"endpoint_url": stack.endpoint_url, "environment": variables}
            document |= {"api_url": web.api_url, "portal_url": web.portal_url}
            print(json.dumps(document))
        else:
            for key, value in variables.items():
                print(f"{key}={value}")
        sys.stdout.flush()
        exports = " ".join(f"{key}={value}" for key, value in variables.items())
        running = ", ".join(stack.runner.function_names) or "no handlers"
        print(
            f"tollgate local: up, running {running}."
            f"\n  In another shell: export {exports}"
            f"\n  The portal: {web.portal_url} (sign in with an API key: tollgate apikey create)"
            "\n  Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
    finally:
        if web is not None:
            web.stop()
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("tollgate local: stopped", file=sys.stderr)
    return 0


def _start_web(server_class, error_class, args: argparse.Namespace, documents: str):
    """The API and the portal on --web-port; by default the port after the stack's (any free
    one when that is taken or the stack's port was 0: two stacks can run side by side)."""
    if args.web_port is not None:
        return server_class(args.web_port, host=args.host, documents_origin=documents).start()
    if args.port:
        try:
            return server_class(args.port + 1, host=args.host, documents_origin=documents).start()
        except error_class:
            pass
    return server_class(0, host=args.host, documents_origin=documents).start()
