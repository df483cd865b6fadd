"""Compiled tree ensembles: a fitted scikit-learn forest or boosting model turned into native code
by Treelite and TL2cgen, and the parity check that decides whether that code may answer for it.

``compile_trees(model, folder)`` compiles the model's final tree ensemble (the last step of a
Pipeline; the steps before it are computed by ``head_path.HeadPath`` when it reproduces them
exactly, else by scikit-learn) into ``folder/model.so`` with gcc and returns
what was built (``Compiled``: the library, its SHA-256 and the versions it was built with).
``TreeRuntime(compiled)`` loads it (one thread) and answers ``predict_proba`` / ``predict`` /
``score_samples`` as the estimator would, for the estimator's own input (the output of the steps
before it). ``check_parity(model, runtime, X)`` compares the two on rows of ``X`` and on rows made
to sit at every split's threshold and its neighbours in scikit-learn's comparison dtype (float32
for the DecisionTree family, float64 for HistGradientBoosting) and with the split's feature
missing: labels must be equal and every value within ``TOLERANCE``. A runtime that fails is not
used; ``Parity.reason`` says why in a sentence for the model card.

Measured on this machine (bench/compiled.py): a 1-row ``predict_proba`` of a 100-iteration
HistGradientBoosting costs ~1 ms in scikit-learn and ~0.03 ms compiled.

TL2cgen 1.0 bundles Treelite 4.1; Treelite 4.1's scikit-learn importer fails with numpy 2
(``np.array(copy=False)``), so the importer is Treelite 4.2 (pinned next to TL2cgen): its models
load in TL2cgen with a line on stderr ("originated from a newer Treelite version"); the parity
check is what vouches for the result.

This module imports numpy and scikit-learn; Treelite and TL2cgen only when compiling or loading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from .introspect import final_estimator
from .head_path import HeadPath
from .tree_path import TreePath

TOLERANCE = 1e-9       # probabilities and values, absolute
MAX_PARITY_ROWS = 200_000
LIBRARY = "model.so"
# TL2cgen's code generation (bench/compiled.py, 100-tree models, 10,000 rows): "quantize" compares
# each value's rank among a feature's thresholds, not the double itself (HGB 55 -> 28-31 ms, a
# depth-12 forest 63 -> 51 ms; without it the forest is slower than scikit-learn); 8 translation
# units let gcc compile a 100-tree forest in 40 s instead of 72 s. The parity check vouches for
# both.
CODEGEN = {"quantize": 1, "parallel_comp": 8}
LIGHTGBM_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, a float: values this close are 0


class CompileError(Exception):
    """The model cannot be compiled: ``str(exc)`` is a sentence for the model card."""


@dataclasses.dataclass(frozen=True)
class Compiled:
    """What ``compile_trees`` built: the library and what a runtime needs to answer like the
    estimator (its family's output shape and comparison dtype)."""

    library: str
    sha256: str
    estimator_class: str
    output: str            # "proba" (classifiers), "value" (regressors), "score" (IsolationForest)
    n_classes: int | None  # classifiers: len(classes_)
    input_dtype: str       # "float32": the DecisionTree family compares float32(X); "float64": HGB
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Parity:
    ok: bool
    rows: int                  # rows compared (data rows + threshold rows)
    threshold_rows: int
    max_abs_diff: float        # over probabilities / values
    label_flips: int           # classifiers: rows whose label differs
    reason: str | None = None  # why the runtime may not be used
    # Rows with a missing value answered alike (None: scikit-learn refuses them). False: such
    # rows go to scikit-learn.
    missing_ok: bool | None = None
    # A Pipeline's earlier steps computed by ``head_path.HeadPath``: True when its output was
    # identical to scikit-learn's on the checked data rows (``head_rows``), False when it was not
    # (scikit-learn then transforms), None when the model has no such head or no rows to check.
    head_same: bool | None = None
    head_rows: int = 0
    # The trees walked in numpy (``tree_path.TreePath``, for batches of a few rows, answered in the
    # app): True when its answers were identical to scikit-learn's on every checked row it takes
    # (``trees_rows``), False when not (it is then never used), None when the estimator has none.
    trees_same: bool | None = None
    trees_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- what compiles ---------------------------------------------------------------------------------

def _families():
    from sklearn import ensemble

    float32 = (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor, ensemble.ExtraTreesClassifier,
               ensemble.ExtraTreesRegressor, ensemble.GradientBoostingClassifier,
               ensemble.GradientBoostingRegressor, ensemble.IsolationForest)
    float64 = (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor)
    return float32, float64


def _library(est: Any) -> str:
    """The package of the estimator's class: "sklearn", "lightgbm", "xgboost"..."""
    return (getattr(type(est), "__module__", "") or "").split(".")[0]


def _own(est: Any) -> str:
    """Who answers when the library does not: the estimator's own library."""
    return "LightGBM" if _library(est) == "lightgbm" else "scikit-learn"


def head_of(model: Any, est: Any) -> Any:
    """The Pipeline steps before ``est`` (None when the model is the estimator itself). Raises
    CompileError when ``est`` is not the model's own last step (a pipeline nested as the last
    step, or "passthrough" after the estimator): its steps before the trees would be skipped."""
    if est is model:
        return None
    if hasattr(model, "steps") and model.steps and model.steps[-1][1] is est:
        return model[:-1]
    raise CompileError(f"The model's last step is not {type(est).__name__} itself (a pipeline inside the "
                       "pipeline, or a step after it), so it is not compiled; scikit-learn serves it. "
                       "Written as one flat pipeline, it can be.")


def compilable(model: Any) -> str | None:
    """None when the model's final step is a tree ensemble Treelite imports; otherwise why not."""
    est = final_estimator(model)
    try:
        head_of(model, est)
    except CompileError as exc:
        return str(exc)
    float32, float64 = _families()
    if _library(est) == "lightgbm" and type(est).__name__ in ("LGBMClassifier", "LGBMRegressor"):
        return None
    if _library(est) == "xgboost":
        return ("Treelite 4.2 cannot read the model format of XGBoost 3, so this model is not compiled; "
                "XGBoost's own library serves it.")
    if type(est) not in float32 + float64:
        return f"{type(est).__name__} is not a tree ensemble that can be compiled; scikit-learn serves it."
    if type(est) in float64 and getattr(est, "is_categorical_", None) is not None \
            and np.any(est.is_categorical_):
        return ("Treelite cannot compile HistGradientBoosting models with categorical features; "
                "scikit-learn serves it.")
    return None


def current_versions(*, compiler: bool = True) -> dict[str, str]:
    """The versions a compiled runtime depends on (``compiler``: gcc's too, which runs gcc)."""
    import sklearn
    import tl2cgen
    import treelite

    gcc = ""
    try:
        if compiler:
            gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        pass
    return {"scikit-learn": sklearn.__version__, "treelite": treelite.__version__,
            "tl2cgen": tl2cgen.__version__, "gcc": gcc}


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compile_trees(model: Any, folder: str | os.PathLike[str], *, missing_sides: bool = True) -> Compiled:
    """Compile the final tree ensemble of ``model`` into ``folder`` (gcc, ``CODEGEN``).
    Raises CompileError with a sentence for the model card. ``missing_sides=False`` keeps
    Treelite's own routing of missing values in forests (left everywhere: see
    ``_missing_sides``), only to show what the parity check makes of it."""
    why = compilable(model)
    if why is not None:
        raise CompileError(why)
    est = final_estimator(model)
    if shutil.which("gcc") is None:
        raise CompileError(f"No C compiler (gcc) on this machine, so the model is not compiled; "
                           f"{_own(est)} serves it. Install gcc to compile tree models.")
    import tl2cgen
    import treelite

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / LIBRARY
    try:
        imported = treelite.frontend.from_lightgbm(est.booster_) if _library(est) == "lightgbm" \
            else treelite.sklearn.import_model(est)
    except Exception as exc:  # noqa: BLE001 - the importer's refusals have many types
        raise CompileError(f"Treelite could not import this {type(est).__name__} "
                           f"({type(exc).__name__}: {str(exc)[:200] or 'no message'}); {_own(est)} serves it.") from None
    if missing_sides:
        _missing_sides(est, imported)
    # The C code and gcc's files go in ``folder/build`` (made with the process's umask: the compile
    # sandbox's gcc runs as another uid than the Python that writes the code).
    build = folder / "build"
    try:
        build.mkdir()
        tl2cgen.generate_c_code(imported, dirpath=str(build), params=CODEGEN)
        built = tl2cgen.create_shared("gcc", str(build), nthread=1, long_build_time_warning=False)
        os.replace(built, library)
    except Exception as exc:  # noqa: BLE001
        raise CompileError(f"Compiling the model's C code failed ({type(exc).__name__}: "
                           f"{str(exc)[:200] or 'no message'}); {_own(est)} serves it.") from None
    finally:
        shutil.rmtree(build, ignore_errors=True)
    float32, _ = _families()
    classes = getattr(est, "classes_", None)
    from sklearn.ensemble import IsolationForest

    output = "score" if isinstance(est, IsolationForest) else ("proba" if classes is not None else "value")
    return Compiled(library=str(library), sha256=file_sha256(library), estimator_class=type(est).__name__,
                    output=output, n_classes=len(classes) if classes is not None else None,
                    input_dtype="float32" if type(est) in float32 else "float64", versions=current_versions())


def _missing_sides(est: Any, imported: Any) -> None:
    """Send a missing value where scikit-learn's forests do: each split's learnt side (the larger
    child when the tree saw no missing value there; ``tree_.missing_go_to_left``). Treelite's
    importer sends it left everywhere. Its nodes are numbered otherwise, so the two trees are
    walked together from their roots. Forests only (their trees are in ``estimators_`` order)."""
    from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier,
                                  RandomForestRegressor)

    if not isinstance(est, (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier,
                            ExtraTreesRegressor)) or imported.num_tree != len(est.estimators_):
        return
    for i, tree in enumerate(est.estimators_):
        sk = tree.tree_
        side = getattr(sk, "missing_go_to_left", None)
        if side is None:
            return
        accessor = imported.get_tree_accessor(i)
        left, right = accessor.get_field("cleft"), accessor.get_field("cright")
        default_left = accessor.get_field("default_left").copy()
        stack = [(0, 0)]
        while stack:
            ours, theirs = stack.pop()
            if left[ours] < 0 or sk.children_left[theirs] < 0:
                continue
            default_left[ours] = side[theirs]
            stack += [(left[ours], sk.children_left[theirs]), (right[ours], sk.children_right[theirs])]
        accessor.set_field("default_left", default_left)


