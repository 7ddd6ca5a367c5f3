"""Load pickle files without letting them run code, crash the interpreter or exhaust memory.

``pickle.load`` executes whatever callable a file names: a downloaded "SMPLify-X result" could run
``os.system``. Allowing numpy's own reconstructors (``numpy.dtype``, ``ndarray.__setstate__``,
``_reconstruct``, ``scalar``, ``_frombuffer``) is not safe either: they are C code that trusts its
arguments (a malformed dtype state tuple segfaults numpy). :func:`load_pickle_safely` therefore:

* runs Python's pure-Python unpickler (``pickle._Unpickler``) with its own opcode table, so that every
  opcode is counted (at most :data:`MAX_OPCODES`), the memo is a dict (a memo index of 2**29 allocates
  nothing), and the few opcodes that hash, call or mutate objects are checked first;
* resolves globals from a short allow-list of *stand-ins*: numpy's names map to Python functions that
  only record their arguments; arrays, dtypes and numpy scalars are then rebuilt by this module from
  validated primitive pieces - a dtype string from :data:`ALLOWED_DTYPES` (bool, ints, floats, complex,
  short text), a shape of non-negative ints, and raw bytes of exactly ``prod(shape) * itemsize`` bytes,
  at most :data:`MAX_ARRAY_BYTES` per array and :data:`MAX_TOTAL_ARRAY_BYTES` in all;
* allows only strings, numbers and shallow tuples of them as dict keys and set members (hashing a
  million-deep tuple overflows the C stack);
* walks the result without recursion and refuses nesting deeper than :data:`MAX_DEPTH` or structures
  that expand (shared sub-lists counted each time they appear, as ``np.asarray`` would copy them) to
  more than :data:`MAX_EXPANDED_ITEMS` items - the memo "billion laughs".

Plain containers (dict, list, tuple, set, ``OrderedDict``), strings, bytes, numbers, ``True``/``False``
/``None``, numpy arrays and numpy scalars load exactly as ``pickle.load`` would give them.

Python-2 pickles (SMPLify-X results are written with protocol 2, often under Python 2) store byte
strings as ``str``; when the default ASCII decoding fails the file is read again with
``encoding='latin1'``, which is how numpy documents loading them.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import math
import os
import pickle
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn

import numpy as np

from posecore.errors import InputFileError, shorten
from posecore.io.paths import read_regular_file

MAX_PICKLE_BYTES = 64 * 2**20
"""Largest pickle file read (SMPLify-X results are a few kilobytes; sequences a few megabytes)."""
MAX_OPCODES = 2_000_000
MAX_DEPTH = 32
MAX_EXPANDED_ITEMS = 2_000_000
MAX_ARRAY_BYTES = 64 * 2**20
MAX_TOTAL_ARRAY_BYTES = 256 * 2**20
MAX_ARRAY_DIMENSIONS = 32
MAX_TEXT_ITEM_BYTES = 4096
_MAX_KEY_ITEMS = 64
_MAX_KEY_DEPTH = 4

_NUMERIC_DTYPES = ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
ALLOWED_DTYPES: tuple[str, ...] = (*_NUMERIC_DTYPES, "U<n>", "S<n>")
"""dtype strings a pickled array or scalar may name (``U``/``S``: text of at most 4,096 bytes per item)."""
_DTYPE_SPEC = re.compile(r"(?P<kind>[biufcUS])(?P<size>[0-9]{0,5})")
_BYTE_ORDERS = ("<", ">", "|", "=")

_TORCH_HINT = (
    "; torch tensors are not supported either: save them as numpy arrays "
    "(tensor.detach().cpu().numpy()) or as a .npz file"
)


class _RefusedGlobalError(Exception):
    """A global outside the allow-list; turned into InputFileError by :func:`load_pickle_safely`."""

    def __init__(self, qualified: str) -> None:
        self.qualified = qualified
        super().__init__(qualified)


class _BadDataError(Exception):
    """Malformed or oversized content (a one-line reason, never the content itself)."""


# ------------------------------------------------------------------------------------ numpy stand-ins
class _NdarrayType:
    """Stands for ``numpy.ndarray`` where a pickle names it (only as ``_reconstruct``'s first argument)."""


class _Pending:
    """An object under construction: rebuilt by BUILD, then swapped for the real one on the stack and in
    the memo (``memo_keys``)."""

    def __init__(self) -> None:
        self.memo_keys: list[Any] = []

    def finish(self, state: Any, unpickler: _SafeUnpickler) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


def _text(value: Any, what: str, limit: int = 64) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if not isinstance(value, str) or len(value) > limit:
        raise _BadDataError(f"{what} is not a short string")
    return value


def _small_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**40:
        raise _BadDataError(f"{what} is not a small integer")
    return value


class _PendingDtype(_Pending):
    """``numpy.dtype(spec, align, copy)`` recorded; :meth:`finish` checks the state tuple and builds the dtype."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        super().__init__()
        spec = _text(spec, "a dtype specification")
        if spec.startswith("O"):
            raise _BadDataError("it holds a numpy object array (pickled Python objects), which is not allowed")
        match = _DTYPE_SPEC.fullmatch(spec)
        if match is None:
            raise _BadDataError(f"dtype {shorten(spec, 20)!r} is not allowed (allowed: {', '.join(ALLOWED_DTYPES)})")
        self.kind, self.size = match["kind"], match["size"]
        if self.kind not in "US" and f"{self.kind}{self.size}" not in _NUMERIC_DTYPES:
            raise _BadDataError(f"dtype {spec!r} is not allowed (allowed: {', '.join(ALLOWED_DTYPES)})")

    def finish(self, state: Any, unpickler: _SafeUnpickler) -> np.dtype:
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise _BadDataError("a dtype's state is not numpy's (version, byteorder, ..., elsize, alignment, flags)")
        byteorder = _text(state[1], "a dtype's byte order", 1)
        if byteorder not in _BYTE_ORDERS or any(part is not None for part in state[2:5]):
            raise _BadDataError("a dtype's state names a byte order or sub-structure that is not allowed")
        if len(state) == 9 and state[8] is not None:
            raise _BadDataError("a dtype's state carries metadata, which is not allowed")
        elsize = _small_int(state[5], "a dtype's item size")
        _small_int(state[6], "a dtype's alignment")
        _small_int(state[7], "a dtype's flags")
        if self.kind in "US":
            itemsize = elsize if elsize > 0 else int(self.size or 0) * (4 if self.kind == "U" else 1)
            if not 0 < itemsize <= MAX_TEXT_ITEM_BYTES or (self.kind == "U" and itemsize % 4):
                raise _BadDataError(f"a text dtype has {itemsize} bytes per item (at most {MAX_TEXT_ITEM_BYTES})")
            spec = f"{self.kind}{itemsize // 4 if self.kind == 'U' else itemsize}"
        else:
            spec = f"{self.kind}{self.size}"
        order = "" if byteorder == "|" else byteorder
        dtype = np.dtype(order + spec)
        if self.kind not in "US" and elsize not in (-1, dtype.itemsize):
            raise _BadDataError(f"a dtype's state gives item size {elsize} for {spec}")
        return dtype


def _checked_dtype(value: Any) -> np.dtype:
    """A dtype this module built (finished _PendingDtype), else refuse."""
    if not isinstance(value, np.dtype) or value.hasobject or value.fields is not None or value.subdtype is not None:
        raise _BadDataError("an array's dtype is not one of the allowed plain dtypes")
    spec = f"{value.kind}{value.itemsize}"
    if value.kind in "US":
        if not 0 < value.itemsize <= MAX_TEXT_ITEM_BYTES:
            raise _BadDataError("an array's text dtype is too wide")
    elif spec not in _NUMERIC_DTYPES:
        raise _BadDataError(f"an array's dtype {spec} is not allowed")
    return value


def _raw_bytes(value: Any) -> bytes | bytearray:
    """An array's raw data: bytes, or a Python-2 ``str`` holding bytes (latin-1)."""
    if isinstance(value, bytes | bytearray):
        return value
    if isinstance(value, str):
        try:
            return value.encode("latin1")
        except UnicodeEncodeError:
            raise _BadDataError("an array's raw data holds characters beyond latin-1") from None
    if isinstance(value, list):
        raise _BadDataError("it holds a numpy object array (pickled Python objects), which is not allowed")
    raise _BadDataError(f"an array's raw data is a {type(value).__name__}, expected bytes")


def _shape(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, tuple | list) or len(value) > MAX_ARRAY_DIMENSIONS:
        raise _BadDataError("an array's shape is not a short tuple of integers")
    shape = []
    for dim in value:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 0 <= int(dim) <= 2**40:
            raise _BadDataError("an array's shape holds something other than non-negative integers")
        shape.append(int(dim))
    return tuple(shape)


def _build_array(unpickler: _SafeUnpickler, shape: Any, dtype: Any, raw: Any, fortran: Any) -> np.ndarray:
    """An array from validated pieces; its bytes are copied into a fresh buffer (never numpy's C setstate)."""
    shape_t, dtype_c, data = _shape(shape), _checked_dtype(dtype), _raw_bytes(raw)
    nbytes = math.prod(shape_t) * dtype_c.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise _BadDataError(
            f"an array declares shape {shape_t} of {dtype_c} ({nbytes:,} bytes), more than {MAX_ARRAY_BYTES:,}"
        )
    if len(data) != nbytes:
        raise _BadDataError(
            f"an array of shape {shape_t} and dtype {dtype_c} needs {nbytes:,} bytes, its data has {len(data):,}"
        )
    unpickler.array_bytes += nbytes
    if unpickler.array_bytes > MAX_TOTAL_ARRAY_BYTES:
        raise _BadDataError(f"its arrays hold more than {MAX_TOTAL_ARRAY_BYTES:,} bytes in all")
    return np.frombuffer(bytearray(data), dtype=dtype_c).reshape(shape_t, order="F" if fortran else "C")


class _PendingArray(_Pending):
    """``_reconstruct(ndarray, (0,), b'b')`` recorded; BUILD's state (version, shape, dtype, is_fortran,
    raw data) then rebuilds the array."""

    def finish(self, state: Any, unpickler: _SafeUnpickler) -> np.ndarray:
        if isinstance(state, tuple) and len(state) == 5:
            _small_int(state[0], "an array's state version")
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise _BadDataError("an array's state is not numpy's (version, shape, dtype, is_fortran, data)")
        shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool | int):
            raise _BadDataError("an array's state has a non-boolean order flag")
        arr = _build_array(unpickler, shape, dtype, raw, bool(fortran))
        if not arr.dtype.isnative:  # numpy's ndarray.__setstate__ gives native byte order too
            arr = arr.astype(arr.dtype.newbyteorder("="), order="K")
        return arr


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _PendingArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct``: only ``(ndarray, (0,), b'b')`` as numpy writes it."""
    if cls is not _NdarrayType or _shape(shape) != (0,) or typecode not in (b"b", "b"):
        raise _BadDataError("an array reconstructor got arguments numpy never writes")
    return _PendingArray()


def _make_scalar_factory(unpickler: _SafeUnpickler) -> Callable[..., Any]:
    def scalar(dtype: Any, raw: Any = None) -> Any:
        """Stand-in for ``numpy.core.multiarray.scalar(dtype, raw_bytes)``."""
        dtype_c = _checked_dtype(dtype)
        data = _raw_bytes(raw)
        if len(data) != dtype_c.itemsize:
            raise _BadDataError(f"a numpy scalar of {dtype_c} has {len(data)} data bytes, expected {dtype_c.itemsize}")
        return np.frombuffer(bytes(data), dtype=dtype_c)[0]

    return scalar


def _make_frombuffer(unpickler: _SafeUnpickler) -> Callable[..., np.ndarray]:
    def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
        """Stand-in for ``numpy.core.numeric._frombuffer`` (protocol-5 in-band arrays)."""
        if order not in ("C", "F", b"C", b"F"):
            raise _BadDataError("an array's memory order is neither C nor F")
        return _build_array(unpickler, shape, dtype, buffer, order in ("F", b"F"))

    return frombuffer


# --------------------------------------------------------------------------------- builtin stand-ins
def _latin1_encode(text: Any, encoding: Any = "latin1", errors: Any = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``, restricted to latin-1."""
    if not isinstance(text, str) or not isinstance(encoding, str) or errors != "strict":
        raise _BadDataError("_codecs.encode got arguments pickle never writes")
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise _BadDataError("it calls _codecs.encode with an encoding other than latin-1")
    return codecs.encode(text, "latin1", "strict")


