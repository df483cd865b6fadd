"""The app's side of model hosts: which are alive, what a call costs, and what a failure becomes.

``HostPool`` keeps at most ``size`` hosts per app process (least recently used go first; pinned
ones stay), each serving one model version, started on first use through this process's fork
server. ``HostedPredictor`` is what the services hold: the model's ``InputSchema`` (the app checks
every request itself) whose ``predict`` and ``predict_proba`` send the checked input to the host
and read back numbers. A call has a deadline: past it the host is killed (through its pidfd, so
never another process) and the caller gets ``HostTimeout``; a host that dies mid-call is
``HostCrashed``; one that answers anything but a well-formed frame of the expected shape is killed
and ``HostMalformed``. The next call starts a new host.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import signal
import socket
import threading
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from ...core import hostproto
from ...core.hostproto import Op, ProtocolError, Status
from ...core.payload import PayloadError
from ...core.linear_path import _LinearPath
from ...core.head_path import HeadPath
from ...core.tree_path import TreePath
from ...core.predictor import InputSchema
from ...core.schema_policy import note_model_warnings
from .host import MAX_REQUEST_JSON, Channel
from .server import ForkServer, ServerGone

MAX_LOAD_REPLY = 16 * 2**20  # a model's description (feature names, schema) can be large
READY_SECONDS = 30.0
_INT_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


class HostError(Exception):
    """A host failed to answer; ``kind`` is crashed, timeout, malformed or unavailable."""

    kind = "unavailable"

    def __init__(self, label: str, message: str):
        super().__init__(message)
        self.label = label
        self.message = message


class HostCrashed(HostError):
    kind = "crashed"


class HostTimeout(HostError):
    kind = "timeout"


class HostMalformed(HostError):
    kind = "malformed"


class HostUnavailable(HostError):
    kind = "unavailable"


class ModelFailed(Exception):
    """The model raised while predicting (its own exception, or out of memory); its host lives on."""

    def __init__(self, label: str, message: str):
        super().__init__(message)
        self.label = label
        self.message = message


class LoadRefused(Exception):
    """The restricted loader refused the file inside the host: ``meta`` has kind and message."""

    def __init__(self, meta: dict[str, Any]):
        super().__init__(str(meta.get("message", "The model could not be loaded.")))
        self.meta = meta


class Host:
    """One host process: its socket, its pidfd, one call at a time."""

    def __init__(self, spawned, label: str):
        self.sock: socket.socket = spawned.sock
        self.channel = Channel(self.sock)
        self.pidfd: int | None = spawned.pidfd
        self.pid = spawned.pid
        self.scratch = spawned.scratch
        self.label = label
        self.lock = threading.Lock()
        self.guards: dict[str, str] = {}
        self.reply: dict[str, Any] = {}
        self.exported: np.ndarray | None = None  # a linear model's coefficients or trees, when the host offers them
        self.backgrounds: list[str] = []  # keys of the explanation backgrounds it holds (it keeps the last two)
        self.dead = False

    def exchange(self, buffers: list[Any], *, ops: tuple[Op, ...], timeout: float, rows: int | None = None,
                 max_json: int = hostproto.MAX_JSON, label: str | None = None) -> hostproto.Frame:
        """Send ``buffers`` (if any) and read one frame. ``label``: the model as the caller names
        it in errors (a host may serve several versions with the same file)."""
        label = label or self.label
        if self.dead:
            raise HostCrashed(label, f"The model host of {label} stopped.")
        try:
            self.channel.set_deadline(timeout)
            if buffers:
                self.channel.send(buffers)
            return hostproto.read(self.channel.recv_exactly, ops=ops, rows=rows, max_json=max_json)
        except TimeoutError:
            self.kill()
            raise HostTimeout(label, f"The model {label} took longer than {_seconds(timeout)} to answer; "
                                     "its host process was stopped.") from None
        except (EOFError, ConnectionError, OSError):
            self.kill()
            raise HostCrashed(label, f"The model {label} crashed its host process (it stopped without "
                                     "answering). The next request starts a new one.") from None
        except ProtocolError as exc:
            self.kill()
            raise HostMalformed(label, f"The model host of {label} sent a malformed answer ({exc}); "
                                       "it was stopped.") from None

    def kill(self) -> None:
        self.dead = True
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(self.pidfd)
            self.pidfd = None
        self.sock.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def close(self) -> None:
        with self.lock:
            if not self.dead:
                self.kill()


def _seconds(value: float) -> str:
    return f"{value:g} s" if value < 120 else f"{value / 60:g} min"


class HostPool:
    """The hosts of one app process, least recently used first."""

    def __init__(self, *, size: int = 8, memory_mb: int = 2048, file_mb: int = 4096,
                 imports: tuple[str, ...] = ()):
        self.size = max(1, size)
        self.memory_mb = memory_mb
        self.file_mb = file_mb
        self.imports = imports
        self.pinned: set[str] = set()
        self._hosts: OrderedDict[str, Host] = OrderedDict()
        self._lock = threading.Lock()
        self._server: ForkServer | None = None
        self._server_lock = threading.Lock()
        self.started = 0
        self.last_guards: dict[str, str] = {}  # the newest host's report

    def server(self) -> ForkServer:
        with self._server_lock:
            if self._server is None or not self._server.alive():
                self._server = ForkServer(imports=self.imports)
            return self._server

    def start(self, label: str, open_model: Callable[[], int | tuple[int, int]], load: dict[str, Any], *,
              timeout: float) -> Host:
        """A new host with the model loaded (not kept in the pool: ``get`` does that).
        ``open_model`` opens the model file, or the model file and its compiled library. Raises
        ``LoadRefused`` when the loader refuses the file, ``HostError`` when the host fails."""
        opened = open_model()
        fds = [opened] if isinstance(opened, int) else list(opened)
        try:
            try:
                spawned = self.server().spawn(*fds, memory_mb=self.memory_mb, file_mb=self.file_mb,
                                              imports=tuple(load.get("trusted_modules") or ()))
            except ServerGone as exc:
                raise HostUnavailable(label, f"No model host could be started for {label}: {exc}") from None
        finally:
            for fd in fds:
                os.close(fd)
        host = Host(spawned, label)
        self.started += 1
        try:
            ready = host.exchange([], ops=(Op.PING,), timeout=READY_SECONDS)
            host.guards = {str(k): str(v)[:300] for k, v in dict(ready.meta.get("guards") or {}).items()}
            self.last_guards = host.guards
            if host.guards.get("scratch", "").startswith("missing"):  # it could not even copy the model
                raise HostUnavailable(label, f"The model host of {label} has no scratch folder: "
                                             f"{host.guards['scratch'][len('missing: '):]}.")
            reply = host.exchange(hostproto.encode(Op.LOAD, meta=load, max_json=MAX_REQUEST_JSON),
                                  ops=(Op.LOAD,), timeout=max(timeout, READY_SECONDS), max_json=MAX_LOAD_REPLY)
        except BaseException:
            host.close()
            raise
        if reply.status is Status.FAILED:
            host.close()
            raise LoadRefused(reply.meta)
        host.reply = reply.meta
        host.exported = reply.array
        return host

    def get(self, key: str, starter: Callable[[], Host]) -> Host:
        with self._lock:
            host = self._hosts.get(key)
            if host is not None and not host.dead:
                self._hosts.move_to_end(key)
                return host
        host = starter()
        evicted: list[Host] = []
        with self._lock:
            old = self._hosts.pop(key, None)
            if old is not None and old is not host:
                evicted.append(old)
            self._hosts[key] = host
            for other in [k for k in self._hosts if k not in self.pinned]:
                if len(self._hosts) <= self.size:
                    break
                if other != key:
                    evicted.append(self._hosts.pop(other))
        for gone in evicted:  # it may be answering: it closes when that call ends
            threading.Thread(target=gone.close, daemon=True).start()
        return host

    def discard(self, key: str) -> None:
        with self._lock:
            host = self._hosts.pop(key, None)
        if host is not None:
            host.close()

    def hosts(self) -> dict[str, Host]:
        with self._lock:
            return dict(self._hosts)

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), OrderedDict()
        for host in hosts:
            host.close()
        with self._server_lock:
            if self._server is not None:
                self._server.close()
                self._server = None

    def abandon(self) -> None:
        """In a forked child: let go of the parent's hosts and server without touching them."""
        for host in self._hosts.values():
            host.sock.close()
            if host.pidfd is not None:
                os.close(host.pidfd)
            host.dead = True
        self._hosts = OrderedDict()
        if self._server is not None:
            self._server.control.close()
            self._server = None
        self._lock = threading.Lock()
        self._server_lock = threading.Lock()


