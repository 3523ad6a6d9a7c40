"""events by token: an index for a token that lists only the events it sent

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 00:00:00
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # events.token_name (0001) already records which token sent each event
    op.create_index('ix_events_token_name_id', 'events', ['token_name', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_events_token_name_id', table_name='events')
