"""Initialisation files: safe pickles, SMPLify-X / npz / json / SMPLer-X / AMASS / PoseFit formats."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from posecore.bodies.smplx_joints import LEFT_HAND_JOINT_NAMES, RIGHT_HAND_JOINT_NAMES
from posecore.errors import InputFileError
from posecore.io.init_files import (
    SMPL_JOINT_NAMES,
    SMPLX_JOINT_NAMES,
    BodyInit,
    read_init,
    read_init_sequence,
)
from posecore.io.safe_pickle import load_pickle_safely

RNG = np.random.default_rng(0)


def smplifyx_result(**overrides: np.ndarray) -> dict[str, np.ndarray]:
    """A dict shaped like SMPLify-X's result pickle (float32, batch dimension 1)."""
    result = {
        "camera_rotation": np.eye(3, dtype=np.float32)[None],
        "camera_translation": np.array([[0.05, 0.2, 12.5]], np.float32),
        "betas": RNG.normal(size=(1, 10)).astype(np.float32),
        "global_orient": np.array([[np.pi, 0.1, -0.05]], np.float32),
        "left_hand_pose": RNG.normal(size=(1, 12)).astype(np.float32),
        "right_hand_pose": RNG.normal(size=(1, 12)).astype(np.float32),
        "jaw_pose": np.array([[0.2, 0.0, 0.0]], np.float32),
        "leye_pose": np.zeros((1, 3), np.float32),
        "reye_pose": np.array([[0.0, 0.03, 0.0]], np.float32),
        "expression": RNG.normal(size=(1, 10)).astype(np.float32),
        "body_pose": (0.1 * RNG.normal(size=(1, 63))).astype(np.float32),
    }
    result.update(overrides)
    return result


def write_pickle(path: Path, obj: object, protocol: int = 2) -> Path:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


# ------------------------------------------------------------------------------------------ safe pickle
class _Exploit:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class _EvalExploit:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path, protocol: int) -> None:
    sentinel = tmp_path / "SENTINEL"
    path = write_pickle(tmp_path / "evil.pkl", {"betas": np.zeros(10), "x": _Exploit(sentinel)}, protocol)
    with pytest.raises(InputFileError) as info:
        load_pickle_safely(path)
    assert "refuses to load pickle global" in str(info.value)
    assert "system" in str(info.value)
    assert str(path) in str(info.value)
    assert not sentinel.exists()
    # read_init goes through the same loader
    with pytest.raises(InputFileError):
        read_init(path)
    assert not sentinel.exists()


def test_pickle_with_eval_is_refused(tmp_path: Path) -> None:
    path = write_pickle(tmp_path / "evil.pkl", [_EvalExploit()])
    with pytest.raises(InputFileError, match=r"builtins\.eval"):
        load_pickle_safely(path)


def test_pickle_with_torch_tensor_is_refused_with_hint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = write_pickle(tmp_path / "t.pkl", {"betas": torch.zeros(10)})
    with pytest.raises(InputFileError, match="torch tensors are not supported"):
        load_pickle_safely(path)


