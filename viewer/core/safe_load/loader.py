"""``load_model``: detect the format, load with the restricted loader of that
format, check that the result is an estimator, validate its structure,
normalise its resource settings (n_jobs, memory, thread counts), and report
the saved scikit-learn version, the warnings raised while loading and the
settings it changed.
"""

from __future__ import annotations

import os
import types
import warnings
from typing import Any

from .checks import _limit_resources, _validate_structure
from .errors import LoadedModel, ModelLoadError, _corrupt_message, _type_name
from .formats import detect_format
from .policy import _Policy
from .skops import _load_skops
from .unpickler import _load_pickle, _RefusedGlobal

#: Default ceiling on the number of bytes a model file may expand to.
DEFAULT_MAX_DECOMPRESSED_BYTES = 2 * 1024**3


def _is_estimator(obj: Any) -> bool:
    """A scikit-learn estimator, or an object whose *class* defines fit and
    predict/transform (attribute hooks such as Bunch.__getattr__ do not
    count)."""
    if isinstance(obj, (type, types.ModuleType, _RefusedGlobal)):
        return False
    from sklearn.base import BaseEstimator

    if isinstance(obj, BaseEstimator):
        return True
    cls = type(obj)
    return callable(getattr(cls, "fit", None)) and any(
        callable(getattr(cls, name, None)) for name in ("predict", "transform", "fit_predict")
    )


def _check_can_serve(obj: Any) -> None:
    """A model the viewer can use answers new rows: it has ``predict`` or ``transform`` (with
    ``hasattr`` semantics, so a Pipeline ending in DBSCAN has neither). TSNE, DBSCAN, spectral
    clustering and the like only describe the rows they were fitted on."""
    try:
        serves = hasattr(obj, "predict") or hasattr(obj, "transform")
    except Exception:  # noqa: BLE001  (a property that fails: it cannot serve either)
        serves = False
    if serves:
        return
    name = type(obj).__name__
    others = [m for m in ("fit_predict", "fit_transform", "score_samples", "kneighbors") if hasattr(type(obj), m)]
    only = f" (it only has {', '.join(others)}, which work on the rows it is fitted on)" if others else ""
    raise ModelLoadError(
        f"{name} cannot score new rows: it has no predict or transform method{only}. Upload a model "
        "that can: a classifier or a regressor, a transformer, or a clusterer with predict "
        "(KMeans, GaussianMixture, Birch, ...), alone or at the end of a Pipeline."
    )


def load_model(
    path: str | os.PathLike,
    *,
    trusted_modules: tuple[str, ...] = (),
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> LoadedModel:
    """Load a scikit-learn model from an untrusted joblib/pickle/skops file.

    Parameters
    ----------
    path:
        The uploaded file.  Its format is detected from its content.
    trusted_modules:
        Operator-supplied module prefixes (e.g. ``("acme_features",)``) whose
        classes and functions are admitted in addition to the built-in
        allowlist.  Only objects *defined* in those modules are admitted.
    max_decompressed_bytes:
        Upper bound on the decompressed size of the file.

    Raises
    ------
    UnsafeModelError
        The file references objects outside the allowlist (``offenders``),
        or tampers with objects in a way that could be an exploit.
    ModelLoadError
        Anything else about the file's content that prevents loading a model.
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Invalid arguments (e.g. a standard-library module in
        ``trusted_modules``).

    A model that cannot answer new rows (no ``predict`` and no ``transform``: TSNE, DBSCAN, ...)
    is refused with ModelLoadError saying so.

    The returned ``warnings`` also list, as ``"Changed at upload: ..."`` lines,
    the settings changed at load: every ``n_jobs`` in the model is set to 1,
    every ``memory`` (a cache directory) to None, and thread counts stored
    by fitting (``_n_threads``) are capped at this server's.

    Not thread-safe with respect to warnings: loading records warnings with
    ``warnings.catch_warnings``, which swaps process-global state.
    """
    path = os.fspath(path)
    if not isinstance(max_decompressed_bytes, int) or max_decompressed_bytes <= 0:
        raise ValueError("max_decompressed_bytes must be a positive integer")
    policy = _Policy(trusted_modules)
    fmt = detect_format(path)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if fmt == "skops":
                obj, version = _load_skops(path, policy, max_decompressed_bytes)
            else:
                obj, version = _load_pickle(path, policy, max_decompressed_bytes)
            if not _is_estimator(obj):
                raise ModelLoadError(
                    "The file does not contain a scikit-learn model (found "
                    f"{_type_name(obj)}, which has no fit/predict/transform methods)."
                )
            _validate_structure(obj, policy)
            _check_can_serve(obj)
            # After the checks (a refused model is never touched; the checks
            # stay free of side effects) and before anyone can call the
            # model: the server, not the file, decides how many processes
            # and threads a prediction uses and whether it writes to disk.
            resource_changes = _limit_resources(obj)
        except ModelLoadError:
            raise
        except Exception as exc:  # anything unexpected is a load failure
            raise ModelLoadError(_corrupt_message(exc)) from exc

    messages: list[str] = []
    for w in caught:
        category = getattr(w, "category", Warning)
        text = f"{category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)
        if version is None:
            original = getattr(w.message, "original_sklearn_version", None)
            if isinstance(original, str):
                version = original
    if version == "pre-0.18":
        version = None
    messages.extend(resource_changes)
    return LoadedModel(
        estimator=obj,
        format=fmt,
        saved_sklearn_version=version,
        warnings=messages,
    )
