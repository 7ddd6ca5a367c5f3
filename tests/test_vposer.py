"""VPoser: the decoder against an independent computation, gradients, encoding, both folder layouts, and
checkpoints that are hostile or broken (refused with the file named, nothing executed)."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from posecore.bodies.synthetic_vposer import random_decoder, write_vposer_v1, write_vposer_v2
from posecore.bodies.vposer import VPoserDecoder, rotation_6d_to_matrix
from posecore.errors import InputFileError
from posecore.io.torch_checkpoint import OpaqueObject, read_checkpoint
from posecore.io.vposer_files import find_vposer_checkpoint, load_vposer
from posecore.rotations import axis_angle_to_matrix


def numpy_decode(decoder: VPoserDecoder, z: np.ndarray, slope: float) -> np.ndarray:
    """VPoser's decode written out in numpy + scipy, for comparison: (N, 32) -> (N, 21, 3) axis-angle."""
    from scipy.spatial.transform import Rotation

    def leaky(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, slope * x)

    w = {k: getattr(decoder, k).double().numpy() for k in ("fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias",
                                                            "out_weight", "out_bias")}  # fmt: skip
    h = leaky(z @ w["fc1_weight"].T + w["fc1_bias"])
    h = leaky(h @ w["fc2_weight"].T + w["fc2_bias"])
    out = (h @ w["out_weight"].T + w["out_bias"]).reshape(-1, 3, 2)  # human_body_prior: view(-1, 3, 2)
    a, b = out[:, :, 0], out[:, :, 1]
    b1 = a / np.linalg.norm(a, axis=1, keepdims=True)
    b2 = b - (b1 * b).sum(1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    mats = np.stack([b1, b2, np.cross(b1, b2)], axis=-1)
    return Rotation.from_matrix(mats).as_rotvec().reshape(z.shape[0], 21, 3)


@pytest.mark.parametrize(("version", "slope"), [("v1", 0.2), ("v2", 0.01)])
def test_decode_matches_an_independent_computation(version: str, slope: float) -> None:
    decoder = random_decoder(version, seed=4)
    z = np.random.default_rng(0).normal(size=(6, 32))
    ours = decoder.decode(torch.tensor(z, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ours, numpy_decode(decoder, z, slope), atol=1e-6)
    # the slope matters: the other version's slope gives a different pose
    other = numpy_decode(decoder, z, 0.01 if slope == 0.2 else 0.2)
    assert np.abs(ours - other).max() > 1e-3


def test_6d_rotations_are_proper_rotations() -> None:
    d6 = torch.randn(100, 6, dtype=torch.float64)
    mats = rotation_6d_to_matrix(d6)
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    assert torch.allclose(mats.transpose(1, 2) @ mats, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(mats), torch.ones(100, dtype=torch.float64), atol=1e-12)
    # the first column is the first 6D column normalised (row-major 3x2 layout)
    first = d6.reshape(100, 3, 2)[:, :, 0]
    assert torch.allclose(mats[:, :, 0], first / first.norm(dim=1, keepdim=True), atol=1e-12)


def test_decode_gradient_matches_finite_differences() -> None:
    decoder = random_decoder("v1", seed=2)
    z = torch.randn(32, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: decoder.decode_matrices(v), (z,), eps=1e-6, atol=1e-5)


def test_encode_recovers_a_decodable_pose() -> None:
    decoder = random_decoder("v1", seed=7)
    pose = decoder.decode(0.5 * torch.randn(32, generator=torch.Generator().manual_seed(1))).detach()
    code = decoder.encode(pose, iterations=400)
    error = (axis_angle_to_matrix(decoder.decode(code)) - axis_angle_to_matrix(pose)).abs().max()
    start = (axis_angle_to_matrix(decoder.decode(torch.zeros(32))) - axis_angle_to_matrix(pose)).abs().max()
    assert float(error) < 0.05 < float(start)


@pytest.mark.parametrize("legacy", [True, False])
def test_v1_folder_in_either_torch_format(tmp_path: Path, legacy: bool) -> None:
    decoder = random_decoder("v1", seed=1)
    folder = write_vposer_v1(tmp_path, decoder, legacy_format=legacy)
    assert (zipfile.is_zipfile(folder / "snapshots" / "TR00_E096.pt")) is not legacy
    for location in (folder, tmp_path, folder / "snapshots" / "TR00_E096.pt"):
        loaded = load_vposer(location)
        assert loaded.version == "v1"
        assert torch.equal(loaded.out_weight, decoder.out_weight)
    assert not (folder / "IMPORTED").exists()


def test_v2_lightning_checkpoint(tmp_path: Path) -> None:
    decoder = random_decoder("v2", seed=1)
    folder = write_vposer_v2(tmp_path, decoder)
    ckpt = find_vposer_checkpoint(folder)
    assert ckpt.name.endswith(".ckpt")
    raw = read_checkpoint(ckpt)
    assert raw["epoch"] == 8 and raw["pytorch-lightning_version"] == "1.2.0"
    assert isinstance(raw["hyper_parameters"]["_config"], OpaqueObject)  # OmegaConf: never imported
    assert all(k.startswith("vp_model.") for k in raw["state_dict"])
    loaded = load_vposer(folder)
    assert loaded.version == "v2" and torch.equal(loaded.fc2_weight, decoder.fc2_weight)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [True, False])
def test_a_checkpoint_that_runs_code_is_refused(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "PWNED"
    state = {"bodyprior_dec_fc1.weight": torch.zeros(512, 32), "payload": _RunsCode(marker)}
    (tmp_path / "vposer_v1_0" / "snapshots").mkdir(parents=True)
    path = tmp_path / "vposer_v1_0" / "snapshots" / "TR00_E096.pt"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(InputFileError, match=r"TR00_E096\.pt: refused.*(posix|os)\.system"):
        load_vposer(tmp_path)
    assert not marker.exists()


def test_a_checkpoint_without_decoder_weights_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(InputFileError, match=r"x\.pt: has no VPoser decoder weights.*encoder\.weight"):
        load_vposer(path)


def test_wrong_decoder_shapes_are_named(tmp_path: Path) -> None:
    decoder = random_decoder("v1", seed=0)
    folder = write_vposer_v1(tmp_path, decoder, legacy_format=False)
    snap = folder / "snapshots" / "TR00_E096.pt"
    state = torch.load(snap, weights_only=True)
    state["bodyprior_dec_out.weight"] = torch.zeros(120, 512)
    torch.save(state, snap)
    with pytest.raises(InputFileError, match=r"out_weight has shape \(120, 512\), expected \(126, 512\)"):
        load_vposer(folder)


def _zip_checkpoint(tmp_path: Path, storage_numel: int, data_bytes: bytes) -> Path:
    """A torch zip checkpoint with one float storage declaring ``storage_numel`` elements."""
    buffer = io.BytesIO()
    pickled = (b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00"
               b"storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06J"
               + storage_numel.to_bytes(4, "little") + b"tq\x07QK\x00K\x01\x85q\x08K\x01\x85q\t\x89ccollections\n"
               b"OrderedDict\nq\n)Rq\x0btq\x0cRq\rs.")  # fmt: skip
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("archive/data.pkl", pickled)
        zf.writestr("archive/data/0", data_bytes)
        zf.writestr("archive/version", "3\n")
    path = tmp_path / "c.pt"
    path.write_bytes(buffer.getvalue())
    return path


def test_hand_made_checkpoint_reads_and_lies_are_caught(tmp_path: Path) -> None:
    ok = _zip_checkpoint(tmp_path, 1, np.float32(2.5).tobytes())
    assert float(read_checkpoint(ok)["a"][0]) == 2.5
    lying = _zip_checkpoint(tmp_path, 2_000_000_000, b"\x00" * 4)  # 8 GB declared, 4 bytes present
    with pytest.raises(InputFileError, match=r"c\.pt: refused.*2000000000"):
        read_checkpoint(lying)
    short = _zip_checkpoint(tmp_path, 3, b"\x00" * 4)
    with pytest.raises(InputFileError, match=r"c\.pt: refused.*(tensor|storage|bytes)"):
        read_checkpoint(short)


def test_memo_bomb_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pt"
    bomb.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1] + b"r\x00\x00\x00\x20.")  # memo 2^29
    with pytest.raises(InputFileError, match=r"bomb\.pt"):
        read_checkpoint(bomb)
    deep = tmp_path / "deep.pt"
    deep.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"\x80\x02" + b"(" * 100_000 + b"t.")
    with pytest.raises(InputFileError, match=r"deep\.pt"):
        read_checkpoint(deep)


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04broken zip"])
def test_broken_checkpoints_name_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "b.pt"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=r"b\.pt"):
        read_checkpoint(path)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="VPoser folder not found"):
        find_vposer_checkpoint(tmp_path / "missing")
    with pytest.raises(InputFileError, match="holds no VPoser model"):
        find_vposer_checkpoint(tmp_path)
    write_vposer_v1(tmp_path, random_decoder("v1"))
    write_vposer_v2(tmp_path, random_decoder("v2"))
    with pytest.raises(InputFileError, match=r"several VPoser models \(V02_05, vposer_v1_0\)"):
        find_vposer_checkpoint(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputFileError, match="not a VPoser checkpoint"):
        find_vposer_checkpoint(tmp_path / "notes.txt")


def test_a_zero_stride_tensor_cannot_allocate_gigabytes(tmp_path: Path) -> None:
    """A tensor may view a 1-element storage with stride 0: its own size is bounded, not only its storage."""
    path = tmp_path / "z.pt"
    torch.save({"w": torch.zeros(1).expand(1000)}, path)  # a legitimate stride-0 view: read fine
    assert read_checkpoint(path)["w"].shape == (1000,)
    members = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            members[name] = zf.read(name)
    pkl = next(n for n in members if n.endswith("data.pkl"))
    patched = members[pkl].replace(b"M\xe8\x03\x85", b"J\x00\xca\x9a;\x85")  # size (1000,) -> (10^9,)
    assert patched != members[pkl]
    members[pkl] = patched
    with zipfile.ZipFile(path, "w") as zf:  # a well-formed archive: only the declared size lies
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(InputFileError, match=r"z\.pt: refused.*1000000000"):
        read_checkpoint(path)