# --- the runtime -----------------------------------------------------------------------------------

class TreeRuntime:
    """A compiled library answering for the estimator it was compiled from (its own input: the
    output of a Pipeline's earlier steps). Refuses a library whose bytes changed since it was built."""

    def __init__(self, compiled: Compiled, *, input_dtype: str | None = None):
        if file_sha256(compiled.library) != compiled.sha256:
            raise CompileError("The compiled model's file changed since it was built; it is not loaded.")
        import tl2cgen

        self.compiled = compiled
        self._dmatrix = tl2cgen.DMatrix
        self._predictor = tl2cgen.Predictor(compiled.library, nthread=1, verbose=False)
        # The comparison dtype: float32 rounds the input first, as scikit-learn's trees do
        # (``input_dtype`` overrides it only to show what a wrong one does).
        self.round_to_float32 = (input_dtype or compiled.input_dtype) == "float32"

    def unsure_rows(self, X: np.ndarray) -> np.ndarray:
        """Rows the library would answer otherwise than the estimator, which answers them:
        - TL2cgen passes each value in a union of a double and an int that marks a missing value
          with -1, so a double whose low 32 bits are all ones (0.49999999999999994 is one) reads
          as missing (about one value in 4 billion of arbitrary doubles; float32-rounded input
          never has them);
        - LightGBM takes a value within float32(1e-35) of zero as zero (its kZeroThreshold); the library
          compares it as it is."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        unsure = np.zeros(len(X), dtype=bool)
        if not self.round_to_float32:
            low = X.view(np.uint64) & np.uint64(0xFFFFFFFF)
            unsure |= (low == np.uint64(0xFFFFFFFF)).any(axis=1)
        if self.compiled.estimator_class.startswith("LGBM"):
            size = np.abs(X)
            unsure |= ((size > 0) & (size <= LIGHTGBM_ZERO)).any(axis=1)
        return unsure

    def _raw(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.round_to_float32:
            X = X.astype(np.float32).astype(np.float64)
        out = self._predictor.predict(self._dmatrix(np.ascontiguousarray(X), dtype="float64"))
        return out.reshape(len(X), -1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raw = self._raw(X)
        if self.compiled.output != "proba":
            raise TypeError("This model gives no probabilities.")
        if raw.shape[1] == 1 and self.compiled.n_classes == 2:  # boosting: the positive class
            proba = np.empty((len(raw), 2))
            proba[:, 1] = raw[:, 0]
            proba[:, 0] = 1.0 - raw[:, 0]
            return proba
        return raw

    def predict_value(self, X: np.ndarray) -> np.ndarray:
        """Regressors' predictions; IsolationForest's ``score_samples``."""
        raw = self._raw(X)[:, 0]
        return -raw if self.compiled.output == "score" else raw

    def predict_labels(self, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """scikit-learn's rule: the first class of highest probability."""
        return np.asarray(classes)[np.argmax(self.predict_proba(X), axis=1)]


