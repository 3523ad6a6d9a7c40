"""steps.wait_event (indexed while waiting), events.resumed: type wait

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_WAITING = "status = 'waiting' AND wait_event IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table('steps') as batch:
        batch.add_column(sa.Column('wait_event', sa.String(length=255), nullable=True))
    op.create_index(
        'ix_steps_waiting_event',
        'steps',
        ['wait_event'],
        postgresql_where=sa.text(_WAITING),
        sqlite_where=sa.text(_WAITING),
    )
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('resumed', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.drop_column('resumed')
    op.drop_index('ix_steps_waiting_event', table_name='steps')
    with op.batch_alter_table('steps') as batch:
        batch.drop_column('wait_event')
