"""Accuracy metrics, the Eq. 5 objective (image term + pose prior), and the optimisation presets."""

from __future__ import annotations

import math

import pytest
import torch

from posecore.errors import ParameterError
from posecore.fitting.losses import PyramidL2, image_l2, pose_prior, pyramid_l2
from posecore.fitting.presets import PRESETS, UPSTREAM_PARAMETERS, get_preset
from posecore.metrics import (
    image_error_percent,
    joint_angle_change_degrees,
    mpjpe_mm,
    pa_mpjpe_mm,
    procrustes_align,
)
from posecore.rotations import axis_angle_to_matrix

# A (1, 2, 3) image pair with values outside [0, 1] on both sides.
RENDERED = torch.tensor([[[1.5, 0.2, -0.3], [0.5, 0.5, 0.5]]])
TARGET = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 2.0]]])
# Clamped: rendered (1, .2, 0), (.5, .5, .5); target (1, 0, 0), (0, .5, 1) -> squared diffs 0, .04, 0, .25, 0, .25.
SQUARED_SUM = 0.54


def random_images(seed: int, h: int = 16, w: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rendered = torch.rand(h, w, 3, generator=g) * 1.4 - 0.2
    target = torch.rand(h, w, 3, generator=g)
    weight = torch.rand(h, w, generator=g)
    return rendered, target, weight


# ------------------------------------------------------------------------------------------ image error (Table 1)
def test_image_error_percent_by_hand() -> None:
    assert image_error_percent(RENDERED, TARGET) == pytest.approx(100 * SQUARED_SUM / 6)  # 9 %
    # Weights: the denominator is the weighted pixel count times the channels.
    assert image_error_percent(RENDERED, TARGET, torch.tensor([[1.0, 0.0]])) == pytest.approx(100 * 0.04 / 3)
    weight = torch.tensor([[0.5, 1.0]])
    assert image_error_percent(RENDERED, TARGET, weight) == pytest.approx(100 * (0.5 * 0.04 + 0.5) / (1.5 * 3))
    assert image_error_percent(TARGET, TARGET) == 0.0
    # Completely wrong binary images give 100 %.
    assert image_error_percent(torch.zeros(4, 4, 3), torch.ones(4, 4, 3)) == pytest.approx(100.0)


# ------------------------------------------------------------------------------------------ joint errors
def random_joints(seed: int, n: int = 24) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed)) * 0.4


def test_mpjpe_mm_by_hand() -> None:
    truth = torch.zeros(2, 3)
    predicted = torch.tensor([[0.003, 0.004, 0.0], [0.0, 0.0, -0.035]])  # 5 mm and 35 mm
    assert mpjpe_mm(predicted, truth) == pytest.approx(20.0)
    assert mpjpe_mm(truth, truth) == 0.0


def test_pa_mpjpe_removes_similarity_transforms_only() -> None:
    truth = random_joints(0)
    rot = axis_angle_to_matrix(torch.tensor([0.4, -1.1, 0.7]))
    moved = 1.7 * truth @ rot.T + torch.tensor([0.3, -2.0, 5.0])
    assert mpjpe_mm(moved, truth) > 100.0
    assert pa_mpjpe_mm(moved, truth) < 1e-3
    torch.testing.assert_close(procrustes_align(moved, truth), truth, atol=1e-5, rtol=0)
    assert procrustes_align(moved, truth).dtype == torch.float32
    # A pure translation: MPJPE is its length, PA-MPJPE is zero.
    shifted = truth + torch.tensor([0.0, 0.03, 0.04])
    assert mpjpe_mm(shifted, truth) == pytest.approx(50.0, rel=1e-5)
    assert pa_mpjpe_mm(shifted, truth) < 1e-3
    # A mirror image is not a rotation: it is not aligned away.
    mirrored = truth * torch.tensor([-1.0, 1.0, 1.0])
    assert pa_mpjpe_mm(mirrored, truth) > 50.0


def test_pa_mpjpe_invariant_to_similarity_of_the_prediction() -> None:
    truth = random_joints(1)
    noisy = truth + random_joints(2) * 0.1
    error = pa_mpjpe_mm(noisy, truth)
    assert 0.0 < error <= mpjpe_mm(noisy, truth)
    rot = axis_angle_to_matrix(torch.tensor([2.0, 0.5, -0.3]))
    assert pa_mpjpe_mm(0.6 * noisy @ rot.T - 1.0, truth) == pytest.approx(error, rel=1e-4)


