"""intake: replays of events, and which execution a replay superseded

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'replays',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('token_name', sa.String(length=100), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('executions', JSON, nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['events.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_replays_event_id', 'replays', ['event_id'], unique=False)
    with op.batch_alter_table('executions') as batch:
        batch.add_column(sa.Column('replay_id', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('superseded_by', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('executions') as batch:
        batch.drop_column('superseded_by')
        batch.drop_column('replay_id')
    op.drop_index('ix_replays_event_id', table_name='replays')
    op.drop_table('replays')
