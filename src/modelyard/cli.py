"""The ``modelyard`` command: run the server, run the demo, list what the server runs."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import DEFAULT_PORT, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelyard",
        description="A self-hosted machine-learning platform that speaks the SageMaker API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    server = commands.add_parser("server", help="run the server in the foreground")
    server.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=None, help=f"port (default {DEFAULT_PORT})")
    server.add_argument("--data-dir", default=None, help="data directory (default ~/.modelyard)")
    server.add_argument("--region", default=None, help="region to claim (default us-east-1)")
    server.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL of the metadata database (default: SQLite in the data dir)")
    server.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    demo = commands.add_parser("demo", help="run the end-to-end demo against a local server")
    demo.add_argument("--data-dir", default=None, help="data directory (default ~/.modelyard)")
    demo.add_argument("--port", type=int, default=None,
                      help="port for the demo's server (default: a free one)")

    commands.add_parser("operations", help="list the AWS operations this server implements")

    from .sns import outbox_cli

    outbox_cli.add_arguments(commands.add_parser(
        "outbox", help="list the email, email-json and sms messages SNS kept"))

    args = parser.parse_args(argv)
    if args.command == "server":
        return _run_server(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(data_dir=args.data_dir, port=args.port)
    if args.command == "operations":
        return _list_operations()
    if args.command == "outbox":
        return outbox_cli.run(args)
    return 2


def _run_server(args: argparse.Namespace) -> int:
    from .server import DataDirInUse, run_server

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = load_settings(
        data_dir=args.data_dir, host=args.host, port=args.port, region=args.region,
        database_url=args.database_url,
    )
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("modelyard").warning(
            "binding to %s exposes modelyard beyond this machine; every request still "
            "needs a valid SigV4 signature", settings.host,
        )
    logging.getLogger("modelyard").info(
        "web console at %s/console/ (sign in with the API's access key id and secret "
        "access key)", settings.endpoint_url)
    try:
        run_server(settings, log_level=args.log_level)
    except DataDirInUse as error:
        print(f"modelyard: {error}", file=sys.stderr)
        return 1
    return 0


def _list_operations() -> int:
    from .services import OPERATIONS

    width = max(len(service) for service in OPERATIONS)
    print(f"{'service'.ljust(width)}  count  operations")
    for service, handlers in sorted(OPERATIONS.items()):
        print(f"{service.ljust(width)}  {len(handlers):5d}  {', '.join(sorted(handlers))}")
    return 0
