"""The schema policy: what the model takes but a user should know of.

One answer online and in batch (README "Schema policy"): columns the model does not take are
ignored and reported; values outside a column's known categories, missing values the model
imputes and rows with every input missing are reported per column with row counts; warnings
the model itself raises while predicting are reported too. ``strict`` turns any of them into
a refusal. A warning is a small JSON object: ``code``, ``column`` (when one), ``rows`` (how
many), ``first_rows`` (the first few row numbers) and ``message`` (the problem and the fix).

Here: the warnings and refusals that word it (extra columns, unknown categories, imputed values,
empty rows, text where the model takes numbers, ``strict_refusal``) and the collection of the
model's own warnings per request (``collecting``, ``note_model_warnings``, ``model_warnings``).
"""

from __future__ import annotations

import warnings
from contextvars import ContextVar
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .payload import MAX_LISTED, PayloadError, _names

MAX_WARNINGS = 20  # per answer; model warnings are deduplicated and bounded in the host too


def _category_set(categories: list[Any]) -> frozenset:
    known = set()
    for c in categories:
        if c is None:
            continue
        try:
            known.add(c)
        except TypeError:
            continue
    return frozenset(known)


def _unknown_rows(values: Any, known: frozenset, missing: np.ndarray) -> np.ndarray:
    """Rows whose (present) value is not one of ``known``: one hash lookup per value."""
    if len(values) <= 64:  # a request's few rows: Python's own lookups beat building a Series
        inside = np.fromiter((_hashable_in(v, known) for v in values), dtype=bool, count=len(values))
        return np.flatnonzero(~inside & ~missing)
    try:
        inside = pd.Series(values, dtype=object).isin(known).to_numpy()
    except TypeError:  # an unhashable value (a list in JSON): look one by one
        inside = np.array([_hashable_in(v, known) for v in values], dtype=bool)
    return np.flatnonzero(~inside & ~missing)


def _hashable_in(value: Any, known: frozenset) -> bool:
    try:
        return value in known
    except TypeError:
        return False


