"""Model hosts, without the app: a pool of real host processes, real models, and the failures a
model can cause (crash, freeze, memory, a malformed answer), each contained and named."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from tests.poison import HostileModel
from tests.support import alive, wait_gone
from viewer.core.hostproto import Op
from viewer.core.introspect import describe_model
from viewer.core.payload import PayloadError
from viewer.infra.host.pool import (Host, HostCrashed, HostedPredictor, HostMalformed, HostPool, HostTimeout,
                                    LoadRefused, ModelFailed)
from viewer.infra.host.server import Spawned

TRUSTED = ("tests.poison",)


@pytest.fixture(scope="module")
def pool():
    pool = HostPool(size=3, memory_mb=512, file_mb=256, imports=TRUSTED)
    yield pool
    pool.close()


def hosted(pool, tmp_path, estimator, *, timeout: float = 20.0, key: str | None = None, trusted=TRUSTED):
    """The model saved, then served by a host of ``pool`` (info described like an upload's)."""
    key = key or f"{type(estimator).__name__}-{id(estimator)}"
    path = tmp_path / f"{key}.joblib"
    joblib.dump(estimator, path)
    info = describe_model(estimator).to_dict()
    load = {"trusted_modules": list(trusted), "info": info, "max_decompressed_bytes": 2**30}

    def starter():
        return pool.start(key, lambda: os.open(path, os.O_RDONLY), load, timeout=timeout)

    host = pool.get(key, starter)
    return HostedPredictor(pool, key, key, info, host.reply, starter, timeout)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return X, y


def test_a_hosted_classifier_answers_exactly_as_scikit_learn(pool, tmp_path, data):
    X, y = data
    for model in (LogisticRegression().fit(X, y), HistGradientBoostingClassifier(max_iter=10).fit(X, y)):
        served = hosted(pool, tmp_path, model)
        np.testing.assert_array_equal(served.predict(X[:50]), model.predict(X[:50]))
        np.testing.assert_array_equal(served.predict_proba(X[:50]), model.predict_proba(X[:50]))
        assert served.final_kind == type(model).__name__ and served.has_proba


def test_a_linear_classifier_is_computed_in_the_app_from_its_hosts_numbers(pool, tmp_path, data):
    """Its coefficients are numbers the host sends; the app's arithmetic is used only because it
    gives the host's (scikit-learn's) answers exactly, and input it was not built for still goes
    to the host."""
    X, y = data
    model = LogisticRegression().fit(X, y)
    served = hosted(pool, tmp_path, model)
    assert served.linear is not None
    np.testing.assert_array_equal(served.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(served.predict(X), model.predict(X))
    served.host().kill()  # the host is gone: linear answers need none
    np.testing.assert_array_equal(served.predict_proba(X[:3]), model.predict_proba(X[:3]))
    bad = X[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(PayloadError, match="Missing or infinite"):  # from a new host
        served.predict(bad)
    scaled = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    assert hosted(pool, tmp_path, scaled).linear is None  # its scaler is model code: the host runs it


def test_integer_labels_regressors_and_multi_output_keep_their_values_and_types(pool, tmp_path, data):
    X, y = data
    ints = LogisticRegression().fit(X, (y == "yes").astype(np.int64) * 3 + 1)
    np.testing.assert_array_equal(hosted(pool, tmp_path, ints).predict(X[:20]), ints.predict(X[:20]))
    assert hosted(pool, tmp_path, ints).predict(X[:5]).dtype == np.int64
    regressor = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X[:, 0])
    np.testing.assert_array_equal(hosted(pool, tmp_path, regressor).predict(X[:20]), regressor.predict(X[:20]))
    two = LinearRegression().fit(X, X[:, :2])
    result = hosted(pool, tmp_path, two).predict(X[:7])
    assert result.shape == (7, 2)
    np.testing.assert_array_equal(result, two.predict(X[:7]))


def messy_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    region = rng.choice(["north", "south", "east"], size=n).astype(object)
    region[::7] = None
    region[3] = float("nan")
    return pd.DataFrame({"loan_id": np.arange(n) + 1000, "income": rng.normal(50, 10, n),
                         "region": region, "age": rng.integers(18, 80, n)})


def test_a_pipeline_on_text_and_missing_values_gets_the_same_frame_as_in_process(pool, tmp_path):
    frame = messy_frame()
    y = np.where(frame["income"] > 50, "high", "low")
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["income", "age"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         ["region"]),
    ])
    model = make_pipeline(pre, LogisticRegression()).fit(frame, y)
    served = hosted(pool, tmp_path, model)
    assert served.needs_frame
    unseen = frame.copy()
    unseen.loc[0, "region"] = "mars"
    for sample in (frame, unseen):
        np.testing.assert_array_equal(served.predict_proba(sample), model.predict_proba(sample))
        np.testing.assert_array_equal(served.predict(sample), model.predict(sample))


