"""The notebooks in notebooks/ run, cell by cell, in a real IPython kernel (nbclient) against a live
server with a real worker and the demo loaded, so they cannot rot; and they are committed clean.
They import ``viewer`` as an installed package (``make install`` installs it editable into .venv),
never by editing ``sys.path``."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.support import ROOT
from tests.test_demo import finished_jobs

NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ["01-train-and-upload.ipynb", "02-predict.ipynb", "03-score-a-dataset.ipynb",
            "04-core-and-plots-without-a-server.ipynb"]


def execute(path: Path) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in notebooks/, as Jupyter would; a cell error raises."""
    found = subprocess.run([sys.executable, "-c", "import viewer; print(viewer.__file__)"], cwd=NOTEBOOKS,
                           capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, (f"the kernel cannot import viewer from {NOTEBOOKS}: `make install` installs "
                                   f"the package into the venv (pip install --no-deps -e .)\n{found.stderr}")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", startup_timeout=120,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


@pytest.fixture
def kernel_env(monkeypatch):
    """The kernel inherits this process's environment."""
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's own future default; no warning
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a shared 2-core machine: no spinning OpenMP threads
    monkeypatch.delenv("VIEWER_URL", raising=False)
    monkeypatch.delenv("VIEWER_TOKEN", raising=False)
    return monkeypatch


def test_the_notebooks_are_committed_without_outputs():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, \
                    f"{path.name} has outputs: clear them before committing (cell {cell.get('id')})"
        assert notebook.metadata.kernelspec.name == "python3"
        code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
        assert "sys.path" not in code, f"{path.name} edits sys.path: import the installed package instead"
        assert set(notebook.metadata) <= {"kernelspec", "language_info"}, f"{path.name}: {set(notebook.metadata)}"


def test_every_notebook_runs_against_a_live_server(app, live_server, worker, auth, kernel_env):
    from viewer.services import demo
    from viewer.client import Client

    with app.app_context():
        assert demo.load().registered  # notebooks 2 and 3 use the demo models, as after `make run`
    demo_jobs = finished_jobs(app)  # the demo's, before the notebooks add theirs
    assert {job["state"] for job in demo_jobs.values()} == {"done"}, \
        f"worker exit code {worker.proc.poll()}; its log ends:\n{worker.log()}"
    token = auth.token("scientist")  # a fresh token of a role that may upload
    kernel_env.setenv("VIEWER_URL", live_server)
    kernel_env.setenv("VIEWER_TOKEN", token)
    for name in EXPECTED:
        try:
            execute(NOTEBOOKS / name)
        except CellExecutionError as exc:
            pytest.fail(f"{name} failed:\n{exc}\n\nThe worker (exit code {worker.proc.poll()}) log ends:\n"
                        f"{worker.log()}", pytrace=False)

    # What they did, seen from the API.
    client = Client(live_server, token)
    assert client.model("wine-logreg@candidate")["estimator_class"] == "sklearn.pipeline.Pipeline"
    scored = [d for d in client.datasets() if d["name"] == "breast-cancer-holdout.parquet"]
    assert len(scored) == 1 and scored[0]["n_rows"] == 171
    jobs = client.request("GET", "/api/v1/jobs", params={"dataset": scored[0]["id"]})["jobs"]
    assert [(j["model"], j["state"]) for j in jobs] == [("breast-cancer-hgb/1", "done")]
    # The same held-out rows as the demo's test set, so the same numbers.
    assert jobs[0]["metrics"] == demo_jobs["breast-cancer-hgb"]["metrics"]


def test_a_notebook_says_what_to_set_when_the_server_settings_are_missing(kernel_env):
    with pytest.raises(CellExecutionError) as caught:
        execute(NOTEBOOKS / "02-predict.ipynb")
    assert "Set VIEWER_URL and VIEWER_TOKEN" in str(caught.value)
    assert "manage.py create-token" in str(caught.value)
