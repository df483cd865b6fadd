"""Loading skops files.

The archive is read once; its types are audited with
``skops.io.get_untrusted_types`` and then loaded with an explicit
``trusted=[...]`` list computed from the same allowlist as pickles, after
checking how each node of the file uses each type (``trusted=True`` is never
used).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from .allowlist import _canonical_module
from .errors import ModelLoadError, UnsafeModelError, _corrupt_message
from .load_helpers import _LOAD_HELPERS, _not_callable_at_load_types
from . import boost
from .policy import _REFUSED, _Policy, _UnknownGlobal

# How skops node types use the type named in a node:
#   reference only:               FunctionNode, TypeNode
#   cls.__new__(cls) + state:     ObjectNode (like pickle's NEWOBJ + BUILD)
#   cls(*args from the file):     ConstructorFromReduceNode, LossNode,
#                                 TreeNode, RandomStateNode (no args)
#   skops' own constructions:     NdArrayNode (np.load, allow_pickle=False),
#                                 SparseMatrixNode (scipy load_npz), ...;
#                                 these build a fixed kind of object and only
#                                 use the name for auditing.
# skops' ``trusted`` list is per type name, not per node type, so before
# trusting a name we check every node that uses it.
_SKOPS_REFERENCE_LOADERS = frozenset(
    {
        "FunctionNode",
        "TypeNode",
        "PartialNode",
        "NdArrayNode",
        "MaskedArrayNode",
        "DTypeNode",
        "SparseMatrixNode",
        "RandomGeneratorNode",
        "DictNode",
        "DefaultDictNode",
        "ListNode",
        "SetNode",
        "TupleNode",
        "SliceNode",
        "JsonNode",
        "BytesNode",
        "BytearrayNode",
        "CachedNode",
    }
)
_SKOPS_NEW_LOADERS = frozenset({"ObjectNode"})
_SKOPS_CALL_LOADERS = frozenset(
    {"ConstructorFromReduceNode", "LossNode", "TreeNode", "RandomStateNode"}
)


def _skops_node_loaders(schema: Any) -> dict[str, set[str]]:
    """``"module.Class" -> {loader, ...}`` for every node in a skops schema."""
    found: dict[str, set[str]] = {}
    stack = [schema]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > 50_000_000:
            raise ModelLoadError("The skops schema is too large.")
        if isinstance(node, dict):
            loader = node.get("__loader__")
            if isinstance(loader, str):
                name = f"{node.get('__module__')}.{node.get('__class__')}"
                found.setdefault(name, set()).add(loader)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _read_skops(path: str, max_bytes: int) -> tuple[bytes, Any]:
    """Read the archive once (the same bytes are audited and loaded)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > 1_000_000:
                raise ModelLoadError("The skops file has too many entries.")
            # zipfile never returns more than an entry's declared size, so
            # the declared sizes bound decompression.
            total = sum(max(0, i.file_size) for i in infos)
            if total > max_bytes:
                raise ModelLoadError(
                    f"The skops file decompresses to {total} bytes, more than "
                    f"max_decompressed_bytes={max_bytes}; refusing to load it."
                )
            if "schema.json" not in {i.filename for i in infos}:
                raise ModelLoadError("This zip file is not a skops model (no schema.json).")
            try:
                schema = json.loads(zf.read("schema.json"))
            except (ValueError, RecursionError) as exc:
                raise ModelLoadError(f"The skops schema is corrupt: {exc}") from exc
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"The skops file is not a valid zip archive: {exc}") from exc
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(_corrupt_message(exc)) from exc
    return data, schema


def _skops_trusted(data: bytes, schema: Any, policy: _Policy) -> list[str]:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelLoadError(_corrupt_message(exc)) from exc
    loaders = _skops_node_loaders(schema)
    no_call = _not_callable_at_load_types()

    trusted: list[str] = []
    offenders: list[str] = []
    for full in untrusted:
        full = str(full)
        module, _, name = full.rpartition(".")
        if boost.refuse_in_skops(module):
            offenders.append(f"{full} (save LightGBM and XGBoost models with joblib)")
            continue
        obj: Any = _REFUSED
        if module and name:
            try:
                obj = policy.resolve(module, name)
            except (_UnknownGlobal, ModelLoadError):
                obj = _REFUSED
        if obj is _REFUSED:
            offenders.append(full)
            continue
        key = (_canonical_module(module), name)
        callable_at_load = key in _LOAD_HELPERS or (
            isinstance(obj, type) and not issubclass(obj, no_call)
        )
        for loader in sorted(loaders.get(full, ())):
            if loader in _SKOPS_REFERENCE_LOADERS:
                continue
            if loader in _SKOPS_NEW_LOADERS and isinstance(obj, type) and not issubclass(
                obj, np.ndarray
            ):
                continue
            if loader in _SKOPS_CALL_LOADERS and callable_at_load:
                continue
            offenders.append(f"{full} (via {loader})")
            break
        else:
            trusted.append(full)
    if offenders:
        raise UnsafeModelError(offenders)
    return trusted


def _skops_root_version(schema: Any) -> str | None:
    try:
        attrs = schema["content"]["content"]["_sklearn_version"]
        value = json.loads(attrs["content"])
        return value if isinstance(value, str) else None
    except Exception:
        return None


def _load_skops(path: str, policy: _Policy, max_bytes: int) -> tuple[Any, str | None]:
    data, schema = _read_skops(path, max_bytes)
    trusted = _skops_trusted(data, schema, policy)
    import skops.io as sio

    try:
        obj = sio.loads(data, trusted=trusted)
    except ModelLoadError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "UntrustedTypesFoundException":
            raise UnsafeModelError([str(exc)]) from exc
        raise ModelLoadError(_corrupt_message(exc)) from exc
    return obj, _skops_root_version(schema)