def test_bad_input_comes_back_as_the_predict_paths_own_message(pool, tmp_path, data):
    X, y = data
    served = hosted(pool, tmp_path, LogisticRegression().fit(X, y))
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(PayloadError, match="Missing or infinite values") as caught:
        served.predict(bad)
    assert caught.value.error_code == "MISSING_VALUES"
    np.testing.assert_array_equal(served.predict(X[:3]), LogisticRegression().fit(X, y).predict(X[:3]))


def hostile(pool, tmp_path, data, **kwargs):
    X, y = data
    return hosted(pool, tmp_path, HostileModel().fit(X, y), **kwargs)


def test_a_host_that_crashes_is_reported_and_the_next_call_gets_a_new_host(pool, tmp_path, data):
    X, _ = data
    served = hostile(pool, tmp_path, data, key="crash")
    first = served.host().pid
    crash = X[:2].copy()
    crash[0, 0] = 666
    with pytest.raises(HostCrashed, match="crash"):
        served.predict(crash)
    assert wait_gone(first)
    assert served.predict(X[:2]).shape == (2,)
    assert served.host().pid != first


def test_a_frozen_host_is_killed_at_its_deadline(pool, tmp_path, data):
    X, _ = data
    served = hostile(pool, tmp_path, data, key="freeze", timeout=1.0)
    pid = served.host().pid
    freeze = X[:1].copy()
    freeze[0, 0] = 777
    started = time.monotonic()
    with pytest.raises(HostTimeout, match="longer than 1 s"):
        served.predict(freeze)
    assert time.monotonic() - started < 10
    assert wait_gone(pid)
    assert served.predict(X[:1]).shape == (1,)


def test_a_model_that_asks_for_too_much_memory_is_refused_and_the_host_lives(pool, tmp_path, data):
    X, _ = data
    served = hostile(pool, tmp_path, data, key="hog")
    pid = served.host().pid
    hog = X[:1].copy()
    hog[0, 0] = 888
    with pytest.raises(ModelFailed, match="memory"):
        served.predict(hog)
    assert served.predict(X[:3]).shape == (3,)


@pytest.mark.parametrize("trigger, expected", [(555, "Operation not permitted|Network is unreachable"),
                                              (444, "Operation not permitted|Resource temporarily unavailable")])
def test_a_model_cannot_reach_the_network_or_start_processes(pool, tmp_path, data, trigger, expected):
    X, _ = data
    served = hostile(pool, tmp_path, data, key="sandboxed")
    attempt = X[:1].copy()
    attempt[0, 0] = trigger
    with pytest.raises(ModelFailed, match=expected):
        served.predict(attempt)


def test_every_guard_is_active_on_this_machine(pool, tmp_path, data):
    host = hostile(pool, tmp_path, data, key="guards").host()
    assert set(host.guards) >= {"network", "files", "processes", "user", "memory", "syscalls"}
    assert not [name for name, value in host.guards.items() if value.startswith("missing")]


def test_the_least_recently_used_host_stops_first_and_pinned_ones_stay(tmp_path, data):
    X, y = data
    small = HostPool(size=2, memory_mb=512, file_mb=256)
    try:
        small.pinned.add("m0")
        served = [hosted(small, tmp_path, DecisionTreeClassifier(max_depth=depth).fit(X, y), key=f"m{i}")
                  for i, depth in enumerate((2, 3, 4))]
        pids = [s.host().pid for s in served[:1]] + [small.hosts()[k].pid for k in ("m2",)]
        assert set(small.hosts()) == {"m0", "m2"}
        assert alive(pids[0]) and alive(pids[1])
        assert served[1].predict(X[:2]).shape == (2,)  # m1 starts again; m2 (least recent) stops
        assert set(small.hosts()) == {"m0", "m1"}
        assert wait_gone(pids[1])
    finally:
        small.close()


