"""The benchmark scene set and the accuracy command, at a reduced size (3 scenes, 64 px, 5 iterations, raster).

The full runs (17 scenes, 256 px, 150-200 iterations, every backend) are for docs/results.md; this checks that
both commands work end to end and report what they promise.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from posecore.bench import accuracy, scenes
from posecore.metrics import joint_angle_change_degrees
from posecore.rotations import rotation_angle_between

pytest.importorskip("bpy")
from addon.cycles_targets import render_cycles

pytestmark = pytest.mark.blender
SIZE = 64


@pytest.fixture(scope="module")
def scene_set(tmp_path_factory, anny) -> Path:
    out = tmp_path_factory.mktemp("scenes")
    argv = ["--out", str(out), "--count", "3", "--size", str(SIZE), "--samples", "4"]
    assert scenes.main(argv, render=render_cycles) == 0
    return out


@pytest.fixture(scope="module")
def docs(tmp_path_factory, scene_set) -> Path:
    out = tmp_path_factory.mktemp("docs")
    (out / "results.md").write_text(
        "# Results\n\n## Accuracy\n\n<!-- accuracy:start -->\nold\n<!-- accuracy:end -->\n\n"
        "## Speed\n\nspeed table kept\n"
    )
    argv = ["--scenes", str(scene_set), "--backends", "raster", "--presets", "fast", "--iterations", "5"]
    assert accuracy.main([*argv, "--size", str(SIZE), "--out", str(out)]) == 0
    return out


def test_scene_set_holds_targets_truth_and_faulty_initialisations(scene_set: Path, anny) -> None:
    folders = accuracy.scene_folders(scene_set)
    assert [f.name for f in folders] == ["01_judo_lean_raised_leg", "02_selective_right_arm", "03_smplx_raised_leg"]
    for folder in folders:
        assert {p.name for p in folder.iterdir()} >= {"target.png", "mask.png", "truth.npz", "init.npz", "scene.json"}
        record = json.loads((folder / "scene.json").read_text())
        assert record["renderer"]["engine"].startswith("Blender Cycles")
        assert record["silhouette_iou"] > 0.85  # the Cycles camera and the fit's camera agree
        scene = accuracy.load_scene(folder)
        assert scene.target.shape == (SIZE, SIZE, 3) and float(scene.target.max()) > 0.2
        errors = record["init_errors_deg"]
        assert errors and all(15.0 <= e <= 30.0 for e in errors.values())
    judo = accuracy.load_scene(folders[0])
    # Exactly the listed joints are wrong, each by its listed angle.
    change = joint_angle_change_degrees(judo.truth.rotations, judo.initial.rotations)
    listed = [
        scenes.model_joint(anny, n) for n in json.loads((folders[0] / "scene.json").read_text())["init_errors_deg"]
    ]
    assert sorted(torch.nonzero(change > 1e-3).flatten().tolist()) == sorted(listed)
    assert float(change.max()) <= 30.01 and float(change[listed].min()) >= 14.99
    assert accuracy.load_scene(folders[1]).part == "right_arm"
    assert json.loads((folders[2] / "scene.json").read_text())["model"] == "smplx"
    assert (scene_set / scenes.SMPLX_MODEL_DIR / "smplx" / "SMPLX_NEUTRAL.npz").is_file()


def test_targets_are_not_the_fits_own_renderer(scene_set: Path, anny) -> None:
    from posecore.render.raster import RasterRenderer
    from posecore.render.scene import RenderScene

    scene = accuracy.load_scene(accuracy.scene_folders(scene_set)[0])
    with torch.no_grad():
        vertices = anny(scene.truth).vertices
        own = (
            RasterRenderer()
            .render(RenderScene(vertices, anny.faces, torch.full((anny.num_vertices, 3), 0.7), scene.camera))
            .image.clamp(0, 1)
        )
    covered = (own.sum(-1) > 0) & (scene.target.sum(-1) > 0)
    assert int(covered.sum()) > 0.1 * SIZE * SIZE  # same silhouette ...
    ratio = (scene.target[covered] / own[covered].clamp_min(1e-3)).mean(-1)
    assert float(ratio.std() / ratio.mean()) > 0.1  # ... but shaded differently (not a uniform gain)


def test_swap_and_camera_scenes(anny) -> None:
    swap = next(s for s in scenes.SCENES if s.swap_arms)
    truth = anny.default_params()
    truth.rotations = scenes.pose_for_body(anny, swap.pose)
    initial, _ = scenes.perturb(anny, truth, swap)
    left, right = scenes.model_joint(anny, "left_shoulder"), scenes.model_joint(anny, "right_shoulder")
    assert torch.allclose(initial.rotations[left], truth.rotations[right] * torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(initial.rotations[right], truth.rotations[left] * torch.tensor([1.0, -1.0, -1.0]))
    camera_spec = next(s for s in scenes.SCENES if s.camera_error_deg)
    assert camera_spec.camera_error_deg == 10.0


def test_camera_scene_starts_ten_degrees_off(tmp_path: Path, anny) -> None:
    index = next(i for i, s in enumerate(scenes.SCENES) if s.camera_error_deg)
    scenes.make_scene(scenes.SCENES[index], index, anny, tmp_path, size=32, samples=1, threads=1, render=render_cycles)
    scene = accuracy.load_scene(next(tmp_path.iterdir()))
    angle = math.degrees(float(rotation_angle_between(scene.camera.rotation, scene.init_camera.rotation)))
    assert angle == pytest.approx(10.0, abs=0.05)
    pivot = anny(scene.truth).joints[0].detach()
    assert float((scene.camera.position - pivot).norm()) == pytest.approx(
        float((scene.init_camera.position - pivot).norm()), rel=1e-4
    )  # an orbit: the distance is kept


def test_accuracy_reports_before_and_after(docs: Path) -> None:
    data = json.loads((docs / accuracy.RESULTS_FILE).read_text())
    rows = data["results"]
    assert [r["scene"] for r in rows] == ["01_judo_lean_raised_leg", "02_selective_right_arm", "03_smplx_raised_leg"]
    for row in rows:
        assert row["backend"] == "raster" and row["preset"] == "fast" and row["iterations"] == 5
        for key in ("mpjpe_mm", "pa_mpjpe_mm", "image_error_percent", "camera_error_deg"):
            assert set(row[key]) == {"before", "after"}
            assert all(math.isfinite(v) for v in row[key].values())
        assert row["mpjpe_mm"]["before"] > 0 and row["seconds"] > 0
    judo = rows[0]
    assert judo["mpjpe_mm"]["before"] > 40.0  # a faulty initialisation
    assert judo["image_error_percent"]["after"] < judo["image_error_percent"]["before"]  # 5 steps already help
    selective = rows[1]
    assert selective["part"] == "right_arm"
    assert selective["part_mpjpe_mm"]["before"] > 0
    assert selective["outside_max_change_deg"] < 1e-3 and selective["outside_max_change_mm"] < 1e-3
    assert rows[2]["model"] == "smplx"


def test_accuracy_writes_tables_between_the_markers_and_figures(docs: Path) -> None:
    text = (docs / "results.md").read_text()
    assert "old" not in text and "speed table kept" in text  # only the accuracy section is replaced
    section = text.split(accuracy.START_MARKER)[1].split(accuracy.END_MARKER)[0]
    assert "| raster | fast | 3 | 5 |" in section  # the averages row
    scene_rows = [line for line in section.splitlines() if line.startswith("| 0")]
    assert len(scene_rows) == 3 and all("→" in line for line in scene_rows)
    assert "part right_arm" in scene_rows[1]
    for stem in ("accuracy_grid_raster_fast_5", "accuracy_loss_raster_fast_5"):
        png = docs / "images" / f"{stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"images/{stem}.png" in section


def test_results_accumulate_across_runs(tmp_path: Path) -> None:
    path = tmp_path / accuracy.RESULTS_FILE
    row = {"scene": "01_a", "backend": "raster", "preset": "fast", "iterations": 5, "seconds": 2.0}
    first = accuracy.merge_results(path, [row], {"command": "a"}, {"redner": "not installed"}, fresh=True)
    path.write_text(json.dumps(first))
    other = {**row, "backend": "mitsuba"}
    again = {**row, "seconds": 1.0}
    data = accuracy.merge_results(path, [other, again], {"command": "b"}, {}, fresh=False)
    assert len(data["results"]) == 2  # the repeated row was replaced, the other backend's added
    assert [r["seconds"] for r in data["results"] if r["backend"] == "raster"] == [1.0]
    assert [r["command"] for r in data["runs"]] == ["a", "b"] and data["skipped"] == {"redner": "not installed"}
    fresh = accuracy.merge_results(path, [other], {"command": "c"}, {}, fresh=True)
    assert len(fresh["results"]) == 1 and len(fresh["runs"]) == 1
    assert accuracy.parse_iterations("fast=150,paper=200", ["fast", "paper"]) == {"fast": 150, "paper": 200}
    assert accuracy.parse_iterations("7", ["fast", "paper"]) == {"fast": 7, "paper": 7}
    assert accuracy.parse_iterations(None, ["fast"]) == {"fast": None}


def test_bench_lists_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "posecore.bench"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 2
    assert "accuracy" in done.stderr and "speed" in done.stderr and "make_benchmark_scenes.py" in done.stderr


def test_mirror_is_an_involution(anny) -> None:
    r = torch.tensor([0.3, -0.2, 0.5])
    assert torch.equal(scenes.mirror_rotation(anny, scenes.mirror_rotation(anny, r)), r)
    assert np.isclose(float(r.norm()), float(scenes.mirror_rotation(anny, r).norm()))


def test_smplifyx_layout_scene_writes_the_result_pickle_smplifyx_writes(tmp_path: Path, synthetic_smplx_dir) -> None:
    """The SMPLify-X-layout scene's init.pkl has SMPLify-X's default keys and shapes (12 PCA hands, no transl),
    and the benchmark reads it as a user's file: the same body pose as the scene's init.npz."""
    import pickle

    from posecore.bodies import load_body_model

    index = next(i for i, s in enumerate(scenes.SCENES) if s.init_layout == "smplifyx")
    smplx_body = load_body_model(f"smplx:{synthetic_smplx_dir}")
    scenes.make_scene(scenes.SCENES[index], index, smplx_body, tmp_path, size=32, samples=1, threads=1,
                      render=render_cycles)  # fmt: skip
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    with open(folder / "init.pkl", "rb") as f:
        result = pickle.load(f)  # our own file, written by the test: safe to unpickle
    shapes = {k: v.shape for k, v in result.items()}
    assert shapes == {
        "camera_rotation": (1, 3, 3), "camera_translation": (1, 3), "betas": (1, 10), "global_orient": (1, 3),
        "body_pose": (1, 63), "left_hand_pose": (1, 12), "right_hand_pose": (1, 12), "jaw_pose": (1, 3),
        "leye_pose": (1, 3), "reye_pose": (1, 3), "expression": (1, 10),
    }  # fmt: skip
    assert all(v.dtype == np.float32 for v in result.values())
    scene = accuracy.load_scene(folder)
    initial = accuracy.scene_initial(scene, smplx_body)
    body_rows = [smplx_body.joint_index(n) for n in ("pelvis", "left_hip", "right_elbow", "spine2")]
    assert torch.allclose(initial.rotations[body_rows], scene.initial.rotations[body_rows], atol=1e-6)
    hands = initial.rotations[25:55]
    assert 0 < float(hands.abs().max()) < 0.5  # the PCA coefficients were expanded into finger rotations
