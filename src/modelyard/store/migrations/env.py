"""Alembic's environment for the metadata store: how a migration run gets its connection.

modelyard runs migrations itself (``modelyard.store.migrations.upgrade``), passing the open
connection in ``config.attributes["connection"]``, already inside a transaction that holds
the schema lock; every revision then runs in that one transaction. ``python -m
modelyard.store.migrations`` does the same for developers generating a revision.
"""

from __future__ import annotations

from alembic import context

from modelyard.store.migrations import declared_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "modelyard runs its migrations itself: start the server, or generate a revision "
        "with `python -m modelyard.store.migrations revision -m MESSAGE`.")

context.configure(
    connection=connection,
    target_metadata=declared_metadata(),
    # SQLite alters tables by copying them; autogenerate then writes batch operations.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
