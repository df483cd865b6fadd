"""The worker's entry point: ``celery -A viewer.worker worker`` (or ``manage.py worker``).

This module is only ever the Celery entry point, so building the app here is its whole job;
nothing else imports it.
"""

from viewer import create_app
from viewer import tasks  # noqa: F401  (the worker registers its tasks explicitly)

flask_app = create_app()
celery = flask_app.extensions["celery"]
