"""window revisions: a monitoring window's summary counts its changes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:20:00

``monitor_windows.revision`` goes up with every merge into the window's summary, so the drift
computed from an older summary is never stored over a newer one (a conditional UPDATE).
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('monitor_windows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('monitor_windows', schema=None) as batch_op:
        batch_op.drop_column('revision')