class HostedPredictor(InputSchema):
    """A model version served by a host: the app checks input (``InputSchema``), the host predicts."""

    def __init__(self, pool: HostPool, key: str, label: str, info: dict[str, Any], reply: dict[str, Any],
                 starter: Callable[[], Host], timeout: float):
        super().__init__(info, needs_frame=bool(reply.get("needs_frame")), has_proba=bool(reply.get("has_proba")))
        self.pool = pool
        self.key = key
        self.label = label
        self.final_kind = str(reply.get("final_kind", ""))
        self.starter = starter
        self.timeout = timeout
        self.class_array = np.asarray(self.classes) if self.classes is not None else None
        host = pool.hosts().get(key)
        if host is not None and host.exported is not None and "linear" in reply:
            self.linear = self._checked_linear(reply["linear"] or {}, host.exported)
        elif host is not None and host.exported is not None and isinstance(reply.get("trees"), dict):
            # a tree ensemble's nodes: the app walks them for a few rows, if it gives the host's answers
            self.trees = TreePath.from_export(reply["trees"], host.exported, self.class_array,
                                              reply["trees"].get("check") or {})
            if isinstance(reply.get("head"), dict):  # a pipeline: its preprocessing too, or neither
                self.head_path = HeadPath.from_export(reply["head"].get("described") or {},
                                                      reply["head"].get("check") or {})
                self.trees = self.trees if self.head_path is not None else None

    def _checked_linear(self, exported: dict[str, Any], coefficients: np.ndarray) -> _LinearPath | None:
        """A linear classifier's arithmetic done here, from the numbers its host sent, used only if
        it gives exactly the host's answers on a probe batch (the check ``_LinearPath`` makes in
        the host against scikit-learn). It is the app's own code on plain arrays: no model object
        exists here. Any input it was not built for (NaN, another width) still goes to the host."""
        if not np.isfinite(coefficients).all():
            return None
        try:
            final = SimpleNamespace(coef_=coefficients.T, intercept_=np.asarray(exported["intercept"], dtype=np.float64),
                                    classes_=self.class_array)
            if self.class_array is None or final.intercept_.ndim != 1 or \
                    final.intercept_.shape[0] != coefficients.shape[1]:
                return None
            linear = _LinearPath(None, final, exported.get("proba") if exported.get("proba") in ("softmax", "ovr")
                                 else None)
            probe = _LinearPath.probe(coefficients.shape[0])
            with np.errstate(all="ignore"):  # huge coefficients overflow: the comparison decides
                ours = linear.predict(probe)
            if ours is None or not np.array_equal(ours, self._call("predict", probe)):
                return None
            if linear.proba is not None:
                with np.errstate(all="ignore"):
                    ours = linear.predict_proba(probe)
                if ours is None or not np.array_equal(ours, self._call("predict_proba", probe)):
                    return None
            return linear
        except (HostError, ModelFailed, PayloadError, ValueError, TypeError, KeyError):  # then the host answers
            return None

    def with_timeout(self, timeout: float) -> "HostedPredictor":
        import copy

        clone = copy.copy(self)
        clone.timeout = timeout
        return clone

    def host(self) -> Host:
        return self.pool.get(self.key, self.starter)

    def _call(self, method: str, X: Any) -> np.ndarray:
        buffers = _request(method, X)
        for _attempt in range(3):
            host = self.host()
            with host.lock:
                if host.dead:  # stopped (evicted, or crashed on another call) while this one waited
                    continue
                frame = host.exchange(buffers, ops=(Op.PREDICT,), rows=len(X), timeout=self.timeout,
                                      label=self.label)
                return self._result(method, frame, host)
        raise HostUnavailable(self.label, f"The model host of {self.label} kept stopping; try again.")

    def explain(self, X: Any, background: Any, budget: Any = None) -> Any:
        """Contributions computed by the host (``core.explain``); the background goes first
        when the host does not hold it yet."""
        from ...core.explain import Budget, from_wire

        budget = budget or Budget()
        X = X.frame if hasattr(X, "frame") else X
        rows = background.X.frame if hasattr(background.X, "frame") else background.X
        request = _request(None, X, Op.EXPLAIN, {"background": background.key, "budget": {
            "max_evaluations": budget.max_evaluations, "seconds": budget.seconds}})
        for _attempt in range(3):
            host = self.host()
            with host.lock:
                if host.dead:
                    continue
                if background.key not in host.backgrounds:
                    sent = host.exchange(_request(None, rows, Op.BACKGROUND, {"background": background.key}),
                                         ops=(Op.BACKGROUND,), timeout=self.timeout, label=self.label)
                    if sent.status is Status.FAILED:
                        raise _refusal(sent.meta, self.label)
                    host.backgrounds = [*host.backgrounds[-1:], background.key]
                frame = host.exchange(request, ops=(Op.EXPLAIN,), rows=len(X), timeout=self.timeout + budget.seconds,
                                      label=self.label)
                if frame.status is Status.FAILED:
                    if frame.meta.get("kind") == "background":  # it let go of it: send it again
                        host.backgrounds = []
                        continue
                    raise _refusal(frame.meta, self.label)
                try:
                    if frame.array is None:
                        raise ValueError("no table of values")
                    return from_wire(frame.array, frame.meta, len(X), X.shape[1], len(self.classes or ()))
                except ValueError as exc:
                    host.kill()
                    raise HostMalformed(self.label, f"The model host of {self.label} answered a malformed "
                                                    f"explanation ({exc}); it was stopped.") from None
        raise HostUnavailable(self.label, f"The model host of {self.label} kept stopping; try again.")

    def _result(self, method: str, frame: hostproto.Frame, host: Host) -> np.ndarray:
        meta = frame.meta
        if frame.status is Status.FAILED:
            raise _refusal(meta, self.label)
        if "warnings" in meta:  # the model's own warnings: checked and bounded by note_model_warnings
            note_model_warnings(meta["warnings"])
        array = frame.array
        if array is None:
            host.kill()
            raise HostMalformed(self.label, f"The model host of {self.label} answered without values; it was stopped.")
        ndim = meta.get("ndim")
        if meta.get("labels"):
            indices = array.reshape(-1)
            if self.class_array is None or array.dtype != np.int64 or array.shape[1] != 1 \
                    or (len(indices) and (indices.min() < 0 or indices.max() >= len(self.class_array))):
                host.kill()
                raise HostMalformed(self.label, f"The model host of {self.label} answered class numbers that "
                                                "are not the model's; it was stopped.")
            return self.class_array.take(indices)
        width = len(self.class_array) if self.class_array is not None else None
        if method == "predict_proba" and (ndim != 2 or array.dtype.kind != "f" or array.shape[1] < 1
                                          or (width is not None and array.shape[1] != width)):
            host.kill()
            raise HostMalformed(self.label, f"The model host of {self.label} answered probabilities that are not "
                                            "a table of numbers; it was stopped.")
        dtype = meta.get("dtype")
        if dtype is not None:
            if dtype not in _INT_DTYPES or array.dtype != np.int64:
                host.kill()
                raise HostMalformed(self.label, f"The model host of {self.label} answered an unknown type; it was "
                                                "stopped.")
            array = array.astype(dtype)
        if ndim == 1 and array.shape[1] == 1:
            return array.reshape(-1)
        if ndim != 2:
            host.kill()
            raise HostMalformed(self.label, f"The model host of {self.label} answered an array of the wrong shape; "
                                            "it was stopped.")
        return array


