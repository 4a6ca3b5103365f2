"""``modelyard outbox``: the email, email-json and sms messages SNS kept, newest first.

Reads the data directory's metadata database directly (a running server may keep
writing; SQLite's WAL lets both), so it needs no credentials and no running server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="data directory (default ~/.modelyard)")
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy URL of the metadata database, if not SQLite in the "
                             "data dir")
    parser.add_argument("--protocol", choices=["email", "email-json", "sms"], default=None,
                        help="only messages of this protocol")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    parser.add_argument("--full", action="store_true", help="print each whole message")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    from ..store.db import Database
    from ..store.resources import ListQuery, ResourceStore
    from .delivery import OUTBOX_KIND

    url = args.database_url or os.environ.get("MODELYARD_DATABASE_URL")
    if not url:
        directory = Path(args.data_dir or os.environ.get("MODELYARD_DATA_DIR")
                         or Path.home() / ".modelyard").expanduser()
        database = directory / "metadata.sqlite3"
        if not database.exists():
            print(f"modelyard: no data directory with a database at {directory}; pass "
                  "--data-dir", file=sys.stderr)
            return 1
        url = f"sqlite:///{database.resolve()}"
    store = ResourceStore(Database(url))
    page = store.list(OUTBOX_KIND, ListQuery(parent=args.protocol,
                                             max_results=max(1, args.limit)))
    if args.json:
        for item in page.items:
            print(json.dumps({"Key": item.name, "State": item.status, **item.document}))
        return 0
    if not page.items:
        print("the SNS outbox is empty (email, email-json and sms messages appear here)")
        return 0
    rows = [(item.document["Time"][:19].replace("T", " "), item.document["Protocol"],
             item.document["Endpoint"], item.document.get("Subject") or "-",
             _first_line(item.document), item.status or "") for item in page.items]
    headers = ("time (UTC)", "protocol", "endpoint", "subject", "first line", "state")
    widths = [min(max(len(row[column]) for row in [headers, *rows]), limit)
              for column, limit in enumerate((19, 10, 32, 40, 60, 5))]
    for row in [headers, *rows]:
        print("  ".join(_cut(value, width).ljust(width) for value, width in zip(row, widths))
              .rstrip())
    if args.full:
        for item in page.items:
            print(f"\n--- {item.document['Time']} {item.document['Protocol']} to "
                  f"{item.document['Endpoint']}: {item.document.get('Subject') or ''}")
            print(item.document["Body"])
    return 0


def _first_line(document: dict) -> str:
    text = document["Body"]
    if document["Protocol"] == "email-json":
        try:
            text = json.loads(text)["Message"]
        except (ValueError, KeyError, TypeError):
            pass
    for line in text.splitlines():
        if line.strip() and line.strip() not in ("{", "["):
            return line.strip()
    return ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
