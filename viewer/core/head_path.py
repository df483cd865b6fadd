"""``HeadPath``: the preprocessing steps ahead of a compiled tree ensemble (a ColumnTransformer of
imputers, scalers and encoders, the usual head of a tabular pipeline), computed with numpy from
their fitted attributes instead of through scikit-learn's ``transform`` calls.

Why: on one row a typical ColumnTransformer costs about 2.6 ms in scikit-learn, nearly all of it
per-call validation, column selection and output assembly; the compiled trees after it take tens
of microseconds. The same arithmetic done here takes tens of microseconds too.

ONNX Runtime (through skl2onnx) was the other candidate and was measured first: it has no
double-precision kernel for the imputer skl2onnx emits ("NOT_IMPLEMENTED Imputer(1)"), skl2onnx
refuses a most-frequent imputer on text with missing values, and its scaler multiplies by the
reciprocal of the scale, which is not bit-for-bit scikit-learn's division, so a value on a tree's
threshold could change sides. Here every step does exactly scikit-learn's operations in the same
order (``StandardScaler``: subtract ``mean_``, then divide by ``scale_``), so the output is
identical, not close.

Trust is checked, not assumed, as for ``linear_path``: ``HeadPath.build`` returns a path only for
steps it knows (exact classes, the options listed on each step below) and only when the path
gives exactly scikit-learn's output on a probe frame built from the fitted steps themselves
(every known category, an unseen one, missing values, zeros, negatives, large values). At
prediction time any input it was not built for (a column of another kind, an unseen category the
encoder refuses) makes ``transform`` return None and scikit-learn transforms, so its answer or
its error stands.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

Step = Callable[[np.ndarray], "np.ndarray | None"]

_MISSING = object()  # the key of a missing category: a float NaN, as scikit-learn's is_scalar_nan


class _Refuse(Exception):
    """A fitted step or option this module does not reproduce: scikit-learn keeps the head."""


class _Decline(Exception):
    """An input value whose handling depends on more than its own value in scikit-learn (None,
    pd.NA): scikit-learn transforms this input."""


def _is_nan(value: Any) -> bool:
    if value is None or value is pd.NA:
        raise _Decline
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _key(value: Any) -> Any:
    return _MISSING if _is_nan(value) else value


def _missing_mask(X: np.ndarray) -> np.ndarray:
    if X.dtype.kind == "f":
        return np.isnan(X)
    return np.frompyfunc(_is_nan, 1, 1)(X).astype(bool)


def _has_inf(X: np.ndarray) -> bool:
    """Infinite values, which scikit-learn's imputer and scaler refuse (its error is the answer)."""
    return X.dtype.kind == "f" and bool(np.isinf(X).any())


# --- plain descriptions of fitted steps (what a host exports), and arrays in JSON --------------------

def encode(values: Any) -> dict[str, Any]:
    """A 1-D array of numbers or of text and missing values as JSON (NaN and infinity as text
    beside the list); ``decode`` gives back an equal array of the same kind."""
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "fiubO":
        raise _Refuse("an array that does not travel")
    flat, special = [], {}
    for i, v in enumerate(array.tolist()):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            flat.append(v)
        elif isinstance(v, int):
            flat.append(int(v))
        elif isinstance(v, float):
            flat.append(float(v) if math.isfinite(v) else None)
            if not math.isfinite(v):
                special[str(i)] = repr(float(v))
        else:
            raise _Refuse("a value that does not travel")
    return {"dtype": array.dtype.str if array.dtype.kind != "O" else "O", "values": flat, "special": special}


def decode(spec: dict[str, Any]) -> np.ndarray:
    values = list(spec["values"])
    for i, text in spec["special"].items():
        values[int(i)] = float(text)
    if spec["dtype"] == "O":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values, dtype=np.dtype(spec["dtype"]))


