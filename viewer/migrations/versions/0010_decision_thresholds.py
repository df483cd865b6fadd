"""decision thresholds: a binary classifier version's saved threshold

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 20:00:00

``model_versions.threshold`` holds the threshold a scientist saved from a job page (value, who,
when); empty: the model's own decision (the argmax).
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('threshold', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('threshold')