def test_joint_angle_change_degrees_known_values() -> None:
    before = torch.zeros(4, 3)
    after = torch.tensor([[0.0, 0.0, math.pi / 2], [math.pi / 6, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, -0.001, 0.0]])
    change = joint_angle_change_degrees(before, after)
    assert change.shape == (4,)
    torch.testing.assert_close(change, torch.tensor([90.0, 30.0, 0.0, math.degrees(0.001)]), atol=1e-4, rtol=0)
    # Relative to a non-zero pose; small changes are resolved in float32.
    base = torch.randn(10, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(joint_angle_change_degrees(base, base), torch.zeros(10), atol=1e-3, rtol=0)
    axis = base / base.norm(dim=-1, keepdim=True)
    change = joint_angle_change_degrees(base, base + 0.01 * axis)
    torch.testing.assert_close(change, torch.full((10,), math.degrees(0.01)), atol=2e-3, rtol=0)


# ------------------------------------------------------------------------------------------ image loss
def test_image_l2_reductions_and_weights_by_hand() -> None:
    assert float(image_l2(RENDERED, TARGET)) == pytest.approx(SQUARED_SUM)
    assert float(image_l2(RENDERED, TARGET, reduction="mean")) == pytest.approx(SQUARED_SUM / 6)
    weight = torch.tensor([[0.5, 1.0]])
    assert float(image_l2(RENDERED, TARGET, weight)) == pytest.approx(0.5 * 0.04 + 0.5)
    assert float(image_l2(RENDERED, TARGET, weight, "mean")) == pytest.approx((0.5 * 0.04 + 0.5) / 4.5)
    # A zero weight gives zero, not a division by zero.
    assert float(image_l2(RENDERED, TARGET, torch.zeros(1, 2), "mean")) == 0.0
    # Mean is independent of the resolution; sum scales with it.
    r, t, _ = random_images(0)
    r4, t4 = r.repeat(2, 2, 1), t.repeat(2, 2, 1)
    assert float(image_l2(r4, t4, reduction="mean")) == pytest.approx(float(image_l2(r, t, reduction="mean")))
    assert float(image_l2(r4, t4)) == pytest.approx(4 * float(image_l2(r, t)), rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        image_l2(r, t, reduction="max")


def test_image_l2_gradient_is_clamped() -> None:
    rendered = torch.tensor([[[1.5, 0.5, -0.2], [1.0001, 0.9, 0.0]]], requires_grad=True)
    target = torch.full((1, 2, 3), 0.3)
    image_l2(rendered, target).backward()
    # No gradient through pixels outside [0, 1] (the clamp); 2 (r - t) inside and on the boundary.
    expected = torch.tensor([[[0.0, 0.4, 0.0], [0.0, 1.2, -0.6]]])
    torch.testing.assert_close(rendered.grad, expected)


def test_image_l2_gradient_respects_weights() -> None:
    r, t, weight = random_images(1)
    weight[:4] = 0.0
    r.requires_grad_(True)
    image_l2(r, t, weight, "mean").backward()
    assert (r.grad[:4] == 0).all()
    assert (r.grad[4:] != 0).any()


# ------------------------------------------------------------------------------------------ pose prior
def test_pose_prior_values_and_gradient() -> None:
    theta = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, 0.0]], requires_grad=True)
    torch.testing.assert_close(pose_prior(theta), torch.tensor(0.01 + 0.04 + 0.09 + 0.25))
    reference = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]])
    prior = pose_prior(theta, reference)
    torch.testing.assert_close(prior, torch.tensor(0.25))
    prior.backward()
    torch.testing.assert_close(theta.grad, 2 * (theta.detach() - reference))
    assert float(pose_prior(reference, reference)) == 0.0


# ------------------------------------------------------------------------------------------ pyramid loss
def test_pyramid_single_level_is_mean_l2() -> None:
    r, t, weight = random_images(2)
    torch.testing.assert_close(pyramid_l2(r, t, levels=1), image_l2(r, t, reduction="mean"))
    torch.testing.assert_close(pyramid_l2(r, t, weight, levels=1), image_l2(r, t, weight, reduction="mean"))


def test_pyramid_zero_for_identical_and_positive_otherwise() -> None:
    r, _, weight = random_images(3)
    assert float(pyramid_l2(r, r, levels=4)) == 0.0
    assert float(pyramid_l2(r, r.clamp(0, 1), weight, levels=4)) == pytest.approx(0.0, abs=1e-12)  # clamped
    r2, t2, _ = random_images(4)
    single = float(pyramid_l2(r2, t2, levels=1))
    assert float(pyramid_l2(r2, t2, levels=4)) > single > 0.0


def test_cached_pyramid_follows_a_changing_weight() -> None:
    """The fit reuses one PyramidL2: its cached target levels must follow a weight that changes (a selective
    look's region) and come back when it changes back, with the same values and gradients as a fresh one."""
    r, t, weight_a = random_images(6)
    _, _, weight_b = random_images(7)
    loss = PyramidL2(t, levels=4)
    for weight in (weight_a, weight_b, weight_a, None):
        cached_input = r.clone().requires_grad_(True)
        fresh_input = r.clone().requires_grad_(True)
        cached, fresh = loss(cached_input, weight), pyramid_l2(fresh_input, t, weight, levels=4)
        torch.testing.assert_close(cached, fresh)
        cached.backward()
        fresh.backward()
        torch.testing.assert_close(cached_input.grad, fresh_input.grad)
    assert float(loss(r, weight_a)) != pytest.approx(float(loss(r, weight_b)))  # the weight matters


