"""artifact keys: model files and job output parts are found through their records

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 07:30:00

Objects written before this revision keep their places: a model file at
``artifacts/models/<sha[:2]>/<sha>`` and a finished chunk's part at
``jobs/<job id>/part-<index>.parquet`` (keys relative to the data dir, the local store's root). Downgrading drops the keys: objects
written after the upgrade stay where they are, but the earlier release cannot find them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('artifact_key', sa.String(length=255), nullable=True))
    versions = sa.table('model_versions', sa.column('id', sa.Integer), sa.column('sha256', sa.String),
                        sa.column('artifact_key', sa.String))
    connection = op.get_bind()
    for row_id, sha in connection.execute(sa.select(versions.c.id, versions.c.sha256)).all():
        connection.execute(versions.update().where(versions.c.id == row_id)
                           .values(artifact_key=f"artifacts/models/{sha[:2]}/{sha}"))
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.alter_column('artifact_key', existing_type=sa.String(length=255), nullable=False)

    with op.batch_alter_table('job_chunks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_key', sa.String(length=255), nullable=True))
    chunks = sa.table('job_chunks', sa.column('id', sa.Integer), sa.column('job_id', sa.String),
                      sa.column('index', sa.Integer), sa.column('state', sa.String),
                      sa.column('output_key', sa.String))
    done = connection.execute(sa.select(chunks.c.id, chunks.c.job_id, chunks.c.index)
                              .where(chunks.c.state == 'done')).all()
    for row_id, job_id, index in done:
        connection.execute(chunks.update().where(chunks.c.id == row_id)
                           .values(output_key=f"jobs/{job_id}/part-{index:05d}.parquet"))


def downgrade():
    with op.batch_alter_table('job_chunks', schema=None) as batch_op:
        batch_op.drop_column('output_key')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('artifact_key')
