"""The long-lived parts of a running server, built once and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .engine.clock import Clock
from .store.db import Database
from .store.objects import LocalObjectStore, ObjectStore
from .store.resources import ResourceStore


@dataclass
class Platform:
    settings: Settings
    clock: Clock
    db: Database
    resources: ResourceStore
    objects: ObjectStore

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> "Platform":
        database = Database(settings.resolved_database_url)
        database.create_schema()
        objects = LocalObjectStore(database, settings.data_dir / "objects", settings)
        objects.recover()
        return cls(
            settings=settings,
            clock=clock or Clock(),
            db=database,
            resources=ResourceStore(database),
            objects=objects,
        )

    def close(self) -> None:
        self.db.close()
