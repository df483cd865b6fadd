"""Three ways to split one prediction into contributions, each additive by construction.

- ``Linear``: a linear final estimator after its preprocessing: each feature's coefficient times
  its distance from the background's mean. Exact: the contributions and the baseline (the
  output at the mean) add up to the decision function or prediction.
- ``Tree``: shap's TreeExplainer on a tree ensemble (path-dependent: the trees' own cover, no
  background). Exact for the ensemble's raw output (log-odds for boosting, a forest's
  probability, a regressor's value), and checked so on every call.
- ``Sampling``: any model, on its input columns: permutations of the columns, each walked from a
  background row to the row explained, one column at a time (antithetic pairs: each permutation
  and its reverse). The steps of one walk add up to the output minus the background row's
  output, so the average is additive exactly; only how the total is shared is estimated. Bounded
  by a number of model evaluations and a time limit, both reported.

Every method returns, per row, the contributions to one output (the explained class: the
positive one of two, the predicted one of several), the baseline and the output itself.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

ADDITIVE_TOLERANCE = 1e-6


class NotApplicable(Exception):
    """This method does not explain this model (its sentence says why)."""


@dataclass
class PerRow:
    values: np.ndarray  # (rows, features): contributions to the explained output
    base: np.ndarray    # (rows,)
    output: np.ndarray  # (rows,)
    classes: np.ndarray  # (rows,) index of the class explained; -1 for a regressor's value


def pick(raw: np.ndarray, classifier: bool, n_classes: int) -> np.ndarray:
    """Which column of a (rows, outputs) raw output is explained for each row."""
    n, k = raw.shape
    if not classifier:
        if k != 1:
            raise NotApplicable("it predicts several values per row")
        return np.zeros(n, dtype=np.int64)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    if k == 2 and n_classes == 2:
        return np.ones(n, dtype=np.int64)
    return raw.argmax(axis=1)


def class_of(column: np.ndarray, k: int, classifier: bool) -> np.ndarray:
    """The class index a raw output column stands for (a single column is the positive class)."""
    if not classifier:
        return np.full(len(column), -1, dtype=np.int64)
    return np.ones(len(column), dtype=np.int64) if k == 1 else column


def _outputs(array: Any) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    return array.reshape(len(array), -1)


def check_additive(values: np.ndarray, base: np.ndarray, output: np.ndarray) -> None:
    total = base + values.sum(axis=1)
    if not np.allclose(total, output, rtol=ADDITIVE_TOLERANCE, atol=ADDITIVE_TOLERANCE):
        worst = float(np.max(np.abs(total - output)))
        raise NotApplicable(f"its contributions missed the output by {worst:.2g}")


class Linear:
    """A linear model on numeric features: ``coef . (z - mean)``."""

    def __init__(self, final: Any, background: Any, classifier: bool, n_classes: int):
        coef, intercept = getattr(final, "coef_", None), getattr(final, "intercept_", None)
        if coef is None or intercept is None:
            raise NotApplicable("it is not a linear model")
        self.coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        self.intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64)) * np.ones(len(self.coef))
        numbers = _numbers(background)
        if self.coef.shape[1] != numbers.shape[1]:
            raise NotApplicable("its coefficients do not match its features")
        self.raw = final.decision_function if classifier and hasattr(final, "decision_function") else final.predict
        self.classifier, self.n_classes = classifier, n_classes
        self.mean = numbers.mean(axis=0)
        if not np.isfinite(self.mean).all():
            raise NotApplicable("its background features hold missing values")
        computed = numbers @ self.coef.T + self.intercept
        own = _outputs(self.raw(background))
        if own.shape != computed.shape or not np.allclose(computed, own, rtol=1e-9, atol=1e-9):
            raise NotApplicable("its output is not its coefficients' sum")

    def explain(self, Z: Any) -> PerRow:
        numbers = _numbers(Z)
        raw = numbers @ self.coef.T + self.intercept  # the model's output: checked equal at build
        column = pick(raw, self.classifier, self.n_classes)
        coef = self.coef[column]  # (rows, features)
        values = coef * (numbers - self.mean)
        base = self.intercept[column] + coef @ self.mean
        output = raw[np.arange(len(raw)), column]
        check_additive(values, base, output)
        return PerRow(values, base, output, class_of(column, raw.shape[1], self.classifier))


def _numbers(Z: Any) -> np.ndarray:
    try:
        return np.asarray(Z, dtype=np.float64).reshape(len(Z), -1)
    except (TypeError, ValueError):
        raise NotApplicable("its features are not numbers") from None


def raw_output(final: Any, classifier: bool) -> tuple[Callable[[Any], np.ndarray], str]:
    """A tree ensemble's raw output as TreeSHAP explains it, and its name."""
    module = type(final).__module__.split(".")[0]
    if module == "lightgbm":
        return (lambda Z: final.predict(Z, raw_score=True)), ("log-odds" if classifier else "value")
    if module == "xgboost":
        return (lambda Z: final.predict(Z, output_margin=True)), ("log-odds" if classifier else "value")
    if classifier and hasattr(final, "decision_function"):
        return final.decision_function, "log-odds"
    if classifier:
        return final.predict_proba, "probability"
    return final.predict, "value"