def test_pyramid_stops_on_small_images() -> None:
    r, t, _ = random_images(5, h=3, w=3)
    torch.testing.assert_close(pyramid_l2(r, t, levels=6), pyramid_l2(r, t, levels=1))


def test_pyramid_coarse_levels_see_a_missed_target() -> None:
    # A target blob and a render blob that do not overlap: the full-resolution term is the same at every
    # distance, the pyramid's is smaller when the blobs are closer.
    def blob(x: int) -> torch.Tensor:
        img = torch.zeros(32, 32, 3)
        img[12:16, x : x + 4] = 1.0
        return img

    target = blob(4)
    near, far = blob(10), blob(24)
    assert float(image_l2(near, target)) == float(image_l2(far, target))
    assert float(pyramid_l2(near, target, levels=5)) < float(pyramid_l2(far, target, levels=5))


@pytest.mark.parametrize("levels", [1, 2, 4])
def test_pyramid_ignores_fully_masked_pixels(levels: int) -> None:
    r, t, weight = random_images(6)
    weight[:, :5] = 0.0
    weight[10:, 7] = 0.0
    masked = weight == 0
    base = pyramid_l2(r, t, weight, levels=levels)
    g = torch.Generator().manual_seed(7)
    r2, t2 = r.clone(), t.clone()
    r2[masked] = torch.rand(int(masked.sum()), 3, generator=g) * 3 - 1
    t2[masked] = torch.rand(int(masked.sum()), 3, generator=g)
    torch.testing.assert_close(pyramid_l2(r2, t2, weight, levels=levels), base)
    r2.requires_grad_(True)
    pyramid_l2(r2, t2, weight, levels=levels).backward()
    assert (r2.grad[masked] == 0).all()
    assert torch.isfinite(r2.grad).all()


# ------------------------------------------------------------------------------------------ presets
def test_paper_preset_numbers() -> None:
    paper = get_preset("paper")
    assert paper.iterations == 200
    assert paper.optimizer == "sgd"
    assert paper.momentum == 0.9
    assert paper.pose_lr == 1e-4
    assert paper.camera_lr == 1e-8
    assert paper.prior_weight == 3.0
    # theta_b as VPoser's code when a VPoser folder is given, with 3 ||z||^2 (the paper's); else axis-angle with
    # the prior towards the initialisation (measured: docs/results.md, "The paper preset")
    assert paper.latent_pose_when_available and paper.latent_prior_reference == "zero"
    assert paper.prior_reference == "init"
    assert paper.loss_reduction == "sum" and paper.reference_size == 24
    assert paper.pyramid_levels == 1 and paper.patience == 0
    assert set(paper.optimise) == {"pose", "camera_angle"}


def test_all_presets_validate_and_unknown_name_raises() -> None:
    for preset in PRESETS.values():
        preset.validate()
        assert set(preset.optimise) <= set(UPSTREAM_PARAMETERS)
    with pytest.raises(ParameterError, match="unknown preset"):
        get_preset("turbo")


def test_with_overrides_replaces_and_validates() -> None:
    paper = get_preset("paper")
    changed = paper.with_overrides(iterations=5, optimizer="adam", pose_lr=None)
    assert (changed.iterations, changed.optimizer, changed.pose_lr) == (5, "adam", 1e-4)
    assert paper.iterations == 200 and paper.optimizer == "sgd"  # the original is untouched
    for bad in (
        dict(optimizer="rmsprop"),
        dict(optimise=("pose", "camera_fov")),
        dict(iterations=-1),
        dict(prior_reference="mean"),
        dict(pyramid_levels=0),
        dict(loss_reduction="max"),
    ):
        with pytest.raises(ParameterError):
            paper.with_overrides(**bad)


