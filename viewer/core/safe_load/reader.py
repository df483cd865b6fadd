"""Bounded reading: a byte budget on the decompressed stream."""

from __future__ import annotations

from .errors import ModelLoadError

_CHUNK = 1 << 20


class _LimitedReader:
    """File wrapper that counts bytes and fails past ``limit``.

    Wraps the *decompressed* stream so decompression bombs stop at the limit.
    Large reads are done in chunks so a size field in the file cannot make us
    allocate more than the data actually present.
    """

    def __init__(self, raw, limit: int):
        self._raw = raw
        self.limit = int(limit)
        self.count = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.count

    def _account(self, n: int) -> None:
        self.count += n
        if self.count > self.limit:
            raise ModelLoadError(
                f"The model file decompresses to more than {self.limit} bytes "
                "(max_decompressed_bytes); refusing to load it."
            )

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.remaining + 1
        chunks = []
        left = n
        while left > 0:
            want = min(left, _CHUNK, self.remaining + 1)
            data = self._raw.read(want)
            if not data:
                break
            self._account(len(data))
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)

    def readline(self, size: int = -1) -> bytes:
        cap = self.remaining + 1
        if size is not None and size >= 0:
            cap = min(cap, size)
        data = self._raw.readline(cap)
        self._account(len(data))
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)