class Tree:
    """shap's TreeExplainer, path-dependent."""

    def __init__(self, final: Any, background: Any, classifier: bool, n_classes: int):
        import shap

        try:
            with warnings.catch_warnings():  # shap's notes on its own API changes: not the user's concern
                warnings.simplefilter("ignore")
                self.explainer = shap.TreeExplainer(final)
        except Exception as exc:  # noqa: BLE001  (shap's InvalidModelError and friends)
            raise NotApplicable(f"TreeSHAP does not read it ({type(exc).__name__})") from None
        self.raw, self.output = raw_output(final, classifier)
        self.classifier, self.n_classes = classifier, n_classes
        self.explain(background, check=True)  # raises NotApplicable when not additive on the background

    def explain(self, Z: Any, check: bool = False) -> PerRow:
        """``check``: compare with the model's own raw output (at build, on the background; TreeSHAP
        is exact, so requests skip the model's second call, about 1 ms of a boosted model's)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = self.explainer.shap_values(Z, check_additivity=False)
        except Exception as exc:  # noqa: BLE001
            raise NotApplicable(f"TreeSHAP failed on it ({type(exc).__name__})") from None
        # one output: (rows, features); several: (rows, features, outputs), or a list per output
        values = np.stack(found, axis=-1) if isinstance(found, list) else np.asarray(found)
        values = values.astype(np.float64, copy=False)
        if values.ndim == 2:
            values = values[:, :, None]
        if values.ndim != 3:
            raise NotApplicable("TreeSHAP's values do not match its outputs")
        expected = np.atleast_1d(np.asarray(self.explainer.expected_value, dtype=np.float64)) * np.ones(values.shape[2])
        raw = _outputs(self.raw(Z)) if check else expected + values.sum(axis=1)
        if raw.shape[1] != values.shape[2]:
            raise NotApplicable("TreeSHAP's values do not match its outputs")
        column = pick(raw, self.classifier, self.n_classes)
        rows = np.arange(len(raw))
        values, base, output = values[rows, :, column], expected[column], raw[rows, column]
        check_additive(values, base, output)
        return PerRow(values, base, output, class_of(column, raw.shape[1], self.classifier))


@dataclass
class Budget:
    max_evaluations: int = 4096  # model evaluations per row explained
    seconds: float = 2.0         # for the whole request (each row gets at least one pair)


class Sampling:
    """Permutations of the input columns walked from background rows (model-agnostic)."""

    def __init__(self, model: Any, background: Any, classifier: bool, n_classes: int, has_proba: bool,
                 budget: Budget, seed: int = 0):
        if classifier and has_proba:
            self.f, self.output = model.predict_proba, "probability"
        elif classifier and hasattr(model, "decision_function"):
            self.f, self.output = model.decision_function, "decision score"
        elif classifier:
            raise NotApplicable("it gives neither probabilities nor scores")
        else:
            self.f, self.output = model.predict, "value"
        self.background, self.classifier, self.n_classes = background, classifier, n_classes
        self.budget, self.seed = budget, seed
        self.used: dict[str, Any] = {}
        self.reason: str | None = None  # why this model is sampled (the explainer says)

    def explain(self, X: Any) -> PerRow:
        n, d = X.shape
        raw = _outputs(self.f(X))
        column = pick(raw, self.classifier, self.n_classes)
        pairs = max(1, self.budget.max_evaluations // (2 * (d + 1)))
        rng = np.random.default_rng(self.seed)
        values, base = np.zeros((n, d)), np.zeros(n)
        started, evaluations, walks = time.monotonic(), 0, 0
        for i in range(n):
            total, start_total, done = np.zeros(d), 0.0, 0
            while done < pairs:
                # past the time limit, a row gets its one pair and no more
                batch = 1 if time.monotonic() - started > self.budget.seconds else min(16, pairs - done)
                deltas, starts = self._walks(X, i, column[i], batch, done, rng)
                total += deltas
                start_total += starts
                done += batch
                evaluations += 2 * batch * (d + 1)
                if time.monotonic() - started > self.budget.seconds:
                    break
            values[i], base[i] = total / (2 * done), start_total / (2 * done)
            walks += 2 * done
        output = raw[np.arange(n), column]
        self.used = {"walks": walks, "evaluations": evaluations, "seconds": round(time.monotonic() - started, 4),
                     "max_evaluations_per_row": self.budget.max_evaluations, "time_limit_seconds": self.budget.seconds,
                     "background_rows": int(len(self.background))}
        check_additive(values, base, output)
        return PerRow(values, base, output, class_of(np.asarray(column), raw.shape[1], self.classifier))

    def _walks(self, X: Any, i: int, column: int, pairs: int, offset: int, rng) -> tuple[np.ndarray, float]:
        """``pairs`` antithetic pairs of walks for row ``i``: the sum of each column's steps and of
        the starting outputs."""
        d = X.shape[1]
        orders = []
        for _ in range(pairs):
            order = rng.permutation(d)
            orders += [order, order[::-1]]
        starts = np.repeat(np.arange(offset, offset + pairs) % len(self.background), 2)
        steps = np.arange(d + 1)
        # mask[w, t, c]: in walk w after t steps, column c already holds the explained row's value
        ranks = np.argsort(np.stack(orders), axis=1)
        mask = ranks[:, None, :] < steps[None, :, None]
        rows = _compose(X, i, self.background, np.repeat(starts, d + 1), mask.reshape(-1, d))
        y = _outputs(self.f(rows))[:, column].reshape(len(orders), d + 1)
        steps_made = np.diff(y, axis=1)  # (walks, d): step t changed column order[t]
        deltas = np.zeros(d)
        for w, order in enumerate(orders):
            deltas[order] += steps_made[w]
        return deltas, float(y[:, 0].sum())


def _compose(X: Any, i: int, background: Any, starts: np.ndarray, mask: np.ndarray) -> Any:
    """Rows that take the explained row's value where ``mask`` is set, a background row's elsewhere."""
    if not isinstance(X, pd.DataFrame):
        rows = background[starts].copy()
        rows[mask] = np.broadcast_to(X[i], rows.shape)[mask]
        return rows
    columns = {}
    for c in range(X.shape[1]):
        values = background.iloc[:, c].to_numpy()[starts].copy()
        if values.dtype != object and not np.can_cast(np.asarray([X.iat[i, c]]).dtype, values.dtype, "same_kind"):
            values = values.astype(object)
        values[mask[:, c]] = X.iat[i, c]
        dtype = X.dtypes.iloc[c]
        try:
            columns[c] = pd.Series(values, dtype=dtype)
        except (TypeError, ValueError):
            columns[c] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(columns)
    frame.columns = X.columns
    return frame