def row_span(rows: Any, offset: int = 0) -> str:
    """Row numbers as a user reads them: "row 3", "rows 0, 4 and 7 more"."""
    rows = [int(r) + offset for r in rows]
    shown = ", ".join(f"{r:,}" for r in rows[:MAX_LISTED])
    more = f" and {len(rows) - MAX_LISTED:,} more" if len(rows) > MAX_LISTED else ""
    return ("row " if len(rows) == 1 else "rows ") + shown + more


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _verb(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _warning(code: str, message: str, column: str | None = None, rows: Any = None,
             offset: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code}
    if column is not None:
        out["column"] = str(column)[:200]
    if rows is not None:
        out["rows"] = int(len(rows))
        out["first_rows"] = [int(r) + offset for r in list(rows)[:MAX_LISTED]]
    out["message"] = message
    return out


def extra_columns_warning(extra: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    return {"code": "extra_columns", "columns": [str(c)[:200] for c in list(extra)[:MAX_WARNINGS]],
            "message": f"Ignored {_count(len(extra), 'column')} the model does not take: {_names(extra)}. The model "
                       f"reads only its {len(names)} inputs ({_names(names)}); drop the others to silence this."}


def _unseen(values: Any, rows: Any) -> str:
    """' ('Mars', 'Venus')': the first few distinct unknown values, as the user sent them."""
    if values is None:
        return ""
    distinct: list[Any] = []
    for r in rows:
        value = values[int(r)]
        if value not in distinct:
            distinct.append(value)
            if len(distinct) > MAX_LISTED:
                break
    shown = ", ".join(repr(str(v)[:40]) for v in distinct[:MAX_LISTED])
    return f" ({shown}{', ...' if len(distinct) > MAX_LISTED else ''})"


def unknown_category_message(column: str, rows: Any, categories: list[Any], *, refused: bool,
                             offset: int = 0, values: Any = None) -> str:
    seen = _names(categories)
    unseen = _unseen(values, rows)
    if refused:
        return (f"Column {str(column)[:64]!r}: {row_span(rows, offset)} {_verb(len(rows), 'holds', 'hold')} a category{unseen} "
                f"the model did not see in "
                f"training, and its encoder refuses unknown categories. Use one of {seen}, or retrain the model "
                "with the new category (or with handle_unknown='ignore').")
    return (f"Column {str(column)[:64]!r}: {_count(len(rows), 'row')} ({row_span(rows, offset)}) "
            f"{_verb(len(rows), 'holds', 'hold')} a category{unseen} the model did not see in training; it reads "
            f"{_verb(len(rows), 'it', 'them')} as no known category. Known: {seen}. Check the "
            "spelling, or retrain with the new category.")


def unknown_category_warning(column: str, rows: Any, categories: list[Any], offset: int = 0,
                             values: Any = None) -> dict[str, Any]:
    return _warning("unknown_category", unknown_category_message(column, rows, categories, refused=False,
                                                                 offset=offset, values=values), column, rows, offset)


def imputed_warning(column: str, rows: Any, offset: int = 0) -> dict[str, Any]:
    return _warning("missing_imputed",
                    f"Column {str(column)[:64]!r}: {_count(len(rows), 'row')} ({row_span(rows, offset)}) "
                    f"{_verb(len(rows), 'has', 'have')} no value; the model fills it in with its imputer's value from training. Send the real value "
                    "where it is known.", column, rows, offset)


def empty_rows_warning(rows: Any, n_rows: int, offset: int = 0) -> dict[str, Any]:
    return _warning("empty_rows",
                    f"{_count(len(rows), 'row')} of {n_rows:,} ({row_span(rows, offset)}) "
                    f"{_verb(len(rows), 'has', 'have')} every input missing: "
                    f"{_verb(len(rows), 'its prediction is', 'their predictions are')} the model's defaults, not an answer about a real case. Check that the "
                    "input's columns are named as the model's.", None, rows, offset)


def strict_refusal(found: list[dict[str, Any]]) -> PayloadError:
    """What ``strict`` makes of warnings: a 400 naming the first problem (column, rows, fix)."""
    first = found[0]["message"]
    more = f" ({_count(len(found) - 1, 'more problem')} listed in 'warnings'.)" if len(found) > 1 else ""
    error = PayloadError(f"Refused (strict=true): {first}{more} Fix the input, or send it without strict=true to "
                         "predict and get these as warnings.", "SCHEMA_WARNING")
    error.warnings = found  # type: ignore[attr-defined]
    return error


# Warnings a model raises while it predicts (pandas and scikit-learn deprecations, a user's own):
# collected per request into the list ``collecting`` opens, from this process (``Predictor``) or
# from the model's host (``infra.host``), deduplicated and bounded.
_collected: ContextVar[list[dict[str, Any]] | None] = ContextVar("viewer_model_warnings", default=None)


class collecting:
    """``with collecting() as raised:`` the model warnings noted inside, in ``raised`` (a class,
    not a generator: it is on every request's path)."""

    __slots__ = ("bucket", "token")

    def __enter__(self) -> list[dict[str, Any]]:
        self.bucket: list[dict[str, Any]] = []
        self.token = _collected.set(self.bucket)
        return self.bucket

    def __exit__(self, *_exc: Any) -> None:
        _collected.reset(self.token)


def summarize_caught(caught: Sequence[warnings.WarningMessage]) -> list[dict[str, Any]]:
    """Caught warnings as (category, message, count), deduplicated and bounded."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for item in caught:
        category = getattr(item.category, "__name__", "Warning")[:100]
        message = _first_line(str(item.message))
        key = (category, message)
        if key in out:
            out[key]["count"] += 1
        elif len(out) < MAX_MODEL_WARNINGS:
            out[key] = {"category": category, "message": message, "count": 1}
    return list(out.values())


MAX_MODEL_WARNINGS = 5


def _first_line(text: str) -> str:
    text = text.strip()
    line = text.splitlines()[0] if text else ""
    return line[:300] + ("…" if len(line) > 300 else "")


def note_model_warnings(items: Any) -> None:
    """Add a model's warnings (this process's, or as a host sent them: checked here) to the
    request's list, when one is open."""
    bucket = _collected.get()
    if bucket is None or not isinstance(items, list):
        return
    for item in items[:MAX_MODEL_WARNINGS]:
        if not isinstance(item, dict):
            continue
        category, message, count = item.get("category"), item.get("message"), item.get("count", 1)
        if not isinstance(category, str) or not isinstance(message, str) or not isinstance(count, int):
            continue
        category, message = category[:100], _first_line(message)
        same = next((w for w in bucket if w["category"] == category and w["detail"] == message), None)
        if same is not None:
            same["count"] += max(count, 0)
            continue
        if len(bucket) >= MAX_MODEL_WARNINGS:
            continue
        bucket.append({"category": category, "detail": message, "count": max(count, 1)})


def model_warnings(bucket: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The collected model warnings as schema-policy warnings."""
    return [{"code": "model_warning", "category": w["category"], "count": w["count"],
             "message": f"The model raised a {w['category']} while predicting (reported, not an error; its "
                        f"author can update the code): {w['detail']}"} for w in bucket]


_DECIMAL_COMMA = r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?\s*$"


def text_column_error(name: str, column: pd.Series, offset: int = 0) -> PayloadError | None:
    """A PayloadError naming a column of text where the model takes numbers (its rows and the
    fix: a decimal comma gets re-upload advice), or None when every value is a number."""
    missing = column.isna().to_numpy()
    numeric = pd.to_numeric(column, errors="coerce")
    wrong = np.flatnonzero(numeric.isna().to_numpy() & ~missing)
    if not len(wrong):
        return None
    sample = column.iloc[wrong[:200]].astype(str)
    comma = bool(len(sample)) and sample.str.contains(",", regex=False).any() and \
        sample.str.match(_DECIMAL_COMMA).mean() > 0.9
    where = f"Column {str(name)[:64]!r} holds text where the model takes numbers ({_count(len(wrong), 'row')}: " \
            f"{row_span(wrong, offset)})."
    if comma:
        return PayloadError(f"{where} Its values look like numbers written with a decimal comma (1.234,5): upload "
                            "the file again with decimal=\",\" (and thousands=\".\") so they are read as numbers.",
                            "INVALID_TYPE")
    return PayloadError(f"{where} Convert the column to numbers (a decimal point, no units), or leave a value "
                        "empty where it is unknown.", "INVALID_TYPE")


def _text_in_numbers(X: Any, message: str) -> PayloadError | None:
    """scikit-learn's refusals of text in numeric steps ("Cannot use median strategy with
    non-numeric data:", "could not convert string to float") name no column: find it in ``X``."""
    if not isinstance(X, pd.DataFrame) or not ("non-numeric" in message or "convert string to float" in message):
        return None
    for name in X.columns:
        column = X[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        error = text_column_error(name, column)
        if error is not None and _numberish(column):
            return error
    return None


def _numberish(column: pd.Series) -> bool:
    """A text column most of whose values hold a digit (numbers as text, not a category)."""
    values = column.dropna().astype(str).iloc[:200]
    return bool(len(values)) and values.str.contains(r"\d").mean() > 0.5


def _caught_call(function: Any, X: Any) -> Any:
    """``function(X)``, with the warnings it raises noted for the request (never raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # once per place: a warning in a loop is recorded once
        result = function(X)
    if caught:
        note_model_warnings(summarize_caught(caught))
    return result
