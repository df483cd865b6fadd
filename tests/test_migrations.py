"""The migrations create exactly the schema the code declares, on this backend."""

import subprocess
import sys

from tests.support import ROOT


def test_models_and_migrations_agree(migrated):
    """`flask db check` fails if a table or column was changed without a migration."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "viewer:create_app()", "db", "check", "-d", "viewer/migrations"],
        cwd=ROOT, env=migrated.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
