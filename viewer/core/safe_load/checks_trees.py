"""Structural checks of fitted tree models: decision trees, forests and other
tree ensembles, gradient boosting and histogram gradient boosting (their
predictors and categorical preprocessing).  Each raises
``UnsafeModelError`` (via ``_tampered``) when an invariant that fitting
guarantees does not hold.
"""

from __future__ import annotations

import numpy as np

from .errors import _as_int, _tampered, _type_name


def _n_features_in(est, *, required: bool) -> int | None:
    """``n_features_in_`` as scikit-learn compares it with the input width.

    scikit-learn skips the width check when the attribute is absent and
    compares with ``!=`` otherwise, so anything but a true ``int`` (a float, a
    bool, a numpy scalar or 0-d array, a string) can make the check pass for
    an input narrower than what the native code will index.  Fitting always
    stores ``X.shape[1]``, a Python int.  Returns None when the attribute is
    absent and not ``required``.
    """
    d = getattr(est, "__dict__", {})
    if "n_features_in_" not in d:
        if required:
            raise _tampered(_type_name(est), "n_features_in_ is missing")
        return None
    value = d["n_features_in_"]
    if type(value) is not int or value < 1:
        raise _tampered(_type_name(est), "n_features_in_ is not a positive integer")
    return value


# Tree.__setstate__ reads its arrays' shapes before checking how many dimensions they have:
# a 0-d "nodes" array crashes the process while the pickle is read (found by the host fuzzer).
_TREE_STATE_DIMENSIONS = {"nodes": 1, "values": 3}


def check_tree_state(state) -> None:
    """Refuse a Tree's pickled state whose arrays Tree.__setstate__ would read out of bounds;
    called before the state reaches it (the rest is checked after loading, ``_check_tree``)."""
    name = "sklearn.tree._tree.Tree"
    if not isinstance(state, dict):
        raise _tampered(name, "its state is not a dict")
    for key, ndim in _TREE_STATE_DIMENSIONS.items():
        array = state.get(key)
        if not isinstance(array, np.ndarray) or array.ndim != ndim:
            raise _tampered(name, f"{key} array has the wrong shape")


