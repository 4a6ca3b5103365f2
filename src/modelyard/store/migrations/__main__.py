"""For developers: generate a schema revision, or check that the revisions match the tables.

    python -m modelyard.store.migrations revision -m "what changes"
    python -m modelyard.store.migrations check

Both work on a scratch SQLite database upgraded to the newest revision (``--database-url``
picks another, e.g. a PostgreSQL database to compare against).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from ..db import Database
from . import alembic_config, pending_changes, scripts, upgrade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelyard.store.migrations")
    parser.add_argument("--database-url", default=None,
                        help="database to upgrade and compare with (default: scratch SQLite)")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="autogenerate the next revision")
    revision.add_argument("-m", "--message", required=True)
    commands.add_parser("check", help="fail if the tables differ from the newest revision")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        database = Database(args.database_url or f"sqlite:///{Path(scratch) / 'scratch.db'}")
        try:
            upgrade(database)
            if args.command == "check":
                return _check(database)
            with database.schema_change() as connection:
                _revision(connection, args.message)
        finally:
            database.close()
    return 0


def _check(database: Database) -> int:
    changes = pending_changes(database)
    for change in changes:
        print(change)
    if changes:
        print("The tables differ from the newest revision: add one with `python -m "
              "modelyard.store.migrations revision -m MESSAGE`.", file=sys.stderr)
    return 1 if changes else 0


def _revision(connection: Connection, message: str) -> None:
    number = max(int(script.revision) for script in scripts().walk_revisions()) + 1
    written = command.revision(alembic_config(connection), message=message,
                               autogenerate=True, rev_id=f"{number:04d}")
    print(f"wrote {written.path}; read it before committing")  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
