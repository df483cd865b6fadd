"""The restricted unpickler for joblib files and plain pickles.

:class:`_RestrictedUnpickler` subclasses joblib's ``NumpyUnpickler`` (so
joblib's inline array format and its compressors keep working); its
``find_class`` asks the :mod:`.policy`, it checks what is *called* while
loading, and it guards the opcodes that call methods on objects.  Every
reference it makes an object hold is reported to the nesting tracker (see
:mod:`.reader`), which refuses deep nesting as it is built, and every array
placeholder must receive its state before the end of the load.
:class:`_SafeNumpyArrayWrapper` stands in for joblib's ``NumpyArrayWrapper``
and reads object arrays with a nested restricted unpickler.
:func:`_load_pickle` opens (and decompresses) a file and runs the unpickler
over a byte-counting reader; a refused load's objects are released without
recursion.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import pickle
import struct
import traceback
import types
from typing import Any

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import (
    _ensure_native_byte_order,
    _validate_fileobject_and_memmap,
)

from . import boost
from .allowlist import _canonical_module
from .checks_trees import check_tree_state
from .errors import ModelLoadError, UnsafeModelError, _corrupt_message, _type_name
from .formats import _JOBLIB_LEGACY_MAGIC, _read_head_tail
from .load_helpers import (
    _LOAD_HELPERS,
    _NEEDS_STATE_HELPERS,
    _check_text_arguments,
    _global_name,
    _not_callable_at_load_types,
)
from .numpy_state import _check_array_state, _rebuild_dtype, _unfilled_error
from .policy import _REFUSED, _Policy, _UnknownGlobal
from .reader import _LimitedReader, _NestingTracker

# ---------------------------------------------------------------------------
# Restricted unpickler
# ---------------------------------------------------------------------------


class _Abort(Exception):
    """Stop unpickling after a refusal has been recorded."""


class _RefusedGlobal:
    """Inert stand-in returned for a refused global.

    Returning a stand-in (instead of raising at once) lets the load continue
    far enough to report *every* refused reference; the stand-in does nothing
    when called and the partially built result is always discarded.
    """

    __slots__ = ("qualname",)

    def __init__(self, qualname: str):
        self.qualname = qualname

    def __call__(self, *args, **kwargs):
        return _RefusedGlobal(self.qualname + "()")

    def __repr__(self) -> str:
        return f"<refused {self.qualname}>"


class _TrackingMemo(dict):
    """Pickle memo that remembers where dtype objects are stored."""

    def __init__(self):
        super().__init__()
        self.dtype_keys: dict[int, list] = {}

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if isinstance(value, np.dtype):
            self.dtype_keys.setdefault(id(value), []).append(key)


class _LoadContext:
    """State shared by the outer unpickler and nested object-array ones."""

    def __init__(self, policy: _Policy, reader: _LimitedReader):
        self.policy = policy
        self.reader = reader
        self.offenders: list[str] = []
        self.global_ids: set[int] = set()
        self._keepalive: list[Any] = []
        self.versions: dict[int, str] = {}
        self.depth = 0
        self.load_callable_ids: set[int] = set()
        self.built_ids: set[int] = set()
        self.no_call_types = _not_callable_at_load_types()
        self.nesting = _NestingTracker()
        # id -> object built by a _NEEDS_STATE_HELPERS helper, until its BUILD.
        self.pending: dict[int, Any] = {}

    def refuse(self, what: str) -> None:
        self.offenders.append(what)
        if len(self.offenders) >= 20:
            raise _Abort()


_MAX_NESTED_PICKLES = 4
_CONTAINER_OPS_OFFENDER = "{kind} on a {type} object"

# Results of calls that hold nothing the nesting tracker must follow.
_LEAF_TYPES = (str, bytes, bytearray, int, float, complex, type(None), np.dtype, np.number)
_LEAF_TYPES += (np.bool_, type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
_LEAF_TYPES += (np.ufunc, _RefusedGlobal)


class _RestrictedUnpickler(NumpyUnpickler):
    """joblib's NumpyUnpickler with an allowlisted ``find_class`` and guarded
    opcodes.  Uses the pure-Python pickle machinery (as joblib does)."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, ctx: _LoadContext):
        super().__init__("", ctx.reader, ensure_native_byte_order=True, mmap_mode=None)
        self._ctx = ctx
        self.memo = _TrackingMemo()

    # -- globals -------------------------------------------------------------

    def find_class(self, module: str, name: str):
        if not isinstance(module, str) or not isinstance(name, str):
            raise ModelLoadError("The file is corrupt: invalid global reference.")
        if self.proto < 3 and self.fix_imports:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        qualname = f"{module}.{name}"
        try:
            obj = self._ctx.policy.resolve(module, name)
        except _UnknownGlobal:
            if self._ctx.offenders:
                raise _Abort() from None
            raise ModelLoadError(
                f"The file references {qualname}, which does not exist in the "
                "installed libraries (the model was probably saved with an "
                "incompatible scikit-learn/numpy version)."
            ) from None
        if obj is _REFUSED:
            self._ctx.refuse(qualname)
            return _RefusedGlobal(qualname)
        self._ctx.global_ids.add(id(obj))
        self._ctx._keepalive.append(obj)
        key = (_canonical_module(module), name)
        if key in _LOAD_HELPERS or name.startswith("__pyx_unpickle_"):
            self._ctx.load_callable_ids.add(id(obj))
        elif isinstance(obj, type) and not issubclass(obj, (*self._ctx.no_call_types, *boost.no_call_types())):
            self._ctx.load_callable_ids.add(id(obj))
        return obj

    # -- calls -------------------------------------------------------------------

    def _check_call(self, func, how: str = "called") -> None:
        if isinstance(func, _RefusedGlobal):
            return
        if id(func) not in self._ctx.load_callable_ids:
            self._violation(f"{_global_name(func)} ({how} while loading)")

    def _track_new(self, result, parts) -> None:
        """Record what a call's new result may hold (its arguments)."""
        if (
            isinstance(result, _LEAF_TYPES)
            or id(result) in self._ctx.global_ids
            or result in self._ctx.nesting
        ):
            return
        self._ctx.nesting.add(result, parts)

    def load_reduce(self):
        func, args = self.stack[-2], self.stack[-1]
        self._check_call(func)
        if isinstance(args, tuple):
            _check_text_arguments(func, args)
        super().load_reduce()
        result = self.stack[-1]
        if isinstance(result, np.dtype):
            self._ctx.nesting.check_dtype(result)
        self._track_new(result, (args,))
        if any(func is helper for helper in _NEEDS_STATE_HELPERS):
            self._ctx.pending[id(result)] = result

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _instantiate(self, klass, args):  # INST and OBJ opcodes
        self._check_call(klass)
        _check_text_arguments(klass, args)
        super()._instantiate(klass, args)
        self._track_new(self.stack[-1], args)

    def _check_new(self, cls, args) -> None:
        if isinstance(cls, _RefusedGlobal):
            return
        if not isinstance(cls, type) or id(cls) not in self._ctx.global_ids:
            self._violation(f"{_global_name(cls)} (constructed while loading)")
        if issubclass(cls, np.ndarray) or (args and id(cls) not in self._ctx.load_callable_ids):
            self._violation(f"{_global_name(cls)}.__new__ (called while loading)")

    def load_newobj(self):
        args = self.stack[-1]
        self._check_new(self.stack[-2], args)
        if isinstance(args, tuple):
            _check_text_arguments(self.stack[-2], args)
        super().load_newobj()
        self._track_new(self.stack[-1], (args,))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        args, kwargs = self.stack[-2], self.stack[-1]
        self._check_new(self.stack[-3], args or kwargs)
        if isinstance(args, tuple) and isinstance(kwargs, dict):
            _check_text_arguments(self.stack[-3], args + tuple(kwargs.values()))
        super().load_newobj_ex()
        self._track_new(self.stack[-1], (args, kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def persistent_load(self, pid):
        raise ModelLoadError("The file uses pickle persistent IDs, which are not supported.")

    # -- guarded opcodes -------------------------------------------------------

    def _violation(self, what: str):
        if self._ctx.offenders:
            raise _Abort()
        raise UnsafeModelError(
            [what],
            detail="The pickle tries to modify an object in a way no scikit-learn "
            "model does (possible exploit attempt).",
        )

    def _is_shared(self, obj: Any) -> bool:
        return (
            id(obj) in self._ctx.global_ids
            or isinstance(
                obj,
                (
                    type,
                    types.ModuleType,
                    types.FunctionType,
                    types.BuiltinFunctionType,
                    types.MethodType,
                    np.ufunc,
                ),
            )
        )

    def load_build(self):
        stack = self.stack
        state = stack[-1]
        inst = stack[-2]
        if isinstance(inst, _RefusedGlobal):
            stack.pop()
            return
        if self._is_shared(inst):
            # BUILD on a class or function would overwrite attributes of
            # process-wide objects (e.g. replace a method of an estimator
            # class, or a function's __defaults__).
            self._violation(f"{_global_name(inst)} (state overwrite)")
        if id(inst) in self._ctx.built_ids:
            # Legitimate pickles set an object's state once.  Re-setting it
            # (e.g. an ndarray already used elsewhere) is refused.
            self._violation(f"{_type_name(inst)} (state set twice)")
        if isinstance(inst, np.dtype):
            self._build_dtype(inst, state)
            return
        if isinstance(inst, np.ndarray):
            _check_array_state(inst, state)
        if type(inst).__name__ == "Tree" and type(inst).__module__ == "sklearn.tree._tree":
            check_tree_state(state)
        self._ctx.nesting.add(inst, (state,))
        self._ctx.pending.pop(id(inst), None)
        self._ctx.built_ids.add(id(inst))
        self._ctx._keepalive.append(inst)
        if isinstance(state, dict):
            version = state.get("_sklearn_version")
            if isinstance(version, str):
                self._ctx.versions[id(inst)] = version
        with boost.parsing(inst, state):  # a booster's state checked, its library's refusal worded
            NumpyUnpickler.load_build(self)

    def _build_dtype(self, dtype: np.dtype, state) -> None:
        """BUILD on a numpy dtype, without ``dtype.__setstate__``.

        ``dtype.__setstate__`` trusts its input (non-string field names
        corrupt the heap, object fields may overlap integer fields) and
        mutates in place (a dtype already used by an array built from raw
        bytes could gain object fields).  Instead a *new* dtype is built from
        the validated state with numpy's public constructor, which performs
        all consistency checks, and substituted on the stack and in the memo.
        """
        fresh = _rebuild_dtype(dtype, state)
        self._ctx.nesting.check_dtype(fresh)
        self.stack.pop()
        self.stack[-1] = fresh
        for key in self.memo.dtype_keys.pop(id(dtype), ()):
            if self.memo.get(key) is dtype:
                dict.__setitem__(self.memo, key, fresh)
        self._ctx.built_ids.add(id(dtype))
        self._ctx._keepalive.extend((dtype, fresh))

    dispatch[pickle.BUILD[0]] = load_build

    def load_append(self):
        target = self.stack[-2]
        if not isinstance(target, list):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="APPEND", type=_type_name(target)))
        self._ctx.nesting.add(target, (self.stack[-1],))
        super().load_append()

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, list):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="APPENDS", type=_type_name(target)))
        self._ctx.nesting.add(target, items)
        target.extend(items)

    dispatch[pickle.APPENDS[0]] = load_appends

    def load_setitem(self):
        target = self.stack[-3]
        if not isinstance(target, dict):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="SETITEM", type=_type_name(target)))
        self._ctx.nesting.add(target, self.stack[-2:])
        super().load_setitem()

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, dict):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="SETITEMS", type=_type_name(target)))
        self._ctx.nesting.add(target, items)
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, set):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="ADDITEMS", type=_type_name(target)))
        self._ctx.nesting.add(target, items)
        target.update(items)

    dispatch[pickle.ADDITEMS[0]] = load_additems

    # -- containers built by opcodes (recorded for the nesting tracker) --------

    def _track_top(self) -> None:
        top = self.stack[-1]
        items = [x for kv in top.items() for x in kv] if isinstance(top, dict) else top
        if top or not isinstance(top, (tuple, frozenset)):  # not the () singleton
            self._ctx.nesting.add(top, items)

    def _tracking(load):  # noqa: N805 -- decorator used in the class body
        def tracked(self):
            load(self)
            self._track_top()

        return tracked

    for _op, _load in (
        (pickle.TUPLE, NumpyUnpickler.load_tuple),
        (pickle.TUPLE1, NumpyUnpickler.load_tuple1),
        (pickle.TUPLE2, NumpyUnpickler.load_tuple2),
        (pickle.TUPLE3, NumpyUnpickler.load_tuple3),
        (pickle.LIST, NumpyUnpickler.load_list),
        (pickle.EMPTY_LIST, NumpyUnpickler.load_empty_list),
        (pickle.DICT, NumpyUnpickler.load_dict),
        (pickle.EMPTY_DICT, NumpyUnpickler.load_empty_dictionary),
        (pickle.EMPTY_SET, NumpyUnpickler.load_empty_set),
        (pickle.FROZENSET, NumpyUnpickler.load_frozenset),
    ):
        dispatch[_op[0]] = _tracking(_load)
    del _op, _load, _tracking

    def load_bytearray8(self):
        # pickle's own implementation allocates bytearray(<declared length>)
        # before reading: bound the declaration by the remaining budget.
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self._ctx.reader.remaining:
            raise ModelLoadError(
                "The file is corrupt or hostile: it declares a byte array larger "
                "than the remaining data allowance."
            )
        buf = bytearray(length)
        if self.readinto(buf) != length:
            raise ModelLoadError("The model file is truncated.")
        self.append(buf)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_ext(self):
        raise ModelLoadError(
            "The file uses the pickle extension registry, which is not supported."
        )

    dispatch[pickle.EXT1[0]] = load_ext
    dispatch[pickle.EXT2[0]] = load_ext
    dispatch[pickle.EXT4[0]] = load_ext