@pytest.mark.parametrize(
    ("size", "box", "levels"),
    [((64, 48), (20, 41, 9, 30), 4), ((50, 37), (33, 50, 0, 37), 3), ((40, 40), (0, 40, 0, 40), 5)],
    ids=["inside", "touching-the-ragged-edge", "whole-image"],
)
def test_footprint_loss_equals_the_whole_image_loss(size: tuple[int, int], box: tuple, levels: int) -> None:
    """A render that is the background outside ``box``: comparing only the box (widened to whole coarse blocks)
    plus the background's summed-area constant gives the whole image's loss, and the same gradient inside the
    box, for every weight the fit may use (changing weights rebuild the constants)."""
    height, width = size
    g = torch.Generator().manual_seed(11)
    background = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64)
    target = torch.rand(height, width, 3, generator=g, dtype=torch.float64)
    top, bottom, left, right = box
    rendered = background.expand(height, width, 3).clone()
    inside = torch.rand(bottom - top, right - left, 3, generator=g, dtype=torch.float64)
    rendered[top:bottom, left:right] = inside * 1.4 - 0.2
    loss = PyramidL2(target, levels, background=background)
    zeros_on_top = torch.rand(height, width, generator=g, dtype=torch.float64).clamp_min(0.3)
    zeros_on_top[:7] = 0.0
    for weight in (None, zeros_on_top, torch.ones(height, width, dtype=torch.float64)):
        whole_input = rendered.clone().requires_grad_(True)
        box_input = rendered.clone().requires_grad_(True)
        whole = loss(whole_input, weight)
        boxed = loss(box_input, weight, footprint=box)
        if weight is None or bool(weight.ne(0).all()):  # (a weight with zeros compares its own support instead)
            assert loss.footprint_box(box, height, width) is not None  # the weight's second call used the box
        torch.testing.assert_close(boxed, whole, rtol=1e-12, atol=1e-15)
        whole.backward()
        boxed.backward()
        inside = (slice(top, bottom), slice(left, right))
        torch.testing.assert_close(box_input.grad[inside], whole_input.grad[inside], rtol=1e-12, atol=1e-15)
    block = 1 << (levels - 1)
    widened = loss.footprint_box((21, 22, 10, 11), height, width)  # one pixel -> one whole coarse block
    assert widened is not None and (widened[0] % block, widened[2] % block) == (0, 0)
    assert widened[1] - widened[0] <= 2 * block and widened[3] - widened[2] <= 2 * block


def test_footprint_needs_a_background_and_a_nonempty_box() -> None:
    r, t, weight = random_images(8)
    without_background = PyramidL2(t, levels=3)
    assert without_background.footprint_box((2, 5, 2, 5), 16, 12) is None  # whole image compared
    torch.testing.assert_close(without_background(r, weight, footprint=(2, 5, 2, 5)), pyramid_l2(r, t, weight, 3))
    with_background = PyramidL2(t, levels=3, background=torch.zeros(3))
    with_background(r, weight)
    assert with_background.footprint_box((2, 5, 2, 5), 16, 12) is None  # a weight seen once: no constants yet
    with_background(r, weight)
    assert with_background.footprint_box((2, 5, 2, 5), 16, 12) == (0, 8, 0, 8)
    assert with_background.footprint_box((0, 0, 0, 0), 16, 12) is None  # nothing in view: whole image
    with_background(r, weight * 0.5)  # a selective fit's weight changes every iteration: never builds them
    assert with_background.footprint_box((2, 5, 2, 5), 16, 12) is None


@pytest.mark.parametrize("region", [(9, 20, 3, 11), (0, 64, 40, 48), (60, 64, 0, 48)], ids=["inside", "strip", "edge"])
def test_weight_support_loss_equals_the_whole_image_loss(region: tuple[int, int, int, int]) -> None:
    """A selective fit's weight is zero outside its part's region: comparing only that region's box (widened to
    whole coarse blocks) gives the whole image's loss and the same gradient everywhere, a different region every
    call (the pyramid follows it)."""
    g = torch.Generator().manual_seed(5)
    target = torch.rand(64, 48, 3, generator=g, dtype=torch.float64)
    rendered = torch.rand(64, 48, 3, generator=g, dtype=torch.float64) * 1.4 - 0.2
    loss = PyramidL2(target, levels=4, background=torch.zeros(3, dtype=torch.float64))
    for shift in (0, 1, 0):
        top, bottom, left, right = region
        weight = torch.zeros(64, 48, dtype=torch.float64)
        left, right = left + shift, min(right + shift, 48)
        weight[top:bottom, left:right] = torch.rand(bottom - top, right - left, generator=g) + 0.1
        cropped_input, whole_input = rendered.clone().requires_grad_(True), rendered.clone().requires_grad_(True)
        cropped = loss(cropped_input, weight)
        whole = pyramid_l2(whole_input, target, weight, levels=4)
        torch.testing.assert_close(cropped, whole, rtol=1e-12, atol=1e-15)
        cropped.backward()
        whole.backward()
        torch.testing.assert_close(cropped_input.grad, whole_input.grad, rtol=1e-12, atol=1e-15)
    support = loss._support
    assert all(edge % loss.block == 0 or edge in (64, 48) for edge in support)
    if region == (9, 20, 3, 11):
        assert (support[1] - support[0]) * (support[3] - support[2]) < 64 * 48 / 4  # a small box, not the image
    nothing = loss(rendered, torch.zeros(64, 48, dtype=torch.float64))
    assert float(nothing) == 0.0
