"""The smoothing benchmark fits a tiny moving sequence and reports MPJPE and acceleration error with and without
smoothing: smoothing the per-frame fits removes most of their frame-to-frame jitter."""

from __future__ import annotations

import re

import pytest

from posecore.bench.batch import smoothing_main


def test_smoothing_benchmark_reports_less_jitter_after_smoothing(tmp_path, capsys) -> None:
    out = tmp_path / "smoothing.md"
    assert smoothing_main(["--frames", "6", "--size", "64", "--iterations", "6", "--chunk", "3", "--sigmas", "2",
                           "--markdown", str(out)]) == 0  # fmt: skip
    text = out.read_text()
    assert text.strip() in capsys.readouterr().out

    def row(label: str) -> tuple[float, float]:
        line = next(line for line in text.splitlines() if line.startswith(f"| {label}"))
        mpjpe, accel = (float(x) for x in re.findall(r"\| ([0-9.]+)", line))
        return mpjpe, accel

    fits, smooth = row("per-frame fits"), row("smoothed, sigma 2")
    assert fits[0] < row("initialisation")[0]  # the fits did fit
    assert smooth[1] < 0.5 * fits[1]  # jitter (acceleration error) at least halved
    assert smooth[0] < fits[0] + 5.0  # without moving the poses away from the truth


def test_a_saved_clip_with_its_truth_is_measured_the_same_way(anny, tmp_path, capsys) -> None:
    """``--clip DIR`` (frames, init.npz, truth.npz as scripts/make_moving_clip.py writes them with Cycles; here
    drawn by the rasteriser) gives the same table as the built-in sequence."""
    from posecore.bench.sequence import make_moving_sequence

    seq = make_moving_sequence(anny, frames=5, size=48)
    seq.save(tmp_path / "clip" / "frames")
    seq.save_init(tmp_path / "clip" / "init.npz", anny)
    seq.save_truth(tmp_path / "clip" / "truth.npz", anny)
    argv = ["--iterations", "3", "--chunk", "5", "--sigmas", "2"]
    assert smoothing_main([*argv, "--clip", str(tmp_path / "clip"), "--markdown", str(tmp_path / "a.md")]) == 0
    assert smoothing_main([*argv, "--frames", "5", "--size", "48", "--markdown", str(tmp_path / "b.md")]) == 0
    capsys.readouterr()

    def rows(path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line.startswith("| ") and "mm" not in line]

    assert rows(tmp_path / "a.md") == rows(tmp_path / "b.md") and len(rows(tmp_path / "a.md")) == 3


def test_frames_come_from_the_target_renderer_handed_in(anny) -> None:
    """scripts/make_moving_clip.py hands Blender Cycles in; each frame is its RGBA composited over black, drawn with
    the body's vertices in Blender's world and the camera in Blender's world."""
    import numpy as np

    from posecore.bench.sequence import make_moving_sequence

    calls = []

    def fake_render(vertices, faces, camera, look, samples, threads, seed):
        calls.append((vertices.shape, faces.shape, camera.width, samples, seed))
        rgba = np.zeros((camera.height, camera.width, 4), np.float32)
        rgba[..., 0], rgba[..., 3] = 0.8, 0.5
        return rgba

    seq = make_moving_sequence(anny, frames=2, size=32, render=fake_render, samples=7)
    assert [c[3:] for c in calls] == [(7, 0), (7, 1)] and calls[0][2] == 32
    assert calls[0][0] == (anny.num_vertices, 3) and calls[0][1] == tuple(anny.faces.shape)
    assert float(seq.images[1][..., 0].mean()) == pytest.approx(0.4) and float(seq.images[1][..., 1].max()) == 0.0
