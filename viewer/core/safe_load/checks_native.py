"""Structural checks of the other native structures that scikit-learn's
compiled code indexes without bounds checks: KD/Ball trees and neighbors,
k-means, libsvm models, sparse matrices, B-splines and random states.
"""

from __future__ import annotations

import numpy as np

from .checks_trees import _n_features_in
from .errors import _as_int, _tampered, _type_name
from .load_helpers import _binary_tree_types


def _node_bounds_rows(tree) -> int | None:
    """How many bound rows the tree's native code reads per node: a KD tree
    keeps lower and upper bounds (node_bounds[0] and [1]), a ball tree one
    centroid (node_bounds[0]).  The module that defines the class decides
    which distance-bound functions its methods use."""
    import sklearn.neighbors._ball_tree as ball
    import sklearn.neighbors._kd_tree as kd

    if isinstance(tree, (kd.BinaryTree64, kd.BinaryTree32)):
        return 2
    if isinstance(tree, (ball.BinaryTree64, ball.BinaryTree32)):
        return 1
    return None


def _check_binary_tree(tree) -> None:
    name = _type_name(tree)
    try:
        state = tree.__getstate__()
        data, idx_array, node_data, node_bounds = (np.asarray(s) for s in state[:4])
        leaf_size, n_levels, n_nodes = (int(s) for s in state[4:7])
        metric = state[11]
        sample_weight = state[12]
    except Exception as exc:
        raise _tampered(name, f"unreadable tree state: {exc}") from exc
    if data.ndim != 2:
        raise _tampered(name, "data is not 2-D")
    n_samples, n_features = data.shape
    if leaf_size < 1 or n_levels < 1 or n_levels > 64 or n_nodes != 2**n_levels - 1:
        raise _tampered(name, "inconsistent tree size")
    if node_data.shape != (n_nodes,) or node_bounds.ndim != 3:
        raise _tampered(name, "node arrays have the wrong length")
    if node_bounds.shape != (_node_bounds_rows(tree), n_nodes, n_features):
        raise _tampered(name, "node bounds have the wrong shape")
    if idx_array.shape != (n_samples,) or not np.array_equal(
        np.sort(idx_array), np.arange(n_samples)
    ):
        raise _tampered(name, "index array is not a permutation of the samples")
    start = node_data["idx_start"]
    end = node_data["idx_end"]
    if np.any(start < 0) or np.any(end > n_samples) or np.any(start > end):
        raise _tampered(name, "node sample range out of bounds")
    internal = np.flatnonzero(node_data["is_leaf"] == 0)
    if internal.size and 2 * internal.max() + 2 >= n_nodes:
        raise _tampered(name, "child node out of range")
    if sample_weight is not None and np.asarray(sample_weight).shape != (n_samples,):
        raise _tampered(name, "sample weights have the wrong length")
    try:
        metric._validate_data(data)
    except Exception as exc:
        raise _tampered(name, f"distance metric does not fit the data: {exc}") from exc
    vec = np.asarray(metric.__getstate__()[1])
    if vec.size not in (0, n_features) and type(metric).__name__.startswith(
        ("SEuclidean", "Minkowski", "WMinkowski")
    ):
        raise _tampered(name, "metric weights have the wrong length")


def _check_sparse(matrix) -> None:
    name = _type_name(matrix)
    try:
        if hasattr(matrix, "check_format") and matrix.format in ("csr", "csc", "bsr"):
            matrix.check_format(full_check=True)
        elif matrix.format == "coo":
            matrix._check()
            coords = getattr(matrix, "coords", None)
            if coords is not None:
                for axis, c in enumerate(coords):
                    c = np.asarray(c)
                    if c.size and (c.min() < 0 or c.max() >= matrix.shape[axis]):
                        raise ValueError("coordinate out of range")
        elif matrix.format == "dia":
            data = np.asarray(matrix.data)
            offsets = np.asarray(matrix.offsets)
            if data.ndim != 2 or offsets.shape != (data.shape[0],):
                raise ValueError("dia data/offsets mismatch")
    except Exception as exc:
        raise _tampered(name, f"invalid sparse matrix: {exc}") from exc


