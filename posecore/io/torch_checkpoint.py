"""Read the tensors of a PyTorch checkpoint (``torch.save``) without letting the file run code.

``torch.load`` unpickles: with ``weights_only=False`` a checkpoint can run any code, and with
``weights_only=True`` it refuses the metadata real checkpoints carry (a PyTorch Lightning ``.ckpt`` pickles
its ``hyper_parameters`` as OmegaConf objects and its callbacks by class). This reader parses both of
torch's file layouts itself:

- the zip layout (torch >= 1.6): ``<name>/data.pkl`` plus one raw member ``<name>/data/<key>`` per storage;
- the legacy layout (torch < 1.6, e.g. VPoser v1.0 snapshots): magic number, protocol and system-info
  pickles, the object pickle, the list of storage keys, then each storage as an int64 element count
  followed by its raw bytes.

Its unpickler admits only what rebuilds tensors (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``,
storage classes), plain containers and ``OrderedDict``. Classes of known metadata libraries (Lightning,
OmegaConf, argparse, typing, numpy scalars, torch optimisers and modules) are replaced by inert placeholders
that are never imported or called; any other global (``os.system``, ``builtins.eval``, ...) refuses the
whole file. Sizes are bounded before anything is allocated: the file, each zip member's declared size,
each storage's declared element count, the pickle's memo indices and nesting depth.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posecore.errors import InputFileError

MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024
"""Largest checkpoint file read (VPoser v1.0 snapshots are ~3 MB, v2.0 Lightning checkpoints ~10 MB)."""

MAX_PICKLE_BYTES = 16 * 1024 * 1024
MAX_TENSOR_BYTES = 64 * 1024 * 1024
"""Largest single tensor built (VPoser's biggest weight is 512 x 512 float32, 1 MB). A tensor may view its
storage with stride 0, so its size is checked on its own, not only against the storage's."""
MAX_MEMO_INDEX = 1_000_000
MAX_NESTING = 200

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}

_OPAQUE_MODULE_PREFIXES = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "omegaconf",
    "typing",
    "argparse",
    "pathlib",
    "numpy",
    "torch.optim",
    "torch.nn",
    "human_body_prior",
    "enum",
    "datetime",
)
"""Modules whose classes may appear in checkpoint metadata; they become inert placeholders."""


class _StorageRef:
    """A storage named by the pickle: dtype, element count and the key of its bytes (read later)."""

    def __init__(self, dtype: torch.dtype, key: str, numel: int) -> None:
        self.dtype, self.key, self.numel = dtype, key, numel
        self.data: bytes | None = None