def _safe_bytes(*args: Any) -> bytes:
    """``bytes(...)`` only from bytes-like data (never ``bytes(n)``, which allocates n bytes)."""
    if len(args) == 0:
        return b""
    if len(args) == 1 and isinstance(args[0], bytes | bytearray):
        return bytes(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return args[0].encode("latin1")
    raise _BadDataError("bytes() got arguments pickle never writes")


def _safe_bytearray(*args: Any) -> bytearray:
    """``bytearray(...)`` only from bytes-like data."""
    if len(args) == 0:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], bytes | bytearray):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return bytearray(args[0].encode("latin1"))
    raise _BadDataError("bytearray() got arguments pickle never writes")


def _safe_complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (real, imag)):
        raise _BadDataError("complex() got arguments other than two numbers")
    return complex(real, imag)


def _check_hashable(value: Any) -> None:
    """Refuse dict keys / set members other than strings, numbers, None and shallow tuples of them: the C
    hash of a deeply nested tuple recurses without limit and crashes the interpreter."""
    stack = [(value, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > _MAX_KEY_ITEMS or depth > _MAX_KEY_DEPTH:
            raise _BadDataError("a dict key or set member is a large or deeply nested tuple")
        if item is None or isinstance(item, str | bytes | int | float | complex | np.generic):
            continue
        if isinstance(item, tuple | frozenset):
            stack.extend((child, depth + 1) for child in item)
            continue
        raise _BadDataError(f"a dict key or set member is a {type(item).__name__}, expected text or a number")


def _checked_items(items: Any) -> list[Any]:
    if not isinstance(items, list | tuple | set | frozenset):
        raise _BadDataError("a set was built from something other than a list")
    items = list(items)
    for item in items:
        _check_hashable(item)
    return items


def _safe_set(items: Any = ()) -> set:
    return set(_checked_items(items))


def _safe_frozenset(items: Any = ()) -> frozenset:
    return frozenset(_checked_items(items))


def _safe_ordered_dict(*args: Any) -> OrderedDict:
    if args and not (len(args) == 1 and isinstance(args[0], list | tuple) and not args[0]):
        raise _BadDataError("OrderedDict() got arguments pickle never writes")
    return OrderedDict()


# Stand-ins NEWOBJ may "instantiate" (protocol 2 writes complex numbers that way); each checks its arguments.
_NEWOBJ_FACTORIES = (_safe_set, _safe_frozenset, _safe_ordered_dict, _safe_complex)


# ------------------------------------------------------------------------------------------ unpickler
def _counted(op: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(self: _SafeUnpickler) -> None:
        self.opcodes += 1
        if self.opcodes > MAX_OPCODES:
            raise _BadDataError(f"it has more than {MAX_OPCODES:,} pickle instructions")
        op(self)

    return run


def _refused_opcode(name: str) -> Callable[[Any], NoReturn]:
    def refuse(self: _SafeUnpickler) -> NoReturn:
        raise _BadDataError(f"it uses the pickle instruction {name}, which plain data never needs")

    return refuse


class _SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """The pure-Python unpickler with an allow-listed ``find_class`` and checked opcodes (see module doc)."""

    def __init__(self, data: bytes, encoding: str) -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self.opcodes = 0
        self.array_bytes = 0
        self._globals = self._allowed_globals()

    def _allowed_globals(self) -> dict[tuple[str, str], Any]:
        """(module, name) -> the stand-in handed to the pickle. Both numpy 1 and numpy 2 spellings."""
        allowed: dict[tuple[str, str], Any] = {
            ("numpy", "ndarray"): _NdarrayType,
            ("numpy", "dtype"): _PendingDtype,
            ("_codecs", "encode"): _latin1_encode,
            ("builtins", "set"): _safe_set,
            ("builtins", "frozenset"): _safe_frozenset,
            ("builtins", "complex"): _safe_complex,
            ("builtins", "bytearray"): _safe_bytearray,
            ("builtins", "bytes"): _safe_bytes,
            ("collections", "OrderedDict"): _safe_ordered_dict,
        }
        scalar, frombuffer = _make_scalar_factory(self), _make_frombuffer(self)
        for prefix in ("numpy.core", "numpy._core"):
            allowed[(f"{prefix}.multiarray", "_reconstruct")] = _reconstruct
            allowed[(f"{prefix}.multiarray", "scalar")] = scalar
            allowed[(f"{prefix}.numeric", "_frombuffer")] = frombuffer
        for name in ("set", "frozenset", "complex", "bytearray", "bytes"):  # Python 2 module name
            allowed[("__builtin__", name)] = allowed[("builtins", name)]
        return allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except (KeyError, TypeError):
            # Report the Python 3 name (protocol <= 2 pickles say __builtin__, copy_reg, ...).
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            raise _RefusedGlobalError(f"{shorten(module, 80)}.{shorten(name, 80)}") from None

    def persistent_load(self, pid: Any) -> NoReturn:
        # torch.save writes storages as persistent ids; plain pickles never contain them.
        raise _RefusedGlobalError("persistent id (torch.save storage)")

    # -- opcodes that store into the memo: remember where a _Pending object went, to swap it later
    def _memo_put(self, index: int) -> None:
        if index < 0:
            raise _BadDataError("a negative memo index")
        obj = self.stack[-1]
        self.memo[index] = obj
        if isinstance(obj, _Pending):
            obj.memo_keys.append(index)

    def load_put(self) -> None:
        self._memo_put(int(self.readline()[:-1]))

    def load_binput(self) -> None:
        self._memo_put(self.read(1)[0])

    def load_long_binput(self) -> None:
        (index,) = struct.unpack("<I", self.read(4))
        self._memo_put(index)

    def load_memoize(self) -> None:
        self._memo_put(len(self.memo))

    # -- BUILD only finishes this module's _Pending objects (never sets attributes on anything)
    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, _Pending):
            raise _BadDataError(f"it sets the state of a {type(inst).__name__}, which plain data never needs")
        if not isinstance(inst, _PendingArray | _PendingDtype):
            raise _BadDataError("it sets the state of an object twice")
        built = inst.finish(state, self)
        self.stack[-1] = built
        for key in inst.memo_keys:
            if self.memo.get(key) is inst:
                self.memo[key] = built

    # -- opcodes that hash keys or members, or store into containers
    def load_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise _BadDataError("a dict has an odd number of keys and values")
        for key in items[0::2]:
            _check_hashable(key)
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items([key, value])

    def load_setitems(self) -> None:
        self._set_items(self.pop_mark())

    def _set_items(self, items: list[Any]) -> None:
        target = self.stack[-1]
        if not isinstance(target, dict) or len(items) % 2:
            raise _BadDataError("it stores keys into something other than a dict")
        for i in range(0, len(items), 2):
            _check_hashable(items[i])
            target[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, set):
            raise _BadDataError("it adds set members to something other than a set")
        target.update(_checked_items(items))

    def load_frozenset(self) -> None:
        items = _checked_items(self.pop_mark())  # pop_mark rebinds self.append: pop first
        self.append(frozenset(items))

    def load_appends(self) -> None:
        items = self.pop_mark()
        if not isinstance(self.stack[-1], list):
            raise _BadDataError("it appends items to something other than a list")
        self.stack[-1].extend(items)

    def load_append(self) -> None:
        value = self.stack.pop()
        if not isinstance(self.stack[-1], list):
            raise _BadDataError("it appends items to something other than a list")
        self.stack[-1].append(value)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if not any(cls is allowed for allowed in _NEWOBJ_FACTORIES) or not isinstance(args, tuple):
            raise _BadDataError("it creates an object of a class plain data never needs")
        self.append(cls(*args))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        self.stack.pop()  # args
        self.stack.append(())
        if kwargs:
            raise _BadDataError("it creates an object with keyword arguments")
        self.load_newobj()

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = {}


def _dispatch_table() -> dict[int, Callable[[Any], None]]:
    base = pickle._Unpickler.dispatch  # type: ignore[attr-defined]
    overrides = {
        pickle.PUT[0]: _SafeUnpickler.load_put,
        pickle.BINPUT[0]: _SafeUnpickler.load_binput,
        pickle.LONG_BINPUT[0]: _SafeUnpickler.load_long_binput,
        pickle.MEMOIZE[0]: _SafeUnpickler.load_memoize,
        pickle.BUILD[0]: _SafeUnpickler.load_build,
        pickle.DICT[0]: _SafeUnpickler.load_dict,
        pickle.SETITEM[0]: _SafeUnpickler.load_setitem,
        pickle.SETITEMS[0]: _SafeUnpickler.load_setitems,
        pickle.ADDITEMS[0]: _SafeUnpickler.load_additems,
        pickle.FROZENSET[0]: _SafeUnpickler.load_frozenset,
        pickle.APPEND[0]: _SafeUnpickler.load_append,
        pickle.APPENDS[0]: _SafeUnpickler.load_appends,
        pickle.NEWOBJ[0]: _SafeUnpickler.load_newobj,
        pickle.NEWOBJ_EX[0]: _SafeUnpickler.load_newobj_ex,
    }
    refused = {
        pickle.INST[0]: "INST",
        pickle.OBJ[0]: "OBJ",
        pickle.EXT1[0]: "EXT1",
        pickle.EXT2[0]: "EXT2",
        pickle.EXT4[0]: "EXT4",
    }
    table = {}
    for code, op in base.items():
        chosen = overrides.get(code, op)
        if code in refused:
            chosen = _refused_opcode(refused[code])
        table[code] = _counted(chosen)
    return table


_SafeUnpickler.dispatch = _dispatch_table()


# ------------------------------------------------------------------------------------ result checks
def _check_structure(root: Any) -> None:
    """Refuse leftover stand-ins, nesting deeper than MAX_DEPTH (or cycles), and structures that expand to
    more than MAX_EXPANDED_ITEMS items. Iterative, each object visited once (memoised by id)."""
    expanded: dict[int, int] = {}  # id -> items it expands to (finished objects)
    on_path: set[int] = set()
    keep_alive: list[Any] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        obj, children_done = stack.pop()
        if isinstance(obj, _Pending | type) or callable(obj):
            raise _BadDataError("it holds an incompletely rebuilt object or a function (malformed pickle)")
        if isinstance(obj, dict):
            children = [*obj.keys(), *obj.values()]
        elif isinstance(obj, list | tuple | set | frozenset):
            children = list(obj)
        else:
            continue
        key = id(obj)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(expanded.get(id(c), 1) for c in children)
            if total > MAX_EXPANDED_ITEMS:
                raise _BadDataError(
                    f"it expands to more than {MAX_EXPANDED_ITEMS:,} values (shared lists repeated: a memo bomb)"
                )
            expanded[key] = total
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise _BadDataError("it contains a container that includes itself (a reference cycle)")
        if len(on_path) >= MAX_DEPTH:
            raise _BadDataError(f"it is nested more than {MAX_DEPTH} levels deep")
        on_path.add(key)
        keep_alive.append(obj)
        stack.append((obj, True))
        stack.extend((child, False) for child in children if id(child) not in expanded)


def _refusal_message(qualified: str) -> str:
    message = f"refuses to load pickle global '{qualified}': only numpy arrays, dicts, lists and scalars are allowed"
    if qualified.startswith("torch") or "torch.save" in qualified:
        message += _TORCH_HINT
    elif qualified.startswith("chumpy"):
        message += "; chumpy objects (old SMPL .pkl model files) are not supported: use the .npz model files"
    elif qualified.startswith("scipy.sparse"):
        message += "; scipy sparse matrices are not supported"
    return message


_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The first object of a torch.save file in the pre-1.6 (non-zip) format: a pickled int."""


def _unpickle(data: bytes, encoding: str) -> object:
    result = _SafeUnpickler(data, encoding).load()
    if type(result) is int and result == _TORCH_LEGACY_MAGIC:
        raise _RefusedGlobalError("torch.save legacy format (a torch checkpoint)")
    _check_structure(result)
    return result


def load_pickle_safely(path: str | os.PathLike[str]) -> object:
    """Load a pickle that may only contain numpy arrays, numpy scalars and plain containers.

    Args:
        path: the ``.pkl`` file (a regular file of at most :data:`MAX_PICKLE_BYTES`).

    Returns:
        The unpickled object (typically a dict of numpy arrays).

    Raises:
        InputFileError: the file is missing, not a regular file, too large or unreadable, is not a valid
            pickle (corrupt or truncated), names any global outside the allow-list (``os.system``,
            ``builtins.eval``, torch tensors, ...), or breaks a limit of the module docstring. A refused
            global is never imported nor called, and numpy's C reconstructors never see the file's data.
    """
    data = read_regular_file(path, "a pickle file", MAX_PICKLE_BYTES)
    if not data:
        raise InputFileError(path, "is empty, expected a pickle file")
    if data[:4] == b"PK\x03\x04":
        raise InputFileError(
            path,
            "is a zip archive, not a plain pickle (a torch.save checkpoint or a misnamed .npz?): "
            "only plain pickles of numpy arrays are supported" + _TORCH_HINT,
        )
    last_error: Exception | None = None
    for encoding in ("ASCII", "latin1"):
        try:
            return _unpickle(data, encoding)
        except _RefusedGlobalError as exc:
            raise InputFileError(path, _refusal_message(exc.qualified)) from None
        except _BadDataError as exc:
            raise InputFileError(path, f"is not a plain pickle of numpy arrays: {exc}") from None
        except UnicodeDecodeError as exc:
            # Python 2 byte strings: retry as latin-1 (numpy's documented way to read such pickles).
            last_error = exc
            continue
        except (pickle.UnpicklingError, EOFError) as exc:
            raise InputFileError(path, f"is not a valid pickle (corrupt or truncated): {shorten(exc, 120)}") from None
        except RecursionError:
            raise InputFileError(path, f"is nested too deeply (more than {MAX_DEPTH} levels)") from None
        except Exception as exc:  # malformed data reaching the stand-ins or builtins: ValueError, TypeError, ...
            raise InputFileError(
                path, f"is not a valid pickle of numpy arrays (corrupt?): {type(exc).__name__}: {shorten(exc, 120)}"
            ) from None
    raise InputFileError(path, f"could not be decoded as a pickle: {shorten(last_error, 120)}")
