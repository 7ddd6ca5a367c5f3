"""Hostile pickles: nothing runs, nothing crashes, memory stays bounded; genuine numpy pickles load exactly.

Every hostile file is generated here as raw bytes and handed only to PoseFit's reader. Readers that could
crash the interpreter are run in a subprocess with a memory limit (see :func:`run_reader_isolated`), so a
regression shows up as a failed test (a negative exit code, or memory exhaustion), not a dead test run.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from posecore.errors import InputFileError
from posecore.io.safe_pickle import MAX_DEPTH, load_pickle_safely

REPO = Path(__file__).resolve().parents[1]
P2 = b"\x80\x02"


def run_reader_isolated(reader: str, path: Path, memory_mb: int = 1500, timeout: float = 60) -> tuple[int, str]:
    """Run ``posecore.fuzz.read_one(reader, path)`` in a child with RLIMIT_AS = ``memory_mb``; returns
    (exit code, stdout). Exit 0 = read fine, 3 = PoseFit's own error; anything else is a failure."""
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({memory_mb} * 2**20, {memory_mb} * 2**20))
        from posecore.fuzz import read_one
        sys.exit(read_one({reader!r}, {str(path)!r}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------ genuine pickles
def _sample() -> dict:
    return {
        "betas": np.linspace(-2.0, 2.0, 10).astype(np.float32).reshape(1, 10),
        "body_pose": np.arange(63, dtype=np.float64).reshape(1, 63) / 100,
        "ints": np.array([[1, -2], [3, 4]], dtype=np.int32),
        "big_endian": np.arange(4, dtype=">f8"),
        "flags": np.array([True, False]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "names": np.array(["pelvis", "left_hip"]),
        "raw_names": np.array([b"a", b"bc"]),
        "empty": np.zeros((0, 3), np.float32),
        "scalar": np.float64(2.5),
        "int_scalar": np.int64(-7),
        "complex": 1 + 2j,
        "ordered": OrderedDict(a=1, b=[2, 3]),
        "frozen": frozenset({1, "x"}),
        "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"),
        "gender": "male",
    }


def _assert_same(out: object, ref: object) -> None:
    if isinstance(ref, np.ndarray):
        assert isinstance(out, np.ndarray) and out.dtype == ref.dtype and out.shape == ref.shape
        np.testing.assert_array_equal(out, ref)
        assert out.flags.writeable
    elif isinstance(ref, dict):
        assert type(out) is type(ref) and list(out) == list(ref)
        for key in ref:
            _assert_same(out[key], ref[key])
    else:
        assert type(out) is type(ref) and out == ref


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_genuine_numpy_pickles_load_exactly_as_pickle_does(tmp_path: Path, protocol: int) -> None:
    raw = pickle.dumps(_sample(), protocol=protocol)
    out = load_pickle_safely(write(tmp_path, f"p{protocol}.pkl", raw))
    _assert_same(out, pickle.loads(raw))


@pytest.mark.parametrize("spelling", [b"numpy.core", b"numpy._core"])
def test_numpy1_and_numpy2_module_names_both_load(tmp_path: Path, spelling: bytes) -> None:
    raw = pickle.dumps({"x": np.arange(5.0), "s": np.float32(1.5)}, protocol=2)
    raw = raw.replace(b"numpy._core.", b"numpy.core.").replace(b"numpy.core.", spelling + b".")
    out = load_pickle_safely(write(tmp_path, "n.pkl", raw))
    np.testing.assert_array_equal(out["x"], np.arange(5.0))
    assert out["s"] == np.float32(1.5) and out["s"].dtype == np.float32


# ------------------------------------------------------------------------------------ hostile pickles
def _dtype_with_state(state: bytes) -> bytes:
    """numpy.dtype('f8', False, True) followed by BUILD with a hand-written state tuple."""
    return P2 + b"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R" + state + b"b."


MALFORMED_DTYPE = _dtype_with_state(b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff\x85t")


def _memo_bomb(levels: int = 30, fan: int = 10) -> bytes:
    data = bytearray(P2 + b"K\x01q\x00")
    for i in range(1, levels + 1):
        data += b"(" + (b"h" + bytes([i - 1])) * fan + b"lq" + bytes([i])
    return bytes(data + b".")


def _huge_array() -> bytes:
    raw = pickle.dumps(np.zeros(3), 2)
    assert raw.count(b"K\x03\x85") == 1
    return raw.replace(b"K\x03\x85", b"J" + struct.pack("<i", 2_000_000_000) + b"\x85")


def _object_array() -> bytes:
    arr = np.empty(2, dtype=object)
    arr[:] = [1, "x"]
    return pickle.dumps({"a": arr}, 2)


HOSTILE = {
    "malformed dtype state (segfaulted numpy)": (MALFORMED_DTYPE, "dtype's state"),
    "dtype of another kind": (P2 + b"cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R.", "is not allowed"),
    "dtype with sub-structure": (
        _dtype_with_state(b"(K\x03X\x01\x00\x00\x00<(K\x01tNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"),
        "sub-structure",
    ),
    "memo index 2**29 (4 GB memo)": (P2 + b"Nr" + struct.pack("<I", 2**29) + b"h\x00.", "Memo value not found"),
    "billion laughs": (_memo_bomb(), "memo bomb"),
    "ndarray of 2e9 doubles": (_huge_array(), "16,000,000,000 bytes"),
    "dict key nested a million tuples deep": (P2 + b"}N" + b"\x85" * 1_000_000 + b"Ns.", "deeply nested"),
    "value nested 100,000 deep": (P2 + b"N" + b"]" * 1 + b"\x85" * 100_000 + b".", f"more than {MAX_DEPTH} levels"),
    "list containing itself": (P2 + b"]q\x00h\x00a.", "reference cycle"),
    "object array": (_object_array(), "object array"),
    "bytes(2**40)": (P2 + b"c__builtin__\nbytes\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R.", "bytes()"),
    "BUILD on a stand-in function": (P2 + b"c_codecs\nencode\n}b.", "sets the state of a function"),
    "INST opcode": (b"(i__builtin__\nset\n.", "INST"),
    "wrong raw data length": (pickle.dumps(np.zeros(3), 2).replace(b"K\x03\x85", b"K\x04\x85"), "needs 32 bytes"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pickle_is_refused_with_one_line(tmp_path: Path, name: str) -> None:
    data, mention = HOSTILE[name]
    path = write(tmp_path, "hostile.pkl", data)
    code, output = run_reader_isolated("pickle", path)
    assert code == 3, f"{name}: exit {code}: {output[-2000:]}"
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "hostile.pkl" in lines[0] and mention in lines[0], output[-2000:]


def test_code_running_global_is_never_imported_nor_called(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    payload = P2 + b"cposix\nsystem\nX" + struct.pack("<I", len(f"touch {marker}")) + f"touch {marker}".encode()
    path = write(tmp_path, "evil.pkl", payload + b"\x85R.")
    with pytest.raises(InputFileError, match=r"refuses to load pickle global 'posix\.system'"):
        load_pickle_safely(path)
    assert not marker.exists()


def test_non_regular_files_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "init.pkl"
    import os

    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(InputFileError, match=r"pipe \(FIFO\)"):
        load_pickle_safely(fifo)
    with pytest.raises(InputFileError, match="character device"):
        load_pickle_safely("/dev/zero")


def test_legacy_torch_save_file_is_named_as_such(tmp_path: Path) -> None:
    """torch.save before 1.6 wrote several pickles in a row, the first being a magic int."""
    import torch

    path = tmp_path / "old.pkl"
    torch.save({"betas": torch.zeros(10)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(InputFileError, match=r"torch\.save legacy format") as info:
        load_pickle_safely(path)
    assert "numpy arrays" in str(info.value)
