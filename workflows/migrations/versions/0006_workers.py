"""workers: heartbeats of the worker fleet; steps.worker_id and steps.message_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 09:00:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pool', sa.String(length=16), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('queues', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_workers_last_seen_at'), 'workers', ['last_seen_at'], unique=False)
    with op.batch_alter_table('steps') as batch:
        batch.add_column(sa.Column('worker_id', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('message_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('steps') as batch:
        batch.drop_column('message_id')
        batch.drop_column('worker_id')
    op.drop_index(op.f('ix_workers_last_seen_at'), table_name='workers')
    op.drop_table('workers')
