"""A structure-aware fuzzer for model hosts: mutated scikit-learn models, every failure contained.

Each case takes a small model of one of 22 families (fitted when the test starts), applies 1-3
mutations to its fitted structures (a numpy array, an integer, a Cython ``Tree``, the nodes of a
HistGradientBoosting predictor, a KD/Ball tree's state, a deleted attribute, an attribute of
another family), saves it with joblib and serves it as an upload is served: ``HostPool.start``
with ``info=None`` (the host loads and describes it), then a ``HostedPredictor`` predicts a probe
batch through the app's input checks (``InputSchema.prepare``) and handles the answer as
``services.serving.run`` does (``to_jsonable``; ``argmax`` and ``labels_at`` for probabilities).

Expected: a refusal, bad input, a model that raises, a crashed, frozen or malformed host. A bug, which fails the test:
any other exception in this process (the parent side reading a host's answers), a result with the
wrong number of rows, a pool that stops serving a benign model after a crash, a host process
alive after ``pool.close()``. Host crashes that the loader could have refused are listed.

Run:  pytest -m chaos tests/infra/test_host_fuzz.py   (marked chaos: not part of `make test`)
  FUZZ_SECONDS=300  the time budget        FUZZ_SEED=15015  the run's seed (printed first)
  FUZZ_SEED=s FUZZ_CASE=n  replays case n of seed s alone (it draws from random.Random(f"{s}:{n}"))
"""

from __future__ import annotations

import copy
import itertools
import os
import random
import time
import traceback
import warnings
from collections import Counter, defaultdict
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn import (cluster, compose, decomposition, ensemble, impute, linear_model, naive_bayes, neighbors,
                     neural_network, pipeline, preprocessing, svm, tree)
from sklearn.exceptions import ConvergenceWarning
from sklearn.tree._tree import Tree

from tests.support import alive
from viewer.core.payload import PayloadError, Table
from viewer.core.predictor import labels_at, to_jsonable
from viewer.infra.host.pool import (HostCrashed, HostedPredictor, HostMalformed, HostPool, HostTimeout,
                                    HostUnavailable, LoadRefused, ModelFailed)
from viewer.infra.host.server import ForkServer


def fuzz_seconds() -> float:
    return float(os.environ.get("FUZZ_SECONDS", "300"))


SEED = 15015
TIMEOUT = 5.0  # load and predict (for a load the pool waits at least its READY_SECONDS, 30 s)
UPLOAD = {"trusted_modules": [], "info": None, "max_decompressed_bytes": 2**30}
CONTAINED = (HostCrashed, HostTimeout, HostMalformed)
EXTREMES = (2**31 - 1, -(2**31 - 1), -1, 2**62, float("nan"), float("inf"), float("-inf"))
ARRAY_OPS = ("set", "set", "truncate", "extend", "reshape", "dtype", "empty", "0-d", "scalar", "None", "string")
INT_OPS = {"zero": 0, "minus-one": -1, "huge": 2**62, "float": 2.5, "numpy": np.int64(2**40), "string": "3"}
TREE_FIELDS = ("left_child", "right_child", "feature", "threshold", "n_node_samples", "missing_go_to_left")
HGB_FIELDS = ("feature_idx", "left", "right", "bin_threshold", "is_categorical", "num_threshold", "bitset_idx",
              "is_leaf")
KD_STATE = ("data", "idx_array", "node_data", "node_bounds", "leaf_size", "n_levels", "n_nodes")
WEIGHTS = {"tree": 4, "kdtree": 4, "nodes": 4, "array": 2}  # the native structures first
FRAME_COLUMNS = ["a", "b", "c", "d", "colour"]


class Skip(Exception):
    """This mutation does not apply to this value (an empty array has no element to set)."""


