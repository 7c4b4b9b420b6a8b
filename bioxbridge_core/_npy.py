"""Arrays on disk: ``.npy`` files written row block by row block and read back as memory maps.

Why own code: ``numpy.lib.format.open_memmap`` needs the final shape up front, but pairing
and feature extraction learn the number of windows only at the end. ``NpyAppender``
reserves a fixed-size ``.npy`` header, appends raw rows, then writes the real header
(a valid NPY 1.0 header padded with spaces, which ``numpy.load`` reads) and renames the
file into place, so a crash never leaves a half-written array under the final name.

Reading: ``open_npy`` maps a file read-only (``numpy.load(mmap_mode="r")``). Pages of a
mapped file that were read stay in the process's resident set (RSS, as file-backed pages)
until the kernel needs them; ``release`` drops them from this process (they stay in the
page cache), so code that streams through a large map keeps its RSS flat.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ._io import _UMASK

#: bytes reserved for the NPY preamble + header (a multiple of 64, numpy's alignment)
HEADER_BYTES = 256
_MAGIC = b"\x93NUMPY\x01\x00"


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    d = np.lib.format.header_data_from_array_1_0(np.empty((0,), dtype=dtype))
    d["shape"] = tuple(int(s) for s in shape)
    text = repr({k: d[k] for k in sorted(d)}).encode("latin1")
    room = HEADER_BYTES - len(_MAGIC) - 2 - 1
    if len(text) > room:
        raise ValueError(f"array header too long for {shape} ({len(text)} > {room} bytes)")
    body = text + b" " * (room - len(text)) + b"\n"
    return _MAGIC + len(body).to_bytes(2, "little") + body


class NpyAppender:
    """Append row blocks ``(k, *row_shape)`` to a new ``.npy`` file; ``close()`` publishes it.

    Parameters
    ----------
    path : final file name (written to a temporary file beside it until ``close``).
    row_shape : shape of one row (e.g. ``(n_chans, n_times)``).
    dtype : stored dtype; blocks are cast to it (e.g. float16 halves a float32 target).
    """

    def __init__(self, path: str | Path, row_shape: tuple[int, ...], dtype=np.float32) -> None:
        self.path = Path(path)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self.n_rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)
        self._fh = os.fdopen(fd, "wb")
        self._fh.write(b"\0" * HEADER_BYTES)

    def append(self, block: np.ndarray) -> None:
        """Append rows; ``block`` has shape ``(k, *row_shape)``."""
        block = np.asarray(block)
        if tuple(block.shape[1:]) != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {block.shape[1:]} but the file holds {self.row_shape}")
        self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.n_rows += int(block.shape[0])

    def close(self) -> Path:
        """Write the header, fsync and rename onto ``path``; returns ``path``."""
        self._fh.seek(0)
        self._fh.write(_header((self.n_rows, *self.row_shape), self.dtype))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Forget everything written (no file appears under ``path``)."""
        if not self._fh.closed:
            self._fh.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> "NpyAppender":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_npy(path: str | Path) -> np.ndarray:
    """Memory-map an ``.npy`` file (never unpickles).

    The map is copy-on-write: the file is never modified, and the array is writable so that
    ``torch.from_numpy`` can share it; a write only makes a private copy of that page.
    """
    return np.load(Path(path), mmap_mode="c", allow_pickle=False)


def save_npy(path: str | Path, arr: np.ndarray, *, chunk_rows: int = 4096, dtype=None) -> Path:
    """Write ``arr`` (possibly a memory map) to ``path`` in row chunks, atomically."""
    arr = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
    with NpyAppender(path, arr.shape[1:], dtype or arr.dtype) as out:
        for sl in row_chunks(arr.shape[0], chunk_rows):
            out.append(arr[sl])
            release(arr)
    return Path(path)


def _mapping(arr) -> "mmap.mmap | None":
    base = arr
    while base is not None:
        mm = getattr(base, "_mmap", None)
        if mm is not None:
            return mm
        base = getattr(base, "base", None)
    return None


def is_mapped(arr) -> bool:
    """True when ``arr`` is (a view of) a memory-mapped file."""
    return _mapping(arr) is not None


def release(*arrays) -> None:
    """Drop the resident pages of memory-mapped arrays from this process (no-op otherwise)."""
    for a in arrays:
        mm = _mapping(a)
        if mm is not None and hasattr(mm, "madvise"):
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError, AttributeError):  # closed map or no madvise on this platform
                pass


def trim_heap() -> None:
    """Give memory the C allocator holds but no longer uses back to the OS (glibc ``malloc_trim``).

    Why: a pass over thousands of batches leaves glibc's heap fragmented, and the freed space
    stays in the process (on the demo's 16x cohort ~120 MB after one feature pass), so each
    later step would start higher. No-op where glibc is absent.
    """
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - raises AttributeError off glibc
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


def row_chunks(n: int, chunk_rows: int) -> Iterator[slice]:
    """Slices covering ``range(n)`` in order."""
    for i in range(0, n, max(1, int(chunk_rows))):
        yield slice(i, min(n, i + chunk_rows))


def rows_per_chunk(arr: np.ndarray, target_bytes: int = 16 * 2**20) -> int:
    """How many rows of ``arr`` fit in about ``target_bytes``."""
    row = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize
    return max(1, target_bytes // max(1, row))


def take_rows(arr: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """A copy of ``arr[rows]`` in memory; reads only those rows of a memory map, then releases it."""
    if isinstance(rows, slice):
        out = np.array(arr[rows])
    else:
        rows = np.asarray(rows)
        if rows.size and np.all(rows[1:] > rows[:-1]):
            out = np.asarray(arr[rows])
        else:  # read in file order, then put back in the asked order
            order = np.argsort(rows, kind="stable")
            out = np.empty((rows.size, *arr.shape[1:]), dtype=arr.dtype)
            out[order] = arr[rows[order]]
    release(arr)
    return out


def array_digest(arr: np.ndarray, *, digest_size: int = 16) -> str:
    """blake2b of an array's dtype, shape and bytes, read in chunks (memory maps stay unmapped)."""
    h = hashlib.blake2b(digest_size=digest_size)
    arr = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
    h.update(str(arr.dtype).encode())
    h.update(str(arr.shape).encode())
    if arr.ndim == 0 or arr.shape[0] == 0:
        h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
        return h.hexdigest()
    for sl in row_chunks(arr.shape[0], rows_per_chunk(arr)):
        h.update(memoryview(np.ascontiguousarray(arr[sl])).cast("B"))
        release(arr)
    return h.hexdigest()


def publish_folder(tmp: Path, folder: Path, *, overwrite: bool) -> bool:
    """Rename the finished folder ``tmp`` onto ``folder`` (atomic on one file system).

    When ``folder`` already exists: with ``overwrite`` it is replaced, otherwise (another
    process finished the same folder first) ``tmp`` is discarded. Returns True when ``tmp``
    became ``folder``.
    """
    tmp, folder = Path(tmp), Path(folder)
    try:
        os.rename(tmp, folder)  # succeeds when ``folder`` is absent or an empty folder
        return True
    except OSError:
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            return False
    trash = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.rename(folder, trash)
    os.rename(tmp, folder)
    shutil.rmtree(trash, ignore_errors=True)
    return True
