"""Initialisation from landmarks with known answers: joints-only kinematics, the landmark-to-joint mapping, the
bone-direction fit, the camera solve, and the fit's robust keypoint term (values and gradients)."""

from __future__ import annotations

import math

import pytest
import torch
from detect_support import synthetic_detection
from PIL import Image

from posecore.bodies.smplx_body import SmplxBody
from posecore.cameras.pinhole import PinholeCamera
from posecore.detect.camera_solve import default_focal_px, focal_from_exif, solve_translation
from posecore.detect.initialise import LandmarkInitialiser
from posecore.detect.joint_map import BONES, KEYPOINTS, POINTS, front_camera_rotation, model_joints
from posecore.detect.kinematics import JointChain
from posecore.errors import ParameterError
from posecore.fitting.keypoints import Keypoints2D, keypoint_loss
from posecore.metrics import mpjpe_mm
from posecore.rotations import axis_angle_to_matrix


@pytest.fixture(scope="module", params=["anny", "smplx"])
def body(request, anny, synthetic_smplx_dir):
    return anny if request.param == "anny" else SmplxBody(synthetic_smplx_dir)


LIMBS = ("hip", "knee", "shoulder", "elbow")


def posed_truth(body, seed: int = 3, spread: float = 0.4, yaw: float = 0.6):
    """Random limb rotations, the body turned by ``yaw`` about the vertical, its left arm raised.

    The spine stays straight: its bend between hips and shoulders is shared out by a prior, not measured.
    """
    g = torch.Generator().manual_seed(seed)
    truth = body.default_params()
    joints = [model_joints(body, f"{side}_{name}")[0] for side in ("left", "right") for name in LIMBS]
    truth.rotations[joints] = spread * torch.randn(len(joints), 3, generator=g)
    frame = front_camera_rotation(body)
    truth.rotations[0] = frame.T @ torch.tensor([0.0, yaw, 0.0])  # about the camera's (= body's) vertical
    shoulder = model_joints(body, "left_shoulder")[0]
    truth.rotations[shoulder] = frame.T @ torch.tensor([0.0, 0.0, -1.6])  # arm out and up, seen from the front
    truth.translation = torch.tensor([0.05, -0.1, 0.15])
    return truth


def front_camera(body, t=(0.1, 0.2, 3.6), focal=520.0, size=(480, 512)) -> PinholeCamera:
    w, h = size
    return PinholeCamera(focal, focal, (w - 1) / 2, (h - 1) / 2, w, h, front_camera_rotation(body), torch.tensor(t))


