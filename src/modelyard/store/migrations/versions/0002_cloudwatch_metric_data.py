"""CloudWatch metric data: the statistic sets of endpoint invocation metrics (issue 8).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 08:39:56.253376
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cloudwatch_metric_data',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('namespace', sa.String(length=255), nullable=False),
    sa.Column('metric_name', sa.String(length=255), nullable=False),
    sa.Column('dimensions', sa.Text(), nullable=False),
    sa.Column('timestamp', sa.Float(), nullable=False),
    sa.Column('sample_count', sa.Float(), nullable=False),
    sa.Column('sum', sa.Float(), nullable=False),
    sa.Column('minimum', sa.Float(), nullable=False),
    sa.Column('maximum', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cloudwatch_metric_data', schema=None) as batch_op:
        batch_op.create_index('ix_cloudwatch_metric_data_series', ['namespace', 'metric_name', 'dimensions', 'timestamp'], unique=False)



def downgrade() -> None:
    # modelyard never downgrades a data directory; kept for developers' local use only.
    with op.batch_alter_table('cloudwatch_metric_data', schema=None) as batch_op:
        batch_op.drop_index('ix_cloudwatch_metric_data_series')

    op.drop_table('cloudwatch_metric_data')
