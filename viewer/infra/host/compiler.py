"""The compile sandbox: compiling a model's trees loads an uploaded model and runs gcc on C code
generated from it, so it runs in a child process locked down as a model host is (``guards``: no
network, nothing writable but its scratch folder, nothing readable but the Python installation
and the system's programs and libraries, uid 65534, memory and file limits, the seccomp deny-list,
a scrubbed environment without the app's secrets), except that it may start programs (gcc, as,
ld: at most ``PROCESSES`` processes of its uid) and has a CPU-time limit.

``compile_model(model_file, rows, ...)`` runs one: the child loads the model with the restricted
loader, compiles it (``core.compiled.compile_trees``), checks its parity on ``rows`` and its
threshold rows, times it per batch size, and leaves ``result.json`` and the library in its
scratch folder. The parent reads the result (bounded), checks the library's hash, moves it to
``destination`` and deletes the scratch folder. A crash, a timeout or a refusal is a ``Compiled``
with ``ok`` False and the reason for the model card; the model keeps being served by scikit-learn.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from . import guards

PROCESSES = 64
MAX_RESULT_BYTES = 1 << 20
MAX_ROWS = 100_000  # data rows for the parity check (threshold rows come on top)


@dataclass
class Outcome:
    ok: bool
    reason: str | None = None
    library: str | None = None          # the library, moved to ``destination``
    result: dict[str, Any] = field(default_factory=dict)  # compiled, parity, timings, guards
    stderr: str = ""


def compile_model(model_file: str, rows: Any, destination: str, *, trusted_modules: tuple[str, ...] = (),
                  max_decompressed_bytes: int = 1 << 30, memory_mb: int = 4096, file_mb: int = 1024,
                  timeout: float = 900.0) -> Outcome:
    """Compile ``model_file`` in a sandbox; ``rows``: the model's input for the parity check (a
    numpy array or DataFrame of at most ``MAX_ROWS`` rows, or None)."""
    from ...core.compiled import file_sha256
    from .server import _read_paths, _scratch_base, scrubbed_environment

    scratch = tempfile.mkdtemp(prefix="viewer-compile-", dir=_scratch_base())
    try:
        if rows is not None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            import pandas as pd

            frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows).rename(columns=str)
            rows_path = os.path.join(scratch, "rows.parquet")
            os.close(os.open(rows_path, os.O_CREAT | os.O_WRONLY, 0o600))  # a dataset's rows: not for other users
            pq.write_table(pa.Table.from_pandas(frame.iloc[:MAX_ROWS], preserve_index=False), rows_path)
            meta = {"positional": not isinstance(rows, pd.DataFrame)}
        else:
            meta = {"positional": True}
        setup = {"sys_path": [p for p in sys.path if p], "trusted_modules": list(trusted_modules),
                 "max_decompressed_bytes": int(max_decompressed_bytes), "memory_mb": int(memory_mb),
                 "file_mb": int(file_mb), "cpu_seconds": int(timeout), "read_paths": _read_paths(list(trusted_modules)),
                 "rows": rows is not None, **meta}
        env = scrubbed_environment()
        env.update(TMPDIR=scratch, HOME=scratch)
        with open(model_file, "rb") as model:
            child = subprocess.Popen(
                [sys.executable, "-m", "viewer.infra.host.compiler", scratch, str(model.fileno()), json.dumps(setup)],
                pass_fds=(model.fileno(),), env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # gcc and its children too
            _out, err = child.communicate()
            return Outcome(False, f"Compiling took longer than {timeout:.0f} s and was stopped; scikit-learn "
                                  "serves the model.")
        stderr = err.decode(errors="replace")[-4000:]
        path = os.path.join(scratch, "result.json")
        if not os.path.isfile(path) or os.path.getsize(path) > MAX_RESULT_BYTES:
            what = f"was killed by signal {-child.returncode}" if child.returncode < 0 else \
                f"exited with code {child.returncode}"
            return Outcome(False, f"The compile sandbox {what} without a result; scikit-learn serves the model.",
                           stderr=stderr)
        with open(path) as fh:
            result = json.load(fh)
        if not result.get("ok"):
            return Outcome(False, str(result.get("reason"))[:500], result=result, stderr=stderr)
        library = result.get("compiled", {}).get("library")
        if not isinstance(library, str) or os.path.dirname(os.path.dirname(library)) != scratch \
                or not os.path.isfile(library) or file_sha256(library) != result["compiled"]["sha256"]:
            return Outcome(False, "The compiled library does not match what the compile sandbox reported; "
                                  "scikit-learn serves the model.", result=result, stderr=stderr)
        os.makedirs(destination, exist_ok=True)
        target = os.path.join(destination, "model.so")
        shutil.copyfile(library, target)
        result["compiled"]["library"] = target
        return Outcome(True, None, target, result, stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- the sandboxed child -------------------------------------------------------------------------

def _child(scratch: str, model_fd: int, setup: dict[str, Any]) -> dict[str, Any]:
    import resource

    for entry in reversed(setup["sys_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    # The operator's trusted modules are imported before the guards, as the model hosts' fork
    # server does (Python's import reads the folders above them, which the guards close); with
    # one BLAS/OpenMP thread (the scrubbed environment) that starts no thread.
    for name in setup["trusted_modules"]:
        __import__(name)
    report = guards.apply(scratch=scratch, keep_fds=[2, model_fd], memory_mb=setup["memory_mb"],
                          file_mb=setup["file_mb"], read_paths=setup["read_paths"], processes=PROCESSES)
    resource.setrlimit(resource.RLIMIT_CPU, (setup["cpu_seconds"], setup["cpu_seconds"]))
    # This process may read with its owner's file rights (guards: a Python in a closed folder),
    # which gcc, a new program, does not keep: gcc works in a folder of random name that uid
    # 65534 may enter (Landlock still confines both to the scratch folder).
    os.chmod(scratch, 0o711)
    os.umask(0)
    work = tempfile.mkdtemp(dir=scratch)
    os.chmod(work, 0o777)
    os.environ["TMPDIR"] = tempfile.tempdir = work
    import numpy as np
    import pyarrow.parquet as pq

    from ...core.compiled import CompiledModel, CompileError, TreeRuntime, check_parity, compile_trees
    from ...core.introspect import final_estimator
    from ...core.safe_load import load_model

    path = os.path.join(scratch, "model")
    with os.fdopen(model_fd, "rb") as source, open(path, "wb") as copy:
        shutil.copyfileobj(source, copy, 1 << 20)
    loaded = load_model(path, trusted_modules=tuple(setup["trusted_modules"]),
                        max_decompressed_bytes=setup["max_decompressed_bytes"])
    os.unlink(path)
    model = loaded.estimator
    rows = None
    if setup["rows"]:
        rows = pq.read_table(os.path.join(scratch, "rows.parquet")).to_pandas()
        if setup["positional"]:
            rows = rows.to_numpy(dtype=np.float64)
    try:
        compiled = compile_trees(model, work)
    except CompileError as exc:
        return {"ok": False, "reason": str(exc), "guards": report}
    runtime = TreeRuntime(compiled)
    parity = check_parity(model, runtime, rows)
    result = {"ok": parity.ok, "reason": parity.reason, "guards": report, "parity": parity.to_dict(),
              "compiled": compiled.to_dict()}
    if parity.ok:
        # Timed on the parity rows, or (a model without an input schema, so without rows) on zeros.
        timing = rows if rows is not None and len(rows) else np.zeros((1, int(final_estimator(model).n_features_in_)))
        served = CompiledModel(model, runtime, parity)
        timings = served.measure(timing)
        result["timings"] = {str(size): t for size, t in timings.items()}
        result["faster"] = {str(size): bool(v) for size, v in served.faster.items()}
    return result


def main(argv: list[str]) -> int:
    scratch, model_fd, setup = argv[1], int(argv[2]), json.loads(argv[3])
    try:
        result = _child(scratch, model_fd, setup)
    except Exception as exc:  # noqa: BLE001  (the model could not be loaded or checked: say why)
        result = {"ok": False, "reason": f"The model could not be compiled ({type(exc).__name__}: "
                                         f"{str(exc)[:300] or 'no message'}); scikit-learn serves it."}
    with open(os.path.join(scratch, "result.json"), "w") as fh:
        json.dump(result, fh, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
