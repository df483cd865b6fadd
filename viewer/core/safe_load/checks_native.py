"""Structural checks of the other native structures that scikit-learn's
compiled code indexes without bounds checks: KD/Ball trees and neighbors,
k-means, libsvm models, sparse matrices, B-splines and random states.
"""

from __future__ import annotations

import numpy as np

from .errors import _as_int, _tampered, _type_name
from .load_helpers import _binary_tree_types

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
    if node_bounds.shape[1] != n_nodes or node_bounds.shape[2] != n_features:
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
    if kernel == "precomputed":
        shape_fit = d.get("shape_fit_")
        if n_sv and (support.min() < 0 or shape_fit is None or support.max() >= shape_fit[0]):
            raise _tampered(name, "support index out of range")
    elif getattr(sv, "shape", (None,))[0] != n_sv:
        raise _tampered(name, "support vectors do not match the support indices")


def _check_kmeans(est) -> None:
    d = est.__dict__
    if "cluster_centers_" not in d:
        return
    name = _type_name(est)
    centers = d["cluster_centers_"]
    n_in = _as_int(d.get("n_features_in_"))
    if (
        not isinstance(centers, np.ndarray)
        or centers.ndim != 2
        or centers.dtype.kind != "f"
        or n_in is None
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
    n_in = _as_int(d.get("n_features_in_"))
    shape = getattr(fit_x, "shape", None)
    if n_in is not None and shape is not None and (len(shape) != 2 or shape[1] != n_in):
        raise _tampered(name, "training data width does not match n_features_in_")
    tree = d.get("_tree")
    binary_trees = _binary_tree_types()
    if isinstance(tree, binary_trees):
        data = np.asarray(tree.__getstate__()[0])
        if shape is not None and data.shape != tuple(shape):
            raise _tampered(name, "neighbors tree does not match the training data")


def _check_random_state(obj) -> None:
    try:
        if isinstance(obj, np.random.RandomState):
            state = obj.get_state(legacy=False)
        elif isinstance(obj, np.random.Generator):
            state = obj.bit_generator.state
        else:
            state = obj.state
    except Exception as exc:
        raise _tampered(_type_name(obj), f"unreadable random state: {exc}") from exc
    if state.get("bit_generator") == "MT19937":
        inner = state.get("state", {})
        pos = _as_int(inner.get("pos"))
        key = np.asarray(inner.get("key"))
        # numpy does not bounds-check ``pos`` when the state is restored.
        if pos is None or not 0 <= pos <= 624 or key.shape != (624,):
            raise _tampered(_type_name(obj), "MT19937 position out of range")


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
