"""Fuzzing every reader of untrusted files (init pickles / npz / json, the SMPL-X model loader, images,
masks) with hypothesis, in a child process under an address-space limit: only PoseFit's own errors, no
crash, bounded memory. CI runs a small budget; deeper runs: ``python -m posecore.fuzz --seconds 600``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")

REPO = Path(__file__).resolve().parents[1]


def test_fuzzed_files_give_only_posefit_errors_within_a_memory_limit(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "posecore.fuzz",
            "--seconds",
            "12",
            "--memory-mb",
            "2048",
            "--keep-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode} (negative: killed by a signal): {output[-4000:]}"
    summary = re.search(r"fuzz: (\d+) inputs .*peak memory (\d+) MB; no failures", output)
    assert summary, output[-4000:]
    assert int(summary[1]) >= 200  # every reader was driven
    for reader in ("init-pkl", "init-npz", "init-json", "model", "image", "mask", "vposer"):
        assert re.search(rf"{reader} [1-9]\d* \(\d+ read\)", output), output
    assert int(summary[2]) < 2048