# --- parity ----------------------------------------------------------------------------------------

def _splits(est: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(feature, threshold) of every internal node, per tree, in the estimator's input columns."""
    from sklearn.ensemble import IsolationForest

    out = []
    if _library(est) == "lightgbm":  # its numerical splits ("<="); categorical ones are checked by data rows
        dump = est.booster_.dump_model()
        stack = [tree["tree_structure"] for tree in dump["tree_info"]]
        features, thresholds = [], []
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                if node.get("decision_type") == "<=":
                    features.append(int(node["split_feature"]))
                    thresholds.append(float(node["threshold"]))
                stack += [node["left_child"], node["right_child"]]
        out.append((np.asarray(features, dtype=np.int64), np.asarray(thresholds, dtype=np.float64)))
        return out
    if hasattr(est, "_predictors"):  # HistGradientBoosting
        for iteration in est._predictors:
            for predictor in iteration:
                nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
                out.append((nodes["feature_idx"].astype(np.int64), nodes["num_threshold"].astype(np.float64)))
        return out
    trees = np.asarray(est.estimators_, dtype=object).ravel()
    subsets = getattr(est, "estimators_features_", None) if isinstance(est, IsolationForest) else None
    for i, tree in enumerate(trees):
        t = tree.tree_
        inner = t.children_left != t.children_right
        feature = t.feature[inner].astype(np.int64)
        if subsets is not None:
            feature = np.asarray(subsets[i])[feature]
        out.append((feature, t.threshold[inner].astype(np.float64)))
    return out


def threshold_rows(est: Any, base: np.ndarray, *, float32: bool, with_missing: bool,
                   cap: int = MAX_PARITY_ROWS) -> np.ndarray:
    """Rows that put each split's feature at its threshold and at the neighbouring values in the
    comparison dtype (float32: the float32 values around the threshold; float64: the doubles),
    and missing when the model takes missing values. The other features come from ``base``
    rows in turn. At most ``cap`` rows (splits sampled evenly when there are more)."""
    features, thresholds = [], []
    for f, t in _splits(est):
        features.append(f)
        thresholds.append(t)
    if not features:
        return np.empty((0, base.shape[1]))
    feature = np.concatenate(features)
    threshold = np.concatenate(thresholds)
    # An infinite threshold splits missing values from the rest (HistGradientBoosting); Treelite
    # stores it as the largest double, so the only value "next to" it is that double itself,
    # which no data holds: such splits are checked by the missing-value rows.
    finite = np.isfinite(threshold)
    feature, threshold = feature[finite], threshold[finite]
    # one row per split and value; float32 thresholds are doubles between two float32 values
    if float32:
        t32 = threshold.astype(np.float32)
        values = [threshold, t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))]
        values = [v.astype(np.float64) for v in values]
    else:
        values = [threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, -np.inf)]
    if with_missing:
        values.append(np.full_like(threshold, np.nan))
    per_split = len(values)
    keep = np.arange(len(feature))
    if len(feature) * per_split > cap:
        keep = np.linspace(0, len(feature) - 1, cap // per_split).astype(np.int64)
    rows = np.repeat(base[np.arange(len(keep)) % len(base)], per_split, axis=0)
    at = np.repeat(feature[keep], per_split)
    rows[np.arange(len(rows)), at] = np.stack([v[keep] for v in values], axis=1).ravel()
    return rows


def _dense(X: Any) -> np.ndarray:
    """The estimator's input as a float64 array (a ColumnTransformer with a one-hot encoder may
    give a sparse matrix, which forests take and the library does not)."""
    import scipy.sparse

    return np.asarray(X.toarray() if scipy.sparse.issparse(X) else X, dtype=np.float64)


def _takes_missing(est: Any) -> bool:
    """Whether scikit-learn predicts rows with missing values for this estimator."""
    try:
        row = np.zeros((1, est.n_features_in_))
        row[0, 0] = np.nan
        est.predict(row)
        return True
    except ValueError:
        return False


def _compare(est: Any, runtime: TreeRuntime, rows: np.ndarray) -> tuple[float, int]:
    """(largest absolute difference of probabilities or values, label flips) over ``rows``."""
    output = runtime.compiled.output
    flips = 0
    if output == "proba":
        expected, got = est.predict_proba(rows), runtime.predict_proba(rows)
        flips = int(np.count_nonzero(runtime.predict_labels(rows, est.classes_) != est.predict(rows)))
    elif output == "score":
        expected, got = est.score_samples(rows), runtime.predict_value(rows)
    else:
        expected, got = est.predict(rows), runtime.predict_value(rows)
    if expected.shape != got.shape or np.any(np.isnan(got) != np.isnan(expected)):
        return float("inf"), flips
    return (float(np.nanmax(np.abs(got - expected))) if expected.size else 0.0), flips


def check_parity(model: Any, runtime: TreeRuntime, X: np.ndarray | None = None, *,
                 cap: int = MAX_PARITY_ROWS, tolerance: float = TOLERANCE) -> Parity:
    """Compare ``runtime`` with the model's final estimator on rows of ``X`` (the model's input:
    a Pipeline's earlier steps transform it) and on threshold rows built around them. Rows with
    a missing value are judged apart (``Parity.missing_ok``): a forest fitted without missing
    values sends them to the larger child in scikit-learn, and Treelite does not know which."""
    est = final_estimator(model)
    head = head_of(model, est)
    n_features = int(est.n_features_in_)
    inputs = np.zeros((0, n_features))
    head_same, head_rows = None, 0
    if X is not None and len(X):
        X = X[: cap // 2]
        inputs = _dense(head.transform(X) if head is not None else X)
        path = HeadPath.build(head) if head is not None else None
        if path is not None:
            ours = path.transform(X)
            head_same = ours is not None and ours.shape == inputs.shape \
                and bool(np.array_equal(ours, inputs, equal_nan=True))
            head_rows = len(X)
    base = inputs[:1000].copy() if len(inputs) else np.zeros((1, n_features))
    base[~np.isfinite(base)] = 0.0  # threshold rows set their own missing values
    takes_missing = _takes_missing(est)
    edges = threshold_rows(est, base, float32=runtime.compiled.input_dtype == "float32",
                           with_missing=takes_missing, cap=cap - len(inputs))
    edges = edges[np.isfinite(edges).all(axis=1) | np.isnan(edges).any(axis=1)]
    rows = np.concatenate([inputs, edges])
    if not len(rows):
        return Parity(False, 0, 0, 0.0, 0, f"The model has no split to check; {_own(est)} serves it.")
    misread = runtime.unsure_rows(rows)  # answered by the estimator (CompiledModel)
    rows = rows[~misread]
    n_edges = int((~misread[len(inputs):]).sum())  # the threshold rows compared
    missing = np.isnan(rows).any(axis=1)
    worst, flips = _compare(est, runtime, rows[~missing])
    missing_ok = None
    if missing.any():
        worst_missing, flips_missing = _compare(est, runtime, rows[missing])
        missing_ok = worst_missing <= tolerance and not flips_missing
    trees = TreePath.build(est)
    trees_same, trees_rows = None, 0
    if trees is not None:
        compared = trees.compare(est, rows)
        trees_same, trees_rows = compared is not None, compared or 0
    dtype = "float32" if runtime.round_to_float32 else "float64"
    reason = None
    if flips:
        reason = (f"{dtype} comparisons flip {flips:,} label{'s' if flips != 1 else ''} of "
                  f"{int((~missing).sum()):,} checked rows (at split thresholds); {_own(est)} serves it.")
    elif worst > tolerance:
        reason = (f"The compiled model's {'probabilities' if runtime.compiled.output == 'proba' else 'values'} "
                  f"differ from {_own(est)}'s by up to {worst:.3g} (allowed {tolerance:g}) on "
                  f"{int((~missing).sum()):,} checked rows; {_own(est)} serves it.")
    return Parity(reason is None, len(rows), n_edges, worst, flips, reason, missing_ok, head_same, head_rows,
                  trees_same, trees_rows)


# --- serving -------------------------------------------------------------------------------------

SPEED_SIZES = (1, 100, 10_000)  # batch sizes timed; a batch uses the choice of the next size up


def _best_of(fn, repeat: int) -> float:
    import time

    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class CompiledModel:
    """The model with its final tree ensemble answered by a runtime that passed ``check_parity``:
    earlier Pipeline steps run through ``HeadPath`` when it reproduces them (else scikit-learn), rows with a missing value go to scikit-learn when
    the runtime's answer for them differs (``Parity.missing_ok``), and each batch size uses the
    runtime only where ``measure`` found it faster. Answers as the model's ``predict_proba`` /
    ``predict`` do."""

    def __init__(self, model: Any, runtime: TreeRuntime, parity: Parity, faster: dict[int, bool] | None = None):
        if not parity.ok:
            raise CompileError(parity.reason or "The compiled model failed its parity check.")
        self.model, self.runtime, self.parity = model, runtime, parity
        self.est = final_estimator(model)
        self.head = head_of(model, self.est)
        self.head_path = HeadPath.build(self.head) if self.head is not None and parity.head_same is not False \
            else None
        self.faster = dict(faster) if faster is not None else {size: True for size in SPEED_SIZES}

    def uses_runtime(self, n_rows: int) -> bool:
        if self.runtime.compiled.output == "score":  # IsolationForest: its predict is not the score
            return False
        size = next((s for s in SPEED_SIZES if n_rows <= s), SPEED_SIZES[-1])
        return self.faster.get(size, False)

    def _aside(self, inputs: np.ndarray) -> np.ndarray:
        """Rows the estimator answers: those the runtime may misread, those with a missing value
        unless the parity check found them answered alike, and those the estimator would refuse
        (infinite, or beyond float32 for the float32 family), so its error is the answer."""
        aside = self.runtime.unsure_rows(inputs)
        with np.errstate(over="ignore", invalid="ignore"):
            seen = inputs.astype(np.float32) if self.runtime.round_to_float32 else inputs
        if self.parity.missing_ok:
            aside |= np.isinf(seen).any(axis=1)
        else:
            aside |= ~np.isfinite(seen).all(axis=1)
        return aside

    def _answer(self, X: Any, compiled, reference) -> np.ndarray:
        if not self.uses_runtime(len(X)):
            return reference(self.model, X)
        inputs = self.head_path.transform(X) if self.head_path is not None else None
        if inputs is None:
            inputs = _dense(self.head.transform(X) if self.head is not None else X)
        aside = self._aside(inputs)
        if not aside.any():
            return compiled(inputs)
        fallback = reference(self.est, inputs[aside])
        result = np.empty((len(inputs),) + fallback.shape[1:], dtype=fallback.dtype)
        result[aside] = fallback
        if not aside.all():
            result[~aside] = compiled(inputs[~aside])
        return result

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._answer(X, self.runtime.predict_proba, lambda m, rows: m.predict_proba(rows))

    def predict(self, X: Any) -> np.ndarray:
        if self.runtime.compiled.output == "proba":
            classes = self.est.classes_
            return self._answer(X, lambda rows: self.runtime.predict_labels(rows, classes),
                                lambda m, rows: m.predict(rows))
        return self._answer(X, self.runtime.predict_value, lambda m, rows: m.predict(rows))

    def measure(self, X: Any, repeat: int = 5) -> dict[int, dict[str, float]]:
        """Time scikit-learn and the runtime (best of ``repeat``) on the first 1, 100 and 10,000
        rows of ``X`` (repeated when shorter) and keep, per size, whichever was faster."""
        method = "predict_proba" if self.runtime.compiled.output == "proba" else "predict"
        timings: dict[int, dict[str, float]] = {}
        for size in SPEED_SIZES:
            rows = X[np.arange(size) % len(X)] if not hasattr(X, "iloc") else X.iloc[np.arange(size) % len(X)]
            self.faster[size] = True
            ours = _best_of(lambda: getattr(self, method)(rows), repeat)
            theirs = _best_of(lambda: getattr(self.model, method)(rows), repeat)
            self.faster[size] = ours < theirs
            timings[size] = {"scikit-learn": theirs, "compiled": ours, "speedup": theirs / ours}
        return timings
