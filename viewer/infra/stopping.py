"""Whether this worker is stopping: a task that goes on taking work (a scoring job's next chunk)
asks before each piece, so a warm shutdown (SIGTERM: finish the running task, take no more)
stays prompt.

The worker's main process opens a pipe before its pool starts and closes the write end when the
shutdown begins; every pool process inherits the read end and closes its copy of the write end,
so the read end becomes readable (end of file) exactly when the main process closed it, or died.
Outside a worker (tests calling the services, notebooks) nothing is ever stopping.
"""

from __future__ import annotations

import os
import select

_read: int | None = None
_write: int | None = None
_main_pid: int | None = None


def open_in_main() -> None:
    """In the worker's main process, before the pool starts."""
    global _read, _write, _main_pid
    if _read is None:
        _read, _write = os.pipe()
        _main_pid = os.getpid()


def child_started() -> None:
    """In each pool process: only the main process may hold the write end. (The solo pool
    runs its tasks in the main process and signals this there too: it keeps its end.)"""
    global _write
    if _write is not None and os.getpid() != _main_pid:
        os.close(_write)
        _write = None


def begin_shutdown() -> None:
    """In the main process, when the shutdown begins."""
    global _write
    if _write is not None:
        os.close(_write)
        _write = None


def stopping() -> bool:
    if _read is None:
        return False
    readable, _, _ = select.select([_read], [], [], 0)
    return bool(readable)
