"""The architecture holds: one layers contract names every module (import-linter), and the
framework-free parts load no framework when imported."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module", ["viewer", "viewer.core", "viewer.core.scoring", "viewer.core.safe_load",
                                    "viewer.core.metrics", "viewer.core.compare", "viewer.core.datasets",
                                    "viewer.core.predictor", "viewer.core.payload", "viewer.plots.results",
                                    "viewer.plots.compare", "viewer.client"])
def test_framework_free_modules_load_no_framework(module):
    """A notebook that imports these never pays for (or depends on) the web app."""
    code = (f"import sys, json; import {module}; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('flask', 'werkzeug', 'celery', 'kombu', 'sqlalchemy', 'flask_sqlalchemy', 'flask_login'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "viewer").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}
