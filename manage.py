#!/usr/bin/env python
"""The project's commands: ``python manage.py --help``."""

from viewer.__main__ import cli

if __name__ == "__main__":
    cli()
