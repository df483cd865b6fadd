"""What a pickle may *call* while loading, and the checked wrappers.

Some admitted globals are replaced by wrappers that check their arguments
(``_WRAPPED_GLOBALS``); only those and a few reconstruction helpers may be
called while loading (``_LOAD_HELPERS``, see "Referencing is not calling" in
:mod:`.allowlist`).  Some admitted classes may be built from state but never
called (``_not_callable_at_load_types``).  ``_global_name`` names an object
for error messages, reporting a wrapper under the global it stands for.
"""

from __future__ import annotations

import copyreg
import importlib
import types
from typing import Any, Callable

import numpy as np

from . import boost
from .errors import ModelLoadError, UnsafeModelError, _as_int, _type_name

_MAX_INT_ALLOCATION = 1 << 20  # bytes(n)/bytearray(n) with larger n refused


def _safe_codecs_encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as used by protocol 0-2 pickles for ``bytes``.

    Only the Latin-1/ASCII/UTF-8 text codecs are allowed: other codec names
    trigger imports from the ``encodings`` package.
    """
    enc = str(encoding).lower().replace("-", "").replace("_", "")
    if enc not in {"latin1", "iso88591", "ascii", "utf8"} or not isinstance(obj, str):
        raise UnsafeModelError([f"_codecs.encode({encoding!r})"])
    import codecs

    return codecs.encode(obj, encoding, errors)


def _checked_size(args: tuple) -> None:
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        if args[0] > _MAX_INT_ALLOCATION:
            raise ModelLoadError(
                "The file asks for a large zero-filled buffer; refusing (possible "
                "memory exhaustion attack)."
            )


def _raw_memory_refusal(callee: str, arg: Any) -> UnsafeModelError:
    return UnsafeModelError(
        [f"{callee}({_type_name(arg)}) (copies raw memory)"],
        detail="The file builds text or bytes from the memory of another object; "
        "for a numpy array of Python objects that memory holds addresses inside "
        "the server process, which the model would then show to whoever views "
        "it. No model file does this.",
    )


def _checked_bytes_source(name: str, args: tuple) -> None:
    """bytes()/bytearray() only from what pickles write: a size, text, or
    bytes.  Any other buffer exporter -- an ndarray above all -- would be
    copied byte for byte, object pointers included."""
    if args and not isinstance(args[0], (int, str, bytes, bytearray)):
        raise _raw_memory_refusal(f"builtins.{name}", args[0])


def _safe_bytes(*args):
    _checked_bytes_source("bytes", args)
    _checked_size(args)
    return bytes(*args)


def _safe_bytearray(*args):
    _checked_bytes_source("bytearray", args)
    _checked_size(args)
    return bytearray(*args)


def _check_text_arguments(func: Any, args: tuple) -> None:
    """``numpy.bytes_(array)``, ``str(array, "latin-1")`` and friends (also
    through ``cls.__new__``) copy an array's raw memory like ``bytes(array)``
    does: bytes types never receive an ndarray argument while loading, str
    types not in their decoding form.  (``copyreg._reconstructor`` cannot
    reach them: its ``bytes`` base resolves to ``_safe_bytes``, and
    ``str.__new__(cls, state)`` takes one argument.)"""
    if not isinstance(func, type):
        return
    if issubclass(func, (bytes, bytearray)) or (issubclass(func, str) and len(args) > 1):
        for arg in args:
            if isinstance(arg, np.ndarray):
                raise _raw_memory_refusal(_global_name(func), arg)


def _safe_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` restricted to what ``copyreg._reduce_ex``
    writes: ``base`` is ``object`` or a builtin container/value type.  (With
    an arbitrary ``base`` it would call e.g. ``csr_matrix.__init__`` on
    crafted data.)"""
    if not (isinstance(cls, type) and isinstance(base, type) and issubclass(cls, base)):
        raise ModelLoadError("The file is corrupt: invalid object reconstruction.")
    if base not in _RECONSTRUCTOR_BASES or issubclass(cls, np.ndarray):
        raise UnsafeModelError([f"copyreg._reconstructor({_global_name(cls)}, {_global_name(base)})"])
    return copyreg._reconstructor(cls, base, state)


_RECONSTRUCTOR_BASES = (object, dict, list, set, frozenset, tuple, int, float, str, bytes, complex)


def _safe_frombuffer(buf, dtype, shape, order):
    """``numpy._core.numeric._frombuffer`` (protocol-5 array pickles) limited
    to in-band byte buffers and object-free dtypes, so an array can neither
    alias another array's memory nor interpret bytes as object pointers."""
    from numpy._core.numeric import _frombuffer

    if type(buf) not in (bytes, bytearray) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise ModelLoadError("The file is corrupt: invalid array buffer.")
    return _frombuffer(buf, dtype, shape, order)