def _check_tree(tree) -> None:
    name = "sklearn.tree._tree.Tree"
    try:
        n = int(tree.node_count)
        capacity = int(tree.capacity)
        n_features = int(tree.n_features)
        left = np.asarray(tree.children_left)
        right = np.asarray(tree.children_right)
        feature = np.asarray(tree.feature)
    except Exception as exc:
        raise _tampered(name, f"unreadable tree: {exc}") from exc
    if n < 1 or n > capacity or n_features < 1:
        raise _tampered(name, "invalid node count")
    if len(left) != n or len(right) != n or len(feature) != n:
        raise _tampered(name, "node arrays have the wrong length")
    idx = np.arange(n)
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise _tampered(name, "half-leaf nodes")
    internal = ~leaf
    # Trees are built depth first: children always come after their parent,
    # which also rules out cycles.
    if np.any((left[internal] <= idx[internal]) | (left[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any((right[internal] <= idx[internal]) | (right[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any((feature[internal] < 0) | (feature[internal] >= n_features)):
        raise _tampered(name, "feature index out of range")


def _check_tree_owner(est) -> None:
    """A decision tree validates the input width against its own
    ``n_features_in_`` (also when a forest, bagging or isolation forest calls
    it with ``check_input=False``), and the tree then indexes the input with
    feature indices bounded by ``tree_.n_features`` only.  Fitting always
    sets both, equal."""
    n_in = _n_features_in(est, required=True)
    if int(est.tree_.n_features) != n_in:
        raise _tampered(_type_name(est), "tree_.n_features does not match n_features_in_")


def _flatten_estimators(value) -> list:
    out = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, np.ndarray) and v.dtype.hasobject:
            stack.extend(v.ravel().tolist())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            out.append(v)
    return out


def _check_ensemble(est) -> None:
    from sklearn.tree._tree import Tree

    members = est.__dict__.get("estimators_")
    member_list = _flatten_estimators(members) if members is not None else []
    has_trees = any(
        isinstance(getattr(m, "__dict__", {}).get("tree_"), Tree) for m in member_list
    )
    # A fitted ensemble of trees always records its input width.
    n_in = _n_features_in(est, required=has_trees)
    if n_in is None or members is None:
        return
    feature_sets = est.__dict__.get("estimators_features_")
    if feature_sets is not None:
        members_list = list(members) if isinstance(members, (list, tuple, np.ndarray)) else []
        for member, feats in zip(members_list, list(feature_sets)):
            tree = getattr(member, "__dict__", {}).get("tree_")
            feats = np.asarray(feats)
            if feats.size and (feats.min() < 0 or feats.max() >= n_in):
                raise _tampered(_type_name(est), "feature subset index out of range")
            if isinstance(tree, Tree) and int(tree.n_features) != feats.size:
                raise _tampered(_type_name(est), "member tree width mismatch")
        return
    from sklearn.multioutput import _BaseChain

    if isinstance(est, _BaseChain):
        # A chain's k-th member sees the input plus k earlier predictions;
        # each member tree checks that width itself (_check_tree_owner).
        return
    for member in member_list:
        tree = getattr(member, "__dict__", {}).get("tree_")
        if isinstance(tree, Tree) and int(tree.n_features) != n_in:
            raise _tampered(_type_name(est), "member tree width does not match n_features_in_")


def _check_tree_predictor(pred) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    name = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    d = getattr(pred, "__dict__", {})
    nodes = d.get("nodes")
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE:
        raise _tampered(name, "nodes array has the wrong type")
    if nodes.ndim != 1 or nodes.shape[0] < 1 or not nodes.flags.c_contiguous:
        raise _tampered(name, "nodes array has the wrong shape")
    bitsets = []
    for key in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
        b = d.get(key)
        if (
            not isinstance(b, np.ndarray)
            or b.dtype != np.uint32
            or b.ndim != 2
            or b.shape[1] != 8
            or not b.flags.c_contiguous
        ):
            raise _tampered(name, f"{key} has the wrong type or shape")
        bitsets.append(b.shape[0])
    n = nodes.shape[0]
    idx = np.arange(n)
    internal = nodes["is_leaf"] == 0
    left = nodes["left"].astype(np.int64)
    right = nodes["right"].astype(np.int64)
    if np.any((left[internal] <= idx[internal]) | (left[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any((right[internal] <= idx[internal]) | (right[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any(nodes["feature_idx"][internal] < 0):
        raise _tampered(name, "feature index out of range")
    cat = internal & (nodes["is_categorical"] != 0)
    if np.any(nodes["bitset_idx"][cat].astype(np.int64) >= min(bitsets)):
        raise _tampered(name, "categorical bitset index out of range")


def _check_hgb(est) -> None:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    d = est.__dict__
    n_in = _n_features_in(est, required=True)
    name = _type_name(est)
    for pred in _flatten_estimators(d.get("_predictors")):
        if not isinstance(pred, TreePredictor):
            raise _tampered(name, "unexpected predictor object")
        nodes = pred.__dict__.get("nodes")
        internal = nodes["is_leaf"] == 0
        if np.any(nodes["feature_idx"][internal] >= n_in):
            raise _tampered(name, "feature index out of range")
    bin_mapper = d.get("_bin_mapper")
    is_cat = getattr(bin_mapper, "is_categorical_", None) if bin_mapper is not None else None
    if is_cat is not None and np.asarray(is_cat).size != n_in:
        raise _tampered(name, "bin mapper width does not match n_features_in_")
    pre = d.get("_preprocessor")
    if pre is not None:
        _check_hgb_preprocessor(est, pre, n_in)


def _check_hgb_preprocessor(est, pre, n_in: int) -> None:
    """HGB transforms X *after* validating it; the output must keep n_in columns."""
    from functools import partial

    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder
    from sklearn.utils.validation import check_array

    name = _type_name(est)
    if not isinstance(pre, ColumnTransformer):
        raise _tampered(name, "unexpected categorical preprocessor")
    covered = np.zeros(n_in, dtype=int)
    for _, trans, cols in getattr(pre, "transformers_", []):
        if isinstance(trans, str) and trans == "drop":
            continue
        mask = np.asarray(cols)
        if mask.dtype != bool or mask.shape != (n_in,):
            raise _tampered(name, "preprocessor column mask has the wrong shape")
        if isinstance(trans, OrdinalEncoder):
            if len(getattr(trans, "categories_", [])) != int(mask.sum()):
                raise _tampered(name, "encoder width mismatch")
        elif isinstance(trans, FunctionTransformer):
            func = trans.func
            ok = func is None or (
                isinstance(func, partial) and func.func is check_array and not func.args
            )
            if not ok:
                raise _tampered(name, "unexpected numerical preprocessor")
        else:
            raise _tampered(name, "unexpected preprocessor step")
        covered += mask
    if not np.all(covered == 1):
        raise _tampered(name, "preprocessor does not map every column exactly once")


def _check_gradient_boosting(est) -> None:
    """predict_stages() writes out[:, k] for every column of estimators_ into
    an array whose width comes from the init estimator."""
    d = est.__dict__
    if "estimators_" not in d:
        return
    name = _type_name(est)
    members = d["estimators_"]
    if not isinstance(members, np.ndarray) or members.ndim != 2 or members.dtype != object:
        raise _tampered(name, "estimators_ is not a 2-D object array")
    # predict_stages() runs every member tree on the input validated against
    # estimators_[0, 0] only, without checking the trees' widths.
    from sklearn.tree._tree import Tree

    n_in = _n_features_in(est, required=True)
    for member in members.ravel().tolist():
        tree = getattr(member, "__dict__", {}).get("tree_")
        if not isinstance(tree, Tree):
            raise _tampered(name, "a boosting stage holds no decision tree")
        if int(tree.n_features) != n_in:
            raise _tampered(name, "member tree width does not match n_features_in_")
    width = members.shape[1]
    if _as_int(d.get("n_trees_per_iteration_")) != width:
        raise _tampered(name, "estimators_ width does not match n_trees_per_iteration_")
    from sklearn.base import is_classifier

    init = d.get("init_")
    if is_classifier(est):
        n_classes = _as_int(d.get("n_classes_"))
        expected = n_classes if n_classes is not None and n_classes > 2 else 1
        if width != expected:
            raise _tampered(name, "estimators_ width does not match the number of classes")
        if width > 1 and not (isinstance(init, str) and init == "zero"):
            classes = getattr(init, "classes_", None)
            prior = getattr(init, "class_prior_", None)
            if classes is None or len(classes) != width or (
                prior is not None and np.asarray(prior).shape != (width,)
            ):
                raise _tampered(name, "init estimator width does not match")
    elif width != 1:
        raise _tampered(name, "regression boosting must have one tree per stage")
