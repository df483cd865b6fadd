"""LightGBM, XGBoost and imbalanced-learn models: what is admitted from those packages, and the
checks and settings that apply to them after loading.

These packages are optional (the extra ``model-results-viewer[boost]`` pins them with the
scikit-learn the app runs). Without them, a model that needs one is refused with a message that
names the extra; nothing of theirs is imported unless a model file names it.

What is admitted, and why:

* LightGBM's and XGBoost's scikit-learn estimators (the subclasses of ``lightgbm.sklearn.LGBMModel``
  and ``xgboost.sklearn.XGBModel`` defined in those modules). Like scikit-learn's, their
  constructors only store parameters and their state is a plain ``__dict__``.
* Their ``Booster`` objects, built from state only (never called while loading: their
  constructors open files named by their arguments). A booster's state holds the model as text
  (LightGBM) or as bytes (XGBoost), which its ``__setstate__`` hands to the library's own parser:
  native code that was not written for hostile input. In the app that happens inside a model host
  (``viewer.infra.host``), which contains a crash; here the state must be of the one type that
  library writes (``check_build_state``), a rejected model is refused with the library's own words
  (``rejected``), and after loading the invariants we can read back are checked against the
  estimator around it (``check``): feature count, tree count per iteration, classes.
* imbalanced-learn's estimators (its Pipeline and samplers), by the same structural rule as
  scikit-learn's: subclasses of ``sklearn.base.BaseEstimator`` defined in a non-test
  ``imblearn`` module. They hold scikit-learn objects, which the usual checks cover, and a
  Pipeline skips its samplers when it predicts.

LightGBM and XGBoost start OpenMP threads unless told otherwise (``n_jobs=None`` means every core
for them, one thread for scikit-learn), and a model host cannot start threads: ``limit_threads``
sets every thread count they keep to 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import json
import re
import sys
from typing import Any, Callable

from .errors import ModelLoadError, UnsafeModelError, _as_int, _tampered, _type_name

EXTRA = "model-results-viewer[boost]"
#: top-level package -> the name people know it by
PACKAGES = {"lightgbm": "LightGBM", "xgboost": "XGBoost", "imblearn": "imbalanced-learn"}
#: packages whose models hold a booster parsed by native code
NATIVE = ("lightgbm", "xgboost")
# Modules of these packages never imported while resolving a reference: tests, dataset fetchers
# (network), and imbalanced-learn's keras/tensorflow bridges (heavy imports with side effects).
_DENIED_PARTS = frozenset({"tests", "testing", "_testing", "conftest", "datasets", "keras", "tensorflow"})
#: modules a reference may name, per package
_MODULES = {
    "lightgbm": ("lightgbm.sklearn", "lightgbm.basic"),
    "xgboost": ("xgboost.sklearn", "xgboost.core"),
}
# Thread-count parameters (and their aliases) of LightGBM and XGBoost.
_THREAD_PARAMS = frozenset({"n_jobs", "num_threads", "num_thread", "nthread", "nthreads"})


def package_of(module: str) -> str | None:
    top = module.split(".", 1)[0]
    return top if top in PACKAGES else None


def installed(package: str) -> bool:
    if package in sys.modules:
        return sys.modules[package] is not None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(module: str, name: str) -> ModelLoadError:
    package = package_of(module) or module
    return ModelLoadError(
        f"This model needs {PACKAGES.get(package, package)} ({module}.{name}), which is not installed "
        f"where models are loaded. Ask the operator to install {EXTRA} (pip install '{EXTRA}') for the "
        "web app and the workers, then upload the model again.")


def may_import(module: str) -> bool:
    package = package_of(module)
    if package is None or not installed(package):
        return False
    if any(part in _DENIED_PARTS for part in module.split(".")):
        return False
    allowed = _MODULES.get(package)
    return allowed is None or module in allowed


def _class(module: str, name: str) -> Any:
    """A class of an optional package, by name (so this module imports none of them: they are not
    dependencies of the app)."""
    try:
        found = vars(importlib.import_module(module)).get(name)
    except ImportError:
        found = None
    return found if isinstance(found, type) else type("_Absent", (), {})


def _import_quietly(package: str) -> bool:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module(package)
        return True
    except Exception:  # noqa: BLE001  (a broken install is as good as none)
        return False


def resolve(module: str, name: str, defined_at: Callable[[Any, str, str], bool]) -> Any:
    """The admitted object for ``module.name`` of one of these packages, or None (refused).
    Raises the missing-extra refusal when the package is not installed."""
    package = package_of(module)
    if package is None:
        return None
    if not installed(package):
        raise missing_extra(module, name)
    if not may_import(module) or name.startswith("_"):
        return None
    if not _import_quietly(package):
        raise missing_extra(module, name)
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    obj = vars(mod).get(name)
    if not isinstance(obj, type) or not defined_at(obj, module, name):
        return None
    if package == "lightgbm":
        Booster = _class("lightgbm.basic", "Booster")
        LGBMModel = _class("lightgbm.sklearn", "LGBMModel")

        return obj if obj is Booster or (module == "lightgbm.sklearn" and issubclass(obj, LGBMModel)) else None
    if package == "xgboost":
        Booster = _class("xgboost.core", "Booster")
        XGBModel = _class("xgboost.sklearn", "XGBModel")

        return obj if obj is Booster or (module == "xgboost.sklearn" and issubclass(obj, XGBModel)) else None
    from sklearn.base import BaseEstimator

    return obj if issubclass(obj, BaseEstimator) else None


def no_call_types() -> tuple[type, ...]:
    """Boosters, whose constructors read files: built from state only."""
    return tuple(_booster_types_loaded())


def _booster_types_loaded() -> list[type]:
    """The booster classes of the packages already imported (a model naming one imported it)."""
    found = []
    for package, module in (("lightgbm", "lightgbm.basic"), ("xgboost", "xgboost.core")):
        mod = sys.modules.get(module)
        cls = vars(mod).get("Booster") if mod is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return found


def _booster_package(obj: Any) -> str | None:
    for cls in _booster_types_loaded():
        if type(obj) is cls:
            return cls.__module__.split(".", 1)[0]
    return None


# --- while loading -------------------------------------------------------------------------------

def check_build_state(inst: Any, state: Any) -> str | None:
    """Before a booster's ``__setstate__`` hands its state to native code: the state must be what
    the library writes (LightGBM: the model as text under ``_handle``; XGBoost: the model as a
    bytearray under ``handle``). Returns the package's name for a booster, None otherwise."""
    package = _booster_package(inst)
    if package is None:
        return None
    what = f"{_type_name(inst)} state"
    if not isinstance(state, dict):
        raise _tampered(what, "the state of a booster is not a dict")
    if package == "lightgbm":
        if not isinstance(state.get("_handle"), str) or "handle" in state:
            raise _tampered(what, "a LightGBM booster's state holds its model as text under '_handle'")
        if any(key in state for key in ("train_set", "valid_sets")) or state.get("_network"):
            raise _tampered(what, "a saved LightGBM booster holds no training data and no network")
        # LightGBM parses the trees listed in 'tree_sizes' in parallel, where a format error ends
        # the process (std::terminate) instead of raising; without it, it parses them one by one
        # and raises. Its own text is what it then reads.
        text = _TREE_SIZES.sub("", state["_handle"], count=1)
        _check_lightgbm_text(text)
        state["_handle"] = text
    else:
        if not isinstance(state.get("handle"), bytearray) or set(state) != {"handle"}:
            raise _tampered(what, "an XGBoost booster's state holds only its model, as bytes, under 'handle'")
    return package


