"""The loop a model host runs, inside its guards: load one model through the restricted loader,
then answer predictions until the app closes the socket.

Everything it sends is a ``core.hostproto`` frame: numbers as raw arrays, the rest as JSON. A
classifier's predicted labels travel as indices into its classes (the app holds the labels), so
nothing the app reads from a host is ever more than numbers and a small JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import time
import traceback
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from ...core import hostproto
from ...core.hostproto import Op, ProtocolError, Status
from ...core.payload import PayloadError

MAX_EXPORT_JSON = 4 * 2**20  # a few-row path's description (well under the app's MAX_LOAD_REPLY)
MAX_REQUEST_JSON = 256 * 2**20  # the app is trusted: a model's schema or a chunk's text columns


class BadAnswer(Exception):
    """The model answered something that cannot be served (its sentence goes to the app)."""


class Channel:
    """Frames over a connected, blocking stream socket (either end).

    The app's end gives every call a deadline: ``set_deadline`` sets the kernel's SO_RCVTIMEO and
    SO_SNDTIMEO (a blocked call returns EAGAIN) and ``recv_exactly`` checks the total, so a host
    that trickles bytes cannot stretch it. Measured: the kernel's timeouts save the poll() that a
    Python-level socket timeout makes before every read."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline: float | None = None
        self._timeout: float | None = None

    def set_deadline(self, timeout: float) -> None:
        if timeout != self._timeout:
            seconds = max(timeout, 0.001)
            timeval = struct.pack("@ll", int(seconds), int((seconds % 1) * 1e6))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
            self._timeout = timeout
        self.deadline = time.monotonic() + timeout

    def recv_exactly(self, n: int) -> bytearray:
        buffer = bytearray(n)
        view, got = memoryview(buffer), 0
        while got < n:
            try:
                k = self.sock.recv_into(view[got:], n - got)
            except BlockingIOError:  # SO_RCVTIMEO ran out
                raise TimeoutError("no answer in time") from None
            if k == 0:
                raise EOFError("the other end closed the connection")
            got += k
            if got < n and self.deadline is not None and time.monotonic() > self.deadline:
                raise TimeoutError("no complete answer in time")
        return buffer

    def send(self, buffers: list[Any]) -> None:
        views = [memoryview(b).cast("B") for b in buffers if len(b)]
        while views:
            try:
                sent = self.sock.sendmsg(views)
            except BlockingIOError:  # SO_SNDTIMEO ran out: the other end does not read
                raise TimeoutError("the other end does not read") from None
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if sent:
                views[0] = views[0][sent:]


def run(sock: socket.socket, model_fd: int, scratch: str, guards: dict[str, str],
        library_fd: int | None = None) -> NoReturn:
    """Serve one model until the app hangs up, then exit (never return into the fork server).

    Warnings a model raises while predicting never reach stderr (they would repeat once per
    host): each call records them (``Predictor`` catches them, deduplicated and bounded) and its
    answer carries them, so the request reports them (the schema policy). Those raised while
    loading are recorded by the loader (``catch_warnings(record=True)``) and shown on the model card."""
    import warnings

    warnings.simplefilter("ignore")
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(scratch, "numba")  # shap's numba, on a first explanation
    code = 0
    try:
        _serve(Channel(sock), model_fd, scratch, guards, library_fd)
    except (EOFError, ConnectionError):
        pass
    except BaseException:  # noqa: BLE001  (a bug here: say so on stderr, exit non-zero)
        traceback.print_exc()
        code = 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    os._exit(code)


def _serve(channel: Channel, model_fd: int, scratch: str, guards: dict[str, str], library_fd: int | None) -> None:
    channel.send(hostproto.encode(Op.PING, meta={"guards": guards, "pid": os.getpid()}))
    request = hostproto.read(channel.recv_exactly, ops=(Op.LOAD,), max_json=MAX_REQUEST_JSON)
    try:
        model, reply = _load(request.meta, model_fd, scratch, library_fd)
    except Exception as exc:  # noqa: BLE001  (refused or unreadable: the app says why)
        channel.send(hostproto.encode(Op.LOAD, meta=_failure(exc), status=Status.FAILED,
                                      max_json=hostproto.MAX_JSON))
        return
    exported = reply.pop("_array", None)  # a linear classifier's coefficients or a tree ensemble's nodes
    channel.send(hostproto.encode(Op.LOAD, exported, meta=reply, max_json=MAX_REQUEST_JSON))
    from .explaining import Explaining, UnknownBackground

    explaining = Explaining(model)
    while True:
        request = hostproto.read(channel.recv_exactly, ops=(Op.PREDICT, Op.PING, Op.EXPLAIN, Op.BACKGROUND),
                                 arrow=True, max_json=MAX_REQUEST_JSON)
        if request.op is Op.PING:
            channel.send(hostproto.encode(Op.PING))
            continue
        try:
            if request.op is Op.BACKGROUND:
                explaining.background(request, _rows(request))
                array, meta = None, {}
            elif request.op is Op.EXPLAIN:
                array, meta = explaining.explain(request, _rows(request))
            else:
                array, meta = _predict(model, request)
        except UnknownBackground:
            channel.send(hostproto.encode(request.op, meta={"kind": "background"}, status=Status.FAILED))
            continue
        except Exception as exc:  # noqa: BLE001  (the model refused this input; the host lives on)
            channel.send(hostproto.encode(request.op, meta=_failure(exc), status=Status.FAILED))
            continue
        channel.send(hostproto.encode(request.op, array, meta))


