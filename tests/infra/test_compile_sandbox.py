"""The compile sandbox (viewer/infra/host/compiler.py): a model's trees compile with gcc in a
locked-down child, and a model's own steps, which run there during the parity check, meet the
same walls as in a model host. Needs root, like the model hosts (and the CI machine)."""

from __future__ import annotations

import glob
import json
import os

import joblib
import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import make_pipeline

from tests.compile_probe import Abort, Probe, Stall
from viewer.infra.host.compiler import compile_model

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops to uid 65534 from root")

RNG = np.random.default_rng(3)
X = RNG.normal(size=(400, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)
TRUSTED = ("tests.compile_probe",)


def saved(model, folder):
    path = folder / "model.joblib"
    joblib.dump(model, path)
    return str(path)


def test_a_forest_compiles_in_the_sandbox_and_passes_its_parity(tmp_path):
    from viewer.infra.host.server import _scratch_base

    before = set(glob.glob(os.path.join(_scratch_base(), "viewer-compile-*")))
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, Y)
    outcome = compile_model(saved(model, tmp_path), X[:200], str(tmp_path / "compiled"))
    assert outcome.ok, (outcome.reason, outcome.stderr)
    assert outcome.library == str(tmp_path / "compiled" / "model.so") and os.path.isfile(outcome.library)
    result = outcome.result
    assert result["parity"]["ok"] and result["parity"]["threshold_rows"] > 0
    assert set(result["faster"]) == {"1", "100", "10000"}
    guards = result["guards"]
    assert not [name for name, value in guards.items() if value.startswith("missing:")]
    assert guards["processes"].startswith("may start programs (fork, exec); seccomp: no signals to others")
    assert set(glob.glob(os.path.join(_scratch_base(), "viewer-compile-*"))) == before  # its scratch is gone


def test_a_models_own_step_cannot_reach_the_network_the_apps_files_or_its_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("VIEWER_SECRET_KEY", "not for models")
    secret = tmp_path / "secret.txt"
    secret.write_text("the database password")
    outside = tmp_path / "written-by-the-model"
    model = make_pipeline(Probe(secret=str(secret), outside=str(outside)),
                          GradientBoostingClassifier(n_estimators=3, random_state=0)).fit(X, Y)
    outcome = compile_model(saved(model, tmp_path), X[:50], str(tmp_path / "compiled"), trusted_modules=TRUSTED)
    assert not outcome.ok and outcome.library is None
    found = json.loads(outcome.reason.split("probe ", 1)[1].split(")", 1)[0])
    assert found == {"net": "PermissionError", "write": "PermissionError", "read": "PermissionError",
                     "env": [], "gcc": 0, "uid": 65534}
    assert not outside.exists()


@pytest.mark.parametrize("step, expected", [
    (Stall(), "Compiling took longer than 5 s and was stopped; scikit-learn serves the model."),
    (Abort(), "The compile sandbox was killed by signal 6 without a result; scikit-learn serves the model."),
])
def test_a_compile_that_hangs_or_crashes_leaves_scikit_learn_serving(tmp_path, step, expected):
    model = make_pipeline(step, GradientBoostingClassifier(n_estimators=3, random_state=0)).fit(X, Y)
    outcome = compile_model(saved(model, tmp_path), X[:50], str(tmp_path / "compiled"), trusted_modules=TRUSTED,
                            timeout=5)
    assert (outcome.ok, outcome.reason, outcome.library) == (False, expected, None)