_TREE_SIZES = re.compile(r"^tree_sizes=[^\n]*\n", re.MULTILINE)
_MAX_LEAVES = 1 << 24


def _bad_text(why: str) -> UnsafeModelError:
    return _tampered("lightgbm.basic.Booster", f"its model text is malformed: {why}")


def _check_lightgbm_text(text: str) -> None:
    """LightGBM reads its trees' arrays without checking them: a split feature past the row, a
    child index out of the tree, a category index past its bitsets read memory out of bounds or
    crash when predicting. Every tree must be a tree over the model's features."""
    head, sep, rest = text.partition("\nTree=")
    header = _fields(head)
    if "is_linear=1" in text:
        raise UnsafeModelError(
            ["LightGBM linear trees"],
            detail="LightGBM models with linear trees (linear_tree=True) are not supported. Fit it "
            "without linear_tree and upload it again.")
    try:
        n_features = int(header["max_feature_idx"]) + 1
    except (KeyError, ValueError):
        raise _bad_text("no max_feature_idx") from None
    if not 1 <= n_features <= 10**8:
        raise _bad_text("an impossible number of features")
    for name in ("feature_names", "feature_infos"):
        if name in header and len(header[name].split(" ")) != n_features:
            raise _bad_text(f"{name} does not list {n_features} features")
    if not sep:
        return  # no trees
    body = "Tree=" + rest.partition("\nend of trees")[0]
    for block in re.split(r"\n(?=Tree=)", body):
        _check_lightgbm_tree(_fields(block), n_features)


