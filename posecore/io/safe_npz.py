"""Read ``.npz`` archives from strangers with bounded memory and without ever unpickling anything.

``np.load`` decompresses any member it is asked for, trusts the sizes the file declares, and (with
``allow_pickle=True``, as some libraries call it) runs pickled code. :class:`NpzArchive` instead:

* opens only regular files (no ``/dev/zero``, FIFOs) and refuses archives listing more than
  ``max_members`` entries (read from the end-of-central-directory record, before the directory itself);
* reads a member only when asked for it, so an unused member (a zip bomb beside the real arrays)
  costs nothing;
* refuses encrypted members and compression methods other than stored/deflate (whose decompressor
  could not be bounded), before decompressing anything;
* parses the ``.npy`` header (at most 10,000 bytes), allows only plain numeric, boolean and short text
  dtypes (never object arrays or structured dtypes), and checks the byte count implied by the header
  against the caller's limit and against the size the zip entry declares, *before* allocating;
* decompresses exactly that many bytes (zipfile stops at the declared size and checks the CRC), so a
  member's memory is bounded by what the caller allows.

Every failure is an :class:`~posecore.errors.InputFileError` naming the file and the key.
"""

from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posecore.errors import InputFileError, shorten
from posecore.io.paths import open_regular_file

MAX_HEADER_BYTES = 10_000
MAX_DIMENSIONS = 8
MAX_TEXT_ITEM_BYTES = 4096
_UNBOUNDED = 2**62
_ALLOWED_KINDS = "biufUS"  # bool, signed/unsigned ints, floats, unicode text, byte text (never object "O")

