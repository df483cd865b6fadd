"""The loader's public errors and result type, and the small helpers every
part of the package uses to phrase them.

Imports only the standard library and numpy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Literal

import numpy as np

ModelFormat = Literal["skops", "joblib"]


class ModelLoadError(Exception):
    """The file is not a loadable scikit-learn model.

    Raised for empty, truncated, corrupt or unrecognised files, files that do
    not contain an estimator, files that reference scikit-learn objects that do
    not exist in the installed version, and files that would decompress to
    more than the allowed number of bytes.
    """


#: README.md's section on custom steps (the anchor GitHub makes of its title)
TRUSTED_MODULES_DOCS = "README.md#custom-steps-viewer_trusted_modules"
TRUSTED_MODULES_HINT = (
    "If these objects come from your own package (a custom transformer or function), an operator "
    "can trust that package: add its module to the VIEWER_TRUSTED_MODULES setting (for example "
    "VIEWER_TRUSTED_MODULES=acme_features) and make sure the module is installed and importable "
    "by the web app and by the workers, then upload the model again. See "
    f"{TRUSTED_MODULES_DOCS} (\"Custom steps\")."
)


class UnsafeModelError(ModelLoadError):
    """The file references code that is not allowed to run while loading.

    ``offenders`` lists the refused references, e.g.
    ``["posix.system", "subprocess.Popen"]``.  Nothing referenced by the file
    has been called when this is raised.
    """

    def __init__(self, offenders: Iterable[str], detail: str | None = None):
        self.offenders: list[str] = list(dict.fromkeys(offenders))
        names = ", ".join(self.offenders) or "(unknown)"
        if detail:
            message = f"Refusing to load this model ({names}): {detail}"
        else:
            numeric = any(o.startswith(("numpy.", "scipy.")) for o in self.offenders)
            message = (
                "Refusing to load this model: it references code outside the "
                f"allowlist of safe scikit-learn/numpy/scipy objects: {names}. "
                "Loading or using it could execute arbitrary code, touch files "
                "or exhaust the server's memory or CPU. "
                + (
                    "numpy/scipy functions are admitted only from an explicit list "
                    "of element-wise functions and reductions (for example "
                    "numpy.log1p, numpy.sqrt, numpy.clip, numpy.mean, "
                    "scipy.special.expit). "
                    if numeric
                    else ""
                )
                + TRUSTED_MODULES_HINT
            )
        super().__init__(message)


@dataclasses.dataclass
class LoadedModel:
    """Result of :func:`load_model`.

    ``warnings`` holds the warnings raised while loading
    (``"InconsistentVersionWarning: ..."``) and one ``"Changed at upload: ..."``
    sentence per setting the loader changed, e.g. ``"Changed at upload:
    n_jobs=24 was set to 1 in ColumnTransformer, RandomForestClassifier (the
    server runs each model in one process and one thread)."`` --
    stored with the model version and shown to the user who uploaded it.
    """

    estimator: Any
    format: ModelFormat
    saved_sklearn_version: str | None
    warnings: list[str] = dataclasses.field(default_factory=list)


def _type_name(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _as_int(value: Any) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return None


def _corrupt_message(exc: BaseException) -> str:
    if isinstance(exc, (EOFError,)):
        return "The model file is truncated or empty."
    if isinstance(exc, MemoryError):
        return "The model file is corrupt or hostile: it requested too much memory."
    if isinstance(exc, RecursionError):
        return "The model file is corrupt or hostile: it is nested too deeply."
    text = str(exc) or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    return f"The model file is corrupt or not a supported joblib/pickle file ({type(exc).__name__}: {text})."


# Raised by the post-load structural checks (checks*.py).
def _tampered(what: str, why: str) -> UnsafeModelError:
    return UnsafeModelError(
        [what],
        detail=f"Its internal structure is inconsistent ({why}); predicting with it "
        "could crash the worker or read out-of-bounds memory, so it is refused.",
    )
