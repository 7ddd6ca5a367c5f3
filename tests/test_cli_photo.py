"""The command line from a photo alone: ``fit`` without ``--init`` detects, initialises and fits; ``detect`` writes
landmarks, mask, an init file ``fit`` accepts and an overlay; no person is exit 2 with one line and no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14 (scripts/setup.sh installs it)")

from posecore.bench.accuracy import read_fit_npz
from posecore.cli import main
from posecore.demo import make_demo_case
from posecore.io.images import save_image
from posecore.io.init_files import read_init
from posecore.metrics import pa_mpjpe_mm
from posecore.results import fit_arrays


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def rendered(anny, tmp_path_factory):
    """A rendered photo of the demo's hidden pose (nothing else given) and the truth, for checking."""
    folder = tmp_path_factory.mktemp("photo")
    case = make_demo_case(anny, size=128)
    save_image(folder / "photo.png", case.target)
    np.savez(folder / "truth.npz", **fit_arrays(anny, case.truth, case.camera, torch.zeros(3)))
    return folder, case


def pa_error(anny, params, truth) -> float:
    joints = anny.body_joint_indices
    with torch.no_grad():
        return pa_mpjpe_mm(anny(params).joints[joints], anny(truth).joints[joints])


def test_fit_without_init_detects_initialises_and_gets_close_to_the_truth(anny, rendered, tmp_path, capsys) -> None:
    folder, case = rendered
    out = tmp_path / "fit"
    argv = ["fit", "--image", str(folder / "photo.png"), "--iterations", "8", "--out", str(out)]
    code, _stdout, err = run(argv, capsys)
    assert code == 0, err
    record = json.loads((out / "result.json").read_text())
    settings = record["settings"]
    assert settings["init"] is None and settings["mask"] == "auto" and settings["keypoints"] is True
    assert settings["photo_start"]["focal_source"] == "default"
    assert settings["photo_start"]["reprojection_px"] < 5.0
    assert "translation" in settings["optimise"]  # a photo start's placement is approximate: the fit moves it
    params, camera = read_fit_npz(out / "fit.npz")
    rest = pa_error(anny, anny.default_params(), case.truth)
    assert pa_error(anny, params, case.truth) < 0.6 * rest  # the rest pose is far; the photo start is close
    assert record["history"][0]["keypoint_loss"] > 0
    assert (camera.width, camera.height) == (128, 128)


def test_detect_writes_landmarks_mask_overlay_and_an_init_that_fit_accepts(anny, rendered, tmp_path, capsys) -> None:
    folder, case = rendered
    out = tmp_path / "detect"
    code, stdout, err = run(["detect", "--image", str(folder / "photo.png"), "--out", str(out)], capsys)
    assert code == 0, err
    assert json.loads(stdout)["image_size"] == [128, 128]
    landmarks = json.loads((out / "landmarks.json").read_text())
    assert len(landmarks["landmarks"]) == 33 and landmarks["landmarks"][11]["name"] == "left_shoulder"
    for name in ("mask.png", "overlay.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    init = read_init(out / "init.npz")
    assert init.format == "posefit" and init.camera.image_size == (128, 128)
    params, _ = read_fit_npz(out / "init.npz")
    assert pa_error(anny, params, case.truth) < 0.6 * pa_error(anny, anny.default_params(), case.truth)

    fit_out = tmp_path / "fit"
    argv = ["fit", "--image", str(folder / "photo.png"), "--init", str(out / "init.npz"),
            "--mask", str(out / "mask.png"), "--keypoints", str(out / "landmarks.json"),
            "--iterations", "2", "--out", str(fit_out)]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    settings = json.loads((fit_out / "result.json").read_text())["settings"]
    assert settings["keypoints"] is True and settings["photo_start"] is None  # nothing detected again


@pytest.mark.parametrize("command", ["fit", "detect"])
def test_a_photo_without_a_person_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, command) -> None:
    rng = np.random.default_rng(1)
    save_image(tmp_path / "noise.png", rng.random((96, 128, 3)).astype(np.float32))
    out = tmp_path / "out"
    code, _stdout, err = run([command, "--image", str(tmp_path / "noise.png"), "--out", str(out)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "noise.png: no person found" in err
    assert not out.exists()


def test_a_person_box_outside_the_photo_exits_2(rendered, tmp_path, capsys) -> None:
    folder, _ = rendered
    argv = ["fit", "--image", str(folder / "photo.png"), "--person", "0,0,500,500", "--out", str(tmp_path / "o")]
    code, _, err = run(argv, capsys)
    assert code == 2 and "--person box" in err and err.count("\n") == 1


def test_fit_without_init_initialises_an_smplx_format_model_too(
    rendered, synthetic_smplx_dir, tmp_path, capsys
) -> None:
    folder, _ = rendered
    out = tmp_path / "smplx"
    argv = ["fit", "--image", str(folder / "photo.png"), "--model", f"smplx:{synthetic_smplx_dir}",
            "--iterations", "2", "--out", str(out)]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    saved = np.load(out / "fit.npz")
    assert str(saved["model"]) == "smplx" and saved["rotations"].shape == (55, 3)
    assert json.loads((out / "result.json").read_text())["settings"]["photo_start"]["reprojection_px"] < 5.0