def _fields(block: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in block.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            found[key.strip()] = value.strip()
    return found


def _numbers(fields: dict[str, str], name: str, count: int, kind=int) -> list:
    values = fields.get(name, "").split()
    if len(values) != count:
        raise _bad_text(f"{name} has {len(values)} values, not {count}")
    try:
        return [kind(v) for v in values]
    except ValueError:
        raise _bad_text(f"{name} holds something that is not a number") from None


def _check_lightgbm_tree(fields: dict[str, str], n_features: int) -> None:
    try:
        leaves, n_cat = int(fields["num_leaves"]), int(fields.get("num_cat", "0"))
    except (KeyError, ValueError):
        raise _bad_text("a tree without num_leaves") from None
    if not 1 <= leaves <= _MAX_LEAVES or not 0 <= n_cat < leaves:
        raise _bad_text("a tree with an impossible number of leaves or categorical splits")
    _numbers(fields, "leaf_value", leaves, float)
    nodes = leaves - 1
    if nodes == 0:
        return
    features = _numbers(fields, "split_feature", nodes)
    left, right = _numbers(fields, "left_child", nodes), _numbers(fields, "right_child", nodes)
    decision = _numbers(fields, "decision_type", nodes)
    threshold = _numbers(fields, "threshold", nodes, float)
    if any(not 0 <= f < n_features for f in features):
        raise _bad_text("a split on a feature the model does not have")
    _walk_tree(left, right, leaves, lambda node: -node - 1, "LightGBM")
    if n_cat:
        bounds = _numbers(fields, "cat_boundaries", n_cat + 1)
        if bounds[0] != 0 or any(b > a for a, b in zip(bounds[1:], bounds)):
            raise _bad_text("cat_boundaries do not increase from 0")
        _numbers(fields, "cat_threshold", bounds[-1])
    for node in range(nodes):
        if decision[node] & 1 and not (threshold[node].is_integer() and 0 <= threshold[node] < n_cat):
            raise _bad_text("a categorical split points past the tree's categories")


def _walk_tree(left: list[int], right: list[int], leaves: int, leaf_of, library: str) -> None:
    """From the root, every child is a node or a leaf of this tree, reached once: no cycle, no
    shared subtree, no index out of the arrays (``leaf_of(child)`` is the leaf index of a negative
    child)."""
    seen = bytearray(len(left))
    seen_leaves = bytearray(max(leaves, 0))
    stack = [0]
    while stack:
        node = stack.pop()
        if seen[node]:
            raise _tampered(f"{library} tree", "a node is reached twice (a cycle or a shared subtree)")
        seen[node] = 1
        for child in (left[node], right[node]):
            if child >= 0:
                if child >= len(left):
                    raise _tampered(f"{library} tree", "a child index points past the tree")
                stack.append(child)
            else:
                leaf = leaf_of(child)
                if leaf is None or not 0 <= leaf < leaves or seen_leaves[leaf]:
                    raise _tampered(f"{library} tree", "a leaf index points past the tree's leaves")
                seen_leaves[leaf] = 1


@contextlib.contextmanager
def parsing(inst: Any, state: Any):
    """Around BUILD: for a LightGBM/XGBoost booster, whose ``__setstate__`` hands its model to
    the library's parser, check the state first and word the library's refusal."""
    package = check_build_state(inst, state)
    if package is None:
        yield
        return
    try:
        yield
    except Exception as exc:  # noqa: BLE001  (the library's own error types)
        raise rejected(package, exc) from None


def rejected(package: str, exc: BaseException) -> ModelLoadError:
    # The library's first sentence, without its timestamp, source path and stack trace.
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"^\[[\d:]+\]\s*\S+:\d+:\s*", "", text)
    text = re.sub(r"\s*at \S+, line \d+\s*\.?$", "", text).strip() or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    name = PACKAGES[package]
    return ModelLoadError(
        f"The {name} model inside this file is corrupt: {name} refused to read it ({text}). "
        f"Save the model again with {name} {_version(package)} and upload the new file.")


def _version(package: str) -> str:
    mod = sys.modules.get(package)
    return str(getattr(mod, "__version__", "")) or "(the installed version)"


# --- after loading -------------------------------------------------------------------------------

def check(obj: Any) -> None:
    """The invariants of a loaded LightGBM/XGBoost estimator or booster (see the module's
    docstring); raises UnsafeModelError."""
    cls = type(obj)
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("lightgbm."):
        _check_lightgbm(obj)
    elif module.startswith("xgboost."):
        _check_xgboost(obj)


