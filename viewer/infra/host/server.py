"""The fork server: a fresh interpreter that forks one model host per model version.

Why a server and not ``os.fork`` in the app: the app's memory holds the secret key, the database
URL and tokens, and its threads (a threaded web server, OpenMP after a first prediction) make a
fork unsafe. The server is started with ``exec`` (nothing of the app's memory survives) and a
scrubbed environment, imports numpy, scipy, pandas, pyarrow and every scikit-learn estimator with
one BLAS/OpenMP thread, computes nothing, checks that it runs one thread, and then only forks.
Each host starts with the libraries already in memory (shared copy-on-write) and locks itself
down (``guards``) before it reads a byte of the model.

The app talks to the server over a ``SOCK_SEQPACKET`` socket pair: one JSON message per spawn,
with the host's socket, the model file and its compiled library (when it has one) passed as
descriptors; the answer carries a pidfd of
the new host (so killing it can never hit a reused pid) and its scratch folder. The server exits
when the app's end closes, and hosts die with the server (``PR_SET_PDEATHSIG``) or when the app
closes their socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import guards

# The environment a server (and so every host) gets: nothing from the app's but where programs
# and libraries are, the language, and one thread for every math library.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "SYSTEMROOT", "TMPDIR")
START_SECONDS = 120.0


def scrubbed_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    env = {name: environ[name] for name in KEPT if name in environ}
    env.update(ONE_THREAD)
    env.update(ARROW_DEFAULT_MEMORY_POOL="system", JE_ARROW_MALLOC_CONF="background_thread:false",
               PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    return env


class ServerGone(Exception):
    """The fork server died or did not answer."""


@dataclass
class Spawned:
    sock: socket.socket  # the app's end of the host's socket
    pidfd: int
    pid: int
    scratch: str


class ForkServer:
    """The app's handle on one fork server (one per app process)."""

    def __init__(self, *, imports: tuple[str, ...] = ()):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        setup = {"sys_path": [p for p in sys.path if p], "imports": list(imports)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "viewer.infra.host.server", str(theirs.fileno()), json.dumps(setup)],
            pass_fds=(theirs.fileno(),), env=scrubbed_environment(), stdin=subprocess.DEVNULL, cwd="/")
        theirs.close()
        self.control = ours
        self._lock = threading.Lock()
        self.control.settimeout(START_SECONDS)
        try:
            ready = json.loads(self.control.recv(65536) or b"{}")
        except (OSError, ValueError) as exc:
            self.close()
            raise ServerGone(f"The model host server did not start: {exc}.") from None
        if not ready.get("ready"):
            self.close()
            raise ServerGone(f"The model host server did not start: {ready.get('error', 'it exited')}.")
        self.control.settimeout(None)
        self.started_seconds = ready.get("seconds")

    def spawn(self, model_fd: int, library_fd: int | None = None, *, memory_mb: int, file_mb: int,
              imports: tuple[str, ...] = (), timeout: float = 30.0) -> Spawned:
        """A new host for the model file ``model_fd`` (and its compiled library, ``library_fd``).
        ``imports``: the operator's trusted modules, which the server imports (once) before it
        forks, since a host cannot read them."""
        ours, theirs = socket.socketpair()
        request = {"memory_mb": memory_mb, "file_mb": file_mb, "imports": list(imports)}
        try:
            with self._lock:
                self.control.settimeout(timeout)
                socket.send_fds(self.control, [json.dumps(request).encode()],
                                [theirs.fileno(), model_fd, *([library_fd] if library_fd is not None else [])])
                message, fds, _flags, _addr = socket.recv_fds(self.control, 65536, 1)
        except OSError as exc:
            ours.close()
            raise ServerGone(f"The model host server did not answer: {exc}.") from None
        finally:
            theirs.close()
        if not message:
            ours.close()
            raise ServerGone("The model host server exited.")
        reply = json.loads(message)
        if "error" in reply or not fds:
            ours.close()
            for fd in fds:
                os.close(fd)
            raise ServerGone(f"The model host server could not start a host: {reply.get('error')}.")
        return Spawned(ours, fds[0], int(reply["pid"]), reply["scratch"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        try:
            self.control.close()
        finally:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the server process --------------------------------------------------------------------------

def _preimport(extra: list[str]) -> None:
    """Everything a model may need, imported now: a host cannot read most files (and the Python
    installation may sit in a folder only root reads), so nothing may be left to import lazily."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
        import pyarrow.ipc  # noqa: F401
        import scipy.sparse  # noqa: F401
        import scipy.special  # noqa: F401
        import scipy.stats  # noqa: F401
        import sklearn
        from sklearn.utils.discovery import all_estimators, all_functions

        all_estimators()
        all_functions()
        for name in ("sklearn.pipeline", "sklearn.compose", "sklearn.preprocessing", "sklearn.impute",
                     "sklearn.metrics", "sklearn.utils._param_validation", "sklearn.inspection"):
            __import__(name)
        from ...core import compiled, introspect, predictor, safe_load  # noqa: F401

        # A host answers with a model's compiled library (core.compiled) through TL2cgen.
        import tl2cgen  # noqa: F401
        import treelite  # noqa: F401
        from . import guards, host  # noqa: F401

        # The boost extra's model libraries, when installed (safe_load/boost.py): LightGBM and
        # XGBoost load their native libraries and OpenMP now, while one thread is the rule; their
        # models then predict with one thread (the loader sets it).
        import importlib.util

        for optional in ("lightgbm", "xgboost", "imblearn"):
            if importlib.util.find_spec(optional) is not None:
                for name in {"lightgbm": ("lightgbm.basic", "lightgbm.sklearn"),
                             "xgboost": ("xgboost.core", "xgboost.sklearn"),
                             "imblearn": ("imblearn.pipeline", "imblearn.over_sampling",
                                          "imblearn.under_sampling", "imblearn.combine",
                                          "imblearn.ensemble")}[optional]:
                    __import__(name)

        import encodings
        import pkgutil

        for found in pkgutil.iter_modules(encodings.__path__):  # text codecs load on first use
            try:
                __import__(f"encodings.{found.name}")
            except ImportError:  # platform-specific codecs (mbcs, cp65001 on Windows)
                pass
        for module in extra:
            __import__(module)
    del sklearn


def _scratch_base() -> str:
    """Where hosts' scratch folders go: the temporary folder unless uid 65534 could not reach a
    folder in it (a TMPDIR of mode 0700, as many tools make), then the usual shared ones."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(candidate) and guards.closed_folder(candidate) is None:
            return candidate
    return tempfile.gettempdir()  # the host then reports its scratch guard missing


def _threads() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 1


def _read_paths(trusted: list[str]) -> list[str]:
    """What a host may read: the Python installation and the packages it imports, never the
    app's folders (its data, its database)."""
    import site

    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # viewer/
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, package,
             *site.getsitepackages()}
    for name in trusted:
        module = sys.modules.get(name.split(".")[0])
        where = getattr(module, "__file__", None)
        if where:
            paths.add(os.path.dirname(where) if os.path.basename(where) == "__init__.py" else where)
    return sorted(p for p in paths if p and os.path.exists(p))


def _spawn(control: socket.socket, request: dict[str, Any], fds: list[int], read_paths: list[str]):
    from . import host

    host_fd, model_fd, *library = fds
    scratch = tempfile.mkdtemp(prefix="viewer-host-", dir=_scratch_base())
    pid = os.fork()
    if pid == 0:  # the host
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            control.close()
            report = guards.apply(scratch=scratch, keep_fds=[host_fd, model_fd, *library],
                                  memory_mb=int(request["memory_mb"]), file_mb=int(request["file_mb"]),
                                  read_paths=read_paths)
            host.run(socket.socket(fileno=host_fd), model_fd, scratch, report, library[0] if library else None)
        finally:
            os._exit(1)
    for fd in fds:
        os.close(fd)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:  # it died already (its guards failed): it says why on stderr
        return {"error": f"the host exited at once ({exc.strerror})"}, None
    return {"pid": pid, "scratch": scratch}, pidfd


def main(argv: list[str]) -> int:
    started = time.monotonic()
    control = socket.socket(fileno=int(argv[1]))
    setup = json.loads(argv[2])
    for entry in reversed(setup.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        _preimport(setup.get("imports", []))
        threads = _threads()
        if threads != 1:
            raise RuntimeError(f"{threads} threads run after the imports; forking now could hang the hosts")
    except Exception as exc:  # noqa: BLE001  (told to the app, which reports it)
        control.send(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
        return 1
    trusted = list(setup.get("imports", []))
    read_paths = _read_paths(trusted)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # hosts are reaped by the kernel
    control.send(json.dumps({"ready": True, "seconds": round(time.monotonic() - started, 3)}).encode())
    while True:
        message, fds, _flags, _addr = socket.recv_fds(control, 65536, 4)
        if not message:
            return 0  # the app closed its end: it exited
        try:
            request = json.loads(message)
            if len(fds) not in (2, 3):
                raise ValueError("a spawn needs the host's socket, the model file and perhaps its compiled library")
            new = [name for name in request.get("imports", []) if name not in trusted]
            if new:  # the operator's trusted modules, named by a setting the server never reads
                for name in new:
                    __import__(name)
                trusted.extend(new)
                read_paths = _read_paths(trusted)
            reply, pidfd = _spawn(control, request, fds, read_paths)
        except Exception as exc:  # noqa: BLE001
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            reply, pidfd = {"error": f"{type(exc).__name__}: {exc}"}, None
        socket.send_fds(control, [json.dumps(reply).encode()], [pidfd] if pidfd is not None else [])
        if pidfd is not None:
            os.close(pidfd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