def build_models() -> dict[str, tuple[Any, np.ndarray | pd.DataFrame]]:
    """family -> (fitted model, the rows it was fitted on). Under a second on the 2-core machine."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    labels = np.array(["low", "mid", "high"])[np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])]
    target = X @ np.arange(1.0, 6.0) + rng.normal(scale=0.1, size=200)
    frame = pd.DataFrame(X[:, :4], columns=FRAME_COLUMNS[:4])
    frame["colour"] = rng.choice(["red", "green", "blue"], size=200).astype(object)
    frame.loc[::9, "colour"], frame.loc[::11, "a"] = None, np.nan
    columns = compose.ColumnTransformer([
        ("num", impute.SimpleImputer(), FRAME_COLUMNS[:4]),
        ("cat", pipeline.make_pipeline(impute.SimpleImputer(strategy="most_frequent"),
                                       preprocessing.OneHotEncoder(handle_unknown="ignore")),
         ["colour"])])
    fits = [
        (tree.DecisionTreeClassifier(max_depth=6, random_state=0), X, labels),
        (tree.DecisionTreeRegressor(max_depth=6, random_state=0), X, target),
        (ensemble.RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0), X, labels),
        (ensemble.ExtraTreesRegressor(n_estimators=5, max_depth=5, random_state=0), X, target),
        (ensemble.GradientBoostingClassifier(n_estimators=5, max_depth=3, random_state=0), X, labels),
        (ensemble.HistGradientBoostingClassifier(max_iter=5, random_state=0), X, labels),
        (ensemble.HistGradientBoostingRegressor(max_iter=5, random_state=0), X, target),
        (neighbors.KNeighborsClassifier(algorithm="kd_tree"), X, labels),
        (neighbors.KNeighborsClassifier(algorithm="ball_tree"), X, labels),
        (neighbors.RadiusNeighborsRegressor(radius=3.0), X, target),
        (svm.SVC(kernel="rbf"), X, labels),
        (svm.LinearSVC(max_iter=200), X, labels),
        (linear_model.LogisticRegression(max_iter=50), X, labels),
        (linear_model.Ridge(), X, target),
        (naive_bayes.GaussianNB(), X, labels),
        (naive_bayes.MultinomialNB(), np.abs(X), labels),
        (neural_network.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0), X, labels),
        (cluster.KMeans(n_clusters=3, n_init=1, random_state=0), X, None),
        (ensemble.IsolationForest(n_estimators=5, random_state=0), X, None),
        (pipeline.make_pipeline(preprocessing.StandardScaler(), decomposition.PCA(n_components=3),
                                linear_model.LogisticRegression(max_iter=50)), X, labels),
        (pipeline.make_pipeline(columns, linear_model.LogisticRegression(max_iter=50)), frame, labels),
        (pipeline.make_pipeline(preprocessing.SplineTransformer(n_knots=4), linear_model.Ridge()), X, target),
    ]
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # LinearSVC, LogisticRegression, MLP: few iterations
        for model, data, y in fits:
            name = type(model).__name__
            if name == "Pipeline":
                name = "Pipeline(" + ",".join(type(step).__name__ for _, step in model.steps) + ")"
            elif isinstance(model, neighbors.KNeighborsClassifier):
                name += f"({model.algorithm})"
            models[name] = (model.fit(data) if y is None else model.fit(data, y), data)
    return models


# --- mutations -----------------------------------------------------------------------------------

def sites(obj: Any, path: str = "", seen: set[int] | None = None):
    """(container, key, value, path) of everything reachable from a model that can be replaced:
    estimators' attributes, list items (estimators_), object-array cells (gradient boosting's
    estimators_); tuples (a pipeline's steps) are walked through."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, tuple):
        for j, value in enumerate(obj):
            yield from sites(value, f"{path}[{j}]", seen)
        return
    if isinstance(obj, list):
        container = obj
    elif isinstance(obj, np.ndarray) and obj.dtype == object and obj.flags.c_contiguous:
        container = obj.reshape(-1)  # a view: setting a cell sets it in obj
    elif type(obj).__module__.startswith("sklearn.") and hasattr(obj, "__dict__"):
        container = vars(obj)
    else:
        return
    for key, value in list(container.items() if isinstance(container, dict) else enumerate(container)):
        here = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
        yield container, key, value, here
        yield from sites(value, here, seen)


def kind_of(value: Any) -> str | None:
    if isinstance(value, np.ndarray):
        return "nodes" if value.dtype.names else "array"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return "int"
    if isinstance(value, (neighbors.KDTree, neighbors.BallTree)):
        return "kdtree"
    return "tree" if isinstance(value, Tree) else None


def cast(value: Any, dtype: np.dtype) -> Any:
    if dtype.kind in "OUS":
        return value if dtype.kind == "O" else str(value)
    with np.errstate(all="ignore"):  # NaN into an integer, 2**62 into int32: wrapped, on purpose
        return np.array(value).astype(dtype)


def set_field(a: np.ndarray, rnd: random.Random, fields: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """One node's field set to an extreme, to itself (a cycle) or just past the end."""
    if a.ndim != 1 or not len(a):
        raise Skip
    a, i = a.copy(), rnd.randrange(len(a))
    field = rnd.choice([f for f in fields if f in a.dtype.names] or list(a.dtype.names))
    value = rnd.choice(EXTREMES + (len(a), i, rnd.randrange(len(a))))
    a[field][i] = cast(value, a.dtype[field])
    return a, f"{field}[{i}]={value!r}"


def mutate_array(a: np.ndarray, rnd: random.Random, fields: tuple[str, ...] = ()) -> tuple[Any, str]:
    op = rnd.choice(ARRAY_OPS)
    if op == "set" and a.dtype.names:
        return set_field(a, rnd, fields)
    n = len(a) if a.ndim else 0
    if (op in ("truncate", "extend", "reshape") and not n) or (op == "set" and not a.size):
        raise Skip
    first = a.reshape(-1)[0] if a.size else 0
    if op == "set":
        new, i, value = a.copy(), rnd.randrange(a.size), rnd.choice(EXTREMES)
        new.reshape(-1)[i] = cast(value, a.dtype)
        return new, f"set [{i}]={value!r}"
    if op == "dtype":
        dtype = np.dtype(rnd.choice([np.float32, np.int64, np.int32, object, bool]))
        try:
            with np.errstate(all="ignore"):
                return a.astype(dtype), f"as {dtype.name}"
        except (TypeError, ValueError):  # a structured array into a plain type
            raise Skip from None
    k = rnd.randrange(n) if n else 0
    return {"truncate": lambda: (a[:k].copy(), f"truncate to {k}"),
            "extend": lambda: (np.concatenate([a, a[:k + 1]]), f"extend by {k + 1}"),
            "reshape": lambda: (a.T.copy(), "transpose") if a.ndim >= 2 else (a.reshape(-1, 1), "as a column"),
            "empty": lambda: (a[:0].copy() if a.ndim else np.empty(0, a.dtype), "empty"),
            "0-d": lambda: (np.asarray(first), "0-d"),
            "scalar": lambda: (first.item() if isinstance(first, np.generic) else first, "scalar"),
            "None": lambda: (None, "None"), "string": lambda: ("fuzz", "a string")}[op]()


def mutate_int(value: Any, rnd: random.Random) -> tuple[Any, str]:
    op = rnd.choice(sorted(INT_OPS))
    return INT_OPS[op], op


class Forged:
    """Pickles as a Cython tree with this state would (its ``__reduce__``) without being built here:
    scikit-learn's ``__setstate__`` trusts some states (a 0-d ``nodes`` array segfaults
    ``Tree.__setstate__`` in 1.9.1), and an attacker writes such bytes directly anyway, so every
    state reaches the host, whose loader must refuse what scikit-learn would refuse or crash on."""

    def __init__(self, reduced: tuple):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


def mutate_tree(cython_tree: Tree, rnd: random.Random) -> tuple[Forged, str]:
    """A Tree's ``__reduce__`` (the ctor's arguments and ``__getstate__``) with one part mutated."""
    cls, (n_features, n_classes, n_outputs), state = cython_tree.__reduce__()
    state = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()}
    part = rnd.choice(("nodes", "nodes", "nodes", "values", "values", "node_count", "max_depth", "n_features",
                       "n_classes", "n_outputs"))
    if part == "nodes":
        state["nodes"], what = (set_field(state["nodes"], rnd, TREE_FIELDS) if rnd.random() < 0.7
                                else mutate_array(state["nodes"], rnd))
    elif part == "values":
        state["values"], what = mutate_array(state["values"], rnd)
    elif part == "n_classes":
        n_classes, what = mutate_array(n_classes, rnd)
    elif part in ("node_count", "max_depth"):
        state[part], what = mutate_int(state[part], rnd)
    else:
        value, what = mutate_int(None, rnd)
        n_features, n_outputs = (value, n_outputs) if part == "n_features" else (n_features, value)
    return Forged((cls, (n_features, n_classes, n_outputs), state)), f"{part} {what}"


def mutate_binary_tree(binary_tree: Any, rnd: random.Random) -> tuple[Forged, str]:
    """A KD/Ball tree's ``__reduce__`` with one array or count of its state mutated."""
    new, args, state = binary_tree.__reduce__()
    state, j = list(state), rnd.randrange(len(KD_STATE))
    if isinstance(state[j], np.ndarray):
        state[j], what = mutate_array(state[j], rnd, ("idx_start", "idx_end", "is_leaf"))
    else:
        state[j], what = mutate_int(state[j], rnd)
    return Forged((new, args, tuple(state))), f"{KD_STATE[j]} {what}"


MUTATORS = {"int": mutate_int, "tree": mutate_tree, "kdtree": mutate_binary_tree,
            "array": mutate_array, "nodes": lambda value, rnd: mutate_array(value, rnd, HGB_FIELDS)}


def mutate(model: Any, family: str, rnd: random.Random, donors) -> list[tuple[str, str]]:
    """1-3 mutations applied in place: (kind, for the summary; exactly what, for a failure)."""
    applied: list[tuple[str, str]] = []
    goal = rnd.randint(1, 3)
    for _attempt in range(30):
        if len(applied) == goal:
            break
        choices = defaultdict(list)
        for site in sites(model):
            container, key, value, _ = site
            if kind_of(value):
                choices[kind_of(value)].append(site)
            if isinstance(container, dict):
                choices["delete"].append(site)
                if any(other != family for other, _ in donors.get(key, ())):
                    choices["swap"].append(site)
        kinds = sorted(choices)
        kind = rnd.choices(kinds, [WEIGHTS.get(k, 1) for k in kinds])[0]
        container, key, value, path = rnd.choice(choices[kind])
        attribute = path.rsplit(".", 1)[-1].split("[")[0]
        if kind == "delete":
            del container[key]
            applied.append((f"delete {attribute}", f"del {path}"))
            continue
        if kind == "swap":
            other, new = rnd.choice([d for d in donors[key] if d[0] != family])
            new, what = copy.deepcopy(new), f"from {other}"
        else:
            try:
                new, what = MUTATORS[kind](value, rnd)
            except Skip:
                continue
        container[key] = new
        applied.append((f"{kind} {attribute}: {what.split('[')[0].split('=')[0].strip()}", f"{path} {what}"))
    return applied


# --- serving a case ------------------------------------------------------------------------------

def probe(info: dict[str, Any], data: np.ndarray | pd.DataFrame) -> Table:
    """Three rows like the training rows, an all-zero row and two rows of huge values (within
    float32, which trees cast to), as wide as the model now says it is (one that claims 3 gets 3)."""
    names = info.get("feature_names")
    names = names if isinstance(names, list) and names and all(isinstance(n, str) for n in names) else None
    width = info.get("n_features")
    width = len(names) if names else width if isinstance(width, int) and 0 < width <= 64 else data.shape[1]
    if isinstance(data, pd.DataFrame):
        names, text = names or list(data.columns)[:width], {c: data[c].dtype == object for c in data.columns}
        normal = [[data[c].iloc[r] if c in text else 0.0 for c in names] for r in range(3)]
        extreme = [["" if text.get(c) else value for c in names] for value in (0.0, 1e38, -1e18)]
        return Table(columns=names, rows=normal + extreme)
    rows = np.zeros((6, width))
    rows[:3, :min(width, data.shape[1])] = data[:3, :width]
    rows[4], rows[5] = 1e38, -1e18
    return Table(columns=names, rows=rows.tolist())


class Fuzz:
    def __init__(self, pool: HostPool, models, tmp_path, seed: int):
        self.pool, self.models, self.tmp, self.seed = pool, models, tmp_path, seed
        self.donors = defaultdict(list)  # attribute name -> (family, value), for swaps
        for family, (model, _) in models.items():
            for container, key, value, _path in sites(model):
                if isinstance(container, dict):
                    self.donors[key].append((family, value))
        self.outcomes, self.refusals, self.crash_kinds = Counter(), Counter(), Counter()
        self.gaps: list[str] = []  # what crashed or froze a host instead of being refused when loaded
        self.bugs: list[str] = []
        model, data = models["LogisticRegression"]
        self.benign = self.serve("benign", model)[1]
        self.benign_row, self.benign_answer = data[:1], model.predict(data[:1])
        pool.pinned.add("benign")

    def serve(self, key: str, model: Any) -> tuple[Any, HostedPredictor]:
        """Save ``model``, start its host as an upload does, register it, and its predictor."""
        path = self.tmp / f"{key}.joblib"
        joblib.dump(model, path)
        opener = lambda: os.open(path, os.O_RDONLY)  # noqa: E731
        host = self.pool.start(key, opener, UPLOAD, timeout=TIMEOUT)
        info = host.reply["info"]

        def starter():  # a restart, as the app's predictor does it: with the stored description
            return self.pool.start(key, opener, {**UPLOAD, "info": info}, timeout=TIMEOUT)

        self.pool.get(key, lambda: host)
        return host, HostedPredictor(self.pool, key, key, info, host.reply, starter, TIMEOUT)

    def still_serves(self, where: str) -> None:
        try:
            answer = self.benign.predict(self.benign_row)
            assert np.array_equal(answer, self.benign_answer), f"answered {answer!r}, not {self.benign_answer!r}"
        except Exception:  # noqa: BLE001
            self.bugs.append(f"the pool no longer serves a benign model after {where}:\n{traceback.format_exc()}")

    def case(self, i: int) -> str:
        rnd = random.Random(f"{self.seed}:{i}")
        family = rnd.choice(sorted(self.models))
        model, data = copy.deepcopy(self.models[family][0]), self.models[family][1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy casting NaN, inf, 2**62 (on purpose)
            applied = mutate(model, family, rnd, self.donors)
        where = f"seed {self.seed} case {i} ({family}; {'; '.join(w for _, w in applied) or 'no mutation'})"
        try:
            self.run(f"case-{i}", data, model, [k for k, _ in applied], where)
        except Exception:  # noqa: BLE001  (anything else escaping the parent side is the bug we look for)
            self.bugs.append(f"{where}:\n{traceback.format_exc()}")
        finally:
            self.pool.discard(f"case-{i}")
            (self.tmp / f"case-{i}.joblib").unlink(missing_ok=True)
        return where

    def crashed(self, phase: str, exc: Exception, kinds: list[str], where: str) -> None:
        self.outcomes[f"{phase} crash contained"] += 1
        self.crash_kinds.update(kinds)
        self.gaps.append(f"{where}: {phase}: {type(exc).__name__}")
        self.still_serves(where)

    def run(self, key: str, data, model: Any, kinds: list[str], where: str) -> None:
        try:
            host, predictor = self.serve(key, model)
        except LoadRefused as exc:
            self.outcomes["refused at load"] += 1
            self.refusals[str(exc.meta.get("kind"))] += 1
            return
        except CONTAINED as exc:
            return self.crashed("load", exc, kinds, where)
        except HostUnavailable:
            self.outcomes["no host"] += 1
            return
        self.outcomes["loaded"] += 1
        table = probe(host.reply["info"], data)
        for method in ("predict", "predict_proba") if predictor.has_proba else ("predict",):
            try:
                result = getattr(predictor, method)(predictor.prepare(table))
            except PayloadError:
                self.outcomes["input refused"] += 1
                continue
            except ModelFailed:
                self.outcomes["model failed"] += 1
                continue
            except CONTAINED as exc:
                return self.crashed("predict", exc, kinds, where)
            except HostUnavailable:
                self.outcomes["no host"] += 1
                return
            assert len(result) == table.n_rows, f"{method} answered {len(result)} rows for {table.n_rows}"
            to_jsonable(result)
            if method == "predict_proba":  # what services.serving.run does with the answer
                labels_at(predictor.class_labels if predictor.classes else range(result.shape[1]),
                          result.argmax(axis=1))
            self.outcomes["predicted ok"] += 1


# --- the test ------------------------------------------------------------------------------------

def grouped(bugs: list[str]) -> str:
    """The first case of each distinct error (a traceback's last line, digits aside), in full."""
    first: dict[str, str] = {}
    for bug in bugs:
        first.setdefault("".join(c for c in bug.strip().splitlines()[-1] if not c.isdigit()), bug)
    return f"{len(bugs)} bug(s), {len(first)} distinct; the first case of each:\n\n" + "\n\n".join(first.values())


@pytest.mark.chaos
@pytest.mark.timeout(fuzz_seconds() + 300)  # the budget, the models, and one last frozen load
def test_mutated_models_never_escape_their_hosts(request, tmp_path, monkeypatch, capsys):
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")

    def report(line: str) -> None:  # shown with -q and without -s
        with capsys.disabled():
            terminal.write_line(line)

    seed, only, budget = int(os.environ.get("FUZZ_SEED", SEED)), os.environ.get("FUZZ_CASE"), fuzz_seconds()
    report(f"\nhost fuzz: FUZZ_SEED={seed} FUZZ_SECONDS={budget:g}" + (f" FUZZ_CASE={only}" if only else ""))
    pids: set[int] = set()  # every host and fork server the pool starts, failed starts included
    spawn = ForkServer.spawn

    def recording_spawn(server, *args, **kwargs):
        spawned = spawn(server, *args, **kwargs)
        pids.update((spawned.pid, server.process.pid))
        return spawned

    monkeypatch.setattr(ForkServer, "spawn", recording_spawn)
    started, ran = time.monotonic(), 0
    pool = HostPool(size=4, memory_mb=512, file_mb=256)
    try:
        fuzz = Fuzz(pool, build_models(), tmp_path, seed)
        deadline = time.monotonic() + budget
        for i in [int(only)] if only else itertools.count():
            if not only and time.monotonic() > deadline:
                break
            where = fuzz.case(i)
            ran += 1
        fuzz.still_serves("the last case")
    finally:
        pool.close()
    leaked, end = pids, time.monotonic() + 5
    while leaked and time.monotonic() < end:
        leaked = {pid for pid in leaked if alive(pid)}
        time.sleep(0.05)

    if only:
        report(f"host fuzz: {where}")
    report(f"host fuzz: seed {seed}, {time.monotonic() - started:.0f} s, {ran} cases, {len(pids)} processes")
    report("host fuzz: outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(fuzz.outcomes.items())))
    report("host fuzz: load refusals by kind: " + ", ".join(f"{k} {n}" for k, n in fuzz.refusals.most_common()))
    report("host fuzz: mutations in cases whose host crashed (top 10): "
           + "; ".join(f"{k} x{n}" for k, n in fuzz.crash_kinds.most_common(10)))
    for gap in fuzz.gaps[:10]:
        report(f"host fuzz: crashed a host, not refused: {gap}")
    problems = [grouped(fuzz.bugs)] if fuzz.bugs else []
    if leaked:
        problems.append(f"host processes alive after pool.close(): {sorted(leaked)}")
    if not only and budget >= 60 and ran < 100:
        problems.append(f"only {ran} cases in {budget:g} s: the fuzzer is too slow to mean much")
    assert not problems, f"seed {seed} (replay a case: FUZZ_SEED={seed} FUZZ_CASE=n)\n" + "\n\n".join(problems)
