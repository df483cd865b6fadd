"""Format detection: joblib/pickle or skops, from a file's leading bytes."""

from __future__ import annotations

import os

from .errors import ModelFormat, ModelLoadError

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# Magic numbers of joblib's compressors (see joblib.compressor); duplicated
# here so detection does not depend on joblib's private registry.
_COMPRESSED_MAGICS = {
    b"\x78": "zlib",  # joblib's BinaryZlibFile: raw zlib stream (CMF 0x78)
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ": "xz",
    b"]\x00\x00": "lzma",
    b"\x04\x22\x4d\x18": "lz4",
}
_JOBLIB_LEGACY_MAGIC = b"ZF"  # joblib < 0.10 "Z-file" format
# First opcode of a protocol 0/1 pickle: MARK, GLOBAL, EMPTY_LIST/DICT/TUPLE.
_PROTO01_FIRST_BYTES = b"(c]})"


def _read_head_tail(path: str | os.PathLike, n: int = 8) -> tuple[bytes, bytes, int]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(n)
            size = os.fstat(fh.fileno()).st_size
            tail = b""
            if size:
                fh.seek(max(0, size - 1))
                tail = fh.read(1)
    except FileNotFoundError:
        raise  # the caller's problem (e.g. a missing artifact), not the file's
    except OSError as exc:
        raise ModelLoadError(f"Cannot read the model file: {exc}") from exc
    return head, tail, size


def detect_format(path: str | os.PathLike) -> ModelFormat:
    """Return ``"skops"`` or ``"joblib"`` from the file's leading bytes.

    ``"joblib"`` covers joblib files (all compressions) and plain pickles.
    Raises :class:`ModelLoadError` for empty or unrecognised content.
    """
    head, tail, size = _read_head_tail(path)
    if size == 0:
        raise ModelLoadError("The model file is empty.")
    if head.startswith(_ZIP_MAGICS):
        return "skops"
    if head.startswith(_JOBLIB_LEGACY_MAGIC):
        return "joblib"  # refused with a clear message by load_model
    if head[:1] == b"\x80" and len(head) >= 2 and 2 <= head[1] <= 5:
        return "joblib"
    for magic in _COMPRESSED_MAGICS:
        if head.startswith(magic):
            return "joblib"
    # Protocol 0/1 pickles have no header; accept only a plausible first
    # opcode together with the final STOP opcode ('.').
    if head[:1] and head[:1] in _PROTO01_FIRST_BYTES and tail == b".":
        return "joblib"
    raise ModelLoadError(
        "Unrecognised file format: expected a joblib/pickle file or a skops file "
        "containing a scikit-learn model."
    )