class _SafeNumpyArrayWrapper(NumpyArrayWrapper):
    """joblib's NumpyArrayWrapper, validating its metadata before reading.

    joblib's own ``read_array`` reads object-dtype arrays with a plain
    ``pickle._Unpickler`` (only ``find_class`` is forwarded, none of our opcode
    guards); here they are read by a nested :class:`_RestrictedUnpickler`.
    """

    def read(self, unpickler, ensure_native_byte_order):
        if not isinstance(unpickler, _RestrictedUnpickler):  # pragma: no cover
            raise ModelLoadError("internal error: unexpected unpickler")
        ctx = unpickler._ctx
        dtype = getattr(self, "dtype", None)
        shape = getattr(self, "shape", None)
        order = getattr(self, "order", "C")
        subclass = getattr(self, "subclass", np.ndarray)
        if not isinstance(dtype, np.dtype):
            raise ModelLoadError("The file is corrupt: invalid array dtype.")
        if not (
            isinstance(shape, tuple)
            and all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape)
        ):
            raise ModelLoadError("The file is corrupt: invalid array shape.")
        if order not in ("C", "F"):
            raise ModelLoadError("The file is corrupt: invalid array order.")
        if subclass not in (np.ndarray, np.matrix):
            raise ModelLoadError("The file is corrupt: unsupported array type.")
        align = self.safe_get_numpy_array_alignment_bytes()
        if align is not None and not (isinstance(align, int) and 0 < align <= 4096):
            raise ModelLoadError("The file is corrupt: invalid array alignment.")
        count = 1
        for s in shape:
            count *= int(s)
        if dtype.hasobject:
            if ctx.depth >= _MAX_NESTED_PICKLES:
                raise ModelLoadError("The file nests object arrays too deeply.")
            # joblib writes object arrays as a nested standard pickle.  Read
            # it with a fresh restricted unpickler sharing our context (same
            # allowlist, same guards, same byte budget), never pickle.load.
            if count > ctx.reader.remaining:
                raise ModelLoadError("The file is corrupt: object array too large.")
            ctx.depth += 1
            try:
                array = _RestrictedUnpickler(ctx).load()
            finally:
                ctx.depth -= 1
            if isinstance(array, _RefusedGlobal) or ctx.offenders:
                raise _Abort()
            if not isinstance(array, np.ndarray) or array.shape != tuple(
                int(s) for s in shape
            ):
                raise ModelLoadError("The file is corrupt: inconsistent object array.")
            if ensure_native_byte_order:
                array = _ensure_native_byte_order(array)
            return array
        if dtype.itemsize == 0 and count:
            raise ModelLoadError("The file is corrupt: zero-size array items.")
        if count * dtype.itemsize > ctx.reader.remaining:
            raise ModelLoadError(
                "The file is corrupt or exceeds max_decompressed_bytes: an array "
                "is larger than the remaining data."
            )
        # mmap_mode is always None, so this reads from the (counted)
        # stream with np.frombuffer; no pickle involved.
        array = self.read_array(unpickler, ensure_native_byte_order)
        if subclass is np.matrix:
            array = np.asmatrix(array)
        return array


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _open_decompressed(fh, path: str):
    """joblib's own magic-number detection and decompressing file objects."""
    return _validate_fileobject_and_memmap(fh, path, None)


