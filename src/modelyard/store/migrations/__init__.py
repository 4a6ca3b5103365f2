"""Schema versions of the metadata store, kept with Alembic and applied on every start.

The database records its schema version in Alembic's ``alembic_version`` table. On start,
``upgrade`` brings it to this modelyard's newest revision (``versions/``) in one
transaction, under a lock (SQLite's write lock; a PostgreSQL advisory lock, so servers
starting together on one database take turns and the later ones find nothing to do):

- a new, empty database gets every revision, i.e. the current tables;
- a database written before modelyard had schema versions (its tables exist, but there is
  no ``alembic_version``) is adopted: revision 0001 creates only the tables it lacks, and
  the database is stamped 0001, then upgraded like any other;
- a database at a revision this modelyard does not know was written by a newer modelyard:
  modelyard never downgrades, so it refuses to start (``SchemaTooNew``) and says which
  version the database has and that modelyard must be upgraded.

How to add a migration
----------------------
Change the tables (they are declared on ``modelyard.store.db.metadata`` in the store
modules), then let Alembic compare them with the newest revision::

    python -m modelyard.store.migrations revision -m "log groups keep a data protection policy"

That upgrades a scratch SQLite database to the newest revision, autogenerates
``versions/NNNN_<message>.py`` (next number, batch operations so SQLite can alter tables)
and prints its path. Read it and fix what autogenerate cannot know: renames look like a
drop and an add, new NOT NULL columns on existing rows need a ``server_default`` or a data
step, and data changes are yours to write. Never edit a revision that has been released.
``python -m modelyard.store.migrations check`` fails while the tables and the revisions
disagree, and so does ``tests/test_migrations.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

# Alembic logs at INFO when imported and on every run; modelyard logs what changed itself.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from alembic.util import CommandError  # noqa: E402
from sqlalchemy import Connection, MetaData, inspect  # noqa: E402

from ..db import Database, metadata  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent
# Revision 0001, the tables as they were when schema versions were introduced.
BASELINE = "0001"
# A table every modelyard database has had, so its presence tells an unversioned database.
_LEGACY_MARKER_TABLE = "resources"

log = logging.getLogger("modelyard")


class SchemaTooNew(SystemExit):
    """The database was written by a newer modelyard, at a schema version this one lacks.

    A ``SystemExit`` like the other start-up refusals in ``config``: ``modelyard server``
    exits with status 1 and prints the message, not a traceback.
    """


@dataclass(frozen=True)
class SchemaUpgrade:
    """What ``upgrade`` found and did."""

    previous: str | None  # the database's revision before; None for a new or adopted one
    current: str
    adopted: bool = False  # tables from before schema versions were found and kept

    @property
    def changed(self) -> bool:
        return self.previous != self.current


def declared_metadata() -> MetaData:
    """``metadata`` with every table declared: everything the server loads, imported."""
    from ... import server  # noqa: F401  (the platform, every service and store)
    from ...pipelines import cache  # noqa: F401
    from .. import objects  # noqa: F401  (first: it imports object_tables in its own order)
    from .. import cloudwatch_metrics, logs, metrics, object_tables, outbox, resources  # noqa: F401

    return metadata


def scripts(location: Path = SCRIPTS) -> ScriptDirectory:
    return ScriptDirectory(str(location))


def alembic_config(connection: Connection | None = None, location: Path = SCRIPTS) -> Config:
    """An Alembic configuration without ``alembic.ini``: the scripts shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(location).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def pending_changes(database: Database) -> list[Any]:
    """What autogenerate would write now: the declared tables minus the database's."""
    with database.read() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, declared_metadata())


def current_revision(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection).get_current_heads()


def upgrade(database: Database, location: Path = SCRIPTS) -> SchemaUpgrade:
    """Bring ``database`` to the newest schema revision; refuse one newer than this code.

    ``location`` is where the revisions are: this package's, except in tests.
    """
    script = scripts(location)
    head = script.get_current_head()
    assert head is not None, f"no schema revisions in {location}"
    with database.schema_change() as connection:
        found = current_revision(connection)
        unknown = [revision for revision in found if not _known(script, revision)]
        if unknown:
            raise SchemaTooNew(_too_new_message(database, unknown, head))
        if found == (head,):
            result = SchemaUpgrade(head, head)
        else:
            adopted = not found and inspect(connection).has_table(_LEGACY_MARKER_TABLE)
            command.upgrade(alembic_config(connection, location), "head")
            result = SchemaUpgrade(found[0] if found else None, head, adopted)
    _log(result)
    return result


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _too_new_message(database: Database, unknown: list[str], head: str) -> str:
    where = database.engine.url.render_as_string(hide_password=True)
    return (
        f"modelyard: the metadata database {where} is at schema version "
        f"{', '.join(unknown)}, which this modelyard ({_version()}) does not know: its newest "
        f"schema version is {head}. The data was written by a newer modelyard, and modelyard "
        "does not downgrade a database. Upgrade modelyard to the version that wrote it (or "
        "newer) to use this data directory."
    )


def _version() -> str:
    try:
        return package_metadata.version("modelyard")
    except package_metadata.PackageNotFoundError:
        return "unknown version"


def _log(result: SchemaUpgrade) -> None:
    if result.adopted:
        log.info("metadata store from before schema versions adopted as version %s; "
                 "now at schema version %s", BASELINE, result.current)
    elif result.previous is None:
        log.info("metadata store created at schema version %s", result.current)
    elif result.changed:
        log.info("metadata store upgraded from schema version %s to %s",
                 result.previous, result.current)
    else:
        log.info("metadata store at schema version %s", result.current)
