"""Hostile ``.npz`` files as initialisation files and as SMPL-X model files: no pickle ever runs, sizes are
checked before anything is decompressed, every failure is one line naming the file and the key.

Hostile archives are built here: pickled members whose ``__reduce__`` would create a marker file, zip
entries patched to claim encryption, unknown compression or 8 GB, corrupt deflate streams, npy headers
claiming (10**12,) elements.
"""

from __future__ import annotations

import io
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from posecore.bodies.smplx_file import load_smplx_file
from posecore.errors import InputFileError, ParameterError
from posecore.fuzz import tiny_smplx_arrays
from posecore.io.init_files import read_init


class _TouchMarker:
    """Pickles as ``open(marker, 'w')``: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _object_array(marker: Path) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = _TouchMarker(marker)
    return arr


def npz_bytes(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def patch_member(data: bytes, name: str, **fields: int) -> bytes:
    """Rewrite zip header fields of member ``name`` (in its local header and the central directory):
    ``flags``, ``method``, ``file_size`` (uncompressed)."""
    out = bytearray(data)
    encoded = name.encode()
    local = {"flags": (6, "<H"), "method": (8, "<H"), "file_size": (22, "<I")}
    central = {"flags": (8, "<H"), "method": (10, "<H"), "file_size": (24, "<I")}
    pos = out.find(b"PK\x03\x04")
    while pos != -1:
        (name_len,) = struct.unpack_from("<H", out, pos + 26)
        if out[pos + 30 : pos + 30 + name_len] == encoded:
            for key, value in fields.items():
                offset, fmt = local[key]
                struct.pack_into(fmt, out, pos + offset, value)
        pos = out.find(b"PK\x03\x04", pos + 4)
    pos = out.find(b"PK\x01\x02")
    while pos != -1:
        (name_len,) = struct.unpack_from("<H", out, pos + 28)
        if out[pos + 46 : pos + 46 + name_len] == encoded:
            for key, value in fields.items():
                offset, fmt = central[key]
                struct.pack_into(fmt, out, pos + offset, value)
        pos = out.find(b"PK\x01\x02", pos + 4)
    return bytes(out)


def _init_arrays() -> dict[str, np.ndarray]:
    return {"body_pose": np.zeros((1, 63), np.float32), "betas": np.zeros((1, 10), np.float32)}


def _npy_with_header(header: str, data: bytes = b"") -> bytes:
    head = header.encode("latin1")
    head += b" " * ((64 - (10 + len(head) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + data


def _zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- init .npz files
def _hostile_init_files(marker: Path) -> dict[str, tuple[bytes, str]]:
    good = npz_bytes(_init_arrays())
    good_deflated = npz_bytes(_init_arrays(), compressed=True)
    corrupt = bytearray(good_deflated)
    start = corrupt.find(b"body_pose.npy") + len("body_pose.npy") + 20
    corrupt[start : start + 40] = b"\xff" * 40
    huge_header = _npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }")
    return {
        "pickled member": (npz_bytes({**_init_arrays(), "evil": _object_array(marker)}), "'evil' is a pickled object"),
        "encrypted member": (patch_member(good, "betas.npy", flags=1), "encrypted"),
        "unknown compression": (patch_member(good, "betas.npy", method=14), "compression method 14"),
        "8 GB member": (patch_member(good, "body_pose.npy", file_size=2**32 - 1), "declares 4,294,967,295 bytes"),
        "corrupt deflate stream": (bytes(corrupt), "'body_pose'"),
        "npy header claiming 10**12 elements": (
            _zip_of({"body_pose.npy": huge_header}),
            "declares shape (1000000000000,)",
        ),
        "header and data disagree": (
            _zip_of({"body_pose.npy": _npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (63,), }")}),
            "corrupt or truncated",
        ),
        "structured dtype": (npz_bytes({"body_pose": np.zeros(63, dtype=[("a", "<f8")])}), "expected plain numbers"),
        "npy header with an unclosed brace (fuzzer)": (
            _zip_of({"body_pose.npy": _npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (63,), ")}),
            "'body_pose' is not a readable .npy array (corrupt header?)",
        ),
        "npy header of 60 KB": (
            _zip_of(
                {
                    "body_pose.npy": _npy_with_header(
                        "{'descr': '<f8', 'fortran_order': False, 'shape': (63,), }" + " " * 60_000
                    )
                }
            ),
            "'body_pose' is not a readable .npy array (corrupt header?)",
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "pickled member",
        "encrypted member",
        "unknown compression",
        "8 GB member",
        "corrupt deflate stream",
        "npy header claiming 10**12 elements",
        "header and data disagree",
        "structured dtype",
        "npy header of 60 KB",
        "npy header with an unclosed brace (fuzzer)",
    ],
)
def test_hostile_init_npz_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    data, mention = _hostile_init_files(marker)[name]
    path = tmp_path / "init.npz"
    path.write_bytes(data)
    with pytest.raises(InputFileError) as info:
        read_init(path)
    message = str(info.value)
    assert message.startswith(str(path)) and mention in message and "\n" not in message, message
    assert not marker.exists()


def test_unused_zip_bomb_member_is_never_decompressed(tmp_path: Path) -> None:
    """A 1 GB member of zeros (1 MB compressed) beside the real arrays: only its header is read."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in _init_arrays().items():
            zf.writestr(f"{key}.npy", npz_member(value))
        with zf.open("bomb.npy", "w", force_zip64=True) as member:
            member.write(_npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (1073741824,), }"))
            chunk = bytes(2**24)
            for _ in range(64):
                member.write(chunk)
    path = tmp_path / "bomb.npz"
    path.write_bytes(buffer.getvalue())
    assert path.stat().st_size < 2**21
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    init = read_init(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert init.joint_rotations["pelvis"].tolist() == [0.0, 0.0, 0.0]
    assert grown_mb < 200, grown_mb


def npz_member(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, value, allow_pickle=False)
    return buffer.getvalue()


def test_archive_listing_a_million_members_is_refused_before_reading_its_directory(tmp_path: Path) -> None:
    good = npz_bytes(_init_arrays())
    end = good.rfind(b"PK\x05\x06")
    patched = bytearray(good)
    struct.pack_into("<HH", patched, end + 8, 65535, 65535)  # entries on this disk / in total
    path = tmp_path / "many.npz"
    path.write_bytes(bytes(patched))
    with pytest.raises(InputFileError, match="lists 65,535 archive members"):
        read_init(path)


@pytest.mark.parametrize(
    ("content", "mention"),
    [
        ("[" * 2000 + "]" * 2000, "nested too deeply"),
        ('{"body_pose": ' + "[" * 40 + "0" + "]" * 40 + "}", "nested too deeply"),
        ('{"betas": [' + "9" * 5000 + "]}", "5000 digits"),
        ('{"transl": [1e308, 0, 0]}', "beyond any plausible parameter"),
        ('{"transl": [99999999999999999999999, 0, 0]}', "too large for 64 bits"),
        ('{"joint_names": ["pelvis", ["a", "b"]], "rotations": [[0, 0, 0], [0, 0, 0]]}', "'joint_names'"),
        ('{"body_pose": [0, [1, 2]]}', "ragged"),
        ('{"transl": [0.1, 0.2, 0.3], "flat_hand_mean": []}', "'flat_hand_mean' has 0 values"),
    ],
)
def test_hostile_json_is_refused_in_one_line(tmp_path: Path, content: str, mention: str) -> None:
    path = tmp_path / "init.json"
    path.write_text(content)
    with pytest.raises(InputFileError) as info:
        read_init(path)
    message = str(info.value)
    assert mention in message and "\n" not in message and len(message) < 1200, message


def test_device_and_fifo_init_files_are_refused_at_once(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "init.npz"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match=r"pipe \(FIFO\)"):
        read_init(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    with pytest.raises(InputFileError, match="character device"):
        read_init(zero)


# ------------------------------------------------------------------------------------- SMPL-X model files
def _model_file(tmp_path: Path, replace: dict | None = None, compressed: bool = False) -> Path:
    arrays = {**tiny_smplx_arrays(), **(replace or {})}
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    path.write_bytes(npz_bytes(arrays, compressed))
    return path


def test_tiny_model_file_loads(tmp_path: Path) -> None:
    data = load_smplx_file(_model_file(tmp_path), min_vertices=1)
    assert data.num_vertices == 12 and data.parents[0] == -1 and data.posedirs_layout == "v3p"


@pytest.mark.parametrize(
    ("replace", "mention"),
    [
        ({"weights": np.full((12, 55), "0.1")}, "'weights' holds <U3 data, expected numbers"),
        ({"f": np.zeros((12, 3))}, "'f' holds float64 data, expected integer indices"),
        ({"v_template": np.full((12, 3), np.nan)}, "'v_template' contains NaN"),
        ({"shapedirs": np.full((12, 3, 20), 1e308)}, "'shapedirs' holds values up to 1e+308"),
        ({"posedirs": np.zeros((12, 3, 400))}, "'posedirs' has shape (12, 3, 400)"),
        ({"kintree_table": np.full((2, 55), 60, np.int64)}, "'kintree_table' has invalid parents"),
        ({"f": np.full((12, 3), 99, np.uint32)}, "'f' must hold vertex indices in [0, 12)"),
    ],
)
def test_bad_model_arrays_name_file_and_key(tmp_path: Path, replace: dict, mention: str) -> None:
    path = _model_file(tmp_path, replace)
    with pytest.raises(InputFileError) as info:
        load_smplx_file(path, min_vertices=1)
    assert info.value.path == str(path) and mention in str(info.value), str(info.value)


def test_model_member_claiming_8_gb_is_refused_before_decompressing(tmp_path: Path) -> None:
    path = _model_file(tmp_path, compressed=True)
    path.write_bytes(patch_member(path.read_bytes(), "posedirs.npy", file_size=2**32 - 1))
    with pytest.raises(InputFileError, match="'posedirs' declares 4,294,967,295 bytes"):
        load_smplx_file(path, min_vertices=1)


def test_pickled_model_array_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = _model_file(tmp_path, {"v_template": _object_array(marker)})
    with pytest.raises(InputFileError) as info:
        load_smplx_file(path, min_vertices=1)
    assert info.value.path == str(path) and "'v_template' is a pickled object array" in str(info.value)
    assert not marker.exists()


@pytest.mark.slow
def test_smplx_body_never_lets_smplx_unpickle_the_model_file(synthetic_smplx_dir: Path, tmp_path: Path) -> None:
    """The official files carry pickled members (joint2num, part2num) that smplx unpickles: a model folder
    with an extra pickled member must load without running it, and a pickled required array is refused."""
    pytest.importorskip("smplx")
    import torch

    from posecore.bodies.smplx_body import SmplxBody

    marker = tmp_path / "PWNED"
    path = tmp_path / "smplx" / "SMPLX_NEUTRAL.npz"
    path.parent.mkdir()
    shutil.copyfile(synthetic_smplx_dir / "smplx" / "SMPLX_NEUTRAL.npz", path)
    with zipfile.ZipFile(path, "a") as zf:
        for key in ("notes", "joint2num"):
            zf.writestr(f"{key}.npy", npz_member_pickled(_object_array(marker)))
    body = SmplxBody(tmp_path)
    assert not marker.exists()
    reference = SmplxBody(synthetic_smplx_dir)
    params = body.default_params()
    params.rotations = 0.2 * torch.randn(55, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(body(params).vertices, reference(params).vertices)

    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as zf:
        # a second "posedirs.npy" entry shadows the real one
        zf.writestr("posedirs.npy", npz_member_pickled(_object_array(marker)))
    with pytest.raises(InputFileError) as info:
        SmplxBody(tmp_path)
    assert info.value.path == str(path) and "'posedirs' is a pickled object array" in str(info.value)
    assert not marker.exists()


def npz_member_pickled(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, value, allow_pickle=True)
    return buffer.getvalue()


def test_model_path_that_is_a_device_or_bad_gender(tmp_path: Path) -> None:
    from posecore.bodies import load_body_model

    with pytest.raises(InputFileError, match="character device"):
        load_body_model("smplx:/dev/zero")
    (tmp_path / "smplx").mkdir()
    with pytest.raises(ParameterError, match="gender 'alien'"):
        load_body_model(f"smplx:{tmp_path}:alien")


def test_checkpoint_zip_needing_a_newer_zip_version_is_one_line(tmp_path: Path) -> None:
    """Found by the fuzzer: a VPoser checkpoint whose zip directory asks for zip version 6.4 made zipfile
    raise NotImplementedError past the checkpoint reader."""
    import torch

    from posecore.io.torch_checkpoint import read_checkpoint

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buffer)
    data = bytearray(buffer.getvalue())
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        struct.pack_into("<H", data, pos + 6, 64)  # version needed to extract: 6.4
        pos = data.find(b"PK\x01\x02", pos + 4)
    path = tmp_path / "snapshot.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"snapshot\.pt: is not a readable checkpoint .*zip file version 6\.4"):
        read_checkpoint(path)