def _handle_ok(handle: Any) -> bool:
    return isinstance(handle, ctypes.c_void_p) and bool(handle.value)


def _check_lightgbm(obj: Any) -> None:
    Booster = _class("lightgbm.basic", "Booster")
    LGBMClassifier = _class("lightgbm.sklearn", "LGBMClassifier")
    LGBMModel = _class("lightgbm.sklearn", "LGBMModel")

    name = _type_name(obj)
    if isinstance(obj, Booster):
        d = vars(obj)
        if not _handle_ok(d.get("_handle")) or "handle" in d or d.get("_network"):
            raise _tampered(name, "the booster was not built from a LightGBM model")
        categories = d.get("pandas_categorical")
        if categories is not None and not (isinstance(categories, list)
                                           and all(isinstance(c, list) for c in categories)):
            raise _tampered(name, "pandas_categorical is not a list of category lists")
        if categories is not None and len(categories) > obj.num_feature():
            raise _tampered(name, "more categorical maps than features")
        trees, per_iteration = obj.num_trees(), obj.num_model_per_iteration()
        if per_iteration < 1 or trees != obj.current_iteration() * per_iteration:
            raise _tampered(name, "its tree count does not match its iterations")
        return
    if not isinstance(obj, LGBMModel):
        return
    d = vars(obj)
    booster = d.get("_Booster")
    if booster is None:
        return  # not fitted: predict refuses it
    if not isinstance(booster, Booster):
        raise _tampered(name, "its booster is not a LightGBM Booster")
    n_features = booster.num_feature()
    for attr in ("_n_features", "_n_features_in"):
        if attr in d and _as_int(d[attr]) != n_features:
            raise _tampered(name, f"{attr}={d[attr]!r} but its trees use {n_features} features")
    if isinstance(obj, LGBMClassifier):
        _check_classes(name, d.get("_classes"), d.get("_n_classes"), booster.num_model_per_iteration(),
                       getattr(d.get("_le"), "classes_", None))


def _check_classes(name: str, classes: Any, n_classes: Any, per_iteration: int, encoded: Any) -> None:
    import numpy as np

    n = _as_int(n_classes)
    if n is None or n < 1 or classes is None or len(classes) != n:
        raise _tampered(name, "its class list does not match its number of classes")
    expected = n if n > 2 else 1
    if per_iteration != expected:
        raise _tampered(name, f"{n} classes but {per_iteration} trees per iteration")
    if encoded is not None and not np.array_equal(np.asarray(encoded), np.asarray(classes)):
        raise _tampered(name, "its label encoder's classes differ from its classes")


def _check_xgboost(obj: Any) -> None:
    Booster = _class("xgboost.core", "Booster")
    XGBClassifier = _class("xgboost.sklearn", "XGBClassifier")
    XGBModel = _class("xgboost.sklearn", "XGBModel")

    name = _type_name(obj)
    if isinstance(obj, Booster):
        if not _handle_ok(vars(obj).get("handle")):
            raise _tampered(name, "the booster was not built from an XGBoost model")
        _check_xgboost_trees(obj)
        n_features = obj.num_features()
        for attr in ("feature_names", "feature_types"):
            values = getattr(obj, attr)
            if values is not None and len(values) != n_features:
                raise _tampered(name, f"{len(values)} {attr} for {n_features} features")
        return
    if not isinstance(obj, XGBModel):
        return
    booster = vars(obj).get("_Booster")
    if booster is None:
        return
    if not isinstance(booster, Booster):
        raise _tampered(name, "its booster is not an XGBoost Booster")
    if isinstance(obj, XGBClassifier):
        n = _as_int(vars(obj).get("n_classes_"))
        config = json.loads(booster.save_config())
        num_class = _as_int(int(config["learner"]["learner_model_param"].get("num_class", "0")))
        objective = str(config["learner"]["objective"].get("name", ""))
        if n is None or n < 2:
            raise _tampered(name, "a classifier with fewer than two classes")
        if objective.startswith("multi:") and num_class != n:
            raise _tampered(name, f"n_classes_={n} but its booster has {num_class} classes")


