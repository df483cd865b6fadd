"""The Open Inference Protocol (KServe V2) over HTTP: request decoding and response shapes.

Supports JSON tensors and the binary tensor data extension (``Inference-Header-Content-Length``)
that ``tritonclient[http]`` uses by default. Requests become the same ``Table`` that every other
route produces, so one predict path serves them all:
- one input of shape ``[N, F]``: a tensor, columns in the model's feature order;
- several inputs of shape ``[N]`` or ``[N, 1]``: one input per column, named by feature.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from .payload import PayloadError, Table, dumps, parse_json

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}
MAX_ELEMENTS = 50_000_000


def decode_request(body: bytes, header_length: str | None) -> tuple[Table, list[str] | None, str | None]:
    """Returns (table, requested output names or None for all, request id)."""
    if header_length is not None:  # present but empty is malformed too
        try:
            n = int(header_length)
        except ValueError:
            raise PayloadError("Inference-Header-Content-Length must be an integer.") from None
        if n < 0 or n > len(body):
            raise PayloadError("Inference-Header-Content-Length must be a whole number from 0 to the body's length.")
        header, binary = body[:n], memoryview(body)[n:]
    else:
        header, binary = body, memoryview(b"")
    payload = parse_json(header)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise PayloadError("The body must be an object with a non-empty 'inputs' list.")
    offset = 0
    tensors: list[tuple[str, np.ndarray]] = []
    for i, spec in enumerate(payload["inputs"]):
        if not isinstance(spec, dict):
            raise PayloadError(f"inputs[{i}] must be an object.")
        name = spec.get("name", f"input-{i}")
        if not isinstance(name, str):
            raise PayloadError(f"inputs[{i}].name must be a string.")
        array, used = _tensor(spec, i, binary[offset:])
        offset += used
        tensors.append((name, array))
    if offset != len(binary):
        raise PayloadError("The binary section's length does not match the inputs' binary_data_size.")
    outputs = payload.get("outputs")
    wanted = None
    if "outputs" in payload:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise PayloadError("'outputs' must be a list of objects with a 'name'.")
        wanted = [o["name"] for o in outputs]
    request_id = payload.get("id")
    if "id" in payload and not isinstance(request_id, str):
        raise PayloadError("'id' must be a string.")
    if not isinstance(payload.get("parameters", {}), dict):
        raise PayloadError("'parameters' must be an object.")
    return _table(tensors), wanted, request_id


def _tensor(spec: dict[str, Any], i: int, binary: memoryview) -> tuple[np.ndarray, int]:
    datatype = spec.get("datatype")
    shape = spec.get("shape")
    if datatype not in DTYPES:
        raise PayloadError(f"inputs[{i}].datatype must be one of {', '.join(DTYPES)}.")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) \
            or not 1 <= len(shape) <= 2:
        raise PayloadError(f"inputs[{i}].shape must be [N] or [N, F] with non-negative integers.")
    count = int(np.prod(shape))
    if count > MAX_ELEMENTS:
        raise PayloadError(f"inputs[{i}] has too many elements; use a scoring job.", "TOO_MANY_ROWS", 413)
    params = spec.get("parameters", {})
    if not isinstance(params, dict):
        raise PayloadError(f"inputs[{i}].parameters must be an object.")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > len(binary):
            raise PayloadError(f"inputs[{i}].parameters.binary_data_size does not fit the body.")
        raw = binary[:size]
        if datatype == "BYTES":
            flat = _decode_bytes(raw, count, i)
        else:
            dtype = np.dtype(DTYPES[datatype]).newbyteorder("<")
            if size != count * dtype.itemsize:
                raise PayloadError(f"inputs[{i}] has {size} bytes of data for shape {shape} {datatype}.")
            flat = np.frombuffer(raw, dtype=dtype)
        return flat.reshape(shape), size
    data = spec.get("data")
    if data is None:
        raise PayloadError(f"inputs[{i}] has neither 'data' nor parameters.binary_data_size.")
    array = _values(data, datatype)
    if array is None:
        raise PayloadError(f"inputs[{i}].data does not hold {datatype} values.")
    if array.size != count:
        raise PayloadError(f"inputs[{i}] has {array.size} values for shape {shape}.")
    return array.reshape(shape), 0


# What JSON data each datatype takes: numbers (booleans count as 0 and 1, null as a missing value
# in the float types), whole numbers in the type's range, booleans, anything for BYTES. Nested
# lists must be rectangular. ``api.inputs.V2RequestInput`` documents the same rules.
_KINDS = {"BOOL": "b", "FP16": "biuf", "FP32": "biuf", "FP64": "biuf"}


def _values(data: Any, datatype: str) -> np.ndarray | None:
    """``data`` as an array of ``datatype``, or None when it holds other values."""
    try:
        raw = np.asarray(data)  # one pass; ragged nesting fails here
    except (ValueError, TypeError, OverflowError):
        return None
    if datatype == "BYTES":
        return np.asarray(data, dtype=object)
    dtype = np.dtype(DTYPES[datatype])
    if raw.size == 0:
        return raw.astype(dtype)
    kinds = _KINDS.get(datatype, "biu")
    if raw.dtype.kind in kinds:
        if dtype.kind in "iu" and raw.dtype.kind in "iu":
            info = np.iinfo(dtype)
            if raw.min() < info.min or raw.max() > info.max:
                return None
        with np.errstate(over="ignore"):  # 1e300 in FP32 is inf: refused later as an infinite value
            return raw.astype(dtype)
    if raw.dtype.kind == "O" and dtype.kind == "f":  # numbers with nulls (missing values)
        leaves = raw.reshape(-1).tolist()
        if all(v is None or isinstance(v, (int, float)) for v in leaves):
            return np.array([np.nan if v is None else v for v in leaves], dtype=dtype).reshape(raw.shape)
    return None


def _decode_bytes(raw: memoryview, count: int, i: int) -> np.ndarray:
    out = np.empty(count, dtype=object)
    pos = 0
    for k in range(count):
        if pos + 4 > len(raw):
            raise PayloadError(f"inputs[{i}] BYTES data is truncated.")
        (length,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + length > len(raw):
            raise PayloadError(f"inputs[{i}] BYTES data is truncated.")
        out[k] = bytes(raw[pos:pos + length]).decode("utf-8", errors="replace")
        pos += length
    if pos != len(raw):
        raise PayloadError(f"inputs[{i}] BYTES data has trailing bytes.")
    return out


def _table(tensors: list[tuple[str, np.ndarray]]) -> Table:
    if len(tensors) == 1 and tensors[0][1].ndim == 2 and tensors[0][1].shape[1] != 1:
        tensor = tensors[0][1]
        array = tensor.astype(np.float64) if tensor.dtype.kind in "biuf" and tensor.shape[0] else None
        return Table(columns=None, rows=tensor.tolist(), array=array)
    columns: dict[str, Any] = {}
    lengths = set()
    for name, array in tensors:
        if array.ndim == 2 and array.shape[1] != 1:
            raise PayloadError(f"Input '{name[:64]}' has shape {list(array.shape)}; send one [N, F] tensor, or one "
                               "[N] input per column.")
        if name in columns:
            raise PayloadError(f"Input '{name[:64]}' appears twice.")
        columns[name] = array.reshape(-1).tolist()
        lengths.add(len(columns[name]))
    if len(lengths) != 1:
        raise PayloadError("Every per-column input must have the same number of rows.")
    if len(tensors) == 1 and tensors[0][1].ndim == 1:
        # A single [N] tensor for a one-feature model, or a single [F] row: positional.
        return Table(columns=None, rows=[[v] for v in columns[tensors[0][0]]])
    return Table(columns=list(columns), by_column=columns)


def datatype_of(values: np.ndarray) -> str:
    kind = np.asarray(values).dtype.kind
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(kind, "BYTES")


def output(name: str, values: np.ndarray) -> dict[str, Any]:
    array = np.asarray(values)
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data = [str(v) for v in array.reshape(-1).tolist()]
    elif datatype == "FP64":
        data = [None if not np.isfinite(v) else v for v in array.reshape(-1).tolist()]
    else:
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def encode(body: dict[str, Any]) -> bytes:
    return dumps(body)
