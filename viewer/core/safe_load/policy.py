"""The admission rules: ``_Policy`` resolves a (module, name) reference from a
model file to the admitted object or ``_REFUSED``, applying the allowlist of
:mod:`.allowlist` (and an operator's ``trusted_modules``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Iterable

from .allowlist import (
    _EXPLICIT_GLOBALS,
    _IDENT_RE,
    _IMPORTABLE_PREFIXES,
    _SKLEARN_BASES,
    _STORED_CALLABLES,
    _TEST_PARTS,
    _UNTRUSTABLE_PACKAGES,
    _canonical_module,
    _module_matches,
    _numpy_scalar_types,
    _scorer_functions,
    _sklearn_module_denied,
    _stored_callable_entry,
)
from . import boost
from .errors import ModelLoadError
from .load_helpers import _WRAPPED_GLOBALS

class _UnknownGlobal(Exception):
    """An allowed package does not define the referenced name."""


class _Policy:
    """Decides which (module, name) references a model file may use."""

    def __init__(self, trusted_modules: Iterable[str] = ()):
        if isinstance(trusted_modules, str):
            trusted_modules = (trusted_modules,)
        cleaned = []
        for prefix in trusted_modules:
            prefix = str(prefix).strip().rstrip(".")
            if not prefix or not all(_IDENT_RE.match(p) for p in prefix.split(".")):
                raise ValueError(f"Invalid trusted module prefix: {prefix!r}")
            top = prefix.split(".", 1)[0]
            if top in _UNTRUSTABLE_PACKAGES or top in sys.stdlib_module_names:
                raise ValueError(
                    f"trusted_modules may only name the operator's own packages, not "
                    f"{prefix!r}: the standard library, numpy/scipy/scikit-learn/joblib/"
                    "skops and this application contain functions that must never be "
                    "reachable from a model file."
                )
            cleaned.append(prefix)
        self.trusted_modules: tuple[str, ...] = tuple(cleaned)
        self._cache: dict[tuple[str, str], Any] = {}

    # -- helpers -----------------------------------------------------------

    def _is_trusted(self, module: str) -> bool:
        return any(_module_matches(module, p) for p in self.trusted_modules)

    def _may_import(self, module: str) -> bool:
        if self._is_trusted(module):
            return True
        if boost.package_of(module) is not None:
            return boost.may_import(module)
        if not any(_module_matches(module, p) for p in _IMPORTABLE_PREFIXES):
            return False
        if _module_matches(module, "sklearn") and _sklearn_module_denied(module):
            return False
        # never import test suites of numpy/scipy either
        return not any(part in _TEST_PARTS for part in module.split("."))

    def _module(self, module: str) -> types.ModuleType | None:
        mod = sys.modules.get(module)
        if mod is not None:
            return mod
        if not self._may_import(module):
            return None
        try:
            return importlib.import_module(module)
        except ImportError:
            raise _UnknownGlobal(module) from None

    def _lookup(self, module: str, name: str) -> Any:
        mod = self._module(module)
        if mod is None:
            return _MISSING
        obj = vars(mod).get(name, _MISSING)
        return obj

    # -- admission rules ---------------------------------------------------

    @staticmethod
    def _defined_at(obj: Any, module: str, name: str) -> bool:
        return (
            getattr(obj, "__module__", None) == module
            and getattr(obj, "__qualname__", None) == name
        )

    def _sklearn_class_admitted(self, obj: Any, module: str, name: str) -> bool:
        if not isinstance(obj, type) or not self._defined_at(obj, module, name):
            return False
        if _sklearn_module_denied(module):
            return False
        from sklearn.base import BaseEstimator

        if issubclass(obj, BaseEstimator):
            return True
        for base_module, base_name in _SKLEARN_BASES:
            base_mod = sys.modules.get(base_module)
            if base_mod is None:
                try:
                    base_mod = importlib.import_module(base_module)
                except ImportError:  # pragma: no cover - sklearn layout change
                    continue
            base = vars(base_mod).get(base_name)
            if isinstance(base, type) and issubclass(obj, base):
                return True
        return False

    def _resolve_uncached(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _WRAPPED_GLOBALS:
            return _WRAPPED_GLOBALS[key]
        if key == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            # Imported here, not at the top: the wrapper reads object arrays
            # with the restricted unpickler, which itself consults this policy.
            from .unpickler import _SafeNumpyArrayWrapper

            return _SafeNumpyArrayWrapper
        if key in _EXPLICIT_GLOBALS:
            obj = self._lookup(module, name)
            if obj is _MISSING:
                raise _UnknownGlobal(f"{module}.{name}")
            return obj
        if key in _STORED_CALLABLES:
            obj = self._lookup(module, name)
            if obj is _MISSING:
                raise _UnknownGlobal(f"{module}.{name}")
            return obj if _stored_callable_entry(obj) is not None else _REFUSED

        top = module.split(".", 1)[0]
        if self._is_trusted(module):
            obj = self._lookup(module, name)
            if obj is _MISSING:
                raise _UnknownGlobal(f"{module}.{name}")
            # Only objects *defined* inside the trusted prefix: a trusted
            # module's ``from os import system`` is not trusted.
            defined_in = getattr(obj, "__module__", None)
            if (
                callable(obj)
                and not isinstance(obj, types.ModuleType)
                and isinstance(defined_in, str)
                and self._is_trusted(defined_in)
            ):
                return obj
            return _REFUSED

        if top == "sklearn":
            if _sklearn_module_denied(module):
                return _REFUSED
            if name.startswith("__") and not name.startswith("__pyx_unpickle_"):
                return _REFUSED
            obj = self._lookup(module, name)
            if obj is _MISSING:
                raise _UnknownGlobal(f"{module}.{name}")
            if self._sklearn_class_admitted(obj, module, name):
                return obj
            if name.startswith("__pyx_unpickle_"):
                # Cython's generated unpickler for extension type X:
                # X.__new__(type) + field assignment.  Admitted only for
                # admitted extension types of the same module.
                cls_name = name[len("__pyx_unpickle_") :]
                cls = self._lookup(module, cls_name)
                if (
                    isinstance(cls, type)
                    and (
                        (module, cls_name) in _EXPLICIT_GLOBALS
                        or self._sklearn_class_admitted(cls, module, cls_name)
                    )
                    and callable(obj)
                ):
                    return obj
                return _REFUSED
            if (module, name) in _scorer_functions() and self._defined_at(
                obj, module, name
            ):
                return obj
            return _REFUSED

        if top == "numpy":
            if module == "numpy":
                obj = self._lookup(module, name)
                # Functions (np.log1p, np.mean, np.clip, ...) only from the
                # explicit list of element-wise functions and reductions
                # (_STORED_CALLABLES, with the keyword arguments each may
                # get); numpy pickles ufuncs by name.
                if _stored_callable_entry(obj) is not None:
                    return obj
                # Scalar types (np.float64 as a dtype parameter).  np.void is
                # left out: np.void(n) zero-fills n bytes.
                if isinstance(obj, type) and obj in _numpy_scalar_types():
                    return obj
            return _REFUSED

        if top == "scipy":
            if _module_matches(module, "scipy.special"):
                obj = self._lookup(module, name)
                # expit, logit, ... from the explicit list, under whichever
                # scipy.special submodule pickle found them.
                if _stored_callable_entry(obj) is not None:
                    return obj
                return _REFUSED
            if _module_matches(module, "scipy.sparse"):
                obj = self._lookup(module, name)
                if isinstance(obj, type) and self._defined_at(obj, module, name):
                    import scipy.sparse as sp

                    if issubclass(obj, (sp.spmatrix, sp.sparray)):
                        return obj
                return _REFUSED
        if boost.package_of(module) is not None:
            # LightGBM, XGBoost, imbalanced-learn (the optional extra): see boost.py.
            obj = boost.resolve(module, name, self._defined_at)
            return _REFUSED if obj is None else obj
        return _REFUSED

    def resolve(self, module: str, name: str) -> Any:
        """Return the admitted object, ``_REFUSED``, or raise _UnknownGlobal."""
        if not all(_IDENT_RE.match(p) for p in module.split(".")) or not _IDENT_RE.match(
            name
        ):
            # Dotted names (protocol 4 attribute paths such as
            # "BaseEstimator.__init__.__globals__") and junk are refused.
            if "." in name and all(_IDENT_RE.match(p) for p in name.split(".")):
                return _REFUSED
            raise ModelLoadError(
                "The file is corrupt: it contains an invalid global reference "
                f"{module!r}.{name!r}."
            )
        module = _canonical_module(module)
        key = (module, name)
        if key not in self._cache:
            self._cache[key] = self._resolve_uncached(module, name)
        return self._cache[key]

    def admits(self, module: str, name: str) -> bool:
        try:
            return self.resolve(module, name) is not _REFUSED
        except (_UnknownGlobal, ModelLoadError):
            return False


_MISSING = object()


class _RefusedMarker:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<refused>"


_REFUSED = _RefusedMarker()


def is_admitted_global(
    module: str, name: str, *, trusted_modules: tuple[str, ...] = ()
) -> bool:
    """Whether a pickle/skops reference ``module.name`` is on the allowlist."""
    return _Policy(trusted_modules).admits(module, name)