def test_a_file_the_loader_refuses_is_refused_inside_the_host(pool, tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x04cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    load = {"trusted_modules": [], "info": None, "max_decompressed_bytes": 2**30}
    with pytest.raises(LoadRefused, match="allowlist|not allowed|refused") as caught:
        pool.start("evil", lambda: os.open(path, os.O_RDONLY), load, timeout=20)
    assert caught.value.meta["kind"] == "unsafe"


def test_an_upload_is_described_by_its_host(pool, tmp_path, data):
    X, y = data
    model = LogisticRegression().fit(X, y)
    path = tmp_path / "upload.joblib"
    joblib.dump(model, path)
    host = pool.start("upload", lambda: os.open(path, os.O_RDONLY),
                      {"trusted_modules": [], "info": None, "max_decompressed_bytes": 2**30}, timeout=20)
    try:
        assert host.reply["info"]["classes"] == ["no", "yes"]
        assert host.reply["format"] == "joblib" and host.reply["info"]["kind"] == "classifier"
    finally:
        host.close()


def test_a_malformed_answer_kills_the_host_and_is_never_parsed(tmp_path):
    """A compromised host (here a process that writes garbage where a frame belongs)."""
    ours, theirs = socket.socketpair()
    liar = subprocess.Popen([sys.executable, "-c", "import os,sys; os.write(int(sys.argv[1]), b'\\x80\\x04garbage' * 10)"
                             "; import time; time.sleep(30)", str(theirs.fileno())], pass_fds=(theirs.fileno(),))
    theirs.close()
    host = Host(Spawned(ours, os.pidfd_open(liar.pid), liar.pid, str(tmp_path / "scratch")), "liar/1")
    with pytest.raises(HostMalformed, match="liar/1"):
        host.exchange([], ops=(Op.PREDICT,), timeout=10)
    assert liar.wait(timeout=10) == -9


def test_hosts_work_when_the_apps_temporary_folder_is_private(tmp_path, data, monkeypatch):
    """A TMPDIR of mode 0700 (as tools make them) is out of reach of uid 65534: scratch folders
    go to a shared temporary folder instead."""
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    X, y = data
    own = HostPool(size=1, memory_mb=512, file_mb=256)
    try:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
        served = hosted(own, tmp_path, model)
        np.testing.assert_array_equal(served.predict(X[:5]), model.predict(X[:5]))
        assert not served.host().scratch.startswith(str(private))
    finally:
        own.close()


LAZY_STEP = """
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class LazyModel(ClassifierMixin, BaseEstimator):
    \"\"\"Imports its helper only when it predicts, as libraries do, so the fork server has not.\"\"\"

    def __init__(self, helper="helper"):
        self.helper = helper

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        import importlib

        return importlib.import_module(f"{__name__}.{self.helper}").pick(self.classes_, len(X))
"""


def test_hosts_import_lazily_from_a_folder_only_its_owner_may_enter(tmp_path, data, monkeypatch):
    """A checkout or virtualenv in a folder of mode 0700 (``mktemp -d``, /root): the host reads
    what it imports there with the owner's file rights (Landlock still limits where), and a module
    that is not installed is named, with the fix."""
    closed = Path(tempfile.mkdtemp(prefix="checkout-"))  # mode 0700, in a folder open to all
    package = closed / "lazy_steps"
    package.mkdir()
    (package / "__init__.py").write_text(LAZY_STEP)
    (package / "helper.py").write_text("import numpy as np\n\ndef pick(classes, n):\n"
                                       "    return np.repeat(classes[:1], n)\n")
    monkeypatch.syspath_prepend(str(closed))
    import lazy_steps

    X, y = data
    own = HostPool(size=1, memory_mb=512, file_mb=256, imports=("lazy_steps",))
    try:
        served = hosted(own, tmp_path, lazy_steps.LazyModel().fit(X, y), key="lazy", trusted=("lazy_steps",))
        assert "lazy_steps.helper" not in sys.modules and f"{closed} (mode 0700)" in served.host().guards["user"]
        assert served.predict(X[:3]).tolist() == ["no"] * 3
        missing = hosted(own, tmp_path, lazy_steps.LazyModel(helper="absent").fit(X, y), key="absent",
                         trusted=("lazy_steps",))
        with pytest.raises(ModelFailed, match=r"needs the module 'lazy_steps\.absent', which its host could "
                                              r"not import\. .* install the module there"):
            missing.predict(X[:3])
    finally:
        own.close()
        sys.modules.pop("lazy_steps", None)
        shutil.rmtree(closed)
