"""projects: every model, dataset and job belongs to one; roles per project

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 11:00:00

Everything that exists moves into the project "default". Every user becomes a member of it with
the role they had (a global admin stays a global admin and is a project admin there too). Model
names become unique per project. Downgrading keeps the default project's rows only as they are:
it drops the project columns, so it refuses when two projects hold a model of the same name.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OWNED = ('registered_models', 'datasets', 'jobs')


def upgrade():
    op.create_table(
        'projects',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
        sa.UniqueConstraint('name', name=op.f('uq_projects_name')),
    )
    op.create_table(
        'memberships',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_memberships_project_id_projects'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
        sa.UniqueConstraint('user_id', 'project_id', name=op.f('uq_memberships_user_id')),
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_memberships_user_id'), ['user_id'], unique=False)

    connection = op.get_bind()
    projects = sa.table('projects', sa.column('id', sa.Integer), sa.column('name', sa.String),
                        sa.column('created_at', sa.DateTime))
    connection.execute(projects.insert().values(name='default', created_at=sa.func.now()))
    default_id = connection.execute(sa.select(projects.c.id).where(projects.c.name == 'default')).scalar_one()
    users = sa.table('users', sa.column('id', sa.Integer), sa.column('role', sa.String))
    memberships = sa.table('memberships', sa.column('user_id', sa.Integer), sa.column('project_id', sa.Integer),
                           sa.column('role', sa.String))
    for user_id, role in connection.execute(sa.select(users.c.id, users.c.role)).all():
        connection.execute(memberships.insert().values(user_id=user_id, project_id=default_id, role=role))

    for table in OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('project_id', sa.Integer(), nullable=True))
        owned = sa.table(table, sa.column('project_id', sa.Integer))
        connection.execute(owned.update().values(project_id=default_id))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('project_id', existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(batch_op.f(f'ix_{table}_project_id'), ['project_id'], unique=False)
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_project_id_projects'), 'projects',
                                        ['project_id'], ['id'])
            if table == 'registered_models':
                batch_op.drop_constraint('uq_registered_models_name', type_='unique')
                batch_op.create_unique_constraint(batch_op.f('uq_registered_models_project_id'),
                                                  ['project_id', 'name'])


def downgrade():
    connection = op.get_bind()
    models = sa.table('registered_models', sa.column('name', sa.String))
    repeated = connection.execute(sa.select(models.c.name).group_by(models.c.name)
                                  .having(sa.func.count() > 1)).first()
    if repeated is not None:
        raise RuntimeError("Two projects hold a model of the same name; rename one before downgrading.")
    for table in reversed(OWNED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == 'registered_models':
                batch_op.drop_constraint('uq_registered_models_project_id', type_='unique')
                batch_op.create_unique_constraint('uq_registered_models_name', ['name'])
            batch_op.drop_constraint(f'fk_{table}_project_id_projects', type_='foreignkey')
            batch_op.drop_index(f'ix_{table}_project_id')
            batch_op.drop_column('project_id')
    op.drop_table('memberships')
    op.drop_table('projects')