def _check_libsvm(est) -> None:
    d = est.__dict__
    if "support_" not in d or "_n_support" not in d:
        return  # not fitted
    name = _type_name(est)
    try:
        support = np.asarray(d["support_"])
        n_support = np.asarray(d["_n_support"])
        dual = d.get("_dual_coef_")
        intercept = np.asarray(d.get("_intercept_"))
        sv = d.get("support_vectors_")
        prob_a = np.asarray(d.get("_probA", np.empty(0)))
        prob_b = np.asarray(d.get("_probB", np.empty(0)))
        impl = d.get("_impl", getattr(est, "_impl", None))
        kernel = d.get("kernel", "rbf")
    except Exception as exc:
        raise _tampered(name, f"unreadable libsvm model: {exc}") from exc
    n_class = n_support.shape[0] if n_support.ndim == 1 else -1
    n_sv = support.shape[0] if support.ndim == 1 else -1
    if n_class < 2 or n_sv < 0:
        raise _tampered(name, "bad support arrays")
    if np.any(n_support < 0):
        raise _tampered(name, "negative support counts")
    if impl in ("c_svc", "nu_svc") and int(n_support.sum()) != n_sv:
        raise _tampered(name, "support counts do not add up")
    dual_shape = getattr(dual, "shape", None)
    if dual_shape != (n_class - 1, n_sv):
        raise _tampered(name, "dual coefficients have the wrong shape")
    n_pairs = n_class * (n_class - 1) // 2
    if intercept.shape != (n_pairs,):
        raise _tampered(name, "intercepts have the wrong length")
    for p in (prob_a, prob_b):
        if p.size not in (0, n_pairs):
            raise _tampered(name, "probability parameters have the wrong length")
    if (isinstance(kernel, str) and kernel == "precomputed") or callable(kernel):
        # libsvm then reads kernel row entries at the support indices; the
        # rows have shape_fit_[0] entries (checked at predict), so support_
        # must index into that.  A callable kernel is run as "precomputed"
        # and support_vectors_ stays empty.
        shape_fit = d.get("shape_fit_")
        n_fit = shape_fit[0] if isinstance(shape_fit, tuple) and shape_fit else None
        if type(n_fit) is not int:
            raise _tampered(name, "shape_fit_ does not record the number of training samples")
        if support.dtype.kind not in "iu" or (
            n_sv and (support.min() < 0 or support.max() >= n_fit)
        ):
            raise _tampered(name, "support index out of range")
    elif getattr(sv, "shape", (None,))[0] != n_sv:
        raise _tampered(name, "support vectors do not match the support indices")


def _check_kmeans(est) -> None:
    d = est.__dict__
    if "cluster_centers_" not in d:
        return
    name = _type_name(est)
    centers = d["cluster_centers_"]
    n_in = _n_features_in(est, required=True)
    if (
        not isinstance(centers, np.ndarray)
        or centers.ndim != 2
        or centers.dtype.kind != "f"
        or centers.shape[1] != n_in
        or centers.shape[0] < 1
    ):
        raise _tampered(name, "cluster centers do not match n_features_in_")
    threads = _as_int(d.get("_n_threads", 1))
    if threads is None or not 1 <= threads <= 4096:
        raise _tampered(name, "invalid thread count")


def _check_neighbors(est) -> None:
    d = est.__dict__
    if "_fit_X" not in d:
        return
    name = _type_name(est)
    fit_x = d["_fit_X"]
    # Absent when fitted on a KDTree/BallTree object (the tree then checks
    # the query width itself).
    n_in = _n_features_in(est, required=False)
    shape = getattr(fit_x, "shape", None)
    if n_in is not None and shape is not None and (len(shape) != 2 or shape[1] != n_in):
        raise _tampered(name, "training data width does not match n_features_in_")
    tree = d.get("_tree")
    binary_trees = _binary_tree_types()
    if isinstance(tree, binary_trees):
        data = np.asarray(tree.__getstate__()[0])
        if shape is not None and data.shape != tuple(shape):
            raise _tampered(name, "neighbors tree does not match the training data")
    if "_y" in d:
        if shape is None or len(shape) != 2:
            raise _tampered(name, "training data is not a 2-D array")
        _check_neighbors_targets(est, int(shape[0]))


