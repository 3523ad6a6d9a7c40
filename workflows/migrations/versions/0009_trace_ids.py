"""events.trace_id and executions.trace_id: the W3C trace each belongs to (NULL for older rows)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:40:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('trace_id', sa.String(32), nullable=True))
    with op.batch_alter_table('executions') as batch:
        batch.add_column(sa.Column('trace_id', sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('executions') as batch:
        batch.drop_column('trace_id')
    with op.batch_alter_table('events') as batch:
        batch.drop_column('trace_id')