def test_torch_save_zip_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "t.pkl"
    torch.save({"betas": torch.zeros(10)}, path)
    with pytest.raises(InputFileError, match="zip archive"):
        load_pickle_safely(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickle_loads_exactly(tmp_path: Path, protocol: int) -> None:
    data = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "i": np.array([1, 2, 3], np.int64),
        "s": np.float64(2.5),
        "nested": [1, (2.0, "x"), {"k": None, "b": b"\x00\xff", "set": {1, 2}}],
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    out = load_pickle_safely(write_pickle(tmp_path / "ok.pkl", data, protocol))
    assert isinstance(out, dict)
    np.testing.assert_array_equal(out["a"], data["a"])
    assert out["a"].dtype == np.float32
    np.testing.assert_array_equal(out["i"], [1, 2, 3])
    assert out["s"] == 2.5 and isinstance(out["s"], np.floating)
    assert out["nested"] == [1, (2.0, "x"), {"k": None, "b": b"\x00\xff", "set": {1, 2}}]
    np.testing.assert_array_equal(out["fortran"], data["fortran"])


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes str and bytes as Python 2 byte strings (BINSTRING), like a Python 2 pickle.dump."""

    def _write_py2_string(self, raw: bytes) -> None:
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(raw)

    def save_bytes(self, obj: bytes) -> None:
        self._write_py2_string(obj)

    def save_str(self, obj: str) -> None:
        self._write_py2_string(obj.encode("ascii"))

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def test_python2_pickle_needs_latin1_and_loads(tmp_path: Path) -> None:
    betas = np.linspace(-2.0, 2.0, 10)  # non-ASCII bytes in the raw data
    path = tmp_path / "py2.pkl"
    with path.open("wb") as f:
        _Py2Pickler(f, protocol=2).dump({"betas": betas, "gender": "male"})
    raw = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(raw)
    assert b"_codecs" not in raw and b"numpy.core.multiarray" in raw
    with pytest.raises(UnicodeDecodeError):  # what a plain pickle.load does with such a file
        pickle.loads(raw)
    out = load_pickle_safely(path)
    np.testing.assert_array_equal(out["betas"], betas)
    assert out["gender"] == "male"


def test_corrupt_and_truncated_pickles(tmp_path: Path) -> None:
    good = pickle.dumps(smplifyx_result(), protocol=2)
    truncated = tmp_path / "trunc.pkl"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputFileError, match=r"trunc\.pkl"):
        load_pickle_safely(truncated)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a pickle at all")
    with pytest.raises(InputFileError, match=r"garbage\.pkl"):
        load_pickle_safely(garbage)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        load_pickle_safely(empty)
    with pytest.raises(InputFileError, match="file not found"):
        load_pickle_safely(tmp_path / "nope.pkl")


# ----------------------------------------------------------------------------------------- SMPLify-X
def test_joint_names_match_smplx_package() -> None:
    assert len(SMPLX_JOINT_NAMES) == 55
    assert SMPLX_JOINT_NAMES[:3] == ["pelvis", "left_hip", "right_hip"]
    assert SMPLX_JOINT_NAMES[22:25] == ["jaw", "left_eye_smplhf", "right_eye_smplhf"]
    assert SMPLX_JOINT_NAMES[25] == "left_index1" and SMPLX_JOINT_NAMES[-1] == "right_thumb3"
    joint_names = pytest.importorskip("smplx.joint_names")
    assert joint_names.JOINT_NAMES[:55] == SMPLX_JOINT_NAMES
    assert len(SMPL_JOINT_NAMES) == 24


def test_smplifyx_pkl_protocol2(tmp_path: Path) -> None:
    result = smplifyx_result()
    init = read_init(write_pickle(tmp_path / "000.pkl", result, protocol=2))
    assert isinstance(init, BodyInit)
    assert init.format == "smplify-x-pkl"
    assert init.model_name == "smplx"
    assert init.source == str(tmp_path / "000.pkl")
    # every joint but the PCA hands' fingers (the body model expands those from the coefficients)
    fingers = set(LEFT_HAND_JOINT_NAMES + RIGHT_HAND_JOINT_NAMES)
    assert list(init.joint_rotations) == [n for n in SMPLX_JOINT_NAMES if n not in fingers]
    assert all(v.dtype == np.float32 and v.shape == (3,) for v in init.joint_rotations.values())
    np.testing.assert_allclose(init.joint_rotations["pelvis"], result["global_orient"][0])
    body = result["body_pose"].reshape(21, 3)
    np.testing.assert_allclose(init.joint_rotations["left_hip"], body[0])
    np.testing.assert_allclose(init.joint_rotations["spine1"], body[2])
    np.testing.assert_allclose(init.joint_rotations["right_wrist"], body[20])
    np.testing.assert_allclose(init.joint_rotations["jaw"], [0.2, 0.0, 0.0])
    np.testing.assert_allclose(init.joint_rotations["right_eye_smplhf"], [0.0, 0.03, 0.0])
    # PCA hands are kept as PCA coefficients; those finger joints are not given as rotations
    assert set(init.hand_pca) == {"left", "right"}
    np.testing.assert_allclose(init.hand_pca["left"], result["left_hand_pose"][0])
    np.testing.assert_allclose(init.hand_pca["right"], result["right_hand_pose"][0])
    assert init.hand_pca["left"].shape == (12,)
    assert "left_index1" not in init.joint_rotations
    assert init.hand_pose_relative_to_mean is True
    np.testing.assert_allclose(init.betas, result["betas"][0])
    np.testing.assert_allclose(init.expression, result["expression"][0])
    np.testing.assert_array_equal(init.translation, np.zeros(3))  # SMPLify-X has no body transl
    assert init.camera is not None
    np.testing.assert_allclose(init.camera.rotation, np.eye(3))
    np.testing.assert_allclose(init.camera.translation, [0.05, 0.2, 12.5], rtol=1e-6)
    assert init.camera.focal_length is None and init.camera.image_size is None
    rows = init.rotations_array(SMPLX_JOINT_NAMES)
    assert rows.shape == (55, 3)
    np.testing.assert_allclose(rows[1:22], body)


def test_full_45_value_hands_become_joint_rotations(tmp_path: Path) -> None:
    left = (0.01 * np.arange(45, dtype=np.float32)).reshape(1, 45)
    result = smplifyx_result(left_hand_pose=left, right_hand_pose=np.ones((15, 3), np.float32))
    init = read_init(write_pickle(tmp_path / "r.pkl", result))
    assert init.hand_pca == {}
    np.testing.assert_allclose(init.joint_rotations["left_index1"], [0.0, 0.01, 0.02])
    np.testing.assert_allclose(init.joint_rotations["left_thumb3"], [0.42, 0.43, 0.44], rtol=1e-6)
    np.testing.assert_allclose(init.joint_rotations["right_pinky2"], [1.0, 1.0, 1.0])


def test_vposer_latent_is_kept_as_a_code(tmp_path: Path) -> None:
    """SMPLify-X's default (use_vposer: True) stores body_pose as the (1, 32) code: it is read as such, the body
    joints are left for the decoder, and without a VPoser folder the message names the file and the flag."""
    code = RNG.normal(size=(1, 32)).astype(np.float32)
    path = write_pickle(tmp_path / "v.pkl", smplifyx_result(body_pose=code))
    init = read_init(path)
    np.testing.assert_array_equal(init.vposer_code, code[0])
    assert "left_hip" not in init.joint_rotations and "right_wrist" not in init.joint_rotations
    np.testing.assert_allclose(init.joint_rotations["pelvis"], [np.pi, 0.1, -0.05], rtol=1e-6)
    from posecore.bodies import params_from_init

    with pytest.raises(InputFileError) as info:
        params_from_init(object(), init)
    message = str(info.value)
    assert "VPoser" in message and "32" in message and "63" in message and "--vposer" in message
    assert str(path) in message


def test_wrong_shape_names_key_found_and_expected(tmp_path: Path) -> None:
    path = write_pickle(tmp_path / "w.pkl", smplifyx_result(body_pose=np.zeros((1, 60), np.float32)))
    with pytest.raises(InputFileError) as info:
        read_init(path)
    message = str(info.value)
    assert "'body_pose'" in message and "(1, 60)" in message and "(63,)" in message and "(21, 3)" in message
    assert str(path) in message
    bad_hand = smplifyx_result(left_hand_pose=np.zeros((2, 3, 4), np.float32))
    with pytest.raises(InputFileError, match=r"'left_hand_pose' has shape \(2, 3, 4\)"):
        read_init(write_pickle(tmp_path / "h.pkl", bad_hand))


def test_nan_value_is_reported(tmp_path: Path) -> None:
    betas = np.zeros((1, 10), np.float32)
    betas[0, 3] = np.nan
    with pytest.raises(InputFileError, match="'betas' contains NaN"):
        read_init(write_pickle(tmp_path / "n.pkl", smplifyx_result(betas=betas)))
    transl = np.array([[0.0, np.inf, 1.0]])
    with pytest.raises(InputFileError, match="'transl' contains NaN or infinite"):
        read_init(write_pickle(tmp_path / "i.pkl", smplifyx_result(transl=transl)))


def test_flat_and_batched_shapes_are_equivalent(tmp_path: Path) -> None:
    pose = (0.1 * RNG.normal(size=63)).astype(np.float32)
    shapes = [(63,), (1, 63), (21, 3), (1, 21, 3), (1, 1, 63)]
    variants = [pose.reshape(shape) for shape in shapes]
    for k, variant in enumerate(variants):
        np.savez(tmp_path / f"v{k}.npz", body_pose=variant, global_orient=np.array([0.5, 0.0, 0.0]))
        init = read_init(tmp_path / f"v{k}.npz")
        np.testing.assert_allclose(init.rotations_array(SMPLX_JOINT_NAMES[1:22]), pose.reshape(21, 3))
        np.testing.assert_allclose(init.joint_rotations["pelvis"], [0.5, 0.0, 0.0])


def test_missing_keys_default(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", global_orient=np.array([[0.0, 1.0, 0.0]]))
    init = read_init(tmp_path / "m.npz")
    assert init.format == "npz"
    assert init.betas is None and init.expression is None and init.camera is None
    assert init.model_name is None
    np.testing.assert_array_equal(init.translation, np.zeros(3))
    assert sum(float(np.abs(v).sum()) for v in init.joint_rotations.values()) == pytest.approx(1.0)


def test_file_without_pose_and_model_file_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", foo=np.zeros(3))
    with pytest.raises(InputFileError, match="no pose parameters"):
        read_init(tmp_path / "x.npz")
    np.savez(tmp_path / "SMPLX_NEUTRAL.npz", v_template=np.zeros((10, 3)), shapedirs=np.zeros((10, 3, 2)))
    with pytest.raises(InputFileError, match="body model file"):
        read_init(tmp_path / "SMPLX_NEUTRAL.npz")


def test_smpl_body_pose_of_69_values(tmp_path: Path) -> None:
    pose = np.arange(69, dtype=np.float32) / 100
    np.savez(tmp_path / "smpl.npz", body_pose=pose[None], global_orient=np.zeros(3), betas=np.ones(10))
    init = read_init(tmp_path / "smpl.npz")
    assert init.model_name == "smpl"
    assert list(init.joint_rotations) == SMPL_JOINT_NAMES
    np.testing.assert_allclose(init.joint_rotations["right_hand"], pose[66:69])
    assert init.hand_pose_relative_to_mean is False


# ------------------------------------------------------------------------------------------ npz / json
def test_npz_with_object_array_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    obj = np.empty(1, dtype=object)
    obj[0] = _Exploit(sentinel)
    np.savez(tmp_path / "o.npz", body_pose=np.zeros(63), evil=obj)
    with pytest.raises(InputFileError) as info:
        read_init(tmp_path / "o.npz")
    assert "'evil'" in str(info.value) and "pickled object array" in str(info.value)
    assert not sentinel.exists()


def test_corrupt_npz(tmp_path: Path) -> None:
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(InputFileError, match=r"c\.npz.*not a readable \.npz"):
        read_init(tmp_path / "c.npz")


def test_json_round_trip(tmp_path: Path) -> None:
    result = smplifyx_result(focal_length=np.array([1500.0, 1510.0]), image_size=np.array([640, 480]))
    result["principal_point"] = np.array([[320.5, 240.0]])
    result["gender"] = "female"
    path = tmp_path / "init.json"
    as_lists = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}
    path.write_text(json.dumps(as_lists))
    from_json = read_init(path)
    from_pkl = read_init(write_pickle(tmp_path / "init.pkl", result))
    assert from_json.format == "json" and from_pkl.format == "smplify-x-pkl"
    assert from_json.gender == "female"
    assert list(from_json.joint_rotations) == list(from_pkl.joint_rotations)
    for name, value in from_pkl.joint_rotations.items():
        np.testing.assert_allclose(from_json.joint_rotations[name], value)
    np.testing.assert_allclose(from_json.betas, result["betas"][0])
    np.testing.assert_allclose(from_json.hand_pca["right"], result["right_hand_pose"][0])
    cam = from_json.camera
    assert cam is not None
    assert cam.focal_length == (1500.0, 1510.0)
    assert cam.principal_point == (320.5, 240.0)
    assert cam.image_size == (640, 480)


def test_json_nan_and_bad_json(tmp_path: Path) -> None:
    (tmp_path / "nan.json").write_text('{"global_orient": [NaN, 0, 0]}')
    with pytest.raises(InputFileError, match="'global_orient' contains NaN"):
        read_init(tmp_path / "nan.json")
    (tmp_path / "bad.json").write_text('{"global_orient": [0, 0')
    with pytest.raises(InputFileError, match="not valid JSON"):
        read_init(tmp_path / "bad.json")


def test_camera_rotation_must_be_a_rotation(tmp_path: Path) -> None:
    bad = smplifyx_result(camera_rotation=2.0 * np.eye(3)[None])
    with pytest.raises(InputFileError, match="'camera_rotation' is not a rotation matrix"):
        read_init(write_pickle(tmp_path / "c.pkl", bad))


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="file not found") as info:
        read_init(tmp_path / "missing.pkl")
    assert "missing.pkl" in str(info.value)
    (tmp_path / "pose.txt").write_text("1 2 3")
    with pytest.raises(InputFileError) as info:
        read_init(tmp_path / "pose.txt")
    assert ".txt" in str(info.value)
    for ext in (".pkl", ".npz", ".json"):
        assert ext in str(info.value)


# ------------------------------------------------------------------------------------- multi-frame
def test_amass_smplx_sequence(tmp_path: Path) -> None:
    poses = RNG.normal(size=(5, 165)).astype(np.float32)
    trans = RNG.normal(size=(5, 3)).astype(np.float32)
    betas = RNG.normal(size=16).astype(np.float32)
    np.savez(tmp_path / "walk_stageii.npz", poses=poses, trans=trans, betas=betas,
             gender=np.array("male"), mocap_framerate=np.array(120.0))  # fmt: skip
    seq = read_init_sequence(tmp_path / "walk_stageii.npz")
    assert len(seq) == 5
    for t, init in enumerate(seq):
        assert init.format == "amass" and init.model_name == "smplx" and init.gender == "male"
        assert init.frame_rate == 120.0 and init.camera is None
        assert init.hand_pose_relative_to_mean is False
        np.testing.assert_allclose(init.rotations_array(SMPLX_JOINT_NAMES), poses[t].reshape(55, 3))
        np.testing.assert_allclose(init.joint_rotations["left_elbow"], poses[t, 54:57])
        np.testing.assert_allclose(init.translation, trans[t])
        np.testing.assert_allclose(init.betas, betas)
    third = read_init(tmp_path / "walk_stageii.npz", frame=3)
    np.testing.assert_allclose(third.joint_rotations["right_thumb3"], poses[3, 162:165])
    last = read_init(tmp_path / "walk_stageii.npz", frame=-1)
    np.testing.assert_allclose(last.translation, trans[4])
    with pytest.raises(InputFileError, match="has 5 frame"):
        read_init(tmp_path / "walk_stageii.npz", frame=5)


def test_amass_smplh_maps_hands_to_smplx_names(tmp_path: Path) -> None:
    poses = RNG.normal(size=(2, 156))
    np.savez(tmp_path / "h.npz", poses=poses, trans=np.zeros((2, 3)), betas=np.zeros(16),
             gender=np.array(b"female"))  # fmt: skip
    init = read_init(tmp_path / "h.npz", frame=1)
    assert init.model_name == "smplh" and init.gender == "female"
    np.testing.assert_allclose(init.joint_rotations["right_wrist"], poses[1, 63:66], rtol=1e-6)
    np.testing.assert_allclose(init.joint_rotations["left_index1"], poses[1, 66:69], rtol=1e-6)
    np.testing.assert_allclose(init.joint_rotations["right_thumb3"], poses[1, 153:156], rtol=1e-6)
    np.testing.assert_array_equal(init.joint_rotations["jaw"], np.zeros(3))


def test_amass_frame_count_mismatch(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", poses=np.zeros((5, 165)), trans=np.zeros((4, 3)))
    with pytest.raises(InputFileError, match="frames"):
        read_init_sequence(tmp_path / "bad.npz")
    np.savez(tmp_path / "w.npz", poses=np.zeros((5, 100)))
    with pytest.raises(InputFileError, match=r"'poses' has shape \(5, 100\)"):
        read_init_sequence(tmp_path / "w.npz")


def test_batched_smplx_npz_is_a_sequence(tmp_path: Path) -> None:
    body = RNG.normal(size=(3, 21, 3))
    np.savez(tmp_path / "b.npz", global_orient=np.zeros((3, 3)), body_pose=body, betas=np.ones((1, 10)))
    seq = read_init_sequence(tmp_path / "b.npz")
    assert len(seq) == 3
    np.testing.assert_allclose(seq[2].joint_rotations["neck"], body[2, 11], rtol=1e-6)
    np.testing.assert_array_equal(seq[1].betas, np.ones(10))


def test_single_frame_file_gives_list_of_one(tmp_path: Path) -> None:
    seq = read_init_sequence(write_pickle(tmp_path / "s.pkl", smplifyx_result()))
    assert len(seq) == 1 and seq[0].format == "smplify-x-pkl"


# ------------------------------------------------------------------------------------------- SMPLer-X
def test_smplerx_output_with_meta_json(tmp_path: Path) -> None:
    out = tmp_path / "result"
    (out / "smplx").mkdir(parents=True)
    (out / "meta").mkdir()
    pred = {
        "global_orient": np.array([[3.0, 0.1, 0.0]], np.float32),
        "body_pose": RNG.normal(size=(21, 3)).astype(np.float32),
        "left_hand_pose": RNG.normal(size=(15, 3)).astype(np.float32),
        "right_hand_pose": RNG.normal(size=(15, 3)).astype(np.float32),
        "jaw_pose": np.array([[0.1, 0.0, 0.0]], np.float32),
        "leye_pose": np.zeros((1, 3)),
        "reye_pose": np.zeros((1, 3)),
        "betas": RNG.normal(size=(1, 10)).astype(np.float32),
        "expression": RNG.normal(size=(1, 10)).astype(np.float32),
        "transl": np.array([[0.1, 0.3, 8.0]], np.float32),
    }
    np.savez(out / "smplx" / "00000_0.npz", **pred)
    meta = {"focal": [5000.0, 5010.0], "princpt": [400.0, 300.0], "bbox": [0, 0, 10, 10], "bbox_id": 0}
    (out / "meta" / "00000_0.json").write_text(json.dumps(meta))
    init = read_init(out / "smplx" / "00000_0.npz")
    assert init.format == "smpler-x" and init.model_name == "smplx"
    np.testing.assert_allclose(init.joint_rotations["pelvis"], [3.0, 0.1, 0.0])
    np.testing.assert_allclose(init.joint_rotations["left_wrist"], pred["body_pose"][19])
    np.testing.assert_allclose(init.joint_rotations["left_middle2"], pred["left_hand_pose"][4])
    np.testing.assert_allclose(init.joint_rotations["right_thumb1"], pred["right_hand_pose"][12])
    assert init.hand_pca == {} and init.hand_pose_relative_to_mean is True
    np.testing.assert_allclose(init.translation, [0.1, 0.3, 8.0])
    assert init.camera is not None
    assert init.camera.focal_length == (5000.0, 5010.0)
    assert init.camera.principal_point == (400.0, 300.0)
    np.testing.assert_array_equal(init.camera.rotation, np.eye(3))
    np.testing.assert_array_equal(init.camera.translation, np.zeros(3))


def test_smplerx_prefixed_keys(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "frame.npz",
        smplx_root_pose=np.array([0.0, 0.2, 0.0]),
        smplx_body_pose=np.full(63, 0.01),
        smplx_lhand_pose=np.full(45, 0.02),
        smplx_rhand_pose=np.full(45, 0.03),
        smplx_jaw_pose=np.array([0.3, 0.0, 0.0]),
        smplx_shape=np.arange(10.0),
        smplx_expr=np.arange(10.0) / 10,
        cam_trans=np.array([0.0, 0.1, 5.0]),
        focal=np.array([1000.0, 1000.0]),
        princpt=np.array([256.0, 192.0]),
    )
    init = read_init(tmp_path / "frame.npz")
    assert init.format == "smpler-x"
    np.testing.assert_allclose(init.joint_rotations["pelvis"], [0.0, 0.2, 0.0])
    np.testing.assert_allclose(init.joint_rotations["head"], [0.01] * 3)
    np.testing.assert_allclose(init.joint_rotations["left_ring3"], [0.02] * 3)
    np.testing.assert_allclose(init.joint_rotations["right_index1"], [0.03] * 3)
    np.testing.assert_allclose(init.joint_rotations["jaw"], [0.3, 0.0, 0.0])
    np.testing.assert_allclose(init.betas, np.arange(10.0))
    np.testing.assert_allclose(init.expression, np.arange(10.0) / 10)
    np.testing.assert_allclose(init.translation, [0.0, 0.1, 5.0])
    assert init.camera is not None and init.camera.principal_point == (256.0, 192.0)


# -------------------------------------------------------------------------------------------- PoseFit
def test_posefit_fit_npz(tmp_path: Path) -> None:
    names = np.array(["root", "spine", "neck", "upperarm_l"])
    rotations = RNG.normal(size=(4, 3)).astype(np.float32)
    K = np.array([[1200.0, 0, 320.0], [0, 1210.0, 240.0], [0, 0, 1]])
    angle = 0.3
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    np.savez(
        tmp_path / "fit.npz",
        model=np.array("anny"),
        joint_names=names,
        rotations=rotations,
        translation=np.array([0.1, -0.2, 3.0]),
        shape=np.full(11, 0.5),
        expression=np.zeros(0),
        camera_K=K,
        camera_R=R,
        camera_t=np.array([0.0, 0.0, 4.0]),
        image_size=np.array([640, 480]),
    )
    init = read_init(tmp_path / "fit.npz")
    assert init.format == "posefit" and init.model_name == "anny"
    assert list(init.joint_rotations) == ["root", "spine", "neck", "upperarm_l"]
    np.testing.assert_allclose(init.joint_rotations["upperarm_l"], rotations[3])
    np.testing.assert_allclose(init.translation, [0.1, -0.2, 3.0], rtol=1e-6)
    np.testing.assert_allclose(init.betas, np.full(11, 0.5))
    assert init.expression is None
    cam = init.camera
    assert cam is not None
    assert cam.focal_length == (1200.0, 1210.0) and cam.principal_point == (320.0, 240.0)
    assert cam.image_size == (640, 480)
    np.testing.assert_allclose(cam.rotation, R, rtol=1e-6)
    np.testing.assert_allclose(cam.translation, [0.0, 0.0, 4.0])


def test_posefit_joint_count_mismatch(tmp_path: Path) -> None:
    np.savez(tmp_path / "fit.npz", joint_names=np.array(["a", "b"]), rotations=np.zeros((3, 3)))
    with pytest.raises(InputFileError, match=r"'rotations' has shape \(3, 3\), expected \(6,\) or \(2, 3\)"):
        read_init(tmp_path / "fit.npz")
