"""A content-addressed artifact store on a plain directory (local disk or a shared mount).

Objects live at ``objects/<first two hex>/<sha256>``: names we generate, never the uploader's.
Writes go to ``tmp/`` first and are renamed into place, so a reader never sees half a file and a
crashed writer leaves only a temp file (swept by ``sweep_tmp``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"larger than the limit of {limit // 2**20} MiB")
        self.limit = limit


@dataclass(frozen=True)
class StagedFile:
    """A file written to the store's temp area, hashed, not yet committed."""

    path: Path
    sha256: str
    size: int


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str], kind: str = "objects"):
        self.root = Path(root)
        self.objects = self.root / kind
        self.tmp = self.root / "tmp"

    def stage(self, source: BinaryIO, max_bytes: int | None = None) -> StagedFile:
        """Copy a stream into a temp file, hashing as it goes; raise TooLarge past ``max_bytes``."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
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

    def path_for(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise ValueError("not a sha256 digest")
        return self.objects / sha256[:2] / sha256

    def commit(self, staged: StagedFile) -> Path:
        """Move a staged file into place (atomic rename); identical content is stored once."""
        target = self.path_for(staged.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            staged.path.unlink(missing_ok=True)
        else:
            os.replace(staged.path, target)
        return target

    def discard(self, staged: StagedFile) -> None:
        staged.path.unlink(missing_ok=True)

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def sweep_tmp(self, older_than_seconds: float = 24 * 3600) -> int:
        """Remove temp files a crashed writer left behind."""
        if not self.tmp.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in self.tmp.iterdir():
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed
