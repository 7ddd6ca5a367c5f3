"""Fit where the person is: the crop camera, the window resampling, the crop rule, and a fit of a person small in
a large photo that lands on the same pose as the full-frame fit and is saved in the photo's camera."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posecore.cameras.pinhole import PinholeCamera
from posecore.cli import main
from posecore.demo import make_demo_case
from posecore.errors import ParameterError
from posecore.fitting.keypoints import Keypoints2D
from posecore.fitting.person_crop import PersonCrop, plan_crop, resample_window
from posecore.io.images import _resize, save_image
from posecore.io.init_files import read_init
from posecore.results import fit_arrays

SMALL, BIG, OFFSET = 96, 384, (190, 140)


def camera(width: int = 640, height: int = 480) -> PinholeCamera:
    eye, target = torch.tensor([0.3, -2.5, 0.4]), torch.tensor([0.0, 0.0, 0.1])
    return PinholeCamera.look_at(eye, target, torch.tensor([0.0, 0.0, 1.0]), width, height, 50.0)


def test_crop_camera_projects_where_the_window_maps_the_frame_pixels() -> None:
    frame = camera()
    crop = PersonCrop(window=(1200, 500, 2000, 1700), native_size=(2560, 1920), frame_size=(640, 480), size=(171, 256))
    points = torch.randn(50, 3) * 0.4
    uv_frame, _ = frame.project(points)
    uv_crop, _ = crop.camera(frame).project(points)
    assert torch.allclose(crop.to_crop(uv_frame), uv_crop, atol=1e-3)
    assert torch.allclose(crop.to_frame(uv_crop), uv_frame, atol=1e-3)
    # The camera saved takes the fit's pose (here an orbit) and keeps the frame's intrinsics.
    moved = crop.camera(frame).with_pose(frame.rotation @ torch.linalg.matrix_exp(torch.tensor(
        [[0.0, -0.1, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]])), frame.translation + 0.05)  # fmt: skip
    saved = crop.frame_camera(moved, frame)
    assert (saved.fx, saved.cx, saved.width) == (frame.fx, frame.cx, frame.width)
    assert torch.allclose(crop.to_frame(moved.project(points)[0]), saved.project(points)[0], atol=1e-3)


def test_window_resampling_matches_slicing_and_resizing() -> None:
    image = torch.rand(120, 200, 3)
    same = resample_window(image, (30.0, 20.0, 130.0, 100.0), (100, 80))
    assert torch.allclose(same, image[20:100, 30:130], atol=1e-5)
    shrunk = resample_window(image, (30.0, 20.0, 130.0, 100.0), (50, 40))
    assert torch.allclose(shrunk, _resize(image[20:100, 30:130], (50, 40)), atol=1e-4)
    # A half-pixel shift samples between pixels (bilinear), not the nearest one.
    shifted = resample_window(image, (30.5, 20.0, 130.5, 100.0), (100, 80))
    assert torch.allclose(shifted[:, :-1], 0.5 * (image[20:100, 30:129] + image[20:100, 31:130]), atol=1e-5)


def test_keypoints_and_masks_are_cut_with_the_same_window() -> None:
    frame_size, native = (400, 300), (1600, 1200)
    crop = PersonCrop((400, 200, 800, 600), native, frame_size, (128, 128))
    mask = torch.zeros(300, 400)
    mask[100:120, 150:160] = 1.0  # frame pixels; the window is frame [100, 200) x [50, 150)
    cut = crop.frame_map(mask)
    rows, cols = (cut > 0.5).any(1).nonzero(), (cut > 0.5).any(0).nonzero()
    assert (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])) == (64, 89, 64, 76)
    kp = Keypoints2D(torch.tensor([0]), torch.tensor([[154.5, 109.5]]), torch.ones(1), *frame_size)
    uv = crop.keypoints(kp).uv[0]
    assert torch.allclose(uv, torch.tensor([69.9, 76.3]), atol=1e-3)  # (154.5 + 0.5 - 100) * 1.28 - 0.5


def test_crop_rule() -> None:
    small_box = (1000.0, 800.0, 1200.0, 1300.0)
    crop = plan_crop(small_box, (4000, 3000), (4000, 3000), "auto", None)
    assert crop is not None and max(crop.size) == 256
    x0, y0, x1, y1 = crop.window  # 20 % of the box's longer side (500 px) on each side
    assert (x0, y0, x1, y1) == (900, 700, 1300, 1400)
    assert plan_crop(small_box, (4000, 3000), (4000, 3000), "off", None) is None
    whole = (20.0, 10.0, 380.0, 290.0)
    assert plan_crop(whole, (400, 300), (400, 300), "auto", None) is None  # fills the frame, small photo
    assert plan_crop(whole, (400, 300), (400, 300), "on", None).size == (256, 192)
    assert plan_crop((40.0, 20.0, 760.0, 580.0), (800, 600), (800, 600), "auto", None) is not None  # > 2 x 256
    assert plan_crop((40.0, 20.0, 760.0, 580.0), (800, 600), (800, 600), "auto", 800) is None  # --size given
    with pytest.raises(ParameterError, match="--person-crop"):
        plan_crop(whole, (400, 300), (400, 300), "maybe", None)


@pytest.fixture(scope="module")
def small_person(anny, tmp_path_factory):
    """The demo's person rendered at 96 px, pasted into a 384 px frame at OFFSET, with the init file's camera moved
    to that frame (so the init projects onto the pasted person)."""
    folder = tmp_path_factory.mktemp("small_person")
    case = make_demo_case(anny, size=SMALL)
    canvas = case.target[:1, :1].expand(BIG, BIG, 3).clone()  # the render's background colour
    canvas[OFFSET[1] : OFFSET[1] + SMALL, OFFSET[0] : OFFSET[0] + SMALL] = case.target
    save_image(folder / "photo.png", canvas)
    c = case.camera
    frame = PinholeCamera(c.fx, c.fy, c.cx + OFFSET[0], c.cy + OFFSET[1], BIG, BIG, c.rotation, c.translation)
    np.savez(folder / "init.npz", **fit_arrays(anny, case.initial, frame, torch.zeros(3)))
    np.savez(folder / "truth.npz", **fit_arrays(anny, case.truth, frame, torch.zeros(3)))
    return folder


def fit(folder, out, crop: str, capsys) -> dict:
    argv = ["fit", "--image", str(folder / "photo.png"), "--init", str(folder / "init.npz"), "--truth",
            str(folder / "truth.npz"), "--iterations", "30", "--person-crop", crop, "--out", str(out)]  # fmt: skip
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    return json.loads((out / "result.json").read_text())


def test_crop_fit_matches_the_full_frame_fit_in_the_photo_camera(anny, small_person, tmp_path, capsys) -> None:
    cropped = fit(small_person, tmp_path / "crop", "auto", capsys)
    full = fit(small_person, tmp_path / "full", "off", capsys)
    assert full["settings"]["person_crop"] is None
    window = cropped["settings"]["person_crop"]["window"]
    x0, y0, x1, y1 = window  # around the pasted person, much smaller than the photo
    assert OFFSET[0] - 30 <= x0 < x1 <= OFFSET[0] + SMALL + 30 and OFFSET[1] - 30 <= y0 < y1 <= OFFSET[1] + SMALL + 30
    assert max(cropped["settings"]["person_crop"]["fit_size"]) == 256
    before, after = cropped["metrics"]["mpjpe_mm"]["before"], cropped["metrics"]["mpjpe_mm"]["after"]
    assert after < 0.8 * before
    assert abs(after - full["metrics"]["mpjpe_mm"]["after"]) < 0.25 * before
    # Saved in the photo's camera: its intrinsics and size, and the fitted joints project onto the person.
    saved, init = np.load(tmp_path / "crop" / "fit.npz"), np.load(small_person / "init.npz")
    assert np.allclose(saved["camera_K"], init["camera_K"], atol=1e-4)
    assert saved["image_size"].tolist() == [BIG, BIG]
    from posecore.bodies import params_from_init

    params = params_from_init(anny, read_init(tmp_path / "crop" / "fit.npz"))
    truth = params_from_init(anny, read_init(small_person / "truth.npz"))
    cam = read_init(tmp_path / "crop" / "fit.npz").camera
    photo_cam = PinholeCamera(float(cam.focal_length[0]), float(cam.focal_length[1]), float(cam.principal_point[0]),
                              float(cam.principal_point[1]), BIG, BIG, torch.as_tensor(cam.rotation),
                              torch.as_tensor(cam.translation))  # fmt: skip
    k = init["camera_K"]
    init_cam = PinholeCamera(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), BIG, BIG,
                             torch.as_tensor(init["camera_R"]), torch.as_tensor(init["camera_t"]))  # fmt: skip
    with torch.no_grad():
        fitted_uv = photo_cam.project(anny(params).joints)[0]
        true_uv = init_cam.project(anny(truth).joints)[0]
    assert float((fitted_uv - true_uv).norm(dim=1).median()) < 4.0  # pixels of the 384 px photo


def test_photo_alone_fit_of_a_large_photo_runs_on_the_crop_and_is_saved_in_the_photo(anny, tmp_path, capsys) -> None:
    pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14")
    from posecore.bench.photo_sizes import default_photo
    from posecore.detect.joint_map import POINTS, model_joints
    from posecore.detect.landmarks import detect_landmarks

    photo = default_photo(1600)  # 1600 x 1200, the person about 440 px wide
    save_image(tmp_path / "photo.png", torch.from_numpy(photo.copy()).float() / 255)
    out = tmp_path / "fit"
    code = main(
        ["fit", "--image", str(tmp_path / "photo.png"), "--iterations", "5", "--hypotheses", "off", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "result.json").read_text())
    crop = record["settings"]["person_crop"]
    assert crop is not None and max(crop["fit_size"]) == 256 and crop["photo_size"] == [1600, 1200]
    saved = np.load(out / "fit.npz")
    assert saved["image_size"].tolist() == [1600, 1200]
    # The fitted shoulders, seen by the saved camera, land on MediaPipe's shoulders in the photo.
    from posecore.bodies import params_from_init

    init = read_init(out / "fit.npz")
    params = params_from_init(anny, init)
    k = saved["camera_K"]
    cam = PinholeCamera(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), 1600, 1200,
                        torch.as_tensor(saved["camera_R"]), torch.as_tensor(saved["camera_t"]))  # fmt: skip
    landmarks = detect_landmarks(photo).points
    with torch.no_grad():
        joints = anny(params).joints
    for name in ("left_shoulder", "right_shoulder"):
        point = POINTS[name]
        uv = cam.project(joints[[j for n in point.joints for j in model_joints(anny, n)]].mean(0)[None])[0][0]
        assert float(np.linalg.norm(uv.numpy() - landmarks[point.landmarks[0]])) < 40.0  # shoulders ~300 px apart


def test_batch_frames_are_fitted_on_the_crop_and_saved_in_the_photo_camera(small_person, tmp_path, capsys) -> None:
    import shutil

    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("frame_0000.png", "frame_0001.png"):
        shutil.copy(small_person / "photo.png", frames / name)
    out = tmp_path / "batch"
    argv = ["batch", "--frames", str(frames), "--init", str(small_person / "init.npz"), "--workers", "0",
            "--iterations", "5", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    init = np.load(small_person / "init.npz")
    for name in ("frame_0000", "frame_0001"):
        record = json.loads((out / name / "result.json").read_text())
        assert max(record["settings"]["person_crop"]["fit_size"]) == 256
        saved = np.load(out / name / "fit.npz")
        assert saved["image_size"].tolist() == [BIG, BIG]
        assert np.allclose(saved["camera_K"], init["camera_K"], atol=1e-4)


def test_bad_person_crop_options_are_one_line_errors(small_person, tmp_path, capsys) -> None:
    argv = ["fit", "--image", str(small_person / "photo.png"), "--init", str(small_person / "init.npz"),
            "--out", str(tmp_path / "x")]  # fmt: skip
    with pytest.raises(SystemExit) as exited:  # argparse's usage error, one line (posecore.cli._OneLineParser)
        main([*argv, "--person-crop", "maybe"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--person-crop" in err and "maybe" in err
    # A --crop rectangle outside the person's window cannot be fitted on the crop: say so, write nothing.
    assert main([*argv, "--crop", "0,0,40,40", "--person-crop", "on"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--person-crop off" in err and not (tmp_path / "x").exists()
