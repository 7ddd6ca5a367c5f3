"""Load pickle files without letting them run code.

``pickle.load`` executes whatever callable a file names: a downloaded "SMPLify-X result" could run
``os.system``. :func:`load_pickle_safely` uses an unpickler whose ``find_class`` admits only what is
needed to rebuild numpy arrays, numpy scalars and plain containers. Dicts, lists, tuples, strings,
numbers, ``True``/``False``/``None`` are built by pickle opcodes and need no global at all.

Python-2 pickles (SMPLify-X results are written with protocol 2, often under Python 2) store byte
strings as ``str``; when the default ASCII decoding fails the file is read again with
``encoding='latin1'``, which is how numpy documents loading them.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import os
import pickle
from collections import OrderedDict
from typing import Any, NoReturn

import numpy as np

from posecore.errors import InputFileError
from posecore.io.paths import existing_file

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``, restricted to latin-1."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refuses _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1", errors)


def _safe_bytes(*args: Any) -> bytes:
    """``bytes(...)`` without the ``bytes(n)`` form, which would let a tiny file allocate n bytes."""
    if args and isinstance(args[0], int):
        raise pickle.UnpicklingError("refuses bytes(<int>)")
    return bytes(*args)


def _safe_bytearray(*args: Any) -> bytearray:
    """``bytearray(...)`` without the ``bytearray(n)`` form."""
    if args and isinstance(args[0], int):
        raise pickle.UnpicklingError("refuses bytearray(<int>)")
    return bytearray(*args)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> the object to hand to the unpickler. Both numpy 1 and numpy 2 spellings."""
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): _safe_bytearray,
        ("builtins", "bytes"): _safe_bytes,
        ("collections", "OrderedDict"): OrderedDict,
    }
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        allowed[(f"{prefix}.multiarray", "scalar")] = _multiarray.scalar
        allowed[(f"{prefix}.numeric", "_frombuffer")] = _numeric._frombuffer
    # Python 2 module names (what pickle's fix_imports would map).
    for name in ("set", "frozenset", "complex", "bytearray", "bytes"):
        allowed[("__builtin__", name)] = allowed[("builtins", name)]
    return allowed


_ALLOWED = _allowed_globals()

_TORCH_HINT = (
    "; torch tensors are not supported either: save them as numpy arrays "
    "(tensor.detach().cpu().numpy()) or as a .npz file"
)


class _RefusedGlobalError(Exception):
    """Raised inside the unpickler; turned into InputFileError by :func:`load_pickle_safely`."""

    def __init__(self, qualified: str) -> None:
        self.qualified = qualified
        super().__init__(qualified)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` returns only allow-listed numpy/builtin objects."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            # Report the Python 3 name (protocol <= 2 pickles say __builtin__, copy_reg, ...).
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            raise _RefusedGlobalError(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> NoReturn:
        # torch.save writes storages as persistent ids; plain pickles never contain them.
        raise _RefusedGlobalError("persistent id (torch.save storage)")


def _refusal_message(qualified: str) -> str:
    message = f"refuses to load pickle global '{qualified}': only numpy arrays, dicts, lists and scalars are allowed"
    if qualified.startswith("torch") or "torch.save" in qualified:
        message += _TORCH_HINT
    elif qualified.startswith("chumpy"):
        message += "; chumpy objects (old SMPL .pkl model files) are not supported: use the .npz model files"
    elif qualified.startswith("scipy.sparse"):
        message += "; scipy sparse matrices are not supported"
    return message


def _unpickle(data: bytes, encoding: str) -> object:
    return _RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()


def load_pickle_safely(path: str | os.PathLike[str]) -> object:
    """Load a pickle that may only contain numpy arrays, numpy scalars and plain containers.

    Args:
        path: the ``.pkl`` file.

    Returns:
        The unpickled object (typically a dict of numpy arrays).

    Raises:
        InputFileError: the file is missing or unreadable, is not a valid pickle (corrupt or truncated),
            or names any global outside the allow-list (``os.system``, ``builtins.eval``, torch
            tensors, ...). A refused global is never imported nor called.
    """
    p = existing_file(path, "a pickle file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(p, f"cannot be read: {exc.strerror or exc}") from exc
    if not data:
        raise InputFileError(p, "is empty, expected a pickle file")
    if data[:4] == b"PK\x03\x04":
        raise InputFileError(
            p,
            "is a zip archive, not a plain pickle (a torch.save checkpoint or a misnamed .npz?): "
            "only plain pickles of numpy arrays are supported" + _TORCH_HINT,
        )
    last_error: Exception | None = None
    for encoding in ("ASCII", "latin1"):
        try:
            return _unpickle(data, encoding)
        except _RefusedGlobalError as exc:
            raise InputFileError(p, _refusal_message(exc.qualified)) from None
        except UnicodeDecodeError as exc:
            # Python 2 byte strings: retry as latin-1 (numpy's documented way to read such pickles).
            last_error = exc
            continue
        except (pickle.UnpicklingError, EOFError) as exc:
            raise InputFileError(p, f"is not a valid pickle (corrupt or truncated): {exc}") from None
        except Exception as exc:  # malformed data reaching numpy / builtins: ValueError, TypeError, ...
            raise InputFileError(
                p, f"is not a valid pickle of numpy arrays (corrupt?): {type(exc).__name__}: {exc}"
            ) from None
    raise InputFileError(p, f"could not be decoded as a pickle: {last_error}")
