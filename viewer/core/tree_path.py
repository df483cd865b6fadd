"""``TreePath``: a tree ensemble's ``predict`` and ``predict_proba`` for a few rows, in numpy, from
the fitted trees' arrays, with scikit-learn's own comparisons and sums in its order: the answers
are identical to scikit-learn's, not close.

Why: a compiled ensemble answers one row in tens of microseconds, but it runs in a model host,
and crossing to a host and back costs about half a millisecond of two processes' time. Like a
linear classifier's coefficients (``linear_path``), the trees are numbers: the host exports them
(``export``), the app rebuilds the path (``from_export``), checks that it gives the host's answers
on a probe, and answers small batches itself. One row through 100 trees of depth 12 takes about
50 microseconds here. Bigger batches (over ``SMALL`` rows) go to the compiled runtime, which is
faster there.

What it reproduces (``build`` refuses the rest, and only returns a path whose answers on threshold
rows equal the estimator's):

- RandomForest and ExtraTrees, classifiers and regressors with one output: each tree compares
  ``float32(x)`` with its float64 threshold (``x <= t``: left), the leaves' values are summed tree
  after tree starting from zero, then divided by the number of trees; the label is the first
  class of highest probability. Rows with a missing or infinite value are declined: scikit-learn
  refuses them or routes them by rules of the fit.
- HistGradientBoosting without categorical features, classifiers (binary: ``expit``, the label
  from ``raw > 0``; multiclass: softmax, argmax) and regressors with the identity link: float64
  comparisons, a missing value goes where the node's ``missing_go_to_left`` says, and each class's
  raw score is its baseline plus the trees' values, iteration after iteration.

Any input it was not built for (another dtype or width, more than ``SMALL`` rows, a value it
declines) makes a method return None, and the caller asks the model.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.special import expit

SMALL = 16          # rows: larger batches go to the compiled runtime
MAX_NODES = 500_000  # larger ensembles are not exported (the app would hold them per model)
PROBE_ROWS = 64
CHECK_ROWS = 32     # probe rows the host sends with the trees
_FIXED = 5  # node table columns before the leaf values: feature, threshold, left, right, missing_left


class _Refuse(Exception):
    """An estimator or option this module does not reproduce."""


class TreePath:
    """The ensemble as flat node arrays: every tree's nodes one after another (``roots``: where
    each starts), leaves pointing to themselves so that ``depth`` steps reach every leaf."""

    def __init__(self, nodes: np.ndarray, spec: dict[str, Any], classes: np.ndarray | None):
        n = len(nodes)
        self.feature = nodes[:, 0].astype(np.intp)
        self.threshold = np.ascontiguousarray(nodes[:, 1])
        self.children = nodes[:, 2:4].astype(np.intp)
        self.children_flat = self.children.ravel()
        self.missing_right = nodes[:, 4] == 0
        self.values = np.ascontiguousarray(nodes[:, _FIXED:])
        self.roots = np.asarray(spec["roots"], dtype=np.intp)
        self.depth = int(spec["depth"])
        self.kind = spec["kind"]              # "forest" or "boosting"
        self.float32 = spec["comparison"] == "float32"
        self.nan = bool(spec["nan"])          # missing values routed by missing_left (boosting)
        self.link = spec.get("link")          # boosting: "expit", "softmax" or "identity"
        self.n_features = int(spec["n_features"])
        self.classes = classes
        self.proba = classes is not None
        self.baseline = np.asarray(spec.get("baseline") or [], dtype=np.float64)
        self.tree_class = np.asarray(spec.get("tree_class") or [], dtype=np.intp)
        width = self.values.shape[1]
        if n < 1 or n > MAX_NODES or not len(self.roots) or self.depth < 0 or self.n_features < 1 \
                or self.kind not in ("forest", "boosting") or not np.isfinite(self.values).all() \
                or np.isnan(self.threshold).any() \
                or self.feature.min() < 0 or self.feature.max() >= self.n_features \
                or self.children.min() < 0 or self.children.max() >= n \
                or self.roots.min() < 0 or self.roots.max() >= n:
            raise _Refuse("a node table out of range")
        if self.kind == "forest":
            if width != (len(classes) if self.proba else 1):
                raise _Refuse("leaf values of another width")
            return
        k = len(self.baseline)
        link = ("expit" if k == 1 else "softmax") if self.proba else ("identity" if k == 1 else None)
        if width != 1 or k < 1 or self.link != link or len(self.tree_class) != len(self.roots) \
                or self.tree_class.min() < 0 or self.tree_class.max() >= k \
                or self.proba and k != (1 if len(classes) == 2 else len(classes)):
            raise _Refuse("boosting options")
        self.by_class = [np.flatnonzero(self.tree_class == c) for c in range(k)]

    # --- from scikit-learn, to the app and back --------------------------------------------------

    @classmethod
    def build(cls, est: Any) -> "TreePath | None":
        """The path of a fitted estimator, or None (an estimator it does not reproduce, or one whose
        answers on the probe rows were not identical)."""
        try:
            nodes, spec = _tables(est)
            path = cls(nodes, spec, getattr(est, "classes_", None) if spec["proba"] else None)
        except (_Refuse, AttributeError, TypeError, ValueError, IndexError):
            return None
        return path if path.reproduces(est) else None

    def export(self) -> tuple[dict[str, Any], np.ndarray]:
        """(a JSON-able description, the float64 node table): what ``from_export`` takes."""
        nodes = np.empty((len(self.feature), _FIXED + self.values.shape[1]))
        nodes[:, 0] = self.feature
        nodes[:, 1] = self.threshold
        nodes[:, 2:4] = self.children
        nodes[:, 4] = ~self.missing_right
        nodes[:, _FIXED:] = self.values
        spec = {"roots": self.roots.tolist(), "depth": self.depth, "kind": self.kind, "proba": self.proba,
                "comparison": "float32" if self.float32 else "float64", "nan": self.nan, "link": self.link,
                "n_features": self.n_features, "baseline": self.baseline.tolist(),
                "tree_class": self.tree_class.tolist()}
        return spec, nodes

    @classmethod
    def from_export(cls, spec: dict[str, Any], nodes: np.ndarray, classes: np.ndarray | None,
                    check: dict[str, Any]) -> "TreePath | None":
        """The path the host described, used only if it gives exactly the model's own answers on
        the host's probe rows (``check``, from ``expected``) here."""
        try:
            whole = nodes[:, [0, 2, 3, 4]] if nodes.ndim == 2 else None
            if whole is None or nodes.dtype != np.float64 or nodes.shape[1] <= _FIXED \
                    or not np.isfinite(whole).all() or not np.array_equal(whole, np.floor(whole)):
                return None
            path = cls(nodes, spec, classes if spec.get("proba") else None)
            probe = np.asarray(check["rows"], dtype=np.float64)
            if probe.ndim != 2 or len(probe) < 1 or probe.shape[1] != path.n_features:
                return None
            ours = path._proba(probe) if path.proba else path._values(probe)
            same = np.array_equal(ours, np.asarray(check["answers"], dtype=np.float64))
        except (_Refuse, KeyError, TypeError, ValueError, IndexError):
            return None
        return path if same else None

    def expected(self, est: Any) -> dict[str, Any]:
        """Probe rows and the estimator's own answers on them, for ``from_export``."""
        probe = self.probe()[:CHECK_ROWS]
        return {"rows": probe.tolist(), "answers": (est.predict_proba(probe) if self.proba else est.predict(probe)).tolist()}

    def probe(self) -> np.ndarray:
        """Rows spread over the range of each feature's thresholds (so they take both sides of
        many splits), the same wherever the path is rebuilt."""
        rng = np.random.default_rng(0)
        inner = self.children[:, 0] != np.arange(len(self.children))
        low = np.zeros(self.n_features)
        high = np.ones(self.n_features)
        finite = inner & np.isfinite(self.threshold)
        if finite.any():
            f, t = self.feature[finite], self.threshold[finite]
            low = np.full(self.n_features, np.inf)
            high = np.full(self.n_features, -np.inf)
            np.minimum.at(low, f, t)
            np.maximum.at(high, f, t)
            unused = ~np.isfinite(low)
            low[unused], high[unused] = 0.0, 1.0
        span = np.maximum(high - low, 1e-9)
        return low - 0.1 * span + rng.random((PROBE_ROWS, self.n_features)) * 1.2 * span

    def reproduces(self, est: Any) -> bool:
        """Whether this path gives exactly the estimator's predict (and predict_proba) on the probe
        and on rows at each split's threshold (``compiled.threshold_rows``, a bounded sample)."""
        from .compiled import threshold_rows

        probe = self.probe()
        rows = np.concatenate([probe, threshold_rows(est, probe[:8], float32=self.float32,
                                                     with_missing=self.nan, cap=2048)])
        return self.compare(est, rows) is not None

    def compare(self, est: Any, rows: np.ndarray) -> int | None:
        """How many of ``rows`` the path takes, all answered exactly as ``est`` answers them (in
        batches of any size); None when any answer differs."""
        compared = 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for start in range(0, len(rows), 4096):
                    X = rows[start:start + 4096]
                    keep = self._accepts(X)
                    if keep is None:
                        return None
                    X = X[keep]
                    compared += len(X)
                    checks = [(self._predict(X), est.predict(X))]
                    if self.proba:
                        checks.append((self._proba(X), est.predict_proba(X)))
                    if not all(ours.dtype == theirs.dtype and ours.shape == theirs.shape
                               and np.array_equal(ours, theirs) for ours, theirs in checks):
                        return None
        except Exception:  # noqa: BLE001  (anything unexpected: no path)
            return None
        return compared

    # --- answering -------------------------------------------------------------------------------

    def predict(self, X: Any) -> np.ndarray | None:
        return self._predict(X) if self._answers(X) else None

    def predict_proba(self, X: Any) -> np.ndarray | None:
        return self._proba(X) if self.proba and self._answers(X) else None

    def _answers(self, X: Any) -> bool:
        if type(X) is not np.ndarray or not 1 <= len(X) <= SMALL:
            return False
        keep = self._accepts(X)
        return keep is not None and bool(keep.all())

    def _accepts(self, X: np.ndarray) -> np.ndarray | None:
        """Per row, whether the path answers it as scikit-learn does (None: not this array at all)."""
        if X.dtype != np.float64 or X.ndim != 2 or X.shape[1] != self.n_features:
            return None
        if self.nan:  # HistGradientBoosting takes NaN (missing_left) and infinity (compared) alike
            return np.ones(len(X), dtype=bool)
        with np.errstate(over="ignore"):
            seen = X.astype(np.float32) if self.float32 else X
        return np.isfinite(seen).all(axis=1)

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: (rows, trees). Each step looks up every tree's
        node at once: its feature's value, the comparison, then the child (``children`` holds
        left and right side by side, so the child is at ``2 * node + right``)."""
        if self.float32:
            X = X.astype(np.float32).astype(np.float64)
        nan = self.nan and bool(np.isnan(X).any())
        feature, threshold, children = self.feature, self.threshold, self.children_flat
        if len(X) == 1:
            x, node = X[0], self.roots
            for _ in range(self.depth):
                value = x[feature[node]]
                right = value > threshold[node]
                if nan:
                    right = np.where(np.isnan(value), self.missing_right[node], right)
                node = children[(node << 1) + right]
            return node.reshape(1, -1)
        x = X.ravel()
        node = np.broadcast_to(self.roots, (len(X), len(self.roots)))
        base = (np.arange(len(X)) * X.shape[1])[:, None]
        for _ in range(self.depth):
            value = x[feature[node] + base]
            right = value > threshold[node]
            if nan:
                right = np.where(np.isnan(value), self.missing_right[node], right)
            node = children[(node << 1) + right]
        return node.reshape(len(X), len(self.roots))

    def _raw(self, X: np.ndarray) -> np.ndarray:
        """Forests: the leaves' values summed tree after tree from zero, divided by the number of
        trees; boosting: each class's baseline plus its trees' values in order."""
        leaves = self._leaves(X)
        if self.kind == "forest":
            total = np.add.accumulate(self.values[leaves], axis=1)[:, -1]
            total /= len(self.roots)
            return total
        values = self.values[leaves, 0]
        raw = np.empty((len(X), len(self.baseline)), order="F")  # as scikit-learn's (the softmax's sums)
        for c, trees in enumerate(self.by_class):
            terms = np.empty((len(X), len(trees) + 1))
            terms[:, 0] = self.baseline[c]
            terms[:, 1:] = values[:, trees]
            raw[:, c] = np.add.accumulate(terms, axis=1)[:, -1]
        return raw

    def _proba(self, X: np.ndarray) -> np.ndarray:
        raw = self._raw(X)
        if self.kind == "forest":
            return raw
        if self.link == "expit":  # HalfBinomialLoss.predict_proba
            proba = np.empty((len(raw), 2))
            proba[:, 1] = expit(raw[:, 0])
            proba[:, 0] = 1 - proba[:, 1]
            return proba
        raw -= raw.max(axis=1).reshape((-1, 1))  # sklearn.utils.extmath.softmax
        np.exp(raw, out=raw)
        raw /= raw.sum(axis=1).reshape((-1, 1))
        return raw

    def _values(self, X: np.ndarray) -> np.ndarray:
        return self._raw(X)[:, 0]

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if not self.proba:
            return self._values(X)
        if self.kind == "forest":
            return self.classes.take(np.argmax(self._raw(X), axis=1), axis=0)
        raw = self._raw(X)
        encoded = (raw[:, 0] > 0).astype(int) if raw.shape[1] == 1 else np.argmax(raw, axis=1)
        return self.classes[encoded]


# --- scikit-learn's fitted trees as node tables ------------------------------------------------------

def _tables(est: Any) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn import ensemble

    forests = (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor, ensemble.ExtraTreesClassifier,
               ensemble.ExtraTreesRegressor)
    boosting = (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor)
    if type(est) in forests:
        return _forest(est)
    if type(est) in boosting:
        return _boosting(est)
    raise _Refuse(type(est).__name__)


def _forest(est: Any) -> tuple[np.ndarray, dict[str, Any]]:
    if est.n_outputs_ != 1:
        raise _Refuse("several outputs")
    proba = hasattr(est, "classes_")
    tables, roots, depth, offset = [], [], 0, 0
    for tree in est.estimators_:
        t = tree.tree_
        leaf = t.children_left == t.children_right
        own = np.arange(t.node_count) + offset
        values = t.value[:, 0, :] if proba else t.value[:, 0, :1]
        table = np.zeros((t.node_count, _FIXED + values.shape[1]))
        table[:, 0] = np.where(leaf, 0, t.feature)
        table[:, 1] = np.where(leaf, 0.0, t.threshold)
        table[:, 2] = np.where(leaf, own, t.children_left + offset)
        table[:, 3] = np.where(leaf, own, t.children_right + offset)
        table[:, _FIXED:] = values
        tables.append(table)
        roots.append(offset)
        offset += t.node_count
        depth = max(depth, int(t.max_depth))
        if offset > MAX_NODES:
            raise _Refuse("too many nodes")
    spec = {"roots": roots, "depth": depth, "kind": "forest", "comparison": "float32", "nan": False,
            "n_features": int(est.n_features_in_), "proba": proba}
    return np.concatenate(tables), spec


def _boosting(est: Any) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn._loss.link import IdentityLink

    if getattr(est, "_preprocessor", None) is not None or np.any(getattr(est, "is_categorical_", None) or False):
        raise _Refuse("categorical features")
    proba = hasattr(est, "classes_")
    k = int(est.n_trees_per_iteration_)
    if proba:
        link = "expit" if k == 1 else "softmax"
    elif isinstance(est._loss.link, IdentityLink) and k == 1:
        link = "identity"
    else:
        raise _Refuse("a link other than the identity")
    tables, roots, tree_class, depth, offset = [], [], [], 0, 0
    for iteration in est._predictors:
        for c, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise _Refuse("categorical splits")
            leaf = nodes["is_leaf"].astype(bool)
            own = np.arange(len(nodes)) + offset
            table = np.zeros((len(nodes), _FIXED + 1))
            table[:, 0] = np.where(leaf, 0, nodes["feature_idx"])
            table[:, 1] = np.where(leaf, 0.0, nodes["num_threshold"])
            table[:, 2] = np.where(leaf, own, nodes["left"].astype(np.int64) + offset)
            table[:, 3] = np.where(leaf, own, nodes["right"].astype(np.int64) + offset)
            table[:, 4] = nodes["missing_go_to_left"]
            table[:, _FIXED] = nodes["value"]
            tables.append(table)
            roots.append(offset)
            tree_class.append(c)
            offset += len(nodes)
            depth = max(depth, int(nodes["depth"].max()))
            if offset > MAX_NODES:
                raise _Refuse("too many nodes")
    baseline = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    if len(baseline) != k:
        raise _Refuse("a baseline of another width")
    spec = {"roots": roots, "depth": depth, "kind": "boosting", "comparison": "float64", "nan": True,
            "n_features": int(est.n_features_in_), "proba": proba, "link": link, "baseline": baseline.tolist(),
            "tree_class": tree_class}
    return np.concatenate(tables), spec
