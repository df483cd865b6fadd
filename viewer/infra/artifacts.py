"""The artifact store: where model files, datasets and job outputs live.

An interface with one backend today (a local directory, or a directory on a shared mount);
object storage will be a second backend and must only add one. The protocol needs no rename,
which object stores do not have:

1. a writer puts an object under a NEW, unique key (``new_key``), never over an existing one;
2. only then does it record the key in the database (a model version, a dataset, a job chunk);
3. readers find objects only through those records, so a half-written or abandoned object is
   never read, and two writers never meet at one key;
4. ``sweep`` (a services use-case, run by the workers' reaper and ``manage.py sweep``) deletes
   keys that no record points to once they are older than a grace period.

Local files that are not artifacts (an upload being received, a model being checked by the safe
loader) are *scratch*: ``stage`` copies a stream into the scratch folder while hashing it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

CHUNK = 1 << 20
KEY_PART = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,200}$")  # plain names; never "." or ".."


class TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"larger than the limit of {limit // 2**20} MiB")
        self.limit = limit


def check_key(key: str) -> str:
    """A key is a relative path of plain names ("models/<sha>/<id>"): no "..", no absolute
    path, nothing a caller could use to reach outside the store."""
    parts = PurePosixPath(key).parts
    if not parts or key != "/".join(parts) or not all(KEY_PART.match(p) for p in parts):
        raise ValueError(f"not an artifact key: {key[:100]!r}")
    return key


def new_key(prefix: str, suffix: str = "") -> str:
    """A key under ``prefix`` that nobody has written before."""
    return check_key(f"{prefix}/{uuid.uuid4().hex}{suffix}")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float  # seconds since the epoch


class ArtifactStore(ABC):
    """What services need from a store. Keys come from ``new_key`` or the database."""

    @abstractmethod
    @contextmanager
    def writer(self, key: str) -> Iterator[Path]:
        """A local path to write the object to; when the block ends without an exception the
        object is stored under ``key`` (on failure nothing is left there)."""

    @abstractmethod
    @contextmanager
    def reader(self, key: str) -> Iterator[Path]:
        """A local path holding the object, for readers that need a file (pyarrow, joblib)."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        """Store a finished local file under ``key`` (``move``: the caller no longer needs it)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing one is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix/``."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix/``."""


class LocalArtifactStore(ArtifactStore):
    """Objects are files under ``root`` at their key's path."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextmanager
    def writer(self, key: str) -> Iterator[Path]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield target
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    @contextmanager
    def reader(self, key: str) -> Iterator[Path]:
        target = self.path(key)
        if not target.is_file():
            raise FileNotFoundError(f"artifact {key} is missing")
        yield target

    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        with self.writer(key) as target:
            if move:
                shutil.move(path, target)  # a rename on one file system; the key is new either way
            else:
                shutil.copyfile(path, target)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        target = self.path(key)
        target.unlink(missing_ok=True)
        for folder in target.parents:  # folders left empty go too (a key's folder is its own)
            if folder == self.root:
                break
            try:
                folder.rmdir()
            except OSError:
                break

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        base = self.path(prefix)
        if not base.is_dir():
            return
        for folder, _dirs, files in os.walk(base):
            for name in files:
                full = Path(folder) / name
                try:
                    stat = full.stat()
                except FileNotFoundError:
                    continue
                yield StoredObject(full.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime)


def open_store(url: str) -> ArtifactStore:
    """The store a URL names: a directory path (or ``file://`` URL) today."""
    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" in url:
        raise ValueError(f"unsupported artifact store {url.split('://')[0]!r}; use a directory")
    return LocalArtifactStore(url)


# --- scratch: local files that are not artifacts --------------------------------------------------

@dataclass(frozen=True)
class StagedFile:
    """A stream copied to a scratch file, hashed on the way."""

    path: Path
    sha256: str
    size: int


def stage(source: BinaryIO, scratch: Path, max_bytes: int | None = None) -> StagedFile:
    """Copy a stream into a new scratch file, hashing as it goes; raise TooLarge past ``max_bytes``
    (the partial file is removed)."""
    scratch.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=scratch, prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(max_bytes)
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return StagedFile(Path(name), digest.hexdigest(), size)


def sweep_scratch(scratch: Path, older_than_seconds: float = 24 * 3600, keep: frozenset[str] = frozenset()) -> int:
    """Remove scratch files a crashed process left behind (but the ones named in ``keep``)."""
    if not scratch.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for entry in scratch.iterdir():
        if entry.name not in keep and entry.is_file() and entry.stat().st_mtime < cutoff:
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
