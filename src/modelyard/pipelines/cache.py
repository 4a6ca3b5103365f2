"""Step caching: a step whose resolved arguments match an earlier successful run reuses it.

The key is a hash of the step's type and its resolved arguments only - not the pipeline
definition's version - so re-upserting an unchanged pipeline keeps the cache warm.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, String, Table, and_, insert, select

from ..store.db import Database, metadata

step_cache_table = Table(
    "pipeline_step_cache",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline_name", String(256), nullable=False),
    Column("cache_key", String(64), nullable=False),
    Column("execution_id", String(64), nullable=False),
    Column("execution_arn", String(512), nullable=False),
    Column("step_name", String(256), nullable=False),
    Column("finished_at", Float, nullable=False),
    Index("ix_pipeline_step_cache_key", "pipeline_name", "cache_key", "finished_at"),
)


@dataclass(frozen=True)
class CacheEntry:
    execution_id: str
    execution_arn: str
    step_name: str
    finished_at: float


def cache_key(step_type: str, resolved_arguments: Any) -> str:
    canonical = json.dumps([step_type, resolved_arguments], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class StepCache:
    def __init__(self, database: Database) -> None:
        self.db = database

    def remember(self, pipeline_name: str, key: str, execution_id: str, execution_arn: str,
                 step_name: str, finished_at: float) -> None:
        with self.db.write() as connection:
            connection.execute(insert(step_cache_table).values(
                pipeline_name=pipeline_name, cache_key=key, execution_id=execution_id,
                execution_arn=execution_arn, step_name=step_name, finished_at=finished_at))

    def find(self, pipeline_name: str, key: str, not_before: float) -> CacheEntry | None:
        table = step_cache_table
        with self.db.read() as connection:
            row = connection.execute(
                select(table).where(and_(
                    table.c.pipeline_name == pipeline_name, table.c.cache_key == key,
                    table.c.finished_at >= not_before))
                .order_by(table.c.finished_at.desc()).limit(1)
            ).first()
        if row is None:
            return None
        return CacheEntry(row.execution_id, row.execution_arn, row.step_name, row.finished_at)
