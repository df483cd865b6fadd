"""Bounds on what a file can make the loader build.

* :class:`_LimitedReader` -- a byte budget on the decompressed stream;
* :class:`_NestingTracker` -- a depth budget on the objects being built,
  enforced while they are built, and the release of a refused load's
  objects without recursion.
"""

from __future__ import annotations

import gc
from typing import Any, Iterable

import numpy as np

from .errors import ModelLoadError, UnsafeModelError

_CHUNK = 1 << 20


class _LimitedReader:
    """File wrapper that counts bytes and fails past ``limit``.

    Wraps the *decompressed* stream so decompression bombs stop at the limit.
    Large reads are done in chunks so a size field in the file cannot make us
    allocate more than the data actually present.
    """

    def __init__(self, raw, limit: int):
        self._raw = raw
        self.limit = int(limit)
        self.count = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.count

    def _account(self, n: int) -> None:
        self.count += n
        if self.count > self.limit:
            raise ModelLoadError(
                f"The model file decompresses to more than {self.limit} bytes "
                "(max_decompressed_bytes); refusing to load it."
            )

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.remaining + 1
        chunks = []
        left = n
        while left > 0:
            want = min(left, _CHUNK, self.remaining + 1)
            data = self._raw.read(want)
            if not data:
                break
            self._account(len(data))
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)

    def readline(self, size: int = -1) -> bytes:
        cap = self.remaining + 1
        if size is not None and size >= 0:
            cap = min(cap, size)
        data = self._raw.readline(cap)
        self._account(len(data))
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


# ---------------------------------------------------------------------------
# Nesting depth
# ---------------------------------------------------------------------------

#: Deepest nesting a loaded model may have: the longest chain of objects
#: each holding the next (an object holds its attributes, a container its
#: items, an object array its elements, a structured dtype its fields).
#: Real fitted models nest a few dozen levels at most (measured: under 20
#: for pipelines, column transformers, gradient boosting, stacking; a Birch
#: model, whose leaves form a linked list, one per leaf), and pickle.dump /
#: joblib.dump cannot even write more than about 1000 levels under
#: Python's default recursion limit (joblib.dump already fails on a Birch
#: model with ~300 leaves).  At
#: the other end, numpy frees nested object arrays recursively (~1.8 KB of
#: C stack per array) and crashed the process at ~4,500 nested arrays on an
#: 8 MB stack; 1000 levels need at most ~1.8 MB.
_MAX_NESTING = 1000

#: While loading, depth is counted on the references the pickle makes
#: (call arguments and BUILD states included: an object array costs three
#: levels there, array, state tuple and element list; a Python object two),
#: against this larger bound.
_MAX_LOAD_NESTING = 2 * _MAX_NESTING


def _too_deep() -> UnsafeModelError:
    return UnsafeModelError(
        ["objects nested too deeply"],
        detail=f"Real models nest a few dozen levels (the limit is {_MAX_NESTING}); "
        "freeing, hashing or copying a structure this deep overflows the C stack "
        "and would crash the server (possible denial-of-service attempt), so it is "
        "refused.",
    )


