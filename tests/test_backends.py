"""The test backends themselves: a refused service check leaves nothing behind."""

import os
import subprocess
import sys

import pytest

from tests.support import BACKEND, POSTGRES_ADMIN_URL, ROOT


def _test_databases() -> set[str]:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'viewer_test_%'")}


@pytest.mark.skipif(BACKEND != "services", reason="needs the services backend's PostgreSQL")
def test_a_refused_service_check_leaks_no_test_database(migrated, tmp_path):
    """A run on the services backend whose Redis is unreachable skips (fails under CI=true)
    without leaving a PostgreSQL database behind."""
    before = _test_databases()
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_the_backend(backend):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(VIEWER_TEST_BACKEND="services", VIEWER_TEST_REDIS="redis://127.0.0.1:1/15")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "tests.conftest",
                          "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), str(probe)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "1 skipped" in run.stdout and "Redis at redis://127.0.0.1:1/15 is not reachable" in run.stdout, \
        run.stdout[-2000:] + run.stderr[-2000:]
    assert _test_databases() == before
