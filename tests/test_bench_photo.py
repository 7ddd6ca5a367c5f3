"""The photo-start benchmark: its arm-swap measure on known poses, and the command end to end on a small scene set
(2 Cycles scenes at 128 px, 2 iterations) with results that accumulate across keypoint weights."""

from __future__ import annotations

import json

import pytest
import torch

from posecore.bench import photo as photo_bench
from posecore.bench.scenes import ARM_JOINTS, model_joint
from posecore.cameras.pinhole import PinholeCamera
from posecore.detect.joint_map import front_camera_rotation


def test_arm_swap_measure_tells_swapped_arms_and_symmetric_poses(anny) -> None:
    camera = PinholeCamera(300.0, 300.0, 127.5, 127.5, 256, 256, front_camera_rotation(anny), torch.tensor([0, 0, 3.0]))
    truth = anny.default_params()
    truth.rotations[model_joint(anny, "left_shoulder")] = torch.tensor([0.0, -1.2, 0.3])
    truth.rotations[model_joint(anny, "right_elbow")] = torch.tensor([0.9, 0.0, 0.0])
    swapped = photo_bench.swapped_arms(anny, truth)
    for suffix in ARM_JOINTS:  # swapping twice gives the truth back
        j = model_joint(anny, f"left_{suffix}")
        assert torch.allclose(photo_bench.swapped_arms(anny, swapped).rotations[j], truth.rotations[j])
    t = photo_bench.camera_frame_joints(anny, truth, camera)
    s = photo_bench.camera_frame_joints(anny, swapped, camera)
    assert photo_bench.arms_on_their_sides(anny, t, t, s) is True
    assert photo_bench.arms_on_their_sides(anny, s, t, s) is False
    rest = photo_bench.camera_frame_joints(anny, anny.default_params(), camera)
    assert photo_bench.arms_on_their_sides(anny, t, rest, rest) is None  # a symmetric pose: nothing to tell


@pytest.mark.blender
def test_photo_benchmark_runs_and_accumulates(anny, tmp_path) -> None:
    pytest.importorskip("mediapipe", reason="person detection needs mediapipe==0.10.14")
    pytest.importorskip("bpy", reason="the scene set's targets are rendered with Blender Cycles")
    from addon.cycles_targets import render_cycles
    from posecore.bench import scenes

    scene_dir = tmp_path / "scenes"
    assert scenes.main(["--out", str(scene_dir), "--count", "2", "--size", "128", "--samples", "4"], render_cycles) == 0
    out = tmp_path / "docs"
    base = ["--scenes", str(scene_dir), "--iterations", "2", "--limit", "1", "--out", str(out)]
    assert photo_bench.main(base) == 0
    data = json.loads((out / "photo.json").read_text())
    assert sorted(r["mode"] for r in data["results"]) == sorted(photo_bench.MODES)
    assert data["timings"][0]["detected"] and data["timings"][0]["init_cpu_seconds"] > 0
    assert (out / "images" / "photo_grid.png").read_bytes()[:4] == b"\x89PNG"
    # A second weight runs beside the first; the same weight again replaces its rows.
    assert photo_bench.main([*base, "--modes", "photo", "--keypoint-weight", "0.2"]) == 0
    assert photo_bench.main([*base, "--modes", "photo", "--keypoint-weight", "0.2"]) == 0
    data = json.loads((out / "photo.json").read_text())
    weights = sorted((r["mode"], r["keypoint_weight"]) for r in data["results"])
    assert weights == [("init", 0.0), ("init + keypoints", 0.01), ("photo", 0.01), ("photo", 0.2)]
    assert len(data["runs"]) == 3
    text = (out / "results.md").read_text()
    assert text.count(photo_bench.START_MARKER) == 1 and "| photo | 0.2 | 1 | 2 |" in text