def _refusal(meta: dict[str, Any], label: str) -> Exception:
    """The host's refusal as the error the predict path raises (its sentence, kept short): bad
    input is a PayloadError, as in-process; the model failing (an exception of its own, memory) a
    ModelFailed, which a job retries like any failed chunk."""
    message = str(meta.get("message") or "The model could not take this input.")[:2000]
    if meta.get("kind") == "input":
        status = meta.get("status")
        return PayloadError(message, str(meta.get("code") or "INVALID_INPUT")[:64],
                            status if isinstance(status, int) and 400 <= status < 600 else 400)
    if meta.get("kind") == "memory":
        return ModelFailed(label, f"{message} (model {label})")
    return ModelFailed(label, message)


def _request(method: str | None, X: Any, op: Op = Op.PREDICT, extra: dict[str, Any] | None = None) -> list[Any]:
    """The frame that carries ``X``: a numeric array as it is; a DataFrame as its object columns
    in JSON lists (their values as the input had them) beside its typed columns: a float64 array
    when every typed column is float64 (what ``InputSchema.prepare`` gives), else an Arrow stream.
    ``op`` and ``extra`` (more of the JSON part): an explanation's, or its background's."""
    base = {"method": method, **(extra or {})} if method else dict(extra or {})
    if isinstance(X, np.ndarray):
        if X.ndim != 2 or X.dtype.kind not in "fi":
            X = np.asarray(X, dtype=np.float64)
        return hostproto.encode(op, X, base, max_json=MAX_REQUEST_JSON)
    dtypes = X.dtypes.tolist()
    if all(d == np.float64 or d == object for d in dtypes) and len({str(c) for c in X.columns}) == len(dtypes):
        return _numbers_and_objects(base, X, dtypes, op)  # (names that repeat, or read alike, go by Arrow)
    import pyarrow as pa

    objects: dict[str, Any] = {}
    typed = []
    for name in X.columns:
        column = X[name]
        if column.dtype == object:
            objects[str(name)] = _objects_json(column.tolist())
        else:
            typed.append(name)
    table = pa.Table.from_pandas(X[typed], preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    meta = {**base, "frame": {"columns": [str(c) for c in X.columns], "objects": objects, "rows": len(X)}}
    return hostproto.encode(op, meta=meta, arrow=(sink.getbuffer(), len(X), X.shape[1]),
                            max_json=MAX_REQUEST_JSON)


def _objects_json(values: list[Any]) -> dict[str, Any]:
    floats = {}  # JSON has no NaN or infinity: they travel as text beside the list
    for i, v in enumerate(values):
        if isinstance(v, float) and not math.isfinite(v):
            floats[str(i)], values[i] = repr(float(v)), None
    return {"values": values, "floats": floats}


def _numbers_and_objects(base: dict[str, Any], X: Any, dtypes: list[Any], op: Op = Op.PREDICT) -> list[Any]:
    """A DataFrame of float64 and object columns: the numbers as one float64 array, the objects
    as JSON. A few rows are converted at once (a Series per column costs ~12 us)."""
    names = [str(c) for c in X.columns]
    numbers = [i for i, d in enumerate(dtypes) if d == np.float64]
    whole = X.to_numpy(dtype=object) if len(X) <= 64 else None
    objects = {}
    for i, d in enumerate(dtypes):
        if d == object:
            objects[names[i]] = _objects_json(whole[:, i].tolist() if whole is not None else X.iloc[:, i].tolist())
    if whole is not None:
        array = whole[:, numbers].astype(np.float64)
    else:
        array = np.empty((len(X), len(numbers)), dtype=np.float64)
        for j, i in enumerate(numbers):
            array[:, j] = X.iloc[:, i].to_numpy()
    meta = {**base, "frame": {"columns": names, "objects": objects, "rows": len(X),
                              "numbers": [names[i] for i in numbers]}}
    return hostproto.encode(op, array, meta, max_json=MAX_REQUEST_JSON)

