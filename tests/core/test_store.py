"""The content-addressed artifact store and the LRU cache: no app needed."""

import hashlib
import io
import os
import threading
import time

import pytest

from viewer.core.cache import LRUCache
from viewer.core.store import ArtifactStore, TooLarge


def test_stage_commit_is_content_addressed_and_atomic(tmp_path):
    store = ArtifactStore(tmp_path)
    data = os.urandom(3 << 20)
    staged = store.stage(io.BytesIO(data))
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.size == len(data)
    assert not store.exists(staged.sha256)
    path = store.commit(staged)
    assert path.read_bytes() == data and path.name == staged.sha256
    assert list(store.tmp.iterdir()) == []
    again = store.commit(store.stage(io.BytesIO(data)))  # identical content: stored once
    assert again == path and list(store.tmp.iterdir()) == []


def test_too_large_leaves_no_temp_file(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(TooLarge):
        store.stage(io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert list(store.tmp.iterdir()) == []


def test_path_for_refuses_anything_but_a_digest(tmp_path):
    store = ArtifactStore(tmp_path)
    for bad in ("../../etc/passwd", "a" * 63, "A" * 64, "", "0" * 64 + "/.."):
        with pytest.raises(ValueError):
            store.path_for(bad)


def test_sweep_removes_only_old_temp_files(tmp_path):
    store = ArtifactStore(tmp_path)
    store.tmp.mkdir(parents=True)
    old, new = store.tmp / "upload-old", store.tmp / "upload-new"
    old.write_bytes(b"1")
    new.write_bytes(b"2")
    os.utime(old, (time.time() - 90000, time.time() - 90000))
    assert store.sweep_tmp() == 1
    assert not old.exists() and new.exists()


def test_lru_evicts_least_recently_used():
    cache = LRUCache(maxsize=2)
    cache.get("a", lambda: 1)
    cache.get("b", lambda: 2)
    cache.get("a", lambda: 0)  # touch a
    cache.get("c", lambda: 3)  # evicts b
    assert "a" in cache and "c" in cache and "b" not in cache
    assert cache.hits == 1 and cache.misses == 3


def test_lru_loads_each_key_once_under_concurrency():
    cache = LRUCache(maxsize=4)
    calls = []

    def slow_load():
        calls.append(1)
        time.sleep(0.05)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow_load))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1