_MAX_PLACEHOLDER_ELEMENTS = 1 << 16


def _checked_placeholder_shape(shape) -> None:
    """numpy's reduce always writes shape ``(0,)`` here (the real shape comes
    with the state, whose data must then be present in the file); a large
    shape would only allocate memory the file never pays for."""
    dims = shape if isinstance(shape, tuple) else (shape,)
    count = 1
    for n in dims:
        n = _as_int(n)
        if n is None or n < 0:
            raise ModelLoadError("The file is corrupt: invalid array shape.")
        count *= n
    if count > _MAX_PLACEHOLDER_ELEMENTS:
        raise ModelLoadError("The file is corrupt or hostile: oversized array placeholder.")


def _zeroed_placeholder(subtype, shape, dtype) -> np.ndarray:
    """``ndarray.__new__(subtype, shape, dtype)`` with its memory zeroed.

    ``ndarray.__new__`` does not initialise memory (object slots excepted,
    which numpy fills with None): an array that never receives its state
    would show whatever the process's heap held there -- library and heap
    addresses, other users' data.  The unpickler also refuses a file in
    which such an array never receives its state (see
    ``_NEEDS_STATE_HELPERS``); zeroing here means that even an array *read*
    before its state arrives (e.g. ``list(array)``) reveals nothing.
    """
    from numpy._core.multiarray import _reconstruct

    array = _reconstruct(subtype, shape, dtype)
    if not array.dtype.hasobject and array.nbytes:
        # A fresh array is C-contiguous, so these are views of its memory.
        array.view(np.ndarray).reshape(-1).view(np.uint8)[...] = 0
    return array


def _safe_reconstruct(subtype, shape, dtype):
    """``numpy._core.multiarray._reconstruct`` (array pickles before
    protocol 5): a small, zeroed placeholder whose data must follow as
    BUILD state."""
    _checked_placeholder_shape(shape)
    return _zeroed_placeholder(subtype, shape, dtype)


def _safe_mareconstruct(subtype, baseclass, baseshape, basetype):
    """``numpy.ma.core._mareconstruct`` with zeroed data and mask, for
    MaskedArray subclasses only (numpy's own builds any ``subtype``)."""
    from numpy.ma.core import make_mask_descr

    if not (
        isinstance(subtype, type)
        and issubclass(subtype, np.ma.MaskedArray)
        and isinstance(baseclass, type)
        and issubclass(baseclass, np.ndarray)
    ):
        raise ModelLoadError("The file is corrupt: invalid masked array reconstruction.")
    _checked_placeholder_shape(baseshape)
    data = _zeroed_placeholder(baseclass, baseshape, basetype)
    mask = _zeroed_placeholder(np.ndarray, baseshape, make_mask_descr(data.dtype))
    return subtype.__new__(subtype, data, mask=mask, dtype=data.dtype)


def _safe_newobj(cls):
    """sklearn's ``newObj(cls) == cls.__new__(cls)`` helper, for classes only
    (and never ndarray subclasses)."""
    if not isinstance(cls, type) or issubclass(cls, np.ndarray):
        raise ModelLoadError("The file is corrupt: invalid object construction.")
    return cls.__new__(cls)


# Helpers whose result is an empty shell that the file must fill in with a
# BUILD opcode (every pickle numpy or scikit-learn writes does): an array
# placeholder, a masked array placeholder, a KD/Ball tree or distance metric
# from ``newObj`` (whose ``__cinit__`` allocates uninitialised arrays).  The
# unpickler refuses a file in which such an object never receives its state.
_NEEDS_STATE_HELPERS = frozenset([_safe_reconstruct, _safe_mareconstruct, _safe_newobj])


def _numpy_random_pickle():
    from numpy.random import _pickle

    return vars(_pickle)


def _safe_bit_generator_ctor(bit_generator="MT19937"):
    if isinstance(bit_generator, type) and not issubclass(bit_generator, np.random.BitGenerator):
        raise UnsafeModelError([f"numpy.random bit generator {_global_name(bit_generator)}"])
    return _numpy_random_pickle()["__bit_generator_ctor"](bit_generator)


def _check_bitgen_ctor(ctor) -> None:
    if ctor is not None and ctor is not _safe_bit_generator_ctor:
        if ctor is not _numpy_random_pickle()["__bit_generator_ctor"]:
            raise UnsafeModelError([f"numpy.random constructor {_global_name(ctor)}"])


