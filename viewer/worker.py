"""The worker's entry point: ``celery -A viewer.worker worker`` (or ``manage.py worker``).

This module is only ever the Celery entry point, so building the app here is its whole job;
nothing else imports it. ``create_app`` imports ``viewer.tasks`` and registers its job kinds.
"""

from viewer import tasks  # noqa: F401  (the worker's tasks, imported explicitly)
from viewer.app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
