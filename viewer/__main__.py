"""``python -m viewer`` (and ``manage.py``): the commands of ``viewer.cli`` with the app that
``viewer.app.create_app`` builds from the environment. An entry point, like ``viewer.worker``."""

from flask.cli import FlaskGroup

from .app import create_app
from .cli import cli as commands

cli = FlaskGroup(create_app=create_app, add_default_commands=False, add_version_option=False,
                 load_dotenv=False, help=commands.help)
for command in commands.commands.values():
    cli.add_command(command)

if __name__ == "__main__":
    cli()
