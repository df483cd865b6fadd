#!/usr/bin/env python
"""Manage the model results viewer: `python manage.py --help`."""

from viewer.cli import cli

if __name__ == "__main__":
    cli()
