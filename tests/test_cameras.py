"""Pinhole cameras (OpenCV convention), Blender conversions, and the orbit parameter alpha."""

from __future__ import annotations

import math

import pytest
import torch

from posecore.cameras.orbit import orbit_camera
from posecore.cameras.pinhole import PinholeCamera
from posecore.errors import ParameterError
from posecore.rotations import axis_angle_to_matrix


def simple_camera(dtype: torch.dtype = torch.float32) -> PinholeCamera:
    """Identity pose, fx != fy, off-centre principal point."""
    return PinholeCamera(100.0, 200.0, 50.0, 40.0, 120, 90, torch.eye(3, dtype=dtype), torch.zeros(3, dtype=dtype))


def random_camera(seed: int, dtype: torch.dtype = torch.float32) -> PinholeCamera:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(6, generator=g).tolist()
    rotation = axis_angle_to_matrix(torch.randn(3, generator=g, dtype=torch.float64) * 1.5).to(dtype)
    translation = (torch.randn(3, generator=g, dtype=torch.float64) * 2.0).to(dtype)
    width, height = 320 + int(u[0] * 400), 240 + int(u[1] * 300)
    fx = 200.0 + 800.0 * u[2]
    fy = fx * (0.5 + u[3])  # non-square pixels too
    cx = (width - 1) / 2 + (u[4] - 0.5) * 60.0  # lens shift
    cy = (height - 1) / 2 + (u[5] - 0.5) * 60.0
    return PinholeCamera(fx, fy, cx, cy, width, height, rotation, translation)


# ------------------------------------------------------------------------------------------ projection
def test_project_known_points() -> None:
    cam = simple_camera()
    points = torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 2.0], [-1.0, 0.5, 0.5]])
    uv, depth = cam.project(points)
    assert uv.shape == (3, 2) and depth.shape == (3,)
    torch.testing.assert_close(uv, torch.tensor([[75.0, 140.0], [50.0, 40.0], [-150.0, 240.0]]))
    torch.testing.assert_close(depth, torch.tensor([4.0, 2.0, 0.5]))
    # With a pose: x_cam = R x + t.
    rot = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))  # world x -> camera y
    moved = cam.with_pose(rot, torch.tensor([0.0, 0.0, 3.0]))
    uv, depth = moved.project(torch.tensor([[1.0, 0.0, 1.0]]))  # camera frame (0, 1, 4)
    torch.testing.assert_close(uv, torch.tensor([[50.0, 90.0]]))
    torch.testing.assert_close(depth, torch.tensor([4.0]))
    torch.testing.assert_close(moved.position, -(rot.T @ torch.tensor([0.0, 0.0, 3.0])))


def test_intrinsic_matrix_and_fov() -> None:
    cam = simple_camera()
    torch.testing.assert_close(cam.intrinsic_matrix, torch.tensor([[100.0, 0, 50], [0, 200.0, 40], [0, 0, 1]]))
    assert cam.horizontal_fov_degrees == pytest.approx(2 * math.degrees(math.atan(60 / 100)), rel=1e-6)
    assert cam.vertical_fov_degrees == pytest.approx(2 * math.degrees(math.atan(45 / 200)), rel=1e-6)