def _load_pickle(path: str, policy: _Policy, max_bytes: int) -> tuple[Any, str | None]:
    head, _, _ = _read_head_tail(path, 8)
    if head.startswith(_JOBLIB_LEGACY_MAGIC):
        raise ModelLoadError(
            "This file uses joblib's legacy (< 0.10) format, which is not supported. "
            "Re-save the model with a current joblib."
        )
    with open(path, "rb") as fh:
        try:
            cm = _open_decompressed(fh, path)
            fobj, _ = cm.__enter__()
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"Cannot decompress the model file: {exc}") from exc
        try:
            if isinstance(fobj, str):
                raise ModelLoadError("Legacy joblib format is not supported.")
            reader = _LimitedReader(fobj, max_bytes)
            ctx = _LoadContext(policy, reader)
            unpickler = _RestrictedUnpickler(ctx)
            try:
                obj = _run_unpickler(unpickler, ctx)
            except BaseException as exc:
                with contextlib.suppress(Exception):  # never hide the load's error
                    _discard_load(ctx, unpickler, exc)
                raise
            version = ctx.versions.get(id(obj))
            if version is None and ctx.versions:
                version = next(iter(ctx.versions.values()))
            return obj, version
        finally:
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)


def _run_unpickler(unpickler: _RestrictedUnpickler, ctx: _LoadContext) -> Any:
    """Run the unpickler; return its result or raise the load's error."""
    try:
        obj = unpickler.load()
    except UnsafeModelError:
        raise
    except _Abort:
        obj = None
    except ModelLoadError:
        if ctx.offenders:
            raise UnsafeModelError(ctx.offenders) from None
        raise
    except Exception as exc:
        if ctx.offenders:
            raise UnsafeModelError(ctx.offenders) from None
        raise ModelLoadError(_corrupt_message(exc)) from exc
    if ctx.offenders:
        raise UnsafeModelError(ctx.offenders)
    # End-of-load rules: every placeholder received its state, and no object
    # is nested too deeply (measured again over the real references).
    if ctx.pending:
        raise _unfilled_error(list(ctx.pending.values()))
    ctx.nesting.check_final()
    return obj


def _discard_load(ctx: _LoadContext, unpickler: _RestrictedUnpickler, exc: BaseException) -> None:
    """Free what a failed load built without recursive deallocation (a
    refused file may hold a chain whose recursive freeing would overflow the
    C stack): drop every other reference -- traceback frames' locals (nested
    unpicklers of joblib object arrays included), the unpickler's stacks and
    memo, the context's lists -- then let the nesting tracker release them."""
    pending = [exc]
    seen: set[int] = set()
    while pending:
        e = pending.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        traceback.clear_frames(e.__traceback__)
        pending += [e.__cause__, e.__context__]
    for name in ("stack", "metastack"):
        stack = getattr(unpickler, name, None)
        if isinstance(stack, list):
            for item in stack:
                if isinstance(item, list):
                    item.clear()
            stack.clear()
    unpickler.memo.clear()
    unpickler.memo.dtype_keys.clear()
    ctx._keepalive.clear()
    ctx.pending.clear()
    ctx.nesting.release()