def _safe_generator_ctor(bit_generator_name="MT19937", bit_generator_ctor=None):
    _check_bitgen_ctor(bit_generator_ctor)
    return _numpy_random_pickle()["__generator_ctor"](bit_generator_name, _safe_bit_generator_ctor)


def _safe_randomstate_ctor(bit_generator_name="MT19937", bit_generator_ctor=None):
    _check_bitgen_ctor(bit_generator_ctor)
    return _numpy_random_pickle()["__randomstate_ctor"](bit_generator_name, _safe_bit_generator_ctor)


# Globals whose real object is replaced by a checked wrapper.
_WRAPPED_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("_codecs", "encode"): _safe_codecs_encode,
    ("builtins", "bytes"): _safe_bytes,
    ("builtins", "bytearray"): _safe_bytearray,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.ma.core", "_mareconstruct"): _safe_mareconstruct,
    ("sklearn.metrics._dist_metrics", "newObj"): _safe_newobj,
    ("sklearn.neighbors._kd_tree", "newObj"): _safe_newobj,
    ("sklearn.neighbors._ball_tree", "newObj"): _safe_newobj,
    ("numpy.random._pickle", "__bit_generator_ctor"): _safe_bit_generator_ctor,
    ("numpy.random._pickle", "__generator_ctor"): _safe_generator_ctor,
    ("numpy.random._pickle", "__randomstate_ctor"): _safe_randomstate_ctor,
}

# Callables a pickle may *call while loading* (REDUCE, INST/OBJ, NEWOBJ with
# arguments).  Everything else that is admitted -- ufuncs, numpy reductions,
# score functions, check_array, functools.partial objects -- can only be
# *referenced* (stored as an estimator parameter), because functions run code
# on their arguments and some of that code is native and trusts its inputs.
_LOAD_HELPERS: frozenset[tuple[str, str]] = frozenset(
    [
        ("numpy._core.multiarray", "_reconstruct"),  # ndarray.__new__(t, shape, dtype)
        ("numpy._core.multiarray", "scalar"),  # refuses raw bytes for object dtypes
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ]
    + list(_WRAPPED_GLOBALS)
)


def _not_callable_at_load_types() -> tuple[type, ...]:
    """Admitted classes that may be referenced and built from state (NEWOBJ +
    BUILD) but not *called*: their constructors convert or index array
    arguments in native code (ndarray(buffer=...) even reinterprets raw bytes
    as object pointers), and fitted pickles never call them."""
    import scipy.sparse as sp
    from scipy.interpolate import BSpline

    found: list[type] = [np.ndarray, sp.spmatrix, sp.sparray, BSpline, *_binary_tree_types()]
    try:
        from sklearn.metrics import DistanceMetric

        found.append(DistanceMetric)
    except ImportError:  # pragma: no cover
        pass
    try:
        # Cross-validation splitters: PredefinedSplit(test_fold) converts an
        # array, _CVIterableWrapper(cv) iterates whatever it is given.
        from sklearn.model_selection._split import BaseCrossValidator, BaseShuffleSplit, _RepeatedSplits

        found += [BaseCrossValidator, BaseShuffleSplit, _RepeatedSplits]
    except ImportError:  # pragma: no cover - sklearn layout change
        pass
    found += boost.no_call_types()
    return tuple(found)


def _binary_tree_types() -> tuple[type, ...]:
    found = []
    for module_name in ("sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree"):
        try:
            mod = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover
            continue
        for base in ("BinaryTree64", "BinaryTree32"):
            cls = vars(mod).get(base)
            if isinstance(cls, type):
                found.append(cls)
    return tuple(found)


_LOAD_HELPER_FUNCTIONS: tuple | None = None


def _load_helper_functions() -> tuple:
    global _LOAD_HELPER_FUNCTIONS
    if _LOAD_HELPER_FUNCTIONS is None:
        from numpy._core import multiarray, numeric
        from numpy.ma import core as ma_core

        found = list(_WRAPPED_GLOBALS.values())
        found += [multiarray._reconstruct, multiarray.scalar, numeric._frombuffer]
        found += [ma_core._mareconstruct, copyreg._reconstructor]
        found += [
            v
            for k, v in _numpy_random_pickle().items()
            if k in ("__bit_generator_ctor", "__generator_ctor", "__randomstate_ctor")
        ]
        import codecs

        found.append(codecs.encode)
        _LOAD_HELPER_FUNCTIONS = tuple(found)
    return _LOAD_HELPER_FUNCTIONS


def _global_name(obj: Any) -> str:
    for (module, name), wrapper in _WRAPPED_GLOBALS.items():
        if obj is wrapper:
            return f"{module}.{name}"
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if mod and qual:
        return f"{mod}.{qual}"
    return _type_name(obj)