def _check_neighbors_targets(est, n_samples: int) -> None:
    """The fitted targets are indexed by neighbor (row of the training data);
    a classifier's encoded labels ``_y`` also index ``classes_``: the
    class-mode reductions of (radius) neighbors classifiers add each neighbor's
    weight at ``class_scores[i, _y[neighbor]]`` without bounds checks."""
    from sklearn.base import is_classifier

    d = est.__dict__
    name = _type_name(est)
    y = d["_y"]
    if not isinstance(y, np.ndarray) or y.ndim not in (1, 2) or y.shape[0] != n_samples:
        raise _tampered(name, "fitted targets do not match the training data")
    if not is_classifier(est):
        return
    outputs_2d = d.get("outputs_2d_")
    classes = d.get("classes_")
    if not isinstance(outputs_2d, (bool, np.bool_)):
        raise _tampered(name, "outputs_2d_ is not a boolean")
    if outputs_2d:
        if y.ndim != 2 or not isinstance(classes, list) or len(classes) != y.shape[1]:
            raise _tampered(name, "encoded labels do not match classes_")
        class_lists = classes
    else:
        if y.ndim != 1 or not isinstance(classes, np.ndarray) or classes.ndim != 1:
            raise _tampered(name, "encoded labels do not match classes_")
        class_lists = [classes]
    if y.dtype.kind not in "iu":
        raise _tampered(name, "encoded labels are not integers")
    labels = y.reshape(n_samples, -1)
    for k, classes_k in enumerate(class_lists):
        n_classes = np.asarray(classes_k).shape[0] if np.ndim(classes_k) == 1 else -1
        column = labels[:, k]
        if n_classes < 1 or (column.size and (column.min() < 0 or column.max() >= n_classes)):
            raise _tampered(name, "encoded label out of range of classes_")


# Array fields of each admitted bit generator's state (name -> shape); the
# index-like integers are checked separately below.
_BIT_GENERATOR_ARRAYS = {
    "MT19937": {("state", "key"): (624,)},
    "PCG64": {},
    "PCG64DXSM": {},
    "Philox": {("state", "counter"): (4,), ("state", "key"): (2,), ("buffer",): (4,)},
    "SFC64": {("state", "state"): (4,)},
}


def _check_random_state(obj) -> None:
    """numpy restores bit generator states without bounds-checking the
    positions its C code indexes with: MT19937's ``pos`` (into a 624-word
    key) and Philox's ``buffer_pos`` (into a 4-word buffer; a negative one
    reads before it on the next draw)."""
    name = _type_name(obj)
    try:
        if isinstance(obj, np.random.RandomState):
            state = obj.get_state(legacy=False)
        elif isinstance(obj, np.random.Generator):
            state = obj.bit_generator.state
        else:
            state = obj.state
    except Exception as exc:
        raise _tampered(name, f"unreadable random state: {exc}") from exc
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    if kind not in _BIT_GENERATOR_ARRAYS:
        raise _tampered(name, f"unexpected bit generator {kind!r}")
    for path, shape in _BIT_GENERATOR_ARRAYS[kind].items():
        value = state
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, np.ndarray) or value.shape != shape:
            raise _tampered(name, f"{kind} state {'.'.join(path)} has the wrong shape")
    if kind == "MT19937":
        pos = state["state"].get("pos")
        if type(pos) is not int or not 0 <= pos <= 624:
            raise _tampered(name, "MT19937 position out of range")
    if kind == "Philox":
        pos = state.get("buffer_pos")
        if type(pos) is not int or not 0 <= pos <= 4:
            raise _tampered(name, "Philox buffer position out of range")
    if state.get("has_uint32", 0) not in (0, 1):
        raise _tampered(name, f"{kind} has_uint32 flag is not 0 or 1")


def _check_bspline(spl) -> None:
    """Re-check what BSpline.__init__ checks (BUILD bypasses __init__ and the
    evaluation code trusts len(t) and k)."""
    d = getattr(spl, "__dict__", {})
    try:
        # scipy >= 1.15 stores the knots/coefficients as _t/_c
        t = np.asarray(d["_t"] if "_t" in d else d["t"])
        c = np.asarray(d["_c"] if "_c" in d else d["c"])
        k = _as_int(d["k"])
        if k is None:
            raise ValueError("k")
        n = t.shape[0] - k - 1
        ok = (
            t.ndim == 1
            and t.dtype.kind == "f"
            and 0 <= k < 64
            and n >= k + 1
            and c.ndim >= 1
            and c.shape[0] >= n
            and bool(np.all(np.diff(t) >= 0))
            and bool(np.all(np.isfinite(t)))
        )
    except Exception:
        ok = False
    if not ok:
        raise _tampered(_type_name(spl), "invalid spline knots/coefficients")
