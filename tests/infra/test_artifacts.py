"""The artifact store's local backend, staging to scratch, and the LRU cache: no app needed."""

import hashlib
import io
import os
import threading
import time

import pytest

from viewer.core.cache import LRUCache
from viewer.infra.artifacts import LocalArtifactStore, TooLarge, check_key, new_key, stage, sweep_scratch


def test_stage_hashes_while_copying_to_scratch(tmp_path):
    data = os.urandom(3 << 20)
    staged = stage(io.BytesIO(data), tmp_path / "scratch")
    assert staged.sha256 == hashlib.sha256(data).hexdigest() and staged.size == len(data)
    assert staged.path.read_bytes() == data and staged.path.parent == tmp_path / "scratch"


def test_too_large_leaves_no_scratch_file(tmp_path):
    with pytest.raises(TooLarge):
        stage(io.BytesIO(b"x" * 5000), tmp_path, max_bytes=4096)
    assert list(tmp_path.iterdir()) == []


def test_new_keys_are_unique_and_never_overwrite(tmp_path):
    store = LocalArtifactStore(tmp_path)
    keys = {new_key("models/abc") for _ in range(1000)}
    assert len(keys) == 1000 and all(k.startswith("models/abc/") for k in keys)
    first, second = new_key("datasets/d1", ".parquet"), new_key("datasets/d1", ".parquet")
    for key, content in ((first, b"one"), (second, b"two")):
        with store.writer(key) as path:
            path.write_bytes(content)
    with store.reader(first) as one, store.reader(second) as two:
        assert one.read_bytes() == b"one" and two.read_bytes() == b"two"


def test_a_failed_write_leaves_nothing_under_its_key(tmp_path):
    store = LocalArtifactStore(tmp_path)
    key = new_key("jobs/j1/part-00000", ".parquet")
    with pytest.raises(RuntimeError):
        with store.writer(key) as path:
            path.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert not store.exists(key) and [o.key for o in store.list("jobs")] == []


def test_put_copy_and_move_list_and_delete(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    source = tmp_path / "file"
    source.write_bytes(b"abc")
    store.put_file("models/a/x", source)
    assert source.exists()
    store.put_file("models/b/y", source, move=True)
    assert not source.exists()
    assert sorted(o.key for o in store.list("models")) == ["models/a/x", "models/b/y"]
    with store.reader("models/b/y") as path:
        assert path.read_bytes() == b"abc"
    store.delete_prefix("models/a")
    store.delete("models/b/y")
    store.delete("models/b/y")  # deleting a missing object is not an error
    assert list(store.list("models")) == []
    assert not (tmp_path / "store" / "models").exists()  # no empty folders left behind
    with pytest.raises(FileNotFoundError):
        with store.reader("models/b/y"):
            pass


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "a/../b", "a//b", "", "a/..", "a/./b", ".",
                                 "a/b\x00", "a\\b", "a/b/"])
def test_keys_cannot_reach_outside_the_store(tmp_path, bad):
    with pytest.raises(ValueError):
        check_key(bad)
    with pytest.raises(ValueError):
        LocalArtifactStore(tmp_path).path(bad)


def test_sweep_scratch_removes_only_old_files(tmp_path):
    old, new = tmp_path / "upload-old", tmp_path / "upload-new"
    old.write_bytes(b"1")
    new.write_bytes(b"2")
    os.utime(old, (time.time() - 90000, time.time() - 90000))
    assert sweep_scratch(tmp_path) == 1
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