# Errors the zip, zlib and npy-header code raise on hostile or corrupt data.
_DATA_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    struct.error,
    OverflowError,
    SyntaxError,
    UnicodeDecodeError,
    RecursionError,
    tokenize.TokenError,
)


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` member declares: ``shape``, ``dtype``, ``fortran_order``, and ``nbytes`` (its data)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    nbytes: int


def _describe(exc: BaseException) -> str:
    return shorten(f"{type(exc).__name__}: {exc}", 160)


class NpzArchive:
    """An ``.npz`` file opened for bounded, pickle-free reading of single members.

    Args:
        path: the file. kind: what it should be, for messages ("an SMPL-X model file").
        max_file_bytes: refuse larger files (None: no limit, the per-member limits still apply).
        max_members: refuse archives listing more entries.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, path: str | os.PathLike[str], kind: str, max_file_bytes: int | None = None, max_members: int = 1000
    ) -> None:
        self.path = Path(path)
        self.kind = kind
        self.bytes_read = 0
        self._file = open_regular_file(self.path, kind, max_file_bytes)
        try:
            self._check_entry_count(max_members)
            self._zip = zipfile.ZipFile(self._file)
            names = self._zip.namelist()
        except InputFileError:
            self._file.close()
            raise
        except _DATA_ERRORS as exc:
            self._file.close()
            raise InputFileError(self.path, f"is not a readable .npz archive (corrupt?): {_describe(exc)}") from None
        self.keys: list[str] = [n[:-4] for n in names if n.endswith(".npy")]
        self._members = {n[:-4]: n for n in names if n.endswith(".npy")}

    def _check_entry_count(self, max_members: int) -> None:
        end_record = getattr(zipfile, "_EndRecData", None)
        if end_record is None:  # pragma: no cover - every CPython 3.x has it
            return
        record = end_record(self._file)
        if record is None:
            raise InputFileError(
                self.path,
                "is not a readable .npz archive (no zip directory: corrupt, truncated or another format), "
                f"expected {self.kind}",
            )
        entries = int(record[4])  # _ECD_ENTRIES_TOTAL
        if entries > max_members:
            raise InputFileError(
                self.path, f"lists {entries:,} archive members, more than {self.kind} can hold ({max_members:,})"
            )

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._zip.close()
        finally:
            self._file.close()

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def _error(self, key: str, problem: str) -> InputFileError:
        return InputFileError(self.path, f"'{shorten(key, 80)}' {problem}")

    def _info(self, key: str, max_bytes: int) -> zipfile.ZipInfo:
        if key not in self._members:
            raise KeyError(key)
        info = self._zip.getinfo(self._members[key])
        if info.flag_bits & 0x1:
            raise self._error(key, "is an encrypted archive member; PoseFit reads only unencrypted .npz files")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self._error(
                key,
                f"uses zip compression method {info.compress_type}; PoseFit reads only stored or deflated "
                f"members (as numpy's savez / savez_compressed write them)",
            )
        if info.file_size > max_bytes + MAX_HEADER_BYTES + 16:
            raise self._error(
                key,
                f"declares {info.file_size:,} bytes uncompressed, more than a legitimate array here can need "
                f"({max_bytes:,} bytes)",
            )
        return info

    def _read_header(self, key: str, fh: Any, max_bytes: int) -> NpyHeader:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=MAX_HEADER_BYTES)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=MAX_HEADER_BYTES)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except MemoryError:
            raise
        except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError, ...
            raise self._error(key, f"is not a readable .npy array (corrupt header?): {_describe(exc)}") from None
        if dtype.hasobject:
            raise self._error(
                key,
                "is a pickled object array: PoseFit never unpickles .npz content (it can run code); save plain "
                "numeric arrays, e.g. np.asarray(value, dtype=np.float32)",
            )
        if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in _ALLOWED_KINDS:
            raise self._error(key, f"has dtype {shorten(dtype, 60)}; expected plain numbers or text")
        if dtype.itemsize == 0 or (dtype.kind in "US" and dtype.itemsize > MAX_TEXT_ITEM_BYTES):
            raise self._error(key, f"has text items of {dtype.itemsize} bytes; expected short text")
        if len(shape) > MAX_DIMENSIONS or any(not isinstance(s, int) or s < 0 for s in shape):
            raise self._error(key, f"declares an invalid shape {shorten(shape, 80)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > max_bytes:
            raise self._error(
                key,
                f"declares shape {shorten(shape, 80)} ({nbytes:,} bytes of {dtype}), more than a legitimate "
                f"array here can need ({max_bytes:,} bytes)",
            )
        return NpyHeader(tuple(shape), dtype, bool(fortran), nbytes)

    def header(self, key: str, max_bytes: int) -> NpyHeader:
        """Shape and dtype of member ``key`` without reading its data (KeyError when absent)."""
        info = self._info(key, max_bytes)
        try:
            with self._zip.open(info) as fh:
                return self._read_header(key, fh, max_bytes)
        except InputFileError:
            raise
        except _DATA_ERRORS as exc:
            raise self._error(key, f"cannot be read (corrupt archive?): {_describe(exc)}") from None

    def check_every_header(self) -> None:
        """Read every member's ``.npy`` header (a few bytes each, whatever the member's size) so that a
        pickled object array, an encrypted member or an unknown compression is refused even where the
        caller never uses that member. Sizes are not checked here (:meth:`array` does, for what is read)."""
        for key in self.keys:
            self.header(key, _UNBOUNDED)

    def array(self, key: str, max_bytes: int) -> np.ndarray:
        """Member ``key`` as a writable array of at most ``max_bytes`` data bytes (KeyError when absent).

        Raises:
            InputFileError: encrypted / unknown compression, bad or disallowed dtype, a shape beyond
                ``max_bytes``, a size that disagrees with the zip entry, corrupt or truncated data.
        """
        info = self._info(key, max_bytes)
        try:
            with self._zip.open(info) as fh:
                head = self._read_header(key, fh, max_bytes)
                data_start = fh.tell()
                if info.file_size != data_start + head.nbytes:
                    raise self._error(
                        key,
                        f"declares shape {head.shape} of {head.dtype} ({head.nbytes:,} bytes) but the archive "
                        f"member holds {max(0, info.file_size - data_start):,} bytes (corrupt or truncated)",
                    )
                buffer = bytearray(head.nbytes)
                view = memoryview(buffer)
                filled = 0
                while filled < head.nbytes:
                    n = fh.readinto(view[filled:])
                    if not n:
                        raise self._error(key, "is truncated (fewer data bytes than its header declares)")
                    filled += n
                if fh.read(1):  # also makes zipfile check the CRC at the end of the member
                    raise self._error(key, "holds more data than its header declares (corrupt)")
        except InputFileError:
            raise
        except _DATA_ERRORS as exc:
            raise self._error(key, f"cannot be read (corrupt or truncated?): {_describe(exc)}") from None
        self.bytes_read += head.nbytes
        arr = np.frombuffer(buffer, dtype=head.dtype)
        return arr.reshape(head.shape, order="F" if head.fortran_order else "C")


class LazyNpzRecord(Mapping[str, np.ndarray]):
    """A read-only key -> array mapping over an :class:`NpzArchive` that reads each member on first access.

    ``key in record`` and iteration only look at the member names; nothing is decompressed until a value is
    asked for, and the total read is capped.

    Args:
        archive: the open archive (closed by :meth:`close`).
        max_member_bytes: data bytes any one array may have. max_total_bytes: all arrays read together.
    """

    def __init__(self, archive: NpzArchive, max_member_bytes: int, max_total_bytes: int) -> None:
        self.archive = archive
        self.max_member_bytes = max_member_bytes
        self.max_total_bytes = max_total_bytes
        self._cache: dict[str, np.ndarray] = {}
        try:
            archive.check_every_header()
        except BaseException:
            archive.close()
            raise

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            if key not in self.archive:
                raise KeyError(key)
            budget = min(self.max_member_bytes, self.max_total_bytes - self.archive.bytes_read)
            self._cache[key] = self.archive.array(key, max(0, budget))
        return self._cache[key]

    def __contains__(self, key: object) -> bool:
        return key in self.archive

    def __iter__(self) -> Iterator[str]:
        return iter(self.archive.keys)

    def __len__(self) -> int:
        return len(self.archive.keys)

    def close(self) -> None:
        self.archive.close()
