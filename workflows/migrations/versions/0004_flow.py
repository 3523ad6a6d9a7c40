"""steps.parent_id, item, item_index: children of parallel and collection steps

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:10:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('steps') as batch:
        batch.add_column(sa.Column('parent_id', sa.String(length=40), nullable=True))
        batch.create_foreign_key('fk_steps_parent_id', 'steps', ['parent_id'], ['id'])
        batch.create_index('ix_steps_parent_id', ['parent_id'])
        batch.add_column(sa.Column('item', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True))
        batch.add_column(sa.Column('item_index', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('steps') as batch:
        batch.drop_column('item_index')
        batch.drop_column('item')
        batch.drop_index('ix_steps_parent_id')
        batch.drop_constraint('fk_steps_parent_id', type_='foreignkey')
        batch.drop_column('parent_id')