def _describe(step: Any) -> dict[str, Any]:
    """A fitted step as plain data: the attributes ``_runner`` needs, for the steps and options it
    reproduces (``_Refuse`` otherwise)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    if type(step) is Pipeline:
        return {"step": "chain", "steps": [_describe(s) for _, s in step.steps if s not in (None, "passthrough")]}
    if step == "passthrough" or type(step) is FunctionTransformer and step.func is None:
        return {"step": "identity"}  # a fitted ColumnTransformer's "passthrough" is an identity FunctionTransformer
    if type(step) is SimpleImputer:
        if step.add_indicator or not (isinstance(step.missing_values, float) and math.isnan(step.missing_values)):
            raise _Refuse("imputer options")
        return {"step": "imputer", "statistics": encode(step.statistics_)}
    if type(step) is StandardScaler:
        return {"step": "scaler", "mean": encode(step.mean_) if step.with_mean else None,
                "scale": encode(step.scale_) if step.with_std else None}
    if type(step) in (OneHotEncoder, OrdinalEncoder):
        if getattr(step, "_infrequent_enabled", False):
            raise _Refuse("infrequent categories")
        described = {"categories": [encode(c) for c in step.categories_], "unknown": step.handle_unknown}
        if type(step) is OneHotEncoder:
            drop = step.drop_idx_
            return {"step": "one_hot", **described,
                    "drop": None if drop is None else [None if d is None else int(d) for d in drop]}
        return {"step": "ordinal", **described, "encoded_missing": repr(float(step.encoded_missing_value)),
                "unknown_value": repr(float(step.unknown_value)) if step.handle_unknown == "use_encoded_value"
                else None}  # (as text: either may be NaN, which JSON has not)
    raise _Refuse(type(step).__name__)


# --- one fitted step each: a function from a 2-D array to a 2-D array (None: not for this input) --

def _imputer(step: dict[str, Any]) -> Step:
    """SimpleImputer with ``missing_values=nan``, no indicator, every statistic present."""
    statistics = decode(step["statistics"])
    if statistics.dtype.kind == "f" and np.isnan(statistics).any() \
            or statistics.dtype.kind == "O" and any(v is None or _is_nan(v) for v in statistics):
        raise _Refuse("an empty feature")

    def run(X: np.ndarray) -> np.ndarray | None:
        if (X.dtype.kind == "O") != (statistics.dtype.kind == "O") or _has_inf(X) or X.shape[1] != len(statistics):
            return None
        mask = _missing_mask(X)
        if not mask.any():
            return X
        X = X.copy()
        X[mask] = np.broadcast_to(statistics, X.shape)[mask]
        return X
    return run


def _scaler(step: dict[str, Any]) -> Step:
    """StandardScaler (``X -= mean_; X /= scale_``, as scikit-learn's ``transform`` does)."""
    mean = decode(step["mean"]).astype(np.float64) if step["mean"] is not None else None
    scale = decode(step["scale"]).astype(np.float64) if step["scale"] is not None else None

    def run(X: np.ndarray) -> np.ndarray | None:
        if X.dtype != np.float64 or _has_inf(X):
            return None
        X = X.copy()
        if mean is not None:
            X -= mean
        if scale is not None:
            X /= scale
        return X
    return run


def _lookups(step: dict[str, Any]) -> list[dict[Any, int]]:
    tables = []
    for encoded in step["categories"]:
        categories = decode(encoded)
        if any(v is None or v is pd.NA for v in categories):
            raise _Refuse("None as a category")
        tables.append({_key(v): i for i, v in enumerate(categories.tolist())})
    return tables


def _codes(table: dict[Any, int], column: np.ndarray) -> np.ndarray:
    get = table.get
    return np.fromiter((get(_key(v), -1) for v in column.tolist()), dtype=np.int64, count=len(column))


def _one_hot(step: dict[str, Any]) -> Step:
    """OneHotEncoder without infrequent categories. Unseen categories are rows of zeros under
    ``handle_unknown="ignore"`` without ``drop``; otherwise scikit-learn answers them (its error,
    or its warning)."""
    if step["unknown"] not in ("ignore", "error", "infrequent_if_exist"):
        raise _Refuse("handle_unknown")
    tables = _lookups(step)
    drop = step["drop"]
    widths = [len(t) - (1 if drop is not None and drop[i] is not None else 0) for i, t in enumerate(tables)]
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    refuse_unknown = step["unknown"] == "error"

    def run(X: np.ndarray) -> np.ndarray | None:
        if X.shape[1] != len(tables):
            return None
        out = np.zeros((len(X), int(offsets[-1])), dtype=np.float64)
        for i, table in enumerate(tables):
            codes = _codes(table, X[:, i])
            known = codes >= 0
            if (refuse_unknown or drop is not None) and not known.all():
                return None  # scikit-learn's error, or its warning that unseen rows are all zeros
            if drop is not None and drop[i] is not None:
                dropped = int(drop[i])
                known &= codes != dropped
                codes = np.where(codes > dropped, codes - 1, codes)
            rows = np.flatnonzero(known)
            out[rows, offsets[i] + codes[rows]] = 1.0
        return out
    return run


def _ordinal(step: dict[str, Any]) -> Step:
    """OrdinalEncoder without infrequent categories; unknown categories "error" or
    "use_encoded_value"; a missing category gives ``encoded_missing_value``."""
    if step["unknown"] not in ("error", "use_encoded_value"):
        raise _Refuse("handle_unknown")
    tables = _lookups(step)
    unknown = None if step["unknown_value"] is None else float(step["unknown_value"])
    missing = float(step["encoded_missing"])

    def run(X: np.ndarray) -> np.ndarray | None:
        if X.shape[1] != len(tables):
            return None
        out = np.empty(X.shape, dtype=np.float64)
        for i, table in enumerate(tables):
            codes = _codes(table, X[:, i])
            column = codes.astype(np.float64)
            if (codes < 0).any():
                if unknown is None:
                    return None
                column[codes < 0] = unknown
            if _MISSING in table:
                column[codes == table[_MISSING]] = missing
            out[:, i] = column
        return out
    return run


def _runner(step: dict[str, Any]) -> Step:
    kind = step["step"]
    if kind == "chain":
        return _chain([_runner(s) for s in step["steps"]])
    if kind == "identity":
        return lambda X: X
    makers = {"imputer": _imputer, "scaler": _scaler, "one_hot": _one_hot, "ordinal": _ordinal}
    if kind not in makers:
        raise _Refuse(str(kind))
    return makers[kind](step)


def _chain(runs: list[Step]) -> Step:
    def run(X: np.ndarray) -> np.ndarray | None:
        for step in runs:
            X = step(X)
            if X is None:
                return None
        return X
    return run


# --- the ColumnTransformer: input columns by name, outputs side by side -----------------------------

def _first_step(step: dict[str, Any]) -> dict[str, Any]:
    while step["step"] == "chain":
        step = step["steps"][0] if step["steps"] else {"step": "identity"}
    return step


def _part_kind(step: dict[str, Any]) -> str:
    """What a ColumnTransformer part takes: "numbers" (numeric steps), "text" (an encoder fitted
    on text, or an imputer with text statistics) or "codes" (an encoder fitted on numbers)."""
    first = _first_step(step)
    if first["step"] in ("one_hot", "ordinal"):
        kinds = {"text" if c["dtype"] == "O" else "codes" for c in first["categories"]}
        if len(kinds) != 1:
            raise _Refuse("text and number categories in one encoder")
        return kinds.pop()
    if first["step"] == "imputer" and first["statistics"]["dtype"] == "O":
        return "text"
    return "numbers"


def _takes(dtype: Any, kind: str) -> bool:
    """Whether a column of ``dtype`` reaches a part of ``kind`` exactly as scikit-learn would see
    it: numbers as numpy float64, integers or booleans (float32 is imputed and scaled in float32
    there); text as objects or pandas' default ``str`` (missing values NaN, not pd.NA)."""
    if kind == "text":
        return dtype == object or (isinstance(dtype, pd.StringDtype) and dtype.na_value is not pd.NA)
    return isinstance(dtype, np.dtype) and (dtype == np.float64 or dtype.kind in "iub")


def _describe_column_transformer(ct: Any) -> dict[str, Any]:
    if ct.transformer_weights or not hasattr(ct, "feature_names_in_"):
        raise _Refuse("weights or no column names")
    names = np.asarray(ct.feature_names_in_, dtype=object)
    parts = []
    for _, transformer, columns in ct.transformers_:
        if transformer == "drop":
            continue
        if isinstance(columns, (str, int, np.integer)) or callable(columns):
            raise _Refuse("a one-dimensional or unresolved column selection")
        selected = np.asarray(columns)
        if selected.size == 0:
            continue
        if selected.dtype == bool or selected.dtype.kind in "iu":
            selected = names[selected]
        step = _describe(transformer)
        parts.append({"columns": [str(c) for c in selected], "kind": _part_kind(step), "step": step})
    return {"names": [str(n) for n in names], "parts": parts}


def _column_transformer(described: dict[str, Any]) -> tuple[Callable[[pd.DataFrame], "np.ndarray | None"],
                                                             Callable[[dict[str, np.ndarray]], "np.ndarray | None"]]:
    """The described ColumnTransformer as two functions: of a DataFrame, and of its columns
    before they make one (name -> 1-D array: what ``InputSchema.prepare`` validated)."""
    parts: list[tuple[list[str], str, Step]] = [
        ([str(c) for c in p["columns"]], _part_kind(p["step"]), _runner(p["step"])) for p in described["parts"]]

    layouts: dict[tuple[Any, ...], list[np.ndarray] | None] = {}  # frame columns -> each part's positions

    def positions_in(names: list[Any]) -> list[np.ndarray] | None:
        key = tuple(names)
        if key not in layouts:
            where = {str(n): i for i, n in enumerate(names)}
            layouts.clear() if len(layouts) > 16 else None
            layouts[key] = None if len(where) != len(names) or any(c not in where for p in parts for c in p[0]) \
                else [np.array([where[c] for c in p[0]], dtype=np.intp) for p in parts]
        return layouts[key]

    def run(frame: pd.DataFrame) -> np.ndarray | None:
        if not isinstance(frame, pd.DataFrame):
            return None
        positions = positions_in(frame.columns.tolist())
        if positions is None:
            return None
        dtypes = frame.dtypes.tolist()
        # A few rows: one conversion of the whole frame beats a Series per column (~12 us each)
        whole = frame.to_numpy(dtype=object) if len(frame) <= SMALL else None
        outputs = []
        for (_, kind, step), at in zip(parts, positions):
            if not all(_takes(dtypes[i], kind) for i in at):
                return None  # e.g. text where numbers go: scikit-learn gives its error
            objects = kind != "numbers"
            if whole is not None:
                block = whole[:, at] if objects else whole[:, at].astype(np.float64)
            else:
                block = np.column_stack([frame.iloc[:, i].to_numpy(dtype=object if objects else np.float64)
                                         for i in at])
            out = step(block)
            if out is None or out.dtype.kind != "f" or out.ndim != 2:
                return None
            outputs.append(out)
        return np.hstack(outputs) if outputs else None

    def run_columns(data: dict[str, np.ndarray]) -> np.ndarray | None:
        n_rows = len(next(iter(data.values()))) if data else 0
        outputs = []
        for columns, kind, step in parts:
            arrays = [data.get(c) for c in columns]
            if any(a is None or a.ndim != 1 or len(a) != n_rows or not _takes(a.dtype, kind) for a in arrays):
                return None
            block = np.empty((n_rows, len(arrays)), dtype=np.float64 if kind == "numbers" else object)
            for j, array in enumerate(arrays):
                block[:, j] = array
            out = step(block)
            if out is None or out.dtype.kind != "f" or out.ndim != 2:
                return None
            outputs.append(out)
        return np.hstack(outputs) if outputs else None
    return run, run_columns


SMALL = 64  # rows up to which a frame is converted to one object array at once


# --- the head --------------------------------------------------------------------------------------

class HeadPath:
    """A Pipeline head (its steps before the final estimator) whose first step is a
    ColumnTransformer and whose other steps are numeric ones this module knows, computed in numpy.
    ``transform`` returns the head's output as a dense float64 array, or None when scikit-learn
    should transform this input.

    Built from a plain description of the fitted steps (``described``), so a model host can export
    it (``export``) and the app rebuild it (``from_export``) without any model object, as the trees
    after it (``tree_path``)."""

    def __init__(self, described: dict[str, Any]):
        self.described = described
        self._first, self._first_columns = _column_transformer(described["ct"])
        self._rest = _chain([_runner(s) for s in described["rest"]])

    @classmethod
    def build(cls, head: Any) -> "HeadPath | None":
        """A path for ``head`` (a Pipeline, or None), or None when it has a step or option this
        module does not reproduce or differs from scikit-learn on the probe."""
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if type(head) is not Pipeline or not head.steps or type(head.steps[0][1]) is not ColumnTransformer:
            return None
        try:
            path = cls({"ct": _describe_column_transformer(head.steps[0][1]),
                        "rest": [_describe(s) for _, s in head.steps[1:] if s not in (None, "passthrough")]})
            return path if path._reproduces(head) else None
        except _Refuse:
            return None
        except Exception:  # noqa: BLE001  (a fitted object this code does not expect: scikit-learn serves it)
            return None

    def export(self) -> dict[str, Any]:
        """The description (JSON-able) ``from_export`` takes."""
        return self.described

    def expected(self) -> dict[str, Any]:
        """The head's own output on ``probe`` (its shape and digest: one-hot columns make it
        large), for ``from_export``."""
        output = self.transform(self.probe())  # equal to the head's (``build`` checked it)
        return {"shape": list(output.shape), "sha256": _digest(output)}

    @classmethod
    def from_export(cls, described: dict[str, Any], check: dict[str, Any]) -> "HeadPath | None":
        """The path a host described, used only if its output on the probe is exactly the one the
        host sent (``expected``)."""
        try:
            path = cls(described)
            ours = path.transform(path.probe())
            same = ours is not None and list(ours.shape) == list(check["shape"]) \
                and _digest(ours) == check["sha256"]
        except Exception:  # noqa: BLE001  (a description this code does not take: the host transforms)
            return None
        return path if same else None

    def transform(self, X: Any) -> np.ndarray | None:
        return self._transform(self._first, X)

    def transform_columns(self, data: dict[str, np.ndarray]) -> np.ndarray | None:
        """``transform`` of the DataFrame these columns (name -> 1-D array) would make."""
        return self._transform(self._first_columns, data)

    def _transform(self, first: Callable[[Any], "np.ndarray | None"], X: Any) -> np.ndarray | None:
        try:
            out = first(X)
            return None if out is None else self._rest(out)
        except Exception:  # noqa: BLE001  (_Decline, or input this code did not foresee: scikit-learn transforms)
            return None

    def probe(self) -> pd.DataFrame:
        return probe_frame(self.described["ct"])

    def _reproduces(self, head: Any) -> bool:
        from .compiled import _dense  # noqa: PLC0415  (compiled imports this module)

        probe = self.probe()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = _dense(head.transform(probe))
        except Exception:  # noqa: BLE001  (scikit-learn refuses the probe: we cannot check, so no path)
            return False
        ours = self.transform(probe)
        return ours is not None and ours.shape == theirs.shape and np.array_equal(ours, theirs, equal_nan=True)


def _digest(output: np.ndarray) -> str:
    """sha256 of a float64 array's bytes, every NaN written alike."""
    import hashlib

    canonical = np.ascontiguousarray(output, dtype=np.float64).copy()
    canonical[np.isnan(canonical)] = np.nan
    return hashlib.sha256(canonical.tobytes()).hexdigest()


PROBE_CATEGORIES = 200  # per column: an encoder with more is probed on an even sample of them


def probe_frame(ct: dict[str, Any]) -> pd.DataFrame:
    """Rows that take every path through a described ColumnTransformer's steps: for text columns
    each fitted category, an unseen one and a missing value; for numeric columns missing values,
    zeros, negatives, fractions and large values. Text steps that refuse unseen categories get none."""
    numbers = [np.nan, 0.0, -1.5, 0.1, 3.0, 1e6, -2.5e-3, 42.0]
    columns: dict[str, list[Any]] = {}
    for part in ct["parts"]:
        chosen = part["columns"]
        if part["kind"] == "numbers":
            for c in chosen:
                columns[c] = numbers
            continue
        steps = part["step"]["steps"] if part["step"]["step"] == "chain" else [part["step"]]
        encoder = next((s for s in steps if s["step"] in ("one_hot", "ordinal")), None)
        refuses = encoder is not None and encoder["unknown"] == "error"
        for j, c in enumerate(chosen):
            categories = decode(encoder["categories"][j]) if encoder is not None else np.array([])
            known = categories.tolist()
            if len(known) > PROBE_CATEGORIES:  # (the first and last included)
                known = [known[i] for i in np.linspace(0, len(known) - 1, PROBE_CATEGORIES).astype(int)]
            numeric = encoder is not None and categories.dtype.kind in "fiu"
            unseen = (float(np.nanmax(categories)) + 1 if len(known) else 1.0) if numeric else "an unseen value"
            values = known + ([] if refuses else [unseen, np.nan] + ([] if numeric else [np.float32("nan")]))
            columns[c] = values or ["a value", np.nan]
    n = max((len(v) for v in columns.values()), default=1)
    data = {}
    for name in ct["names"]:
        values = columns.get(name, [0.0])
        cycle = [values[i % len(values)] for i in range(n)]
        kind = "text" if any(isinstance(v, str) for v in values) else "number"
        data[name] = pd.Series(cycle, dtype=object if kind == "text" else None)
    return pd.DataFrame(data, columns=ct["names"])


class HeadModel:
    """A Pipeline whose head has a ``HeadPath``, answered as the path's output into the final
    estimator (``final``: a copy without ``feature_names_in_``, which takes the array without a
    warning). Input the path was not built for goes to the whole pipeline, as do methods other
    than ``predict`` and ``predict_proba``. ``build`` returns one only when it gives exactly the
    pipeline's answers on the probe frame."""

    def __init__(self, model: Any, path: HeadPath, final: Any):
        self.model, self.path, self.final = model, path, final

    @classmethod
    def build(cls, model: Any, final: Any) -> "HeadModel | None":
        from sklearn.pipeline import Pipeline

        if type(model) is not Pipeline or len(model.steps) < 2 or not hasattr(model, "predict"):
            return None  # (a pipeline that does not predict is not served through here)
        path = HeadPath.build(model[:-1])
        if path is None:
            return None
        head = cls(model, path, final)
        probe = path.probe()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for method in ("predict", "predict_proba"):
                    if not hasattr(model, method):
                        continue
                    ours, theirs = getattr(head, method)(probe), getattr(model, method)(probe)
                    if not (isinstance(ours, np.ndarray) and ours.shape == theirs.shape and ours.dtype == theirs.dtype
                            and np.array_equal(ours, theirs, equal_nan=ours.dtype.kind == "f")):
                        return None
        except Exception:  # noqa: BLE001  (anything unexpected: the pipeline answers as it is)
            return None
        return head

    def _answer(self, method: str, X: Any) -> np.ndarray:
        inputs = self.path.transform(X)
        if inputs is None:
            return getattr(self.model, method)(X)
        return getattr(self.final, method)(inputs)

    def predict(self, X: Any) -> np.ndarray:
        return self._answer("predict", X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._answer("predict_proba", X)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