def _check_xgboost_trees(booster: Any) -> None:
    """XGBoost reads its trees' arrays without checking them (a child index out of the tree
    crashes a prediction): every tree must be a tree over the model's features, read back from
    the model as XGBoost writes it (its JSON form; writing walks no tree)."""
    model = json.loads(bytes(booster.save_raw("json")))
    learner = model["learner"]
    n_features = int(learner["learner_model_param"]["num_feature"])
    groups = max(1, int(learner["learner_model_param"].get("num_target", "1")),
                 int(learner["learner_model_param"].get("num_class", "0")))
    booster_json = learner["gradient_booster"]
    kind = booster_json.get("name")
    if kind == "gblinear":
        weights = booster_json["model"]["weights"]
        if len(weights) != (n_features + 1) * groups:
            raise _tampered("xgboost.core.Booster", "its linear weights do not match its features")
        return
    trees_model = booster_json["gbtree"]["model"] if kind == "dart" else booster_json["model"]
    for tree in trees_model["trees"]:
        n = int(tree["tree_param"]["num_nodes"])
        left, right, split = tree["left_children"], tree["right_children"], tree["split_indices"]
        if not (n >= 1 and len(left) == len(right) == len(split) == n):
            raise _tampered("xgboost.core.Booster", "a tree's arrays do not match its node count")
        internal = [i for i in range(n) if left[i] != -1]
        if any(not 0 <= split[i] < n_features for i in internal):
            raise _tampered("xgboost.core.Booster", "a split on a feature the model does not have")
        if any(right[i] == -1 for i in internal) or any(right[i] != -1 for i in range(n) if left[i] == -1):
            raise _tampered("xgboost.core.Booster", "a node with one child")
        _walk_xgb(left, right)
        segments, sizes = tree.get("categories_segments", []), tree.get("categories_sizes", [])
        total = len(tree.get("categories", []))
        if len(segments) != len(sizes) or any(s < 0 or z < 0 or s + z > total for s, z in zip(segments, sizes)):
            raise _tampered("xgboost.core.Booster", "a categorical split points past the tree's categories")


def _walk_xgb(left: list[int], right: list[int]) -> None:
    """XGBoost marks a leaf by -1 children; from the root every node is reached once."""
    seen = bytearray(len(left))
    stack = [0]
    while stack:
        node = stack.pop()
        if seen[node]:
            raise _tampered("XGBoost tree", "a node is reached twice (a cycle or a shared subtree)")
        seen[node] = 1
        if left[node] == -1:
            continue
        for child in (left[node], right[node]):
            if not 0 < child < len(left):
                raise _tampered("XGBoost tree", "a child index points past the tree")
            stack.append(child)


# --- settings forced at load ---------------------------------------------------------------------

def limit_threads(obj: Any, note: Callable[[Any, str, Any, Any], None]) -> None:
    """One thread for LightGBM/XGBoost estimators and boosters (for them n_jobs=None means every
    core); ``note(obj, attribute, old, new)`` records each change."""
    module = getattr(type(obj), "__module__", "") or ""
    package = package_of(module)
    if package not in NATIVE:
        return
    d = vars(obj)
    if package == "lightgbm":
        Booster = _class("lightgbm.basic", "Booster")
        LGBMModel = _class("lightgbm.sklearn", "LGBMModel")

        if isinstance(obj, LGBMModel):
            _one_thread(d, "n_jobs", obj, note, always=True)
            other = d.get("_other_params")
            if isinstance(other, dict):
                for key in sorted(_THREAD_PARAMS & set(other)):
                    _one_thread(other, key, obj, note, always=True)
                    if key in d:
                        d[key] = 1
        elif isinstance(obj, Booster):
            params = d.get("params")
            if isinstance(params, dict):
                for key in sorted(_THREAD_PARAMS & set(params)):
                    _one_thread(params, key, obj, note, always=False)
        return
    Booster = _class("xgboost.core", "Booster")
    XGBModel = _class("xgboost.sklearn", "XGBModel")

    if isinstance(obj, XGBModel):
        _one_thread(d, "n_jobs", obj, note, always=True)
        extra = d.get("kwargs")
        if isinstance(extra, dict):
            for key in sorted(_THREAD_PARAMS & set(extra)):
                _one_thread(extra, key, obj, note, always=True)
    elif isinstance(obj, Booster) and _handle_ok(d.get("handle")):
        config = json.loads(obj.save_config())
        old = config.get("learner", {}).get("generic_param", {}).get("nthread")
        if str(old) != "1":
            obj.set_param({"nthread": 1})
            note(obj, "nthread", old, 1)


def _one_thread(d: dict, key: str, obj: Any, note, *, always: bool) -> None:
    old = d.get(key)
    if _as_int(old) == 1 and not isinstance(old, bool):
        return
    if old is None and not always:
        return
    d[key] = 1
    note(obj, key, old, 1)


def refuse_in_skops(module: str) -> bool:
    """skops files cannot hold LightGBM/XGBoost boosters: skops would call their ``__setstate__``
    without the checks above (save those models with joblib)."""
    return package_of(module) in NATIVE