class _PendingTensor:
    """A tensor whose storage bytes are not read yet (legacy files store them after the pickle)."""

    def __init__(self, storage: _StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class OpaqueObject:
    """Stands in for a metadata object of a class the reader does not trust: holds nothing, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OpaqueObject:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "<opaque checkpoint metadata>"


class _RefusedError(Exception):
    pass


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> _PendingTensor:
    if not isinstance(storage, _StorageRef):
        raise _RefusedError("a tensor without a storage")
    try:
        size_t = tuple(int(s) for s in size)
        stride_t = tuple(int(s) for s in stride)
        off = int(offset)
    except (TypeError, ValueError):
        raise _RefusedError("a tensor with a malformed size or stride") from None
    if len(size_t) != len(stride_t) or len(size_t) > 8 or off < 0 or any(s < 0 for s in size_t + stride_t):
        raise _RefusedError(f"a tensor with size {size_t[:8]} and stride {stride_t[:8]}")
    numel = 1
    for n in size_t:
        numel *= n
    if numel * storage.dtype.itemsize > MAX_TENSOR_BYTES:
        raise _RefusedError(f"a tensor of shape {size_t} (more than {MAX_TENSOR_BYTES} bytes)")
    if all(s > 0 for s in size_t):
        last = off + sum((n - 1) * st for n, st in zip(size_t, stride_t, strict=True))
        if last >= storage.numel:
            raise _RefusedError(f"a tensor that reaches past its storage ({last} >= {storage.numel} elements)")
    return _PendingTensor(storage, off, size_t, stride_t)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    return data


def _make_storage_class(dtype: torch.dtype) -> type:
    return type(f"_Storage_{dtype}", (), {"dtype": dtype})


_STORAGE_CLASSES = {name: _make_storage_class(dt) for name, dt in _STORAGE_DTYPES.items()}

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch", "Size"): tuple,
    **{("torch", name): cls for name, cls in _STORAGE_CLASSES.items()},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages: dict[str, _StorageRef]) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if any(module == p or module.startswith(p + ".") for p in _OPAQUE_MODULE_PREFIXES):
            return OpaqueObject
        raise _RefusedError(f"the pickle global '{module}.{name}'")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise _RefusedError(f"a persistent id of type {type(pid).__name__}")
        storage_class, key, numel = pid[1], str(pid[2]), pid[4]
        dtype = getattr(storage_class, "dtype", None)
        if not isinstance(dtype, torch.dtype) or storage_class not in _STORAGE_CLASSES.values():
            raise _RefusedError("a storage of an unknown type")
        if not isinstance(numel, int) or numel < 0:
            raise _RefusedError(f"a storage with {numel!r} elements")
        if numel * dtype.itemsize > MAX_CHECKPOINT_BYTES:
            raise _RefusedError(f"a storage of {numel} elements (more than the file can hold)")
        ref = self.storages.setdefault(key, _StorageRef(dtype, key, numel))
        if ref.dtype != dtype or ref.numel != numel:
            raise _RefusedError(f"storage {key!r} declared twice with different types or sizes")
        return ref


def _check_pickle_structure(data: bytes) -> None:
    """Refuse memo indices and nesting a legitimate checkpoint never needs, before unpickling."""
    depth = 0
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"):
            if not isinstance(arg, int) or arg > MAX_MEMO_INDEX:
                raise _RefusedError(f"a memo index of {arg}")
        elif opcode.name in ("MARK", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE"):
            depth += opcode.name == "MARK"
            if depth > MAX_NESTING:
                raise _RefusedError(f"nesting deeper than {MAX_NESTING}")
        elif opcode.name in ("TUPLE", "DICT", "LIST", "SETITEMS", "APPENDS", "FROZENSET", "ADDITEMS", "POP_MARK"):
            depth = max(0, depth - 1)
        elif opcode.name == "STOP":
            return


def _unpickle(data: bytes, storages: dict[str, _StorageRef]) -> Any:
    if len(data) > MAX_PICKLE_BYTES:
        raise _RefusedError(f"an object pickle of {len(data)} bytes")
    _check_pickle_structure(data)
    return _Unpickler(data, storages).load()


def _materialise(obj: Any, depth: int = 0) -> Any:
    """Replace pending tensors by real (copied) tensors, recursively through containers."""
    if depth > MAX_NESTING:
        raise _RefusedError(f"nesting deeper than {MAX_NESTING}")
    if isinstance(obj, _PendingTensor):
        ref = obj.storage
        if ref.data is None:
            raise _RefusedError(f"storage {ref.key!r} has no data in the file")
        flat = torch.frombuffer(bytearray(ref.data), dtype=ref.dtype) if ref.numel else torch.empty(0, dtype=ref.dtype)
        return torch.as_strided(flat, obj.size, obj.stride, obj.offset).clone()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v, depth + 1)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_materialise(v, depth + 1) for v in obj)
    return obj


def _read_zip(path: Path, raw: bytes) -> Any:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, OSError, struct.error) as exc:
        # NotImplementedError: "zip file version 6.4" (a mutated header; found by python -m posecore.fuzz)
        raise InputFileError(path, f"is not a readable checkpoint (corrupt zip): {exc}") from None
    for info in infos:
        if info.flag_bits & 0x1:
            raise InputFileError(path, f"member {info.filename[:80]!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InputFileError(path, f"member {info.filename[:80]!r} uses an unsupported compression")
        if info.file_size > MAX_CHECKPOINT_BYTES:
            raise InputFileError(path, f"member {info.filename[:80]!r} declares {info.file_size} bytes")
    pickles = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
    if len(pickles) != 1:
        raise InputFileError(path, "is a zip file but not a PyTorch checkpoint (no <name>/data.pkl)")
    prefix = pickles[0].filename[: -len("data.pkl")]

    def member(name: str, limit: int) -> bytes:
        info = archive.getinfo(name)
        if info.file_size > limit:
            raise _RefusedError(f"member {name!r} of {info.file_size} bytes")
        with archive.open(info) as fh:
            data = fh.read(limit + 1)
        if len(data) != info.file_size:
            raise _RefusedError(f"member {name!r} is shorter or longer than it declares")
        return data

    storages: dict[str, _StorageRef] = {}
    try:
        obj = _unpickle(member(pickles[0].filename, MAX_PICKLE_BYTES), storages)
        total = 0
        for key, ref in storages.items():
            nbytes = ref.numel * ref.dtype.itemsize
            total += nbytes
            if total > MAX_CHECKPOINT_BYTES:
                raise _RefusedError(f"storages of more than {MAX_CHECKPOINT_BYTES} bytes")
            name = f"{prefix}data/{key}"
            if name not in archive.namelist():
                raise _RefusedError(f"storage {key!r} missing from the archive")
            data = member(name, nbytes)
            if len(data) != nbytes:
                raise _RefusedError(f"storage {key!r} has {len(data)} bytes, {nbytes} declared")
            ref.data = data
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, NotImplementedError, RuntimeError, zlib.error) as exc:
        raise InputFileError(path, f"is not a readable checkpoint (corrupt or truncated): {exc}") from None
    return obj


def _pickle_end(data: bytes) -> int:
    """Bytes taken by the first pickle in ``data`` (up to and including its STOP opcode)."""
    for opcode, _, pos in pickletools.genops(data):
        if opcode.name == "STOP":
            return pos + 1
    raise _RefusedError("a truncated pickle")


def _next_pickle(raw: bytes, pos: int, storages: dict[str, _StorageRef]) -> tuple[Any, int]:
    """Unpickle the pickle starting at ``raw[pos]`` with the restricted rules; returns it and the next offset."""
    window = raw[pos : pos + MAX_PICKLE_BYTES]
    return _unpickle(window, storages), pos + _pickle_end(window)


def _read_legacy(path: Path, raw: bytes) -> Any:
    magic, pos = _next_pickle(raw, 0, {})
    if magic != _LEGACY_MAGIC:
        raise InputFileError(path, "is not a PyTorch checkpoint (neither a zip file nor torch's legacy format)")
    _, pos = _next_pickle(raw, pos, {})  # protocol version
    _, pos = _next_pickle(raw, pos, {})  # system info (endianness, type sizes)
    storages: dict[str, _StorageRef] = {}
    obj, pos = _next_pickle(raw, pos, storages)
    keys, pos = _next_pickle(raw, pos, {})
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _RefusedError("a malformed list of storage keys")
    for key in keys:
        ref = storages.get(key)
        if ref is None:
            raise _RefusedError(f"data for an undeclared storage {key[:40]!r}")
        if pos + 8 > len(raw):
            raise _RefusedError("a truncated storage")
        (count,) = struct.unpack_from("<q", raw, pos)
        if count != ref.numel:
            raise _RefusedError(f"storage {key[:40]!r} holds {count} elements, {ref.numel} declared")
        nbytes = count * ref.dtype.itemsize
        ref.data = raw[pos + 8 : pos + 8 + nbytes]
        if len(ref.data) != nbytes:
            raise _RefusedError(f"storage {key[:40]!r} is truncated")
        pos += 8 + nbytes
    return obj


def read_checkpoint(path: str | os.PathLike[str]) -> Any:
    """The object a ``torch.save`` file holds, tensors as CPU tensors, untrusted classes as placeholders.

    Args:
        path: a ``.pt`` / ``.pth`` / ``.ckpt`` file in torch's zip or legacy layout.

    Returns:
        The saved object: dicts, lists, tuples, numbers, strings and ``torch.Tensor`` values; objects of
        metadata classes (Lightning, OmegaConf, ...) come back as :class:`OpaqueObject`.

    Raises:
        InputFileError: naming the file, when it is missing, not a regular file, too large, corrupt, or
            names a global outside the allow-list (never imported, never called).
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(p, "file not found")
    if not p.is_file():
        raise InputFileError(p, "is not a regular file, expected a PyTorch checkpoint")
    size = p.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise InputFileError(p, f"is {size} bytes, larger than any checkpoint PoseFit reads ({MAX_CHECKPOINT_BYTES})")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_CHECKPOINT_BYTES + 1)
    except OSError as exc:
        raise InputFileError(p, f"cannot be read: {exc.strerror or exc}") from None
    try:
        obj = _read_zip(p, raw) if raw[:4] == b"PK\x03\x04" else _read_legacy(p, raw)
        return _materialise(obj)
    except _RefusedError as exc:
        raise InputFileError(
            p, f"refused: the checkpoint contains {exc} (only tensors and plain data are read)"
        ) from None
    except InputFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            RecursionError, struct.error, MemoryError) as exc:  # fmt: skip
        raise InputFileError(p, f"is not a readable PyTorch checkpoint (corrupt?): {type(exc).__name__}") from None


def checkpoint_arrays(obj: Any) -> dict[str, np.ndarray]:
    """The float tensors of a (possibly nested) state dict as ``{dotted key: float64 array}``."""
    out: dict[str, np.ndarray] = {}

    def walk(prefix: str, value: Any, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            out[prefix] = value.detach().to(torch.float64).numpy()
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str):
                    walk(f"{prefix}.{k}" if prefix else k, v, depth + 1)

    walk("", obj, 0)
    return out
