"""Validation of the numpy array and dtype states a pickle hands to BUILD.

``_check_array_state`` checks ``ndarray.__setstate__`` input before numpy sees
it; ``_rebuild_dtype`` builds the dtype a state describes with the public
``np.dtype`` constructor instead of calling ``dtype.__setstate__``;
``_unfilled_error`` refuses array placeholders that never received a state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ModelLoadError, UnsafeModelError, _as_int, _type_name


def _unfilled_error(objects: list[Any]) -> UnsafeModelError:
    """The refusal for placeholders (arrays from ``_reconstruct`` /
    ``_mareconstruct``, KD/Ball trees and metrics from ``newObj``) that
    never received their BUILD state: their memory is whatever the heap
    held (zeroed by the loader, but a file that leaves an array empty is
    not a model file)."""
    offenders = []
    for obj in objects[:5]:
        if isinstance(obj, np.ndarray):
            offenders.append(f"{_type_name(obj)} of dtype {obj.dtype} rebuilt without its contents")
        else:
            offenders.append(f"{_type_name(obj)} rebuilt without its state")
    return UnsafeModelError(
        offenders,
        detail="The file rebuilds an array (or a native scikit-learn object) but never "
        "fills in its contents, so it would show whatever was left in the server's "
        "memory to anyone viewing the model (possible attempt to read server "
        "memory). Files written by pickle or joblib always fill in every array they "
        "rebuild.",
    )


def _check_array_state(array: np.ndarray, state: Any) -> None:
    """Validate ``ndarray.__setstate__`` input before numpy sees it.

    numpy reads past the end of the element list when an object array's list
    is shorter than its shape (a crash found by fuzzing), so the list length
    must match exactly.  MaskedArray states carry mask and fill value after
    the array part.
    """

    def corrupt(why: str) -> ModelLoadError:
        return ModelLoadError(f"The file is corrupt: invalid array state ({why}).")

    if not isinstance(state, tuple):
        raise corrupt("not a tuple")
    if isinstance(array, np.ma.MaskedArray):
        if len(state) != 7:
            raise corrupt("masked array state")
        _, shape, dtype, _, raw = state[:5]
    elif len(state) == 5:
        _, shape, dtype, _, raw = state
    elif len(state) == 4:
        shape, dtype, _, raw = state
    else:
        raise corrupt("length")
    if not (
        isinstance(shape, tuple)
        and len(shape) <= 64
        and all(_as_int(n) is not None and n >= 0 for n in shape)
    ):
        raise corrupt("shape")
    if not isinstance(dtype, np.dtype):
        raise corrupt("dtype")
    count = 1
    for n in shape:
        count *= int(n)
    if dtype.hasobject:
        if not isinstance(raw, list) or len(raw) != count:
            raise corrupt("object array data does not match its shape")
    elif not isinstance(raw, (bytes, bytearray, str)) or len(raw) != count * dtype.itemsize:
        raise corrupt("array data does not match its shape")


_ENDIANS = ("<", ">", "|", "=")
_NPY_ALIGNED_STRUCT = 0x80


def _rebuild_dtype(base: np.dtype, state: Any) -> np.dtype:
    """The dtype that ``base.__setstate__(state)`` would describe, built with
    the public ``np.dtype`` constructor from a validated state."""

    def corrupt(why: str) -> ModelLoadError:
        return ModelLoadError(f"The file is corrupt: invalid dtype state ({why}).")

    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise corrupt("shape")
    version, endian, subarray, names, fields, elsize, alignment, flags = state[:8]
    metadata = state[8] if len(state) == 9 else None
    if version not in (3, 4) or endian not in _ENDIANS:
        raise corrupt("version")
    if not all(_as_int(v) is not None for v in (elsize, alignment, flags)):
        raise corrupt("sizes")
    try:
        if subarray is not None:
            if names is not None or fields is not None:
                raise corrupt("subarray with fields")
            if not (isinstance(subarray, tuple) and len(subarray) == 2):
                raise corrupt("subarray")
            sub_base, shape = subarray
            if not isinstance(sub_base, np.dtype) or not (
                isinstance(shape, tuple)
                and len(shape) <= 32
                and all(_as_int(n) is not None and n >= 0 for n in shape)
            ):
                raise corrupt("subarray")
            return np.dtype((sub_base, tuple(int(n) for n in shape)))
        if names is not None or fields is not None:
            if not (
                isinstance(names, tuple)
                and isinstance(fields, dict)
                and all(type(n) is str for n in names)
                and all(type(k) is str for k in fields)
                and len(set(names)) == len(names)
            ):
                raise corrupt("field names")
            formats, offsets, titles = [], [], []
            for name in names:
                entry = fields.get(name)
                if not (isinstance(entry, tuple) and len(entry) in (2, 3)):
                    raise corrupt("field entry")
                fmt, offset = entry[0], _as_int(entry[1])
                title = entry[2] if len(entry) == 3 else None
                if not isinstance(fmt, np.dtype) or offset is None or offset < 0:
                    raise corrupt("field entry")
                if title is not None and type(title) is not str:
                    raise corrupt("field title")
                formats.append(fmt)
                offsets.append(offset)
                titles.append(title)
            extra = set(fields) - set(names)
            if extra - {t for t in titles if t is not None}:
                raise corrupt("unknown fields")
            spec: dict[str, Any] = {
                "names": list(names),
                "formats": formats,
                "offsets": offsets,
                "itemsize": int(elsize),
            }
            if any(t is not None for t in titles):
                spec["titles"] = titles
            # The dict constructor rejects overlapping object fields, bad
            # offsets and sizes, which __setstate__ would accept.
            return np.dtype(spec, align=bool(int(flags) & _NPY_ALIGNED_STRUCT))
        # A plain dtype: the type comes from the constructor call, the state
        # only adds the byte order, the size of flexible types and (for
        # datetimes) the unit.
        result = base
        if base.kind in "SUV" and int(elsize) > 0 and int(elsize) != base.itemsize:
            if base.itemsize != 0:
                raise corrupt("size")
            per_char = 4 if base.kind == "U" else 1
            result = np.dtype(f"{base.kind}{int(elsize) // per_char}")
        if base.kind in "Mm" and metadata is not None:
            if not (isinstance(metadata, tuple) and len(metadata) == 2):
                raise corrupt("datetime metadata")
            unit = metadata[1]
            if not (isinstance(unit, tuple) and len(unit) == 4 and isinstance(unit[0], bytes)):
                raise corrupt("datetime metadata")
            code = unit[0].decode("ascii")
            num = _as_int(unit[1])
            if not code.isalpha() or num is None or num < 1:
                raise corrupt("datetime unit")
            result = np.dtype(f"{base.kind}8[{num if num != 1 else ''}{code}]")
        if endian in "<>" and result.byteorder != "|":
            result = result.newbyteorder(endian)
        return result
    except ModelLoadError:
        raise
    except Exception as exc:
        raise corrupt(str(exc)) from exc