# ------------------------------------------------------------------ kinematics and mapping
def test_joint_chain_matches_the_model_forward(body) -> None:
    wanted = [model_joints(body, n)[0] for n in ("left_wrist", "right_ankle", "left_eye")]
    chain = JointChain(body, wanted)
    params = body.default_params()
    params.rotations = 0.5 * torch.randn(body.num_joints, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = body(params).joints[chain.joints]
    assert torch.allclose(chain.positions(params.rotations), expected, atol=1e-5)
    assert set(wanted) <= set(chain.joints) and 0 in chain.joints


def test_every_landmark_point_and_keypoint_maps_to_model_joints(body) -> None:
    for point in POINTS.values():
        for name in point.joints:
            assert model_joints(body, name), name
    for name, landmark, _ in KEYPOINTS:
        assert len(model_joints(body, name)) == 1
        # MediaPipe numbers the person's left side with odd indices from 11 on; eyes: 2 left, 5 right.
        assert name.startswith("left") == (landmark in (2,) or (landmark >= 11 and landmark % 2 == 1))
    assert all(a in POINTS and b in POINTS for a, b, _ in BONES)


def test_front_camera_sees_the_left_side_on_the_image_right_and_the_head_up(body) -> None:
    camera = front_camera(body)
    with torch.no_grad():
        joints = body(body.default_params()).joints
    uv, depth = camera.project(joints)
    left, right = model_joints(body, "left_shoulder")[0], model_joints(body, "right_shoulder")[0]
    head, ankle = model_joints(body, "left_eye")[0], model_joints(body, "left_ankle")[0]
    assert uv[left, 0] > uv[right, 0]
    assert uv[head, 1] < uv[ankle, 1]
    assert bool((depth > 0).all())
    assert torch.allclose(torch.linalg.det(front_camera_rotation(body)), torch.tensor(1.0))


# ------------------------------------------------------------------ camera
def test_translation_solve_is_exact_on_noise_free_points() -> None:
    g = torch.Generator().manual_seed(1)
    points = torch.randn(12, 3, generator=g) * 0.5
    t_true = torch.tensor([0.3, -0.2, 4.0])
    camera = PinholeCamera(600.0, 580.0, 300.0, 250.0, 640, 480, torch.eye(3), t_true)
    uv, _ = camera.project(points)
    t = solve_translation(points, uv, torch.ones(12), 600.0, 580.0, 300.0, 250.0)
    assert torch.allclose(t.float(), t_true, atol=1e-4)
    # Zero-weight points do not count: corrupt them and the answer stays.
    weights = torch.ones(12)
    weights[:4] = 0
    uv_bad = uv.clone()
    uv_bad[:4] += 80.0
    assert torch.allclose(
        solve_translation(points, uv_bad, weights, 600.0, 580.0, 300.0, 250.0).float(), t_true, atol=1e-4
    )
    with pytest.raises(ParameterError, match="two landmarks"):
        solve_translation(points, uv, torch.tensor([1.0] + [0.0] * 11), 600.0, 580.0, 300.0, 250.0)


def test_focal_length_from_exif_and_the_stated_default(tmp_path) -> None:
    image = Image.new("RGB", (400, 300), (90, 90, 90))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 50  # FocalLengthIn35mmFilm
    image.save(tmp_path / "exif.jpg", exif=exif)
    image.save(tmp_path / "plain.jpg")
    # 35 mm equivalents are defined on the diagonal (43.27 mm): a 50 mm lens on a 500 px diagonal.
    assert focal_from_exif(tmp_path / "exif.jpg", 400, 300) == pytest.approx(50 / 43.27 * 500.0)
    assert focal_from_exif(tmp_path / "exif.jpg", 200, 150) == pytest.approx(50 / 43.27 * 250.0)  # resized
    assert focal_from_exif(tmp_path / "plain.jpg", 400, 300) is None
    assert default_focal_px(400, 300) == pytest.approx(500.0)


# ------------------------------------------------------------------ initialisation (known answer)
def test_initialisation_recovers_a_synthetic_pose_and_camera(body) -> None:
    truth = posed_truth(body)
    camera = front_camera(body)
    detection = synthetic_detection(body, truth, camera)
    result = LandmarkInitialiser(body).initialise(detection, focal_px=camera.fx)

    assert result.reprojection_px < 2.0
    initialiser = LandmarkInitialiser(body)
    target, _ = initialiser.target_directions(detection)
    directions = initialiser._bone_directions(initialiser.chain.positions(result.params.rotations))
    angles = torch.rad2deg(torch.acos((directions * target).sum(-1).clamp(-1, 1)))
    assert float(angles.max()) < 8.0, angles

    # Joints in the camera's frame: close to the truth (depth is known only through the body's size).
    kp = result.keypoints.joints
    with torch.no_grad():
        true_cam = camera.world_to_camera(body(truth).joints[kp])
        found_cam = result.camera.world_to_camera(body(result.params).joints[kp])
        rest_cam = result.camera.world_to_camera(body(body.default_params()).joints[kp])
    centred = mpjpe_mm(found_cam - found_cam.mean(0), true_cam - true_cam.mean(0))
    assert centred < 30.0
    assert centred < 0.25 * mpjpe_mm(rest_cam - rest_cam.mean(0), true_cam - true_cam.mean(0))
    assert abs(float(found_cam[:, 2].mean() - true_cam[:, 2].mean())) < 0.05 * float(true_cam[:, 2].mean())
    # Left stays left: the left wrist is found on the image right of the right wrist.
    rows = {int(j): k for k, j in enumerate(kp)}
    lw, rw = rows[model_joints(body, "left_wrist")[0]], rows[model_joints(body, "right_wrist")[0]]
    assert float(found_cam[lw, 0]) > float(found_cam[rw, 0])
    assert float(found_cam[lw, 1]) < float(found_cam[rw, 1])


def test_invisible_landmarks_do_not_steer_the_camera(body) -> None:
    truth = posed_truth(body, seed=5)
    camera = front_camera(body)
    detection = synthetic_detection(body, truth, camera)
    clean = LandmarkInitialiser(body).initialise(detection, focal_px=camera.fx)
    detection.points[[15, 16]] += 150.0  # wrists far off ...
    detection.visibility[[15, 16]] = 0.0  # ... but marked invisible
    noisy = LandmarkInitialiser(body).initialise(detection, focal_px=camera.fx)
    assert torch.allclose(noisy.camera.translation, clean.camera.translation, atol=0.05)


# ------------------------------------------------------------------ keypoint term
def _keypoints(camera, joints, truth_joints, weights=None) -> Keypoints2D:
    uv, _ = camera.project(truth_joints[joints])
    w = torch.ones(len(joints)) if weights is None else weights
    return Keypoints2D(joints, uv.detach(), w, camera.width, camera.height)


def test_keypoint_term_is_zero_at_the_truth_robust_and_visibility_weighted() -> None:
    camera = PinholeCamera(300.0, 300.0, 127.5, 127.5, 256, 256, torch.eye(3), torch.tensor([0.0, 0.0, 3.0]))
    joints = torch.randn(6, 3, generator=torch.Generator().manual_seed(2)) * 0.4
    kp = _keypoints(camera, torch.arange(6), joints)
    assert float(keypoint_loss(joints, camera, kp)) == pytest.approx(0.0, abs=1e-10)
    far = joints.clone()
    far[0, 0] += 100.0  # a wildly wrong joint costs at most its share
    assert float(keypoint_loss(far, camera, kp)) < 1.0 / 6 + 1e-6
    kp.weights[0] = 0.0
    assert float(keypoint_loss(far, camera, kp)) == pytest.approx(0.0, abs=1e-10)
    # The same keypoints given at another resolution mean the same thing.
    assert float(keypoint_loss(joints, camera, kp.resized(512, 512))) == pytest.approx(0.0, abs=1e-8)


def test_keypoint_term_gradient_matches_finite_differences() -> None:
    torch.manual_seed(0)
    rotation = axis_angle_to_matrix(torch.tensor([0.1, 0.3, -0.05], dtype=torch.float64))
    translation = torch.tensor([0.1, -0.05, 3.0], dtype=torch.float64)
    camera = PinholeCamera(300.0, 310.0, 127.0, 120.0, 256, 240, rotation, translation)
    target = torch.randn(5, 3, dtype=torch.float64) * 0.4
    kp = Keypoints2D(torch.arange(5), camera.project(target)[0], torch.tensor([1.0, 0.5, 0.2, 1.0, 0.8]), 256, 240)
    kp.uv = kp.uv.double()
    kp.weights = kp.weights.double()
    joints = (target + 0.05 * torch.randn(5, 3, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda j: keypoint_loss(j, camera, kp), (joints,), eps=1e-6, atol=1e-7)

    def of_translation(t: torch.Tensor) -> torch.Tensor:
        return keypoint_loss(joints.detach(), camera.with_pose(rotation, t), kp)

    assert torch.autograd.gradcheck(of_translation, (translation.clone().requires_grad_(True),), eps=1e-6, atol=1e-7)


def test_keypoints_with_wrong_shapes_or_indices_are_refused() -> None:
    kp = Keypoints2D(torch.tensor([0, 99]), torch.zeros(2, 2), torch.ones(2), 64, 64)
    with pytest.raises(ParameterError, match="joint indices"):
        kp.validate(55)
    kp = Keypoints2D(torch.tensor([0, 1]), torch.zeros(3, 2), torch.ones(2), 64, 64)
    with pytest.raises(ParameterError, match="do not match"):
        kp.validate(55)
    kp = Keypoints2D(torch.tensor([0]), torch.tensor([[math.nan, 0.0]]), torch.ones(1), 64, 64)
    with pytest.raises(ParameterError, match="NaN"):
        kp.validate(55)


def test_the_keypoint_term_pulls_a_fit_towards_the_landmarks(anny) -> None:
    from posecore.demo import make_demo_case
    from posecore.fitting.look import Look
    from posecore.fitting.loop import FitProblem, PoseFitter
    from posecore.fitting.presets import PAPER, get_preset
    from posecore.render import get_renderer

    case = make_demo_case(anny, size=64)
    joints = torch.tensor([model_joints(anny, name)[0] for name, _, _ in KEYPOINTS])
    with torch.no_grad():
        truth_joints = anny(case.truth).joints
    keypoints = _keypoints(case.camera, joints, truth_joints)
    problem = FitProblem(
        anny, case.initial, case.target, Look(case.camera), get_renderer("raster"), keypoints=keypoints
    )
    states = PoseFitter(problem, get_preset("fast").with_overrides(iterations=12, keypoint_weight=1.0)).run()
    assert states[0].keypoint_loss > 0
    assert states[-1].keypoint_loss < 0.5 * states[0].keypoint_loss
    # The paper's objective stays Eq. 5 as published: no keypoint term.
    assert PAPER.keypoint_weight == 0
    paper = PoseFitter(problem, PAPER.with_overrides(iterations=1)).run()
    assert paper[0].keypoint_loss == 0.0


def test_commands_that_do_not_detect_never_import_mediapipe() -> None:
    import subprocess
    import sys

    code = (
        "import sys, posecore.cli, posecore.fitting.loop, posecore.detect.initialise, posecore.detect.photo; "
        "posecore.cli.build_parser(); assert 'mediapipe' not in sys.modules, 'mediapipe imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_landmark_files_with_bad_content_are_clear_errors(tmp_path) -> None:
    from posecore.detect.files import read_landmarks
    from posecore.errors import InputFileError

    cases = {
        "not_json.json": "{oops",
        "other.json": '{"format": "something-else"}',
        "short.json": '{"format": "posefit-landmarks", "image_size": [64, 64], "landmarks": []}',
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputFileError, match=name):
            read_landmarks(tmp_path / name)
    with pytest.raises(InputFileError, match="not found"):
        read_landmarks(tmp_path / "missing.json")
