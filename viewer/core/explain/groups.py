"""Which input column each feature after a pipeline's preprocessing comes from.

A linear model's coefficients and TreeSHAP's values belong to the features the final estimator
sees: one-hot columns, scaled columns, a user's own step's output. An analyst asks about the
columns they sent, so each feature is traced back to one input column by asking the fitted
preprocessing itself (a probe), not by reading its structure: that works the same for a
``ColumnTransformer`` with ``make_column_selector``, nested pipelines and custom steps.

The probe changes one input column at a time in a few background rows (to other rows' values,
the column's known categories, a nearby number) and sees which features move. A feature that
moves with two columns (a product, a PCA component) cannot be given to one of them: ``owners``
then says so and the caller explains the model on its input columns instead. A feature that
never moves in the probe (a category nobody in the background has) is counted as "other".
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

PROBE_ROWS = 8
MAX_CATEGORIES = 30


class NotSeparable(Exception):
    """A feature depends on several input columns (its sentence names two of them)."""


def split(model: Any) -> tuple[list[Any], Any]:
    """The preprocessing steps before the final estimator (flattened through nested pipelines),
    and the final estimator."""
    from sklearn.pipeline import Pipeline

    head: list[Any] = []
    final = model
    while isinstance(final, Pipeline):
        steps = [s for _n, s in final.steps if s is not None and s != "passthrough"]
        if not steps:
            break
        head.extend(steps[:-1])
        final = steps[-1]
    return head, final


def transform(head: Sequence[Any], X: Any) -> Any:
    for step in head:
        X = step.transform(X)
    return X


def dense(Z: Any) -> np.ndarray | None:
    """The features as a float64 matrix, or None when they are not numbers."""
    if hasattr(Z, "toarray"):
        Z = Z.toarray()
    try:
        array = np.asarray(Z.to_numpy() if hasattr(Z, "to_numpy") else Z, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array.reshape(len(array), -1) if array.ndim == 1 else array if array.ndim == 2 else None


def owners(head: Sequence[Any], background: Any, categories: dict[int, list[Any]] | None = None) -> np.ndarray:
    """For each feature after ``head``, the index of the input column it comes from (-1: it never
    moved in the probe). Raises ``NotSeparable`` when a feature moves with two columns."""
    rows = _probe_rows(background)
    before = dense(transform(head, rows))
    if before is None:
        raise NotSeparable("the preprocessing gives values that are not numbers")
    owner = np.full(before.shape[1], -1, dtype=np.int64)
    return trace(head, rows, before, background, categories or {}, owner)


def trace(head: Sequence[Any], rows: Any, before: np.ndarray, background: Any, categories: dict[int, list[Any]],
          owner: np.ndarray) -> np.ndarray:
    """``owner`` completed by changing each input column of ``rows`` (whose features are
    ``before``) to other values; raises ``NotSeparable`` on a feature that moves with two."""
    blocks, whose = [], []
    for c in range(background.shape[1]):
        for values in _alternatives(background, c, len(rows), categories.get(c) or []):
            changed = _with_column(rows, c, values)
            if changed is not None:
                blocks.append(changed)
                whose.append(c)
    probed, whose = _probe(head, blocks, whose)
    if probed is None:
        return owner
    if probed.shape[1] != before.shape[1]:
        raise NotSeparable("the preprocessing gives a different number of features for other rows")
    probed = probed.reshape(len(whose), len(rows), -1)
    moved = ~((probed == before) | (np.isnan(probed) & np.isnan(before))).all(axis=1)  # (blocks, features)
    owner = owner.copy()
    for c, block_moved in zip(whose, moved):
        features = np.flatnonzero(block_moved)
        clash = features[(owner[features] >= 0) & (owner[features] != c)]
        if len(clash):
            raise NotSeparable(f"feature {int(clash[0])} depends on input columns {int(owner[clash[0]])} and {c}")
        owner[features] = c
    return owner


def _probe(head: Sequence[Any], blocks: list[Any], whose: list[int]) -> tuple[np.ndarray | None, list[int]]:
    """The features of every probe block, in one call; block by block when a step refuses some
    probe value (a missing value, say), leaving out the blocks it refuses."""
    if not blocks:
        return None, whose
    try:
        probed = dense(transform(head, _concat(blocks)))
    except Exception:  # noqa: BLE001
        probed = None
    else:
        if probed is None:
            raise NotSeparable("the preprocessing gives values that are not numbers")
        return probed, whose
    kept, found = [], []
    for c, block in zip(whose, blocks):
        try:
            z = dense(transform(head, block))
        except Exception:  # noqa: BLE001
            continue
        if z is None:
            raise NotSeparable("the preprocessing gives values that are not numbers")
        kept.append(c)
        found.append(z)
    return (np.concatenate(found) if found else None), kept


def _probe_rows(background: Any) -> Any:
    """Rows spread over the background, and one where every column is away from its usual value
    (each number above the background's largest, each text its rarest value): a feature made of
    two columns moves with both only where neither is 0 (or the reference category), which a
    few real rows may never show."""
    step = max(1, len(background) // PROBE_ROWS)
    rows = _rows(background, slice(0, step * PROBE_ROWS, step))
    unusual = _rows(background, slice(0, 1)).copy()
    for c in range(background.shape[1]):
        column = background.iloc[:, c] if isinstance(background, pd.DataFrame) else pd.Series(background[:, c])
        present = column.dropna()
        if not len(present):
            continue
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
            value = np.array([float(present.max()) + 1.0])
        else:
            value = np.array([present.value_counts().index[-1]], dtype=object)
        changed = _with_column(unusual, c, value)
        unusual = changed if changed is not None else unusual
    return _concat([rows, unusual])


def _rows(X: Any, which: Any) -> Any:
    return X.iloc[which] if isinstance(X, pd.DataFrame) else X[which]


def _concat(blocks: list[Any]) -> Any:
    if isinstance(blocks[0], pd.DataFrame):
        return pd.concat(blocks, ignore_index=True)
    return np.concatenate(blocks)


def _alternatives(background: Any, c: int, n: int, categories: list[Any]) -> list[np.ndarray]:
    """Values that column ``c`` of ``n`` probe rows takes in turn: each distinct value of the
    background's column and each known category (at most ``MAX_CATEGORIES`` in all), a missing
    value, and for numbers two others nearby."""
    column = background.iloc[:, c] if isinstance(background, pd.DataFrame) else pd.Series(background[:, c])
    distinct = list(dict.fromkeys([*pd.unique(column.dropna()).tolist(), *categories]))[:MAX_CATEGORIES]
    found = [np.array([value] * n, dtype=object) for value in distinct]
    numeric = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
    if numeric:
        first = float(column.dropna().iloc[0]) if column.notna().any() else 0.0
        found += [np.full(n, first + 1.0), np.full(n, -2.0 * first - 1.0), np.full(n, np.nan)]
    else:
        found.append(np.array([None] * n, dtype=object))
    return found


def _with_column(rows: Any, c: int, values: np.ndarray) -> Any:
    """``rows`` with column ``c`` set to ``values`` (keeping the column's type where the values fit
    it); None when they do not."""
    if not isinstance(rows, pd.DataFrame):
        out = rows.copy()
        try:
            out[:, c] = np.asarray(values, dtype=out.dtype)
        except (TypeError, ValueError):
            return None
        return out
    out = rows.copy()
    dtype = rows.dtypes.iloc[c]
    try:
        out.isetitem(c, pd.Series(values, index=rows.index, dtype=dtype))
    except (TypeError, ValueError):
        if dtype != object:
            return None
        out.isetitem(c, pd.Series(values, index=rows.index, dtype=object))
    return out
