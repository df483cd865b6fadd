"""prediction log: its files, the request ids clients sent, dropped records, per-model settings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 18:00:00

``prediction_log_files`` records each Parquet file of the log (a model version's records of one
UTC hour); ``client_request_ids`` the ids clients sent (reused within the retention: 409);
``prediction_log_drops`` how many records the log could not keep per version;
``registered_models.log_settings`` the model's log settings (empty: the defaults).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'prediction_log_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('model_version_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('hour', sa.DateTime(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('rows', sa.BigInteger(), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('first_at', sa.DateTime(), nullable=False),
        sa.Column('last_at', sa.DateTime(), nullable=False),
        sa.Column('compacted', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    with op.batch_alter_table('prediction_log_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_log_files_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_log_files_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_log_files_model_version_id'), ['model_version_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_log_files_hour'), ['hour'], unique=False)
    op.create_table(
        'client_request_ids',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.String(length=128), nullable=False),
        sa.Column('model_version_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('model_id', 'request_id'),
    )
    with op.batch_alter_table('client_request_ids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_request_ids_at'), ['at'], unique=False)
    op.create_table(
        'prediction_log_drops',
        sa.Column('model_version_id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('dropped', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('last_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('model_version_id'),
    )
    with op.batch_alter_table('prediction_log_drops', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_log_drops_model_id'), ['model_id'], unique=False)
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('log_settings', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('registered_models', schema=None) as batch_op:
        batch_op.drop_column('log_settings')
    op.drop_table('prediction_log_drops')
    op.drop_table('client_request_ids')
    op.drop_table('prediction_log_files')
