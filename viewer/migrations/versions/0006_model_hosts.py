"""model hosts: host failures are recorded; a model version that fails too often is quarantined

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 17:00:00

``host_failures`` holds one row per crash, deadline or malformed answer of a model host, by
project and model file digest (versions with the same bytes fail alike; projects never share). ``model_versions`` gains when and
why a version was quarantined (empty: it serves).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'host_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('model_ref', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_host_failures')),
    )
    with op.batch_alter_table('host_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_host_failures_sha256'), ['sha256'], unique=False)
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quarantined_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('quarantine_reason', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('quarantine_reason')
        batch_op.drop_column('quarantined_at')
    with op.batch_alter_table('host_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_host_failures_sha256'))
    op.drop_table('host_failures')
