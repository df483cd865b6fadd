"""compiled runtimes: each model version's compiled runtime, and the per-model switch to scikit-learn

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00

``model_versions.runtime`` holds what ``services.runtimes`` recorded for the version (state, the
library's artifact key and digest, the parity check, the speed-ups, the versions it was built
with; empty: nothing requested yet). ``registered_models.serve_with`` is "auto" (the runtime
answers where it passed and is faster) or "scikit-learn" (never).
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('runtime', sa.JSON(), nullable=True))
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('serve_with', sa.String(length=20), nullable=False, server_default='auto'))


def downgrade():
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.drop_column('serve_with')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('runtime')