def test_look_at_target_at_principal_point_and_up_is_minus_v() -> None:
    eye, target, up = torch.tensor([0.3, -4.0, 1.5]), torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0.0, 0.0, 1.0])
    cam = PinholeCamera.look_at(eye, target, up, 64, 48, vertical_fov_degrees=50.0)
    torch.testing.assert_close(cam.rotation @ cam.rotation.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.linalg.det(cam.rotation) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(cam.position, eye)
    assert cam.fx == pytest.approx(24.0 / math.tan(math.radians(25.0)), rel=1e-6)
    uv, depth = cam.project(torch.stack([target, target + 0.1 * up, eye + (target - eye) * 2]))
    torch.testing.assert_close(uv[0], torch.tensor([31.5, 23.5]), atol=1e-4, rtol=0)
    assert depth[0] == pytest.approx(float((target - eye).norm()), rel=1e-6)
    assert uv[1, 1] < uv[0, 1] - 0.5  # up -> smaller v
    assert abs(uv[1, 0] - uv[0, 0]) < 0.2  # up is (nearly) vertical in the image
    torch.testing.assert_close(uv[2], uv[0], atol=1e-4, rtol=0)  # the whole ray lands there
    # World +x is to the right for a camera looking along +y with z up.
    uv, _ = cam.project(torch.stack([target, target + torch.tensor([0.1, 0.0, 0.0])]))
    assert uv[1, 0] > uv[0, 0] + 0.5


def test_scaled_keeps_pixel_centres_consistent() -> None:
    cam = random_camera(7)
    points = torch.tensor([[0.2, -0.3, 0.1], [1.0, 0.5, -0.4], [0.0, 0.0, 0.0]])
    # Put the points in front of the camera.
    points = points + cam.position + 4.0 * cam.forward_axis
    uv1, d1 = cam.project(points)
    for factor in (2.0, 0.5):
        scaled = cam.scaled(factor)
        assert (scaled.width, scaled.height) == (round(cam.width * factor), round(cam.height * factor))
        uv2, d2 = scaled.project(points)
        sx, sy = scaled.width / cam.width, scaled.height / cam.height
        expected = torch.stack([(uv1[:, 0] + 0.5) * sx - 0.5, (uv1[:, 1] + 0.5) * sy - 0.5], dim=-1)
        torch.testing.assert_close(uv2, expected, atol=1e-3, rtol=0)
        torch.testing.assert_close(d2, d1)
    uv2, _ = cam.scaled(2).project(points)
    torch.testing.assert_close(uv2, (uv1 + 0.5) * 2 - 0.5, atol=1e-3, rtol=0)


def test_camera_to_world_inverts_extrinsics() -> None:
    cam = random_camera(3, torch.float64)
    world_to_cam = torch.eye(4, dtype=torch.float64)
    world_to_cam[:3, :3], world_to_cam[:3, 3] = cam.rotation, cam.translation
    torch.testing.assert_close(cam.camera_to_world() @ world_to_cam, torch.eye(4, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ Blender
# Expected K by hand from Blender's BKE_camera_params_compute_viewplane: with ycor = aspect_y / aspect_x,
# view = W (horizontal fit; AUTO when W * aspect_x >= H * aspect_y) else ycor * H; fx = lens / sensor * view;
# fy = fx / ycor; cx = W/2 - shift_x * view - 0.5; cy = H/2 + shift_y * view / ycor - 0.5.
BLENDER_CASES = [
    # AUTO, landscape -> horizontal: view 1920, fx = 50/36*1920.
    (
        dict(lens_mm=50, sensor_width_mm=36, sensor_height_mm=24, sensor_fit="AUTO", shift_x=0.1, shift_y=-0.05),
        (1920, 1080, 1.0, 1.0),
        (2666.6666667, 2666.6666667, 960 - 192 - 0.5, 540 - 96 - 0.5),
    ),
    # AUTO, portrait -> vertical, still the sensor *width*: view 800, fx = 50/36*800.
    (
        dict(lens_mm=50, sensor_width_mm=36, sensor_height_mm=24, sensor_fit="AUTO", shift_x=0.05, shift_y=0.1),
        (600, 800, 1.0, 1.0),
        (1111.1111111, 1111.1111111, 300 - 40 - 0.5, 400 + 80 - 0.5),
    ),
    # VERTICAL uses the sensor height: view 480, fx = 35/24*480 = 700.
    (
        dict(lens_mm=35, sensor_width_mm=36, sensor_height_mm=24, sensor_fit="VERTICAL", shift_x=0.0, shift_y=0.0),
        (640, 480, 1.0, 1.0),
        (700.0, 700.0, 319.5, 239.5),
    ),
    # HORIZONTAL, pixels twice as tall as wide (ycor 2): fx = 40/32*400 = 500, fy = 250,
    # cx = 200 - 0.2*400 - 0.5, cy = 150 + 0.1*400/2 - 0.5.
    (
        dict(lens_mm=40, sensor_width_mm=32, sensor_height_mm=24, sensor_fit="HORIZONTAL", shift_x=0.2, shift_y=0.1),
        (400, 300, 1.0, 2.0),
        (500.0, 250.0, 119.5, 169.5),
    ),
    # AUTO, landscape pixels but tall pixels make the frame portrait (400 < 300*2) -> vertical: view 600,
    # sensor width 36, fx = 36/36*600 = 600, fy = 300, cy = 150 - 0.05*600/2 - 0.5.
    (
        dict(lens_mm=36, sensor_width_mm=36, sensor_height_mm=24, sensor_fit="AUTO", shift_x=0.0, shift_y=-0.05),
        (400, 300, 1.0, 2.0),
        (600.0, 300.0, 199.5, 134.5),
    ),
    # Wide pixels (ycor 1/2): HORIZONTAL view 400, fx = 50/25*400 = 800, fy = 1600, cy = 150 + 0.1*400*2 - 0.5.
    (
        dict(lens_mm=50, sensor_width_mm=25, sensor_height_mm=24, sensor_fit="horizontal", shift_x=0.0, shift_y=0.1),
        (400, 300, 2.0, 1.0),
        (800.0, 1600.0, 199.5, 229.5),
    ),
]


@pytest.mark.parametrize(("settings", "resolution", "expected"), BLENDER_CASES)
def test_from_blender_intrinsics_by_hand(settings: dict, resolution: tuple, expected: tuple) -> None:
    w, h, ax, ay = resolution
    cam = PinholeCamera.from_blender(**settings, resolution_x=w, resolution_y=h, pixel_aspect_x=ax, pixel_aspect_y=ay)
    assert (cam.width, cam.height) == (w, h)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx(expected, rel=1e-7)


def test_from_blender_pose_of_a_hand_built_camera() -> None:
    # Blender camera at (0, -5, 1) looking at the origin: columns = right, up, -forward (it looks down -Z).
    eye = torch.tensor([0.0, -5.0, 1.0])
    forward = -eye / eye.norm()
    right = torch.tensor([1.0, 0.0, 0.0])
    up = torch.linalg.cross(right, forward)
    world = torch.eye(4)
    world[:3, 0], world[:3, 1], world[:3, 2], world[:3, 3] = right, up, -forward, eye
    assert torch.linalg.det(world[:3, :3]) == pytest.approx(1.0, abs=1e-6)
    cam = PinholeCamera.from_blender(50, 36, 24, "AUTO", 0.0, 0.0, 640, 480, matrix_world=world)
    torch.testing.assert_close(cam.position, eye)
    torch.testing.assert_close(cam.forward_axis, forward)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.5], [0.5, 0.0, 0.0]])
    uv, depth = cam.project(points)
    assert (depth > 0).all()
    assert depth[0] == pytest.approx(math.sqrt(26.0), rel=1e-6)
    torch.testing.assert_close(uv[0], torch.tensor([319.5, 239.5]), atol=1e-4, rtol=0)
    assert uv[1, 1] < uv[0, 1] - 1  # world up is image up
    assert uv[2, 0] > uv[0, 0] + 1  # world +x is image right
    # Same pose as the OpenCV look_at, and object scale in the matrix is ignored.
    ref = PinholeCamera.look_at(eye, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]), 640, 480)
    torch.testing.assert_close(cam.rotation, ref.rotation, atol=1e-6, rtol=0)
    torch.testing.assert_close(cam.translation, ref.translation, atol=1e-5, rtol=0)
    scaled_world = world.clone()
    scaled_world[:3, :3] = world[:3, :3] * torch.tensor([2.0, 0.5, 3.0])
    cam2 = PinholeCamera.from_blender(50, 36, 24, "AUTO", 0.0, 0.0, 640, 480, matrix_world=scaled_world)
    torch.testing.assert_close(cam2.rotation, cam.rotation, atol=1e-6, rtol=0)
    torch.testing.assert_close(cam2.translation, cam.translation, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", range(6))
def test_blender_round_trip(seed: int) -> None:
    cam = random_camera(seed)
    settings = cam.to_blender(sensor_width_mm=36.0)
    assert settings["sensor_fit"] == "HORIZONTAL"
    assert settings["pixel_aspect_x"] >= 1.0 and settings["pixel_aspect_y"] >= 1.0  # Blender's allowed range
    back = PinholeCamera.from_blender(sensor_height_mm=24.0, **settings)
    assert (back.width, back.height) == (cam.width, cam.height)
    assert (back.fx, back.fy, back.cx, back.cy) == pytest.approx((cam.fx, cam.fy, cam.cx, cam.cy), rel=1e-6)
    torch.testing.assert_close(back.rotation, cam.rotation, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.translation, cam.translation, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------ bad input
def test_bad_camera_parameters_raise() -> None:
    rot, t = torch.eye(3), torch.zeros(3)
    with pytest.raises(ParameterError, match="size"):
        PinholeCamera(100.0, 100.0, 0.0, 0.0, 0, 10, rot, t)
    with pytest.raises(ParameterError, match="focal"):
        PinholeCamera(-100.0, 100.0, 0.0, 0.0, 10, 10, rot, t)
    with pytest.raises(ParameterError, match="focal"):
        PinholeCamera(100.0, float("nan"), 0.0, 0.0, 10, 10, rot, t)
    with pytest.raises(ParameterError, match="rotation"):
        PinholeCamera(100.0, 100.0, 0.0, 0.0, 10, 10, torch.zeros(3), t)
    with pytest.raises(ParameterError, match="rotation"):
        PinholeCamera(100.0, 100.0, 0.0, 0.0, 10, 10, rot, torch.zeros(3, 1))
    with pytest.raises(ParameterError, match="rotation"):
        simple_camera().with_pose(torch.eye(4), t)


def test_bad_blender_parameters_raise() -> None:
    good = dict(lens_mm=50, sensor_width_mm=36, sensor_height_mm=24, sensor_fit="AUTO", shift_x=0.0, shift_y=0.0)
    good |= dict(resolution_x=640, resolution_y=480)
    PinholeCamera.from_blender(**good)
    for bad in (
        dict(lens_mm=-50),
        dict(lens_mm=0),
        dict(sensor_width_mm=0),
        dict(sensor_height_mm=0, sensor_fit="VERTICAL"),
        dict(resolution_x=0),
        dict(pixel_aspect_x=0.0),
        dict(sensor_fit="DIAGONAL"),
    ):
        with pytest.raises(ParameterError):
            PinholeCamera.from_blender(**(good | bad))


def test_bad_look_at_raises() -> None:
    z = torch.tensor([0.0, 0.0, 1.0])
    with pytest.raises(ParameterError, match="coincide"):
        PinholeCamera.look_at(z, z, torch.tensor([0.0, 1.0, 0.0]), 10, 10)
    with pytest.raises(ParameterError, match="parallel"):
        PinholeCamera.look_at(torch.zeros(3), z, z, 10, 10)


# ------------------------------------------------------------------------------------------ orbit
def orbit_setup(dtype: torch.dtype = torch.float64) -> tuple[PinholeCamera, torch.Tensor]:
    cam = PinholeCamera.look_at(
        torch.tensor([0.5, -3.0, 1.2]), torch.tensor([0.0, 0.0, 0.9]), torch.tensor([0.0, 0.0, 1.0]), 80, 60
    )
    # Exactly orthonormal in the test dtype (look_at builds float32).
    u, _, vt = torch.linalg.svd(cam.rotation.double())
    rotation = (u @ vt).to(dtype)
    cam = cam.with_pose(rotation, -(rotation @ torch.tensor([0.5, -3.0, 1.2], dtype=dtype)))
    pivot = torch.tensor([0.1, 0.2, 0.8], dtype=dtype)  # not on the optical axis
    return cam, pivot


def test_orbit_keeps_distance_intrinsics_and_orthonormality() -> None:
    cam, pivot = orbit_setup()
    distance = (cam.position - pivot).norm()
    for alpha in torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64):
        moved = orbit_camera(cam, alpha, pivot)
        torch.testing.assert_close((moved.position - pivot).norm(), distance)
        torch.testing.assert_close(moved.rotation @ moved.rotation.T, torch.eye(3, dtype=torch.float64))
        torch.testing.assert_close(moved.intrinsic_matrix, cam.intrinsic_matrix, atol=0, rtol=0)
        assert (moved.width, moved.height) == (cam.width, cam.height)
        # The world is seen the same way up to the rotation: a rotated point projects where the original did.
        q = axis_angle_to_matrix(alpha)
        point = torch.tensor([0.3, 0.1, 1.1], dtype=torch.float64)
        uv0, d0 = cam.project(point[None])
        uv1, d1 = moved.project((pivot + q @ (point - pivot))[None])
        torch.testing.assert_close(uv1, uv0)
        torch.testing.assert_close(d1, d0)


def test_orbit_zero_alpha_is_identity() -> None:
    cam, pivot = orbit_setup()
    moved = orbit_camera(cam, torch.zeros(3, dtype=torch.float64), pivot)
    torch.testing.assert_close(moved.rotation, cam.rotation)
    torch.testing.assert_close(moved.translation, cam.translation)


def test_orbit_about_the_viewing_axis_keeps_the_pivot_in_place() -> None:
    cam, pivot = orbit_setup()
    direction = (pivot - cam.position) / (pivot - cam.position).norm()
    uv0, _ = cam.project(pivot[None])
    for angle in (0.3, -1.0, 2.5):
        moved = orbit_camera(cam, angle * direction, pivot)
        torch.testing.assert_close(moved.position, cam.position)
        uv1, _ = moved.project(pivot[None])
        torch.testing.assert_close(uv1, uv0)
        # Other points do move (the image rolls about the pivot).
        other, _ = moved.project(torch.tensor([[0.4, 0.0, 1.2]], dtype=torch.float64))
        assert (other - cam.project(torch.tensor([[0.4, 0.0, 1.2]], dtype=torch.float64))[0]).norm() > 0.5


@pytest.mark.parametrize("alpha_scale", [0.0, 0.2])
def test_orbit_gradient_matches_finite_differences(alpha_scale: float) -> None:
    cam, pivot = orbit_setup()
    point = torch.tensor([[0.3, 0.1, 1.1]], dtype=torch.float64)

    def uv_of(alpha: torch.Tensor) -> torch.Tensor:
        return orbit_camera(cam, alpha, pivot).project(point)[0]

    alpha = (torch.tensor([0.3, -0.7, 0.5], dtype=torch.float64) * alpha_scale).requires_grad_(True)
    assert torch.autograd.gradcheck(uv_of, (alpha,))
    # The gradient of u with respect to alpha is not zero, in float32 as well.
    cam32, pivot32 = orbit_setup(torch.float32)
    alpha32 = torch.zeros(3, requires_grad=True)
    orbit_camera(cam32, alpha32, pivot32).project(point.float())[0][0, 0].backward()
    assert torch.isfinite(alpha32.grad).all() and alpha32.grad.abs().max() > 1.0
