"""The smoothing benchmark fits a tiny moving sequence and reports MPJPE and acceleration error with and without
smoothing: smoothing the per-frame fits removes most of their frame-to-frame jitter."""

from __future__ import annotations

import re

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
