"""The warm-shutdown flag a looping chunk task asks (viewer/infra/stopping.py), with real forks."""

from __future__ import annotations

import importlib
import os

import pytest

from viewer.infra import stopping


@pytest.fixture
def flag():
    module = importlib.reload(stopping)  # fresh module state for each test
    yield module
    for fd in (module._read, module._write):
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    importlib.reload(stopping)


def test_nothing_is_stopping_outside_a_worker(flag):
    assert not flag.stopping()


def test_the_solo_pool_keeps_its_end_until_the_shutdown(flag):
    flag.open_in_main()
    flag.child_started()  # the solo pool signals this in the main process
    assert not flag.stopping()
    flag.begin_shutdown()
    assert flag.stopping()


def test_a_pool_process_sees_its_main_process_begin_the_shutdown(flag):
    flag.open_in_main()
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the pool process
        try:
            flag.child_started()
            os.write(report_w, bytes([flag.stopping()]))
            os.read(go_r, 1)  # wait until the main process began its shutdown
            os.write(report_w, bytes([flag.stopping()]))
        finally:
            os._exit(0)
    os.close(report_w)
    before = os.read(report_r, 1)
    flag.begin_shutdown()
    os.write(go_w, b"x")
    after = os.read(report_r, 1)
    os.waitpid(pid, 0)
    for fd in (report_r, go_r, go_w):
        os.close(fd)
    assert (before, after) == (bytes([False]), bytes([True]))