# --- loading -------------------------------------------------------------------------------------

def _load(meta: dict[str, Any], model_fd: int, scratch: str, library_fd: int | None = None):
    from ...core.introspect import describe_model
    from ...core.predictor import Predictor
    from ...core.safe_load import load_model

    path = os.path.join(scratch, "model")
    with os.fdopen(model_fd, "rb") as source, open(path, "wb") as copy:
        shutil.copyfileobj(source, copy, 1 << 20)
    try:
        loaded = load_model(path, trusted_modules=tuple(meta.get("trusted_modules") or ()),
                            max_decompressed_bytes=int(meta["max_decompressed_bytes"]))
    finally:
        os.unlink(path)
    info = meta.get("info")
    reply: dict[str, Any] = {}
    if info is None:  # an upload: the app learns the model's description from here
        info = describe_model(loaded.estimator).to_dict()
        reply.update(info=info, format=loaded.format, saved_sklearn_version=loaded.saved_sklearn_version,
                     warnings=list(loaded.warnings))
    predictor = Predictor(loaded.estimator, info)
    if library_fd is not None:
        reply["runtime"] = _use_compiled(predictor, meta.get("runtime") or {}, library_fd, scratch)
    reply.update(needs_frame=predictor.needs_frame, final_kind=predictor.final_kind, has_proba=predictor.has_proba)
    reply = json.loads(json.dumps(reply, default=str))
    linear = predictor.linear
    if linear is not None and linear.before is None and np.isfinite(linear.intercept).all() \
            and np.isfinite(linear.coef_t).all():
        # A linear classifier is numbers: the app may compute it itself (after checking that it
        # gives this host's answers), which saves a round trip per request.
        reply["linear"] = {"intercept": linear.intercept.tolist(), "proba": linear.proba}
        reply["_array"] = np.ascontiguousarray(linear.coef_t, dtype=np.float64)
    elif predictor.trees is not None:
        reply.update(_exported_trees(predictor))
    return predictor, reply


def _exported_trees(predictor) -> dict[str, Any]:
    """A tree ensemble is numbers too: the app walks the trees itself for a few rows, checked
    against the model's own answers on the path's probe, sent along; and a pipeline's
    preprocessing before them (categories, statistics). Nothing when it would not fit the reply
    (a huge vocabulary) or fails: the host answers every request, as before."""
    try:
        spec, nodes = predictor.trees.export()
        trees_of = predictor.fast if predictor.head_path is None else predictor.compiled[False].est
        exported: dict[str, Any] = {"_array": nodes, "trees": {**spec, "check": predictor.trees.expected(trees_of)}}
        if predictor.head_path is not None:
            exported["head"] = {"described": predictor.head_path.export(), "check": predictor.head_path.expected()}
        size = len(json.dumps({k: v for k, v in exported.items() if k != "_array"}, allow_nan=False))
        return exported if size <= MAX_EXPORT_JSON else {}
    except Exception:  # noqa: BLE001  (no direct path: the host answers)
        return {}


