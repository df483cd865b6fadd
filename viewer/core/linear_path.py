"""``_LinearPath``: a fitted linear classifier's ``predict`` and ``predict_proba`` without
scikit-learn's per-call input checks, used by ``Predictor`` (and a model host's
``HostedPredictor``) only when it gives exactly the estimator's own answers on a probe batch.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.special import expit


def _linear_classifiers() -> tuple[type, ...]:
    """The public scikit-learn classifiers whose ``decision_function`` and ``predict`` are the
    linear ones ``_LinearPath`` reproduces (``X @ coef_.T + intercept_``, then its sign or argmax).

    RidgeClassifier(CV) (its own ``predict``, for multilabel targets) and
    LinearDiscriminantAnalysis (its own ``decision_function``) are linear too but compute
    differently, so they are not listed.
    """
    from sklearn import linear_model
    from sklearn.svm import LinearSVC

    classes: list[type] = [linear_model.LogisticRegression, linear_model.LogisticRegressionCV,
                           linear_model.SGDClassifier, linear_model.Perceptron, LinearSVC]
    # deprecated in scikit-learn 1.8, to be removed in 1.10
    passive_aggressive = getattr(linear_model, "PassiveAggressiveClassifier", None)
    if passive_aggressive is not None:
        classes.append(passive_aggressive)
    return tuple(classes)


def _linear_decision_and_predict(kind: type) -> bool:
    """True when ``kind`` is one of ``_linear_classifiers`` (or a subclass) and keeps scikit-learn's
    shared linear ``decision_function`` and ``predict``, those ``LogisticRegression`` inherits; a
    subclass that replaces either is served by scikit-learn. (The build-time probe in
    ``_LinearPath._reproduces`` still has the last word.)"""
    from sklearn.linear_model import LogisticRegression

    return issubclass(kind, _linear_classifiers()) and all(
        getattr(kind, name, None) is getattr(LogisticRegression, name)
        for name in ("decision_function", "predict"))


class _LinearPath:
    """``predict`` and ``predict_proba`` of a fitted linear classifier, computed the way
    scikit-learn computes them after its input checks (``LinearClassifierMixin.decision_function``
    and ``predict``, ``LogisticRegression.predict_proba``, ``_predict_proba_lr``), on a float64
    numpy array. ``before``: the pipeline steps ahead of the classifier, run through their own
    ``transform``.

    Each method returns None for input it was not built for (another dtype or width, NaN or
    infinity, a step that fails), and the caller then asks scikit-learn, which gives its own
    answer or error. ``build`` returns a path only when it reproduces the estimator exactly on
    a probe batch.
    """

    PROBE_ROWS = 16

    def __init__(self, before: Any, final: Any, proba: str | None):
        self.before = before
        self.coef_t = final.coef_.T
        self.intercept = final.intercept_
        self.classes = final.classes_
        self.n_features = final.coef_.shape[1]
        self.proba = proba  # "softmax" (multinomial), "ovr" (expit, normalised) or None

    @classmethod
    def build(cls, estimator: Any) -> "_LinearPath | None":
        try:
            return cls._build(estimator)
        except Exception:  # noqa: BLE001  (a model this code does not know: scikit-learn serves it)
            return None

    @classmethod
    def _build(cls, estimator: Any) -> "_LinearPath | None":
        from sklearn.linear_model import LogisticRegression, SGDClassifier
        from sklearn.pipeline import Pipeline

        before, final = None, estimator
        if isinstance(estimator, Pipeline):
            if type(estimator) is not Pipeline or len(estimator.steps) == 0:
                return None
            final = estimator.steps[-1][1]
            before = estimator[:-1] if len(estimator.steps) > 1 else None
        kind = type(final)
        if not _linear_decision_and_predict(kind):
            return None
        coef, classes = getattr(final, "coef_", None), getattr(final, "classes_", None)
        if type(coef) is not np.ndarray or coef.ndim != 2 or coef.dtype.kind != "f" \
                or not isinstance(classes, np.ndarray) or len(classes) < 2:
            return None
        proba = None
        if getattr(kind, "predict_proba", None) is LogisticRegression.predict_proba:
            proba = "ovr" if len(classes) <= 2 else "softmax"
        elif kind is SGDClassifier and final.loss == "log_loss":
            proba = "ovr"
        n_features = getattr(estimator, "n_features_in_", None)
        if not isinstance(n_features, (int, np.integer)) or n_features < 1:
            return None
        path = cls(before, final, proba)
        return path if path._reproduces(estimator, int(n_features)) else None

    @classmethod
    def probe(cls, n_features: int) -> np.ndarray:
        """The rows a path must answer exactly as the model does before it is used."""
        rng = np.random.default_rng(0)
        n = cls.PROBE_ROWS
        return np.vstack([np.zeros((1, n_features)), rng.random((n // 2, n_features)),
                          rng.standard_normal((n - n // 2 - 1, n_features)) * 3.0])

    def _reproduces(self, estimator: Any, n_features: int) -> bool:
        probe = self.probe(n_features)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                checks = [(self.predict(probe), estimator.predict(probe))]
                if self.proba is not None:
                    checks.append((self.predict_proba(probe), estimator.predict_proba(probe)))
        except Exception:  # noqa: BLE001  (anything unexpected: no fast path, scikit-learn serves)
            return False
        return all(ours is not None and ours.dtype == theirs.dtype and ours.shape == theirs.shape
                   and np.array_equal(ours, theirs, equal_nan=ours.dtype.kind == "f") for ours, theirs in checks)

    def _decision(self, X: np.ndarray) -> np.ndarray | None:
        if X.dtype != np.float64 or X.ndim != 2:
            return None
        if self.before is not None:
            try:
                X = self.before.transform(X)
            except Exception:  # noqa: BLE001  (scikit-learn, asked next, raises it again)
                return None
            if type(X) is not np.ndarray or X.ndim != 2 or X.dtype.kind != "f":
                return None
        if X.shape[1] != self.n_features or not np.isfinite(X).all():
            return None
        scores = X @ self.coef_t + self.intercept
        return scores.reshape(-1) if scores.shape[1] == 1 else scores

    def predict(self, X: np.ndarray) -> np.ndarray | None:
        scores = self._decision(X)
        if scores is None:
            return None
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes.take(indices, axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        prob = self._decision(X)
        if prob is None:
            return None
        if self.proba == "softmax":  # sklearn.utils.extmath.softmax
            prob -= prob.max(axis=1).reshape((-1, 1))
            np.exp(prob, out=prob)
            prob /= prob.sum(axis=1).reshape((-1, 1))
            return prob
        expit(prob, out=prob)  # LinearClassifierMixin._predict_proba_lr
        if prob.ndim == 1:  # np.stack([1 - prob, prob], axis=1), without its overhead
            out = np.empty((prob.shape[0], 2))
            np.subtract(1, prob, out=out[:, 0])
            out[:, 1] = prob
            return out
        prob_sum = prob.sum(axis=1)
        all_zero = prob_sum == 0
        if np.any(all_zero):
            prob[all_zero, :] = 1
            prob_sum[all_zero] = prob.shape[1]
        prob /= prob_sum.reshape((prob.shape[0], -1))
        return prob
