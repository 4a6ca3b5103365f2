"""Baseline: the tables as they were when the metadata store got schema versions.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Frozen: later changes to the tables go in later revisions, never here. Every table and index
is created only if missing, so a database written before schema versions (all or some of
these tables already there) is adopted by running this revision: what it has is kept, what
it lacks is added, and it is stamped 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The log tables' ids: BIGINT, but INTEGER on SQLite so AUTOINCREMENT works.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "job_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_name", sa.String(length=256), nullable=False),
        sa.Column("metric_name", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index("ix_job_metrics_job", "job_metrics", ["job_name", "metric_name", "id"],
                    if_not_exists=True)
    op.create_table(
        "log_groups",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("retention_in_days", sa.Integer(), nullable=True),
        sa.Column("kms_key_id", sa.String(length=256), nullable=True),
        sa.Column("log_group_class", sa.String(length=32), nullable=False),
        sa.Column("deletion_protection", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sqlite_autoincrement=True,
        if_not_exists=True,
    )
    op.create_table(
        "pipeline_step_cache",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline_name", sa.String(length=256), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("execution_arn", sa.String(length=512), nullable=False),
        sa.Column("step_name", sa.String(length=256), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index("ix_pipeline_step_cache_key", "pipeline_step_cache",
                    ["pipeline_name", "cache_key", "finished_at"], if_not_exists=True)
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("arn", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("parent", sa.String(length=256), nullable=True),
        sa.Column("creation_time", sa.Float(), nullable=False),
        sa.Column("last_modified_time", sa.Float(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index("ix_resources_arn", "resources", ["arn"], unique=True,
                    if_not_exists=True)
    op.create_index("ix_resources_kind_created", "resources", ["kind", "creation_time"],
                    if_not_exists=True)
    op.create_index("ix_resources_kind_name", "resources", ["kind", "name_key"], unique=True,
                    if_not_exists=True)
    op.create_index("ix_resources_kind_parent", "resources", ["kind", "parent", "creation_time"],
                    if_not_exists=True)
    op.create_index("ix_resources_kind_status", "resources", ["kind", "status"],
                    if_not_exists=True)
    op.create_table(
        "s3_buckets",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        if_not_exists=True,
    )
    op.create_table(
        "log_streams",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("group_id", _Id, nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("first_event_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("last_event_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("last_ingestion_time", sa.BigInteger(), nullable=True),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["log_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
        if_not_exists=True,
    )
    op.create_index("ix_log_streams_group_last_event", "log_streams",
                    ["group_id", "last_event_timestamp"], if_not_exists=True)
    op.create_index("ix_log_streams_group_name", "log_streams", ["group_id", "name"], unique=True,
                    if_not_exists=True)
    op.create_table(
        "s3_objects",
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("key", sa.LargeBinary(length=1024), nullable=False),
        sa.Column("blob", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("last_modified", sa.Float(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("parts_count", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["bucket"], ["s3_buckets.name"]),
        sa.PrimaryKeyConstraint("bucket", "key"),
        if_not_exists=True,
    )
    op.create_table(
        "s3_uploads",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("key", sa.LargeBinary(length=1024), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("initiated", sa.Float(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["bucket"], ["s3_buckets.name"]),
        sa.PrimaryKeyConstraint("upload_id"),
        if_not_exists=True,
    )
    op.create_index("ix_s3_uploads_bucket_key", "s3_uploads", ["bucket", "key", "upload_id"],
                    if_not_exists=True)
    op.create_table(
        "log_events",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("group_id", _Id, nullable=False),
        sa.Column("stream_id", _Id, nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("ingestion_time", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["log_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stream_id"], ["log_streams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
        if_not_exists=True,
    )
    op.create_index("ix_log_events_group_time", "log_events", ["group_id", "timestamp", "id"],
                    if_not_exists=True)
    op.create_index("ix_log_events_stream_time", "log_events", ["stream_id", "timestamp", "id"],
                    if_not_exists=True)
    op.create_table(
        "s3_parts",
        sa.Column("upload_id", sa.String(length=64), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("blob", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=32), nullable=False),
        sa.Column("last_modified", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["s3_uploads.upload_id"]),
        sa.PrimaryKeyConstraint("upload_id", "part_number"),
        if_not_exists=True,
    )


def downgrade() -> None:
    raise NotImplementedError("modelyard does not downgrade a metadata store below its baseline.")