def _use_compiled(predictor, runtime: dict[str, Any], library_fd: int, scratch: str) -> dict[str, Any]:
    """Load the model's compiled library (passed as ``library_fd``), checked against its recorded
    digest, and let ``predictor`` answer with it. Whatever goes wrong, scikit-learn answers and the reply
    says why."""
    path = os.path.join(scratch, "compiled.so")
    try:
        with os.fdopen(library_fd, "rb") as source, open(path, "wb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
        faster = predictor.use_compiled(runtime, path)  # refuses a library whose digest is not the record's
        return {"used": True, "faster": {str(k): v for k, v in faster.items()}}
    except Exception as exc:  # noqa: BLE001  (a library that does not load: scikit-learn answers)
        return {"used": False, "reason": f"The compiled library could not be loaded ({type(exc).__name__}: "
                                         f"{str(exc)[:200]}); scikit-learn serves the model."}


# --- predicting ----------------------------------------------------------------------------------

def frame_from(request: hostproto.Frame) -> pd.DataFrame:
    """The DataFrame the app sent: object columns (whatever mixture of text, numbers and missing
    values the input held) as JSON lists; typed columns in an Arrow stream, or float64 columns
    (``spec["numbers"]``) as the frame's array."""
    spec = request.meta["frame"]
    n_rows = spec["rows"]
    if request.arrow is not None:
        import pyarrow as pa

        with pa.ipc.open_stream(pa.py_buffer(request.arrow)) as reader:
            typed = reader.read_all().to_pandas(use_threads=False)  # a host cannot start threads
        typed = {name: typed[name] for name in typed.columns}
    else:
        numbers, array = spec.get("numbers"), request.array
        if not isinstance(numbers, list) or array is None or array.shape != (n_rows, len(numbers)):
            raise ProtocolError("The frame's numbers do not match its array.")
        typed = {name: array[:, j] for j, name in enumerate(numbers)}
    columns: dict[str, Any] = {}
    for name in spec["columns"]:
        if name in spec["objects"]:
            values = spec["objects"][name]
            series = pd.Series(values["values"], dtype=object)
            for i, text in values["floats"].items():
                series.iloc[int(i)] = float(text)
            columns[name] = series
        else:
            columns[name] = typed[name]
    return pd.DataFrame(columns, columns=spec["columns"], index=pd.RangeIndex(n_rows))


def _rows(request: hostproto.Frame) -> Any:
    return frame_from(request) if "frame" in request.meta else request.array


def _predict(predictor, request: hostproto.Frame) -> tuple[np.ndarray, dict[str, Any]]:
    from ...core.schema_policy import collecting

    X = _rows(request)
    method = request.meta.get("method")
    with collecting() as raised:
        if method == "predict":
            result = np.asarray(predictor.predict(X))
        elif method == "predict_proba":
            result = np.asarray(predictor.predict_proba(X))
        else:
            raise ProtocolError(f"Unknown method {method!r}.")
    if result.ndim not in (1, 2) or result.shape[0] != len(X):
        raise BadAnswer(f"The model answered an array of shape {result.shape} for {len(X)} rows.")
    meta: dict[str, Any] = {"ndim": result.ndim}
    if raised:  # the model's own warnings (deduplicated, at most a few): the app reports them
        meta["warnings"] = [{"category": w["category"], "message": w["detail"], "count": w["count"]} for w in raised]
    if method == "predict" and predictor.classes is not None and result.ndim == 1:
        indices = _class_indices(result, predictor.classes)
        if indices is not None:
            meta["labels"] = True
            return indices.reshape(-1, 1), meta
    column = result.reshape(len(result), -1)
    kind = result.dtype.kind
    if kind == "f" and result.dtype.itemsize in (4, 8):
        return column, meta
    if kind in "biu":
        meta["dtype"] = result.dtype.name
        return column.astype(np.int64), meta
    raise BadAnswer("The model's predictions are neither numbers nor its classes, which cannot be served.")


def _class_indices(result: np.ndarray, classes: list[Any]) -> np.ndarray | None:
    """Each prediction's position in the model's classes, or None when one is not a class."""
    position = {}
    for i, label in enumerate(classes):
        position.setdefault(label, i)
    try:
        if result.dtype.kind in "iub" and all(isinstance(c, (int, bool)) for c in classes):
            lookup = np.asarray(classes, dtype=np.int64)
            order = np.argsort(lookup, kind="stable")
            found = np.searchsorted(lookup, result, sorter=order)
            found = np.minimum(found, len(lookup) - 1)
            indices = order[found]
            return indices.astype(np.int64) if np.array_equal(lookup[indices], result) else None
        return np.fromiter((position[v] for v in result.tolist()), dtype=np.int64, count=len(result))
    except (KeyError, TypeError, ValueError):
        return None


def _failure(exc: BaseException) -> dict[str, Any]:
    """What the app is told when the host refuses: the sentence and, for bad input, its code."""
    from ...core.predictor import _scrub
    from ...core.safe_load import ModelLoadError, UnsafeModelError

    if isinstance(exc, PayloadError):
        return {"kind": "input", "message": exc.message, "code": exc.error_code, "status": exc.status}
    if isinstance(exc, UnsafeModelError):
        return {"kind": "unsafe", "message": str(exc), "offenders": list(exc.offenders)[:100]}
    if isinstance(exc, ModelLoadError):
        return {"kind": "unreadable", "message": str(exc)}
    if isinstance(exc, BadAnswer):
        return {"kind": "model", "message": str(exc)}
    if isinstance(exc, MemoryError):
        return {"kind": "memory", "message": "The model ran out of the memory a model host may use."}
    if isinstance(exc, ImportError) and exc.name:
        return {"kind": "model", "message": (
            f"The model needs the module {exc.name!r}, which its host could not import. A model host "
            "reads only the Python environment the app runs in and the packages listed in "
            "VIEWER_TRUSTED_MODULES: install the module there (for your own code, list its package "
            "in VIEWER_TRUSTED_MODULES too), then restart the app and its workers.")}
    return {"kind": "model", "message": f"The model failed: {type(exc).__name__}: {_scrub(str(exc))}"}
