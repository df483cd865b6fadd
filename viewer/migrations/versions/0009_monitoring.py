"""monitoring: grids, window summaries with their drift, reference summaries, labels, settings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 19:00:00

``prediction_labels`` holds labels joined to their predictions; ``monitor_grids`` fixes each model column's grid; ``monitor_windows`` holds a model version's
window summaries and their drift; ``monitor_references`` the reference dataset's summary;
``prediction_log_files.aggregated`` marks files already in the windows;
``registered_models.monitor`` the reference and thresholds chosen (empty: the defaults).
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'monitor_grids',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('column', sa.String(length=255), nullable=False),
        sa.Column('center', sa.Double(), nullable=False),
        sa.Column('scale', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('model_id', 'column'),
    )
    op.create_table(
        'monitor_windows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('model_version_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('seconds', sa.Integer(), nullable=False),
        sa.Column('start', sa.DateTime(), nullable=False),
        sa.Column('rows', sa.BigInteger(), nullable=False),
        sa.Column('summary', sa.LargeBinary(), nullable=False),
        sa.Column('drift', sa.JSON(), nullable=True),
        sa.Column('reference', sa.String(length=64), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('model_version_id', 'seconds', 'start'),
    )
    with op.batch_alter_table('monitor_windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitor_windows_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitor_windows_model_version_id'), ['model_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_monitor_windows_start'), ['start'], unique=False)
    op.create_table(
        'monitor_references',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.String(length=32), nullable=False),
        sa.Column('rows', sa.BigInteger(), nullable=False),
        sa.Column('summary', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('model_id'),
    )
    op.create_table(
        'prediction_labels',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.String(length=128), nullable=False),
        sa.Column('row', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=255), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('model_version_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=True),
        sa.Column('predicted', sa.String(length=255), nullable=True),
        sa.Column('score', sa.Double(), nullable=True),
        sa.Column('score_bin', sa.Integer(), nullable=True),
        sa.Column('positive', sa.Boolean(), nullable=True),
        sa.Column('log_loss', sa.Double(), nullable=True),
        sa.Column('error', sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint('model_id', 'request_id', 'row'),
    )
    with op.batch_alter_table('prediction_labels', schema=None) as batch_op:
        batch_op.create_index('ix_prediction_labels_window', ['model_id', 'model_version_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_labels_received_at'), ['received_at'], unique=False)
    with op.batch_alter_table('prediction_log_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('aggregated', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_prediction_log_files_aggregated'), ['aggregated'], unique=False)
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monitor', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.drop_column('monitor')
    with op.batch_alter_table('prediction_log_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_log_files_aggregated'))
        batch_op.drop_column('aggregated')
    op.drop_table('prediction_labels')
    op.drop_table('monitor_references')
    op.drop_table('monitor_windows')
    op.drop_table('monitor_grids')