class _NestingTracker:
    """Nesting depth of the objects built while loading.

    *While loading*, the unpickler reports each reference it makes an object
    hold (tuple, list, dict and set items, call arguments, BUILD state) with
    :meth:`add`; an object's depth is 1 + the depth of the deepest object it
    holds (scalars, strings and globals are never recorded and count 0), and
    ``add`` refuses a depth above ``_MAX_LOAD_NESTING`` before the reference
    is made, so a deep structure is never built.  :meth:`check_dtype` does
    the same for structured dtypes nested in one another.

    Why: CPython frees nested lists/tuples/dicts/instances without recursion
    (its "trashcan"), but numpy frees an object array's elements recursively
    (200,000 nested one-element object arrays crash the process when freed),
    as it fills and clears structured dtypes with object fields, tuples hash
    their items recursively (a deeply nested tuple used as a dict key crashes
    while loading) and Cython types free their fields recursively.

    A depth recorded while loading can become outdated: a container
    referenced while still empty (through the pickle memo) and filled
    afterwards makes its holders deeper than recorded.  Real pickles only do
    that for reference cycles, a hostile one does it to hide a chain, so
    :meth:`check_final` measures the depth again, over the references the
    objects really hold, before a load is accepted.  :meth:`release` frees
    a refused load without recursion.  Every recorded object is kept alive
    here until then, so ``id()`` values stay unique.
    """

    def __init__(self):
        self.objs: dict[int, Any] = {}
        self.depth: dict[int, int] = {}
        self.dtype_depth: dict[int, tuple[np.dtype, int]] = {}

    def __contains__(self, obj: Any) -> bool:
        return id(obj) in self.objs

    def add(self, parent: Any, children: Iterable[Any] = ()) -> None:
        """Record that ``parent`` (now) holds ``children``."""
        pid = id(parent)
        depth = self.depth
        best = depth.get(pid)
        if best is None:
            self.objs[pid] = parent
            best = 1
        for child in children:
            d = depth.get(id(child))
            if d is not None and d >= best and child is not parent:
                best = d + 1
        if best > _MAX_LOAD_NESTING:
            raise _too_deep()
        depth[pid] = best

    def check_dtype(self, dtype: np.dtype) -> None:
        """Refuse a structured dtype nested more than ``_MAX_NESTING`` deep
        (numpy fills and clears object fields recursively)."""
        cache = self.dtype_depth
        if id(dtype) in cache:
            return

        def parts(dt: np.dtype):
            subs = [dt.fields[name][0] for name in dt.names or ()]
            if dt.subdtype is not None:
                subs.append(dt.subdtype[0])
            return iter(subs)

        path = [(dtype, parts(dtype))]
        best = [1]
        while path:
            dt, it = path[-1]
            for sub in it:
                known = cache.get(id(sub))
                if known is None:
                    if len(path) >= _MAX_NESTING:
                        raise _too_deep()
                    path.append((sub, parts(sub)))
                    best.append(1)
                    break
                best[-1] = max(best[-1], known[1] + 1)
            else:
                path.pop()
                level = best.pop()
                cache[id(dt)] = (dt, level)
                if best:
                    best[-1] = max(best[-1], level + 1)
        if cache[id(dtype)][1] > _MAX_NESTING:
            raise _too_deep()

    def _heights(self, limit: int | None) -> dict[int, int] | None:
        """Depth of every recorded object over the references it really
        holds (:func:`_references`), by an iterative depth-first walk that
        ignores references back to an object on the current path (a cycle
        is only ever freed by the garbage collector, one object at a time).
        With ``limit``, None as soon as a deeper object is found."""
        objs = self.objs

        def children(nid: int):
            return iter([id(c) for c in _references(objs[nid]) if id(c) in objs])

        height: dict[int, int] = {}
        for root in objs:
            if root in height:
                continue
            height[root] = 0  # 0: on the current path
            best = {root: 1}
            path = [(root, children(root))]
            while path:
                nid, it = path[-1]
                for cid in it:
                    h = height.get(cid)
                    if h is None:
                        height[cid] = 0
                        best[cid] = 1
                        path.append((cid, children(cid)))
                        if limit is not None and len(path) > limit:
                            return None
                        break
                    if h >= best[nid]:
                        best[nid] = h + 1
                else:
                    path.pop()
                    h = height[nid] = best.pop(nid)
                    if limit is not None and h > limit:
                        return None
                    if path and h >= best[path[-1][0]]:
                        best[path[-1][0]] = h + 1
        return height

    def check_final(self) -> None:
        if self._heights(_MAX_NESTING) is None:
            raise _too_deep()

    def release(self) -> None:
        """Drop every recorded object without recursive deallocation.

        First every container that can be emptied is emptied (lists, dicts,
        sets, object arrays, instance dicts), so that freeing it frees
        nothing else; then the rest (tuples, native objects) are dropped
        holders first -- deepest first over what they still hold -- so
        whatever they hold is still referenced from here when they go.  The
        caller must first drop its own references (the unpickler's stack
        and memo, traceback frames)."""
        for obj in self.objs.values():
            _empty(obj)
        height = self._heights(None) or {}
        order = sorted(self.objs, key=lambda nid: height.get(nid, 0), reverse=True)
        self.depth.clear()
        self.dtype_depth.clear()
        for nid in order:
            del self.objs[nid]


def _references(obj: Any) -> list[Any]:
    """The objects ``obj`` really holds: what the garbage collector sees
    (container items, instance attributes, the fields of native objects),
    plus what numpy arrays hold without telling it (the elements of object
    arrays and the array a view is based on)."""
    refs = gc.get_referents(obj)
    try:
        d = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        d = None
    if isinstance(d, dict):
        refs.extend(d)
        refs.extend(d.values())
    if isinstance(obj, np.ndarray):
        refs.extend(_object_elements(obj))
        if obj.base is not None:
            refs.append(obj.base)
    return refs


def _object_elements(array: np.ndarray) -> list[Any]:
    """The Python objects stored in an array (object dtype, or object fields
    of a structured dtype, however nested)."""
    out: list[Any] = []
    todo = [array.view(np.ndarray)]
    while todo:
        arr = todo.pop()
        if not arr.dtype.hasobject or arr.size == 0:
            continue
        if arr.dtype == object:
            out.extend(arr.ravel().tolist())
        elif arr.dtype.names:
            todo.extend(arr[name] for name in arr.dtype.names)
    return out


def _empty(obj: Any) -> None:
    try:
        if isinstance(obj, (list, dict, set)):
            obj.clear()
        elif isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.size:
            base = obj.view(np.ndarray)
            base[...] = None if base.dtype == object else np.zeros((), base.dtype)
        try:
            d = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            return
        if isinstance(d, dict):
            d.clear()
    except Exception:  # best effort: whatever is left is freed in order
        pass
